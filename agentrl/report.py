"""The end of a run: ``summary.json``'s contents and the one-line report printed last."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentrl.config import TrainConfig
    from agentrl.metrics import MetricsLogger


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def run_summary(
    run_dir: Path,
    iterations: int,
    initial: Mapping[str, float],
    final: Mapping[str, float],
    interrupted: bool,
    checkpoint: Path | None,
    plot: Path | None,
    stop_reason: str | None,
) -> dict[str, object]:
    """What ``summary.json`` holds: the run, its iterations, the initial and final greedy
    (``eval``) and sampled (``eval_sample``) success and return, the last checkpoint, the
    learning-curve plot and why it stopped early (if it did)."""
    summary: dict[str, object] = {"run_dir": str(run_dir), "iterations": iterations, "interrupted": interrupted}
    for mode in ("eval", "eval_sample"):
        for when, row in (("initial", initial), ("final", final)):
            for key in ("success", "return"):
                summary[f"{when}_{mode}_{key}"] = row.get(f"{mode}/{key}")
    summary.update(
        {"checkpoint": str(checkpoint), "plot": str(plot) if plot else None, "stopped": stop_reason}
    )
    return summary


def summary_line(
    summary: Mapping[str, object],
    initial: Mapping[str, float],
    final: Mapping[str, float],
    interrupted: bool,
    stopped: bool,
) -> str:
    """``done: N iterations | greedy eval success a -> b, return c -> d | sampled ... |
    checkpoint ... | run dir ...`` (``interrupted`` / ``stopped`` instead of ``done``)."""
    parts = []
    for label, key in (("greedy", "eval"), ("sampled", "eval_sample")):
        a, b = initial.get(f"{key}/success"), final.get(f"{key}/success")
        ra, rb = initial.get(f"{key}/return"), final.get(f"{key}/return")
        if a is not None or b is not None:
            parts.append(f"{label} eval success {_fmt(a)} -> {_fmt(b)}, return {_fmt(ra)} -> {_fmt(rb)}")
    status = "interrupted" if interrupted else "stopped" if stopped else "done"
    return (
        f"{status}: {summary['iterations']} iterations | "
        + " | ".join(parts)
        + f" | checkpoint {summary['checkpoint']} | run dir {summary['run_dir']}"
    )


def nonfinite_stop_reason(iterations: int, metrics: Path, checkpoint: Path | None) -> str:
    """Why a run stopped after ``iterations`` iterations in a row of skipped NaN/inf steps
    (``fault.max_nonfinite_iters``): where to look, the usual causes, the last good checkpoint."""
    return (
        f"{iterations} iterations in a row had NaN/inf losses or gradients "
        f"(their steps were skipped, see fault/skipped_steps in "
        f"{metrics}); usual causes: NaN rewards, a too high learning rate. "
        f"The last good checkpoint is {checkpoint}"
    )


def finish_run(
    cfg: TrainConfig,
    log: MetricsLogger,
    run_dir: Path,
    iterations: int,
    initial: Mapping[str, float],
    interrupted: bool,
    checkpoint: Path | None,
    stop_reason: str | None,
) -> dict[str, Any]:
    """Close the run's logs: the learning-curve plot (``logging.plot``), ``summary.json``
    and the last lines printed; returns the summary."""
    from agentrl.metrics import plot_learning_curve, read_metrics

    rows = read_metrics(log.path)
    final: dict[str, Any] = next((r for r in reversed(rows) if any(k.startswith("eval") for k in r)), {})
    log.close()
    png = None
    if cfg.logging.plot:
        png = plot_learning_curve(
            log.path, run_dir / "learning_curve.png", title=f"{cfg.algorithm['name']} on {cfg.env.id}"
        )
    summary = run_summary(run_dir, iterations, initial, final, interrupted, checkpoint, png, stop_reason)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if stop_reason is not None:
        log.print(f"stopped: {stop_reason}")
    log.print(summary_line(summary, initial, final, interrupted, stop_reason is not None))
    return summary


__all__ = ["finish_run", "nonfinite_stop_reason", "run_summary", "summary_line"]
