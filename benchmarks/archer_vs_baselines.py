"""ArCHer against its baselines on TwentyQuestions, from the same BC warm start.

Runs ``agentrl train`` in-process (``cluster=inline``) for each algorithm and seed with the
main job's settings, then writes a table and a plot of the sampled and greedy eval return
against the number of trajectories collected::

    python benchmarks/archer_vs_baselines.py --iterations 20 --seeds 0 1 2 --out docs/archer_vs_baselines.md

Every run shares the warm start recipe (same scripted data, same SFT settings, same seed),
so iteration 0 is the same policy for every algorithm of a seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from agentrl.config import load_config
from agentrl.metrics import read_metrics
from agentrl.trainer import Trainer

ALGORITHMS = ("archer", "ppo", "filtered_bc", "chai")


def run_one(algorithm: str, seed: int, iterations: int, eval_every: int, root: Path) -> list[dict]:
    run_dir = root / f"{algorithm}-seed{seed}"
    overrides = [
        f"algorithm={algorithm}", "cluster=inline", f"seed={seed}", f"iterations={iterations}",
        f"eval.every={eval_every}", f"run_dir={run_dir}", "logging.tensorboard=false",
        "logging.plot=false", f"checkpoint.every={iterations}",
    ]
    start = time.perf_counter()
    Trainer(load_config(overrides), console=False).run()
    print(f"[{algorithm} seed {seed}] {time.perf_counter() - start:.0f} s", flush=True)
    return read_metrics(run_dir / "metrics.jsonl")


def summarize(results: dict[str, dict[int, list[dict]]], episodes_per_iter: int) -> list[dict]:
    table = []
    for algo, by_seed in results.items():
        for key in ("eval_sample/return", "eval_sample/success", "eval/return", "eval/success"):
            first = [rows[0][key] for rows in by_seed.values()]
            last = [[r for r in rows if key in r][-1][key] for rows in by_seed.values()]
            table.append({"algorithm": algo, "metric": key, "initial": statistics.median(first),
                          "final": statistics.median(last), "seeds": len(last),
                          "trajectories": [r["episodes_total"] for r in next(iter(by_seed.values())) if "episodes_total" in r][-1]})
    return table


def plot(results: dict[str, dict[int, list[dict]]], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, title in ((axes[0], "eval_sample/return", "sampled eval return"),
                           (axes[1], "eval/return", "greedy eval return")):
        for algo, by_seed in results.items():
            iters = [r["iteration"] for r in next(iter(by_seed.values())) if key in r]
            med = [statistics.median([[r for r in rows if r["iteration"] == it][0][key] for rows in by_seed.values()])
                   for it in iters]
            ax.plot(iters, med, "o-", label=algo)
        ax.set_xlabel("iteration (32 trajectories each)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--iterations", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--root", type=Path, default=Path("runs/archer_vs_baselines"))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    results: dict[str, dict[int, list[dict]]] = {}
    for algo in args.algorithms:
        for seed in args.seeds:
            results.setdefault(algo, {})[seed] = run_one(algo, seed, args.iterations, args.eval_every, args.root)
    table = summarize(results, 32)
    lines = ["| algorithm | metric | initial (BC) | final | seeds | trajectories |", "|---|---|---|---|---|---|"]
    for row in table:
        lines.append(f"| {row['algorithm']} | {row['metric']} | {row['initial']:.3f} | {row['final']:.3f} | "
                     f"{row['seeds']} | {row['trajectories']} |")
    print("\n".join(lines))
    (args.root / "results.json").write_text(json.dumps(table, indent=2))
    if args.out:
        png = args.out.with_suffix(".png")
        plot(results, png)
        args.out.write_text(
            "# ArCHer vs baselines on TwentyQuestions\n\n"
            f"Produced by `python benchmarks/archer_vs_baselines.py --iterations {args.iterations} "
            f"--seeds {' '.join(map(str, args.seeds))} --out {args.out}` (medians over seeds; main-job "
            "settings, `cluster=inline`).\n\n" + "\n".join(lines) + f"\n\n![curves]({png.name})\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
