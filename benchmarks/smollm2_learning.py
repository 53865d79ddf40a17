"""SmolLM2-135M-Instruct learning multi-turn envs: the table and curve of docs/conversations.md.

Reads finished runs of ``+experiment=smollm2_guess_the_number`` /
``+experiment=smollm2_toolcalls`` (one run directory per seed) and writes, per env: eval
success, return and invalid-reply rate before training (iteration 0: the prompted model, or
the warm-started one) and after the last iteration, greedy and sampled, per seed and as the
mean with a 95% bootstrap interval over seeds; the wall time of each run; and a figure of
the training success per iteration (mean over seeds, the band spans the seeds). With
``--before RUN_DIR`` every seed's "before" is that run's first evaluation instead (e.g. the
prompted model, ``warm_start.enabled=false iterations=0``, against warm-started runs). Usage::

    for s in 0 1 2; do agentrl train +experiment=smollm2_guess_the_number seed=$s run_dir=runs/gtn_s$s; done
    python benchmarks/smollm2_learning.py --env guess_the_number runs/gtn_s0 runs/gtn_s1 runs/gtn_s2 \\
        --env toolcalls runs/tc_s0 ... --out docs/smollm2_learning.json --png docs/smollm2_learning.png
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

from agentrl.metrics import read_metrics

KEYS = ("success", "return", "invalid_actions")


def bootstrap_interval(values: list[float], reps: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values``."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choice(values) for _ in range(n)) / n for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


def _evals(run_dir: Path) -> list[dict[str, Any]]:
    evals = [r for r in read_metrics(run_dir / "metrics.jsonl") if "eval_sample/success" in r]
    if not evals:
        raise ValueError(f"{run_dir} has no evaluation row (eval_sample/success) in metrics.jsonl")
    return evals


def read_run(run_dir: Path, before: Path | None = None) -> dict[str, Any]:
    """Eval before/after, the per-iteration training success and the wall time of one run
    (``before``: take the "before" evaluation from that run's first one instead)."""
    rows = read_metrics(run_dir / "metrics.jsonl")
    evals = _evals(run_dir)
    first, last = (_evals(before)[0] if before is not None else evals[0]), evals[-1]
    out: dict[str, Any] = {"run_dir": str(run_dir), "iterations": int(last["iteration"])}
    for mode, prefix in (("greedy", "eval"), ("sampled", "eval_sample")):
        for key in KEYS:
            out[f"{mode}_{key}_before"] = float(first.get(f"{prefix}/{key}", "nan"))
            out[f"{mode}_{key}_after"] = float(last.get(f"{prefix}/{key}", "nan"))
    out["train_success"] = [r.get("train/success") for r in rows if r["iteration"] > 0]
    out["warm_start_rows"] = evals[0].get("warm_start/rows")
    out["before_from"] = str(before) if before is not None else None
    config = json.loads((run_dir / "config.json").read_text())
    out["episodes_per_iter"] = int(config["rollout"]["episodes_per_iter"])
    # from the config's writing (the start) to the last metrics row (the end)
    out["wall_min"] = ((run_dir / "metrics.jsonl").stat().st_mtime - (run_dir / "config.json").stat().st_mtime) / 60
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": len(runs)}
    for mode in ("greedy", "sampled"):
        for key in KEYS:
            for when in ("before", "after"):
                vals = [r[f"{mode}_{key}_{when}"] for r in runs]
                out[f"{mode}_{key}_{when}"] = sum(vals) / len(vals)
            deltas = [r[f"{mode}_{key}_after"] - r[f"{mode}_{key}_before"] for r in runs]
            out[f"{mode}_{key}_delta"] = sum(deltas) / len(deltas)
            out[f"{mode}_{key}_delta_ci"] = bootstrap_interval(deltas)
    out["wall_min"] = sum(r["wall_min"] for r in runs) / len(runs)
    return out


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| env | decoding | success before | success after | change (95% CI over seeds) | invalid replies before -> after | per seed (before -> after) |",
        "|---|---|---|---|---|---|---|",
    ]
    for env, res in results.items():
        s = res["summary"]
        for mode in ("sampled", "greedy"):
            lo, hi = s[f"{mode}_success_delta_ci"]
            seeds = ", ".join(f"{r[f'{mode}_success_before']:.2f} -> {r[f'{mode}_success_after']:.2f}" for r in res["runs"])
            lines.append(
                f"| {env} | {mode} | {s[f'{mode}_success_before']:.3f} | {s[f'{mode}_success_after']:.3f} | "
                f"{s[f'{mode}_success_delta']:+.3f} [{lo:+.3f}, {hi:+.3f}] | "
                f"{s[f'{mode}_invalid_actions_before']:.2f} -> {s[f'{mode}_invalid_actions_after']:.2f} | {seeds} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict[str, Any]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5), squeeze=False)
    for ax, (env, res) in zip(axes[0], results.items(), strict=True):
        curves = [r["train_success"] for r in res["runs"]]
        n = min(len(c) for c in curves)
        if n == 0:  # no RL iteration (a warm start only): each seed's before and after
            _plot_before_after(ax, env, res)
            continue
        xs = list(range(1, n + 1))
        mean = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
        ax.fill_between(xs, [min(c[i] for c in curves) for i in range(n)], [max(c[i] for c in curves) for i in range(n)], alpha=0.25)
        ax.plot(xs, mean, label="training episodes (sampled)")
        s = res["summary"]
        ax.scatter([0, n], [s["sampled_success_before"], s["sampled_success_after"]], marker="s", label="eval, sampled", zorder=3)
        ax.scatter([0, n], [s["greedy_success_before"], s["greedy_success_after"]], marker="^", label="eval, greedy", zorder=3)
        ax.set_title(f"SmolLM2-135M + LoRA: {env} ({len(curves)} seeds)")
        per_iter = sorted({r["episodes_per_iter"] for r in res["runs"]})
        before = res["runs"][0].get("before_from")
        where = f"; eval at 0: {Path(before).name}" if before else ""
        ax.set_xlabel(f"iteration ({'/'.join(map(str, per_iter))} episodes each{where})")
        ax.set_ylabel("success rate")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_before_after(ax: Any, env: str, res: dict[str, Any]) -> None:
    """Each seed's eval success before and after, for runs with no training iteration."""
    for mode, marker, dx in (("sampled", "s", -0.04), ("greedy", "^", 0.04)):
        for i, r in enumerate(res["runs"]):
            ys = [r[f"{mode}_success_before"], r[f"{mode}_success_after"]]
            ax.plot([dx, 1 + dx], ys, marker=marker, color=f"C{0 if mode == 'sampled' else 1}",
                    alpha=0.7, label=f"eval, {mode} (one line per seed)" if i == 0 else None)
    ax.set_xticks([0, 1], ["before", "after"])
    ax.set_xlim(-0.3, 1.3)
    ax.set_title(f"SmolLM2-135M + LoRA: {env} ({len(res['runs'])} seeds)")
    ax.set_ylabel("success rate")
    ax.legend(fontsize=8)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", nargs="+", action="append", required=True, metavar=("NAME", "RUN_DIR"),
                    help="an env name, then its runs' directories (one per seed)")
    ap.add_argument("--before", default=None, metavar="RUN_DIR",
                    help="take every seed's 'before' evaluation from this run's first one")
    ap.add_argument("--out", default=None)
    ap.add_argument("--png", default=None)
    args = ap.parse_args(argv)
    before = Path(args.before) if args.before else None
    results: dict[str, dict[str, Any]] = {}
    for name, *dirs in args.env:
        runs = [read_run(Path(d), before) for d in dirs]
        results[name] = {"runs": runs, "summary": summarise(runs)}
    print(table(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    if args.png:
        plot(results, args.png)
    return results


if __name__ == "__main__":
    main()
