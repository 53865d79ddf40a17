"""``agentrl lifelong report RUN_DIR``: the L2M metrics table and a plot of a scenario run.

Reads the l2logger logs a scenario run wrote (``RUN_DIR/l2logs/<scenario>-<time>/``, the
newest one) and, when present, the single-task-expert logs (``RUN_DIR/ste/l2logs/``), with
the l2logger conventions (rows sorted by ``exp_num`` then ``block_num``, task names lower
case), then computes :func:`agentrl.lifelong.metrics.lifetime_metrics`.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from agentrl.lifelong.metrics import Regime, lifetime_metrics, terminal_performance, to_regimes


def read_l2log(log_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of every ``data-log.tsv`` under ``log_dir``, sorted as l2logger sorts them."""
    rows: list[dict[str, Any]] = []
    files = sorted(Path(log_dir).rglob("data-log.tsv"))
    if not files:
        raise FileNotFoundError(f"no l2logger data-log.tsv files under {log_dir}")
    for f in files:
        with open(f, newline="") as fh:
            for r in csv.DictReader(fh, delimiter="\t"):
                r["task_name"] = str(r["task_name"]).lower()
                r.setdefault("block_subtype", "wake")
                rows.append(r)
    rows.sort(key=lambda r: (int(r["exp_num"]), int(r["block_num"])))
    return rows


def find_log_dir(run_dir: str | Path) -> Path:
    """The newest scenario log folder of a run (or ``run_dir`` itself if it is one)."""
    p = Path(run_dir)
    if (p / "logger_info.json").exists():
        return p
    candidates = sorted((p / "l2logs").glob("*/logger_info.json"), key=lambda f: f.stat().st_mtime)
    if not candidates:
        raise FileNotFoundError(f"no l2logger logs in {p} (expected {p}/l2logs/<scenario>-<time>/)")
    return candidates[-1].parent


def read_ste(ste_dir: str | Path, perf: str) -> dict[str, list[list[Regime]]]:
    """Single-task-expert runs under ``ste_dir/l2logs`` (task -> list of runs)."""
    out: dict[str, list[list[Regime]]] = {}
    for info in sorted((Path(ste_dir) / "l2logs").glob("*/logger_info.json")):
        regimes = to_regimes(read_l2log(info.parent), perf)
        tasks = {r.task for r in regimes if r.block_type == "train"}
        if len(tasks) == 1:
            out.setdefault(tasks.pop(), []).append(regimes)
    return out


def report(
    run_dir: str | Path,
    perf: str = "success",
    smoothing: str = "flat",
    ste_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Metrics of a scenario run (plus its test-block performance matrix).

    ``ste_dir``: where the single-task experts were logged (default ``run_dir/ste``).
    """
    log_dir = find_log_dir(run_dir)
    regimes = to_regimes(read_l2log(log_dir), perf)
    ste = read_ste(ste_dir if ste_dir is not None else Path(run_dir) / "ste", perf)
    result = lifetime_metrics(regimes, ste, smoothing=smoothing)
    result["log_dir"] = str(log_dir)
    result["test_matrix"] = test_matrix(regimes)
    return result


def test_matrix(regimes: list[Regime]) -> list[dict[str, Any]]:
    """One row per test block: ``{"block": n, "after": last trained task, task: perf, ...}``."""
    rows: list[dict[str, Any]] = []
    last_train = "start"
    for r in regimes:
        if r.block_type == "train":
            last_train = r.task
            continue
        if not rows or rows[-1]["block"] != r.block_num:
            rows.append({"block": r.block_num, "after": last_train})
        rows[-1][r.task] = terminal_performance(r)
    return rows


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of the lifetime and per-task metrics."""

    def f(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    lines = [f"logs: {result['log_dir']}", "", "test performance after each block:"]
    tasks = list(result["tasks"])
    lines.append("  " + "after".ljust(10) + "".join(t.rjust(10) for t in tasks))
    for row in result["test_matrix"]:
        lines.append(
            "  " + str(row["after"]).ljust(10) + "".join(f(row.get(t)).rjust(10) for t in tasks)
        )
    lines += ["", "lifetime metrics:"]
    for k, v in result["lifetime"].items():
        lines.append(f"  {k:<28}{f(v)}")
    lines += [
        "",
        "per task:"
        + "".join(k.rjust(20) for k in ("perf_maintenance", "ste_rel_perf", "sample_efficiency")),
    ]
    for t, m in result["tasks"].items():
        lines.append(
            f"  {t:<7}"
            + "".join(
                f(m[k]).rjust(20) for k in ("perf_maintenance", "ste_rel_perf", "sample_efficiency")
            )
        )
    return "\n".join(lines)


def plot_report(result: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Test performance of every task across the test blocks (one line per task)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["test_matrix"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for task in result["tasks"]:
        ax.plot(range(len(rows)), [r.get(task, float("nan")) for r in rows], marker="o", label=task)
    ax.set_xticks(range(len(rows)), [f"after\n{r['after']}" for r in rows])
    ax.set_ylabel("test performance")
    ax.set_title(title or "lifelong scenario")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(run_dir: str, perf: str = "success", smoothing: str = "flat", plot: bool = True) -> int:
    result = report(run_dir, perf, smoothing)
    print(format_report(result))
    out = Path(run_dir) / "lifelong_metrics.json"
    out.write_text(
        json.dumps({k: v for k, v in result.items() if k != "transfer"}, indent=2, default=str)
    )
    if plot:
        png = plot_report(result, Path(run_dir) / "lifelong_report.png")
        print(f"\nwrote {out} and {png}")
    return 0
