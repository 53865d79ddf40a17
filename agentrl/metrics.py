"""Run output: metrics as JSONL, the same scalars to every tracker, a live table, a learning-curve PNG."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from agentrl.trackers import ConfigTree, Tracker, close_all

COLUMNS = [
    ("iter", "iteration", "{:>4.0f}"),
    ("return", "train/return", "{:>7.2f}"),
    ("success", "train/success", "{:>7.2f}"),
    ("greedy_succ", "eval/success", "{:>11.2f}"),
    ("greedy_ret", "eval/return", "{:>10.2f}"),
    ("sample_succ", "eval_sample/success", "{:>11.2f}"),
    ("sample_ret", "eval_sample/return", "{:>10.2f}"),
    ("tok/s", "perf/tokens_per_s", "{:>7.0f}"),
    ("ep/s", "perf/episodes_per_s", "{:>6.2f}"),
    ("iter_s", "perf/iteration_s", "{:>6.1f}"),
]


def scalar_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a metrics row, as every tracker logs them: ints and floats (not
    ``None``, which is a NaN/inf that was cleaned), without ``iteration`` (the step)."""
    return {
        k: float(v) for k, v in row.items() if isinstance(v, int | float) and k != "iteration"
    }


class MetricsLogger:
    """Appends one JSON object per log call to ``metrics.jsonl`` and sends its scalars to
    every tracker (TensorBoard, W&B, MLflow: :mod:`agentrl.trackers`).

    Args:
        run_dir: the run folder (``metrics.jsonl`` goes there).
        trackers: where the scalars, the config and text also go; closed by :meth:`close`.
        console: print a table row per iteration there (``None``: no table).
        truncate_after: on resume, drop JSONL rows of iterations after this one (they
            belong to the interrupted tail that is about to be replayed).
    """

    def __init__(
        self,
        run_dir: str | Path,
        trackers: Sequence[Tracker] = (),
        console: Console | None = None,
        truncate_after: int | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "metrics.jsonl"
        if truncate_after is not None and self.path.exists():
            rows = read_metrics(self.path)
            with open(self.path, "w") as f:
                for r in rows:
                    if r.get("iteration", 0) <= truncate_after:
                        f.write(json.dumps(r) + "\n")
        self.console = console
        self.trackers = list(trackers)
        self._header_done = False
        self._closed = False

    def log(self, iteration: int, metrics: dict[str, Any]) -> None:
        """Append ``metrics`` as iteration ``iteration``'s row, send its scalars to the
        trackers and print its table row."""
        row = {"iteration": iteration, **{k: _clean(v) for k, v in metrics.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        scalars = scalar_metrics(row)
        for tracker in self.trackers:
            tracker.log_scalars(iteration, scalars)
        if self.console is not None:
            self._print_row(row)

    def log_config(self, config: ConfigTree) -> None:
        """Send the run's config to every tracker."""
        for tracker in self.trackers:
            tracker.log_config(config)

    def log_text(self, step: int, tag: str, text: str) -> None:
        """Send a Markdown document (e.g. ``transcripts``) to every tracker."""
        for tracker in self.trackers:
            tracker.log_text(step, tag, text)

    def _print_row(self, row: dict[str, Any]) -> None:
        assert self.console is not None
        if not self._header_done:
            self.console.print("  ".join(f"[bold]{name:>{len(fmt.format(0))}}[/bold]" for name, _, fmt in COLUMNS), soft_wrap=True)
            self._header_done = True
        cells = []
        for _, key, fmt in COLUMNS:
            v = row.get(key)
            width = len(fmt.format(0))
            cells.append(fmt.format(v) if isinstance(v, int | float) else " " * (width - 1) + "-")
        self.console.print("  ".join(cells), highlight=False, soft_wrap=True)

    def print(self, message: str) -> None:
        if self.console is not None:
            self.console.print(message, highlight=False, soft_wrap=True)
        else:
            print(message)

    def close(self, failed: bool = False) -> None:
        """Close every tracker once (later calls do nothing); ``failed``: the run raised."""
        if not self._closed:
            self._closed = True
            close_all(self.trackers, failed=failed)


def _clean(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if hasattr(v, "item"):
        return v.item()
    return v


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All rows of a ``metrics.jsonl`` (a torn last line is skipped)."""
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def plot_learning_curve(metrics_path: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Train and eval return/success against iterations, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("return", "success"), strict=True):
        labels = {"train": "train (sampled)", "eval": "eval (greedy)", "eval_sample": "eval (sampled)"}
        for split, style in (("train", "-"), ("eval", "o-"), ("eval_sample", "s--")):
            pts = [(r["iteration"], r[f"{split}/{metric}"]) for r in rows if r.get(f"{split}/{metric}") is not None]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, label=labels[split])
        ax.set_xlabel("iteration")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(out_png)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
