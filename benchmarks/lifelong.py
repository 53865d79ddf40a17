"""Naive fine-tuning vs replay vs online EWC vs both on a 3-task scenario (docs/lifelong.md).

Scenario ``guess_ranges`` (configs/scenario/guess_ranges.yaml): GuessTheNumber on 1-4, then
5-8, then 9-12, two guesses each, a tiny policy trained with filtered BC. Every method of a
seed starts from the same "pretrained" checkpoint: behaviour cloning of a random guesser on
all three ranges (a stand-in for a pretrained LLM that can already play every range
badly), so each task starts with valid guesses to learn from. Then::

    python benchmarks/lifelong.py --seeds 0 1 2 --out docs/lifelong_results.md

prints a table and writes markdown + a plot next to ``--out``. Runs inline on CPU in minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

from agentrl.checkpoint import CheckpointManager
from agentrl.config import load_config, to_plain
from agentrl.learner import Learner
from agentrl.lifelong.report import report
from agentrl.lifelong.scenario import run_scenario, run_ste, scenario_config
from agentrl.warmstart import scripted_episodes, sft_rows

EPOCHS = 6.0
METHODS: dict[str, list[str]] = {
    "naive": [],
    "replay": ["replay"],
    "online_ewc": ["online_ewc"],
    "replay+online_ewc": ["replay", "online_ewc"],
}
TINY = [
    "model.hidden_size=64",
    "model.num_layers=1",
    "model.intermediate_size=128",
    "model.num_heads=2",
]
COMMON = [
    *TINY,
    "cluster=inline",
    "logging.tensorboard=false",
    "logging.plot=false",
    "logging.progress=false",
    "rollout.num_workers=1",
    "rollout.envs_per_worker=16",
    "rollout.episodes_per_iter=32",
    "warm_start.enabled=false",
    "scenario=guess_ranges",
    "algorithm=filtered_bc",
    "algorithm.lr=1e-3",
    "algorithm.steps=16",
    "algorithm.top_fraction=0.02",
    "algorithm.max_pool=64",
]
COMPONENT_OPTIONS = {
    "replay": "{name:replay,capacity:500,ratio:1.0}",
    "online_ewc": "{name:online_ewc,lam:LAM}",
}


def pretrain(seed: int, root: Path, episodes: int = 100) -> str:
    """BC of a random guesser on every task of the scenario; returns the checkpoint path."""
    cfg = load_config([*COMMON, f"seed={seed}", f"run_dir={root}"])
    sc = scenario_config(cfg)
    learner = Learner(cfg.model, dict(cfg.algorithm), seed=seed)
    rows = []
    for k, task in enumerate(sc.tasks):
        eps = scripted_episodes(
            task.env["id"], dict(task.env["kwargs"]), "random", episodes, seed=seed * 7919 + k
        )
        rows += sft_rows(learner.policy, eps)
    learner.warm_start(rows, epochs=EPOCHS, lr=2e-3, batch_size=16, seed=seed)
    meta = {"config": to_plain(cfg), "components": {"pretrain": "random guesser, all tasks"}}
    return str(CheckpointManager(root / "checkpoints").save(0, learner.save, meta))


def single_task_experts(seed: int, start: str, root: Path) -> Path:
    """One expert per task from the same start, no lifelong components (for the STE metrics)."""
    cfg = load_config([*COMMON, f"seed={seed}", f"run_dir={root}"])
    run_ste(cfg, scenario_config(cfg), root, start, lambda *a, **k: None)
    return root / "ste"


def run_method(
    method: str, seed: int, start: str, root: Path, lam: float, ste: Path | None
) -> dict[str, Any]:
    entries = [COMPONENT_OPTIONS[c].replace("LAM", str(lam)) for c in METHODS[method]]
    overrides = [
        *COMMON,
        f"seed={seed}",
        f"run_dir={root}",
        f"init_from={start}",
        f"lifelong=[{','.join(entries)}]",
    ]
    t = time.perf_counter()
    run_scenario(load_config(overrides), console=False)
    result = report(root, ste_dir=ste)
    result["seconds"] = time.perf_counter() - t
    return result


def mean_sd(values: list[float]) -> str:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return "n/a"
    if len(vals) == 1:
        return f"{vals[0]:.3f}"
    return f"{statistics.mean(vals):.3f} ± {statistics.stdev(vals):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--lam", type=float, default=1000.0, help="online EWC lambda")
    ap.add_argument(
        "--no-ste", dest="ste", action="store_false", help="skip the single-task experts"
    )
    ap.add_argument("--root", default="runs/bench_lifelong")
    ap.add_argument("--out", default="docs/lifelong_results.md")
    args = ap.parse_args()
    root = Path(args.root)
    results: dict[str, list[dict[str, Any]]] = {m: [] for m in args.methods}
    for seed in args.seeds:
        start = pretrain(seed, root / f"pretrain-seed{seed}")
        ste = single_task_experts(seed, start, root / f"ste-seed{seed}") if args.ste else None
        for method in args.methods:
            r = run_method(method, seed, start, root / f"{method}-seed{seed}", args.lam, ste)
            results[method].append(r)
            lt = r["lifetime"]
            print(
                f"seed {seed} {method:<18} PM {lt['perf_maintenance']:+.3f}  BT(contrast) "
                f"{lt['backward_transfer_contrast']:+.3f}  final {r['test_matrix'][-1]}  {r['seconds']:.0f}s",
                flush=True,
            )
    write(results, args, Path(args.out))


def write(results: dict[str, list[dict[str, Any]]], args: argparse.Namespace, out: Path) -> None:
    keys = [
        "perf_maintenance",
        "backward_transfer_ratio",
        "backward_transfer_contrast",
        "forward_transfer_ratio",
        "forward_transfer_contrast",
        "ste_rel_perf",
        "sample_efficiency",
    ]
    header = "| method | " + " | ".join(keys) + " | final mean success | seconds/run |"
    lines = [header, "|" + "---|" * (len(keys) + 3)]
    for method, runs in results.items():
        finals = [
            statistics.mean(
                v for k, v in r["test_matrix"][-1].items() if k not in ("block", "after")
            )
            for r in runs
        ]
        cells = [mean_sd([r["lifetime"][k] for r in runs]) for k in keys]
        lines.append(
            f"| {method} | " + " | ".join(cells) + f" | {mean_sd(finals)} | "
            f"{statistics.mean(r['seconds'] for r in runs):.0f} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    matrices = []
    for method, runs in results.items():
        for seed, r in zip(args.seeds, runs, strict=False):
            tasks = list(r["tasks"])
            rows = [
                "after " + str(row["after"]) + ": " + ", ".join(f"{t} {row[t]:.2f}" for t in tasks)
                for row in r["test_matrix"]
            ]
            matrices.append(f"- {method}, seed {seed}: " + "; ".join(rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        f"Command: `python benchmarks/lifelong.py --seeds {' '.join(map(str, args.seeds))} --lam {args.lam}`\n\n"
        "Mean ± sd over seeds. Performance = test success rate (32 sampled episodes per task, fixed seeds).\n\n"
        + table
        + "\n\nTest success after each block:\n\n"
        + "\n".join(matrices)
        + "\n"
    )
    (out.with_suffix(".json")).write_text(
        json.dumps(
            {
                m: [{k: v for k, v in r.items() if k != "transfer"} for r in runs]
                for m, runs in results.items()
            },
            indent=1,
            default=str,
        )
    )
    plot(results, out.with_suffix(".png"))


def plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(results)
    tasks = list(next(iter(results.values()))[0]["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 * len(tasks), 3.2), sharey=True)
    for ax, task in zip(axes, tasks, strict=True):
        for m in methods:
            runs = results[m]
            n = len(runs[0]["test_matrix"])
            ys = [statistics.mean(r["test_matrix"][i][task] for r in runs) for i in range(n)]
            ax.plot(range(n), ys, marker="o", label=m)
        labels = [str(row["after"]) for row in next(iter(results.values()))[0]["test_matrix"]]
        ax.set_xticks(range(len(labels)), [f"after\n{x}" for x in labels])
        ax.set_title(f"test success on '{task}'")
    axes[0].set_ylabel("success (mean over seeds)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
