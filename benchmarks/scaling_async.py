"""Asynchronous vs synchronous training with the same trajectory budget (docs/scaling.md).

For each algorithm (``--algorithms``, default ArCHer and PPO) and each collection mode
(``--depths``: 0 = synchronous; ``k`` = ``rollout.async_collection=true
rollout.max_staleness=k``, collections kept ``k`` iterations ahead), ``--seeds`` runs of
``--iterations`` iterations of ``--episodes-per-iter`` episodes on local Ray (one learner
actor and ``--workers`` rollout workers, one CPU each), with the tiny model on the small
GuessTheNumber of ``tests/test_learning.py`` (a weak behaviour-cloning start that RL must
improve). Per run: episodes/s of the training iterations (collection + update, the first
dropped as warm-up, evaluations excluded), the share of an iteration the learner waits for
data, the workers' idle share (1 - their collection time / (workers x training time)), the
staleness of every iteration's turns (policy versions behind the learner) and the sampled
eval success and return before and after. Every mode sees the same episodes budget; only
the policy that collects them differs. Usage::

    python benchmarks/scaling.py --part async --out docs/scaling_async.md
    python benchmarks/scaling.py --part async --quick     # smoke (tests use it)
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from agentrl.config import load_config
from agentrl.metrics import read_metrics
from agentrl.trainer import Trainer

GAME = ["env=guess_the_number", "env.kwargs.high=4", "+env.kwargs.max_turns=2"]
"""The small game of tests/test_learning.py."""

START = [
    "warm_start.enabled=true",
    "warm_start.policy=random",
    "warm_start.episodes=100",
    "warm_start.epochs=2",
    "warm_start.lr=3e-3",
]
"""A weak behaviour-cloning start (unparseable guesses ~1/4 of the time), as in the test."""

ALGORITHMS: dict[str, list[str]] = {
    "ppo": ["algorithm=ppo", "algorithm.lr=1e-3"],
    "grpo": ["algorithm=grpo", "algorithm.lr=1e-3", "algorithm.group_size=8"],
    "archer": ["algorithm=archer", "algorithm.critic_epochs=4", "algorithm.warmup_iters=0"],
}
"""Each algorithm's settings (the PPO/GRPO ones are those of tests/test_learning.py; ArCHer's
critic steps are cut from 20 to 4 so that the update does not dwarf the collection)."""


def overrides(args: argparse.Namespace, algorithm: str, depth: int, seed: int, run_dir: Path) -> list[str]:
    return [
        *GAME,
        *START,
        *ALGORITHMS[algorithm],
        "model=tiny",
        f"cluster={args.cluster}",
        f"seed={seed}",
        f"iterations={args.iterations}",
        f"rollout.num_workers={args.workers}",
        f"rollout.envs_per_worker={max(1, args.episodes_per_iter // args.workers)}",
        f"rollout.episodes_per_iter={args.episodes_per_iter}",
        f"rollout.async_collection={str(depth > 0).lower()}",
        f"rollout.max_staleness={max(depth, 1)}",
        "rollout.num_cpus_per_worker=1",
        "cluster.learner_num_cpus=1",
        f"eval.every={args.iterations}",
        f"eval.episodes={args.eval_episodes}",
        "eval.greedy=false",
        "checkpoint.every=0",
        "logging.tensorboard=false",
        "logging.plot=false",
        "logging.progress=false",
        f"run_dir={run_dir}",
        *args.override,
    ]


def run_row(args: argparse.Namespace, algorithm: str, depth: int, seed: int, root: Path) -> dict[str, Any]:
    """One run's measurements (see the module docstring)."""
    run_dir = root / f"{algorithm}_d{depth}_s{seed}"
    Trainer(load_config(overrides(args, algorithm, depth, seed, run_dir)), console=False).run()
    rows = read_metrics(run_dir / "metrics.jsonl")
    its = [r for r in rows if r.get("iteration", 0) >= 1]
    timed = its[1:] or its  # the first iteration is warm-up
    train_s = [args.episodes_per_iter / r["perf/episodes_per_s"] for r in timed]
    busy = sum(float(r.get("perf/worker_busy_s", 0.0)) for r in timed)
    evals = [r for r in rows if "eval_sample/success" in r]
    return {
        "algorithm": algorithm,
        "depth": depth,
        "seed": seed,
        "iterations": args.iterations,
        "episodes_per_iter": args.episodes_per_iter,
        "override": list(args.override),
        "cluster": args.cluster,
        "episodes_per_s": statistics.median(r["perf/episodes_per_s"] for r in timed),
        "learner_wait_frac": statistics.median(r["perf/learner_wait_frac"] for r in timed),
        "worker_idle_frac": max(0.0, 1.0 - busy / (args.workers * sum(train_s))),
        "update_s": statistics.median(r["perf/update_s"] for r in timed),
        "staleness": [r["async/staleness"] for r in its],
        "success_before": evals[0]["eval_sample/success"],
        "success_after": evals[-1]["eval_sample/success"],
        "return_before": evals[0]["eval_sample/return"],
        "return_after": evals[-1]["eval_sample/return"],
        "wall_s": sum(r["perf/iteration_s"] for r in its),
        **kl_stats(its, algorithm),
    }


BIG_KL = 0.1
"""An update whose largest minibatch KL exceeds this is counted as a large step."""

COLLAPSED = 0.25
"""A run whose final sampled success ends below this is counted as collapsed (the BC start
is about 0.41)."""


def kl_stats(iterations: list[dict[str, Any]], algorithm: str) -> dict[str, Any]:
    """The clipped-ratio learners' step sizes: the largest minibatch KL of each update
    (``<algorithm>/approx_kl_max``), its maximum over the run and the updates above
    :data:`BIG_KL`; empty for learners that log no such stat (ArCHer)."""
    key = f"{algorithm}/approx_kl_max"
    kls = [float(r[key]) for r in iterations if key in r]
    if not kls:
        return {}
    return {
        "approx_kl_max": kls,
        "max_kl": max(kls),
        "big_kl_updates": [i + 1 for i, k in enumerate(kls) if k > BIG_KL],
    }


def summary_table(rows: list[dict[str, Any]]) -> str:
    """One line per algorithm and mode: means over seeds and the spread."""
    lines = [
        "| algorithm | collection | episodes/s (mean over seeds) | vs synchronous | learner waits | workers idle | staleness per iteration | sampled success before -> after (seeds) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algorithm in dict.fromkeys(r["algorithm"] for r in rows):
        base = [r for r in rows if r["algorithm"] == algorithm and r["depth"] == 0]
        base_eps = statistics.mean(r["episodes_per_s"] for r in base) if base else float("nan")
        for depth in sorted({r["depth"] for r in rows if r["algorithm"] == algorithm}):
            sel = [r for r in rows if r["algorithm"] == algorithm and r["depth"] == depth]
            eps = statistics.mean(r["episodes_per_s"] for r in sel)
            stale = sorted({s for r in sel for s in r["staleness"]})
            before = statistics.mean(r["success_before"] for r in sel)
            after = ", ".join(f"{r['success_after']:.2f}" for r in sel)
            mode = "synchronous" if depth == 0 else f"async, max_staleness={depth}"
            lines.append(
                f"| {algorithm} | {mode} | {eps:.2f} | {eps / base_eps:.2f}x | "
                f"{100 * statistics.mean(r['learner_wait_frac'] for r in sel):.0f}% | "
                f"{100 * statistics.mean(r['worker_idle_frac'] for r in sel):.0f}% | "
                f"{', '.join(f'{s:g}' for s in stale)} | {before:.2f} -> {after} |"
            )
    return "\n".join(lines)


def mode_label(depth: int) -> str:
    """A collection mode as the tables name it."""
    return "synchronous" if depth == 0 else f"max_staleness={depth}"


def iteration_parts(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean seconds of one training iteration over ``rows`` (runs of one mode), split into
    the learner's update, its wait for episodes and the rest (reward relabelling, logging,
    the weight sync): ``iteration = update + wait + other``."""
    it = statistics.mean(int(r["episodes_per_iter"]) / r["episodes_per_s"] for r in rows)
    update = statistics.mean(r["update_s"] for r in rows)
    wait = statistics.mean(r["learner_wait_frac"] for r in rows) * it
    return {"iteration": it, "update": update, "wait": wait, "other": it - update - wait}


def overlap_table(rows: list[dict[str, Any]]) -> str:
    """Where the asynchronous speed-up goes, per setting (algorithm, episodes per iteration,
    overrides) and collection mode, from Ray runs (inline runs measure no overlap).

    A synchronous iteration is ``update + collection + other`` (the learner's wait is the
    collection). Perfect overlap would leave ``max(update, collection) + other``: the
    *ideal* speed-up. The asynchronous runs' own parts show what was lost on the way: an
    update slowed down by the collection running beside it (both share the machine's cores),
    a collection that still outlasts the update (the learner waits), a larger rest."""

    def key(r: dict[str, Any]) -> tuple[str, int, str]:
        return r["algorithm"], int(r["episodes_per_iter"]), " ".join(r.get("override", []))

    lines = [
        "| algorithm | episodes/iter | overrides | collection | iteration (s) | update (s) | "
        "learner waits (s) | other (s) | update vs synchronous | speed-up: ideal / measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    timed = [r for r in rows if r.get("cluster", "local") == "local" and "episodes_per_iter" in r]
    for setting in dict.fromkeys(key(r) for r in timed):
        sel = [r for r in timed if key(r) == setting]
        sync_rows = [r for r in sel if r["depth"] == 0]
        if not sync_rows:
            continue
        sync = iteration_parts(sync_rows)
        ideal = sync["iteration"] / (max(sync["update"], sync["wait"]) + sync["other"])
        for depth in sorted({r["depth"] for r in sel}):
            parts = iteration_parts([r for r in sel if r["depth"] == depth])
            mode = mode_label(depth)
            speed = "-" if depth == 0 else f"{ideal:.2f}x / {sync['iteration'] / parts['iteration']:.2f}x"
            lines.append(
                f"| {setting[0]} | {setting[1]} | {setting[2] or '-'} | {mode} | "
                f"{parts['iteration']:.3f} | {parts['update']:.3f} | {parts['wait']:.3f} | "
                f"{parts['other']:.3f} | {parts['update'] / sync['update']:.2f}x | {speed} |"
            )
    return "\n".join(lines)


def learning_table(rows: list[dict[str, Any]]) -> str:
    """Final sampled success per setting (algorithm, iterations, extra overrides) and
    collection mode: the mean over seeds with its 95% bootstrap interval, the per-seed
    difference from the synchronous run of the same seed, the runs that ended below
    :data:`COLLAPSED` and, for clipped-ratio learners, the runs with an update above
    :data:`BIG_KL` and the median of the runs' largest update KL."""
    from benchmarks.smollm2_learning import bootstrap_interval

    def key(r: dict[str, Any]) -> tuple[str, int, str]:
        return r["algorithm"], int(r["iterations"]), " ".join(r.get("override", []))

    lines = [
        "| algorithm | iterations | overrides | collection | seeds | final success, mean [95% CI] | "
        f"minus synchronous, mean [95% CI] (lower on) | ended below {COLLAPSED:g} | "
        f"runs with an update KL > {BIG_KL:g} | median of each run's largest KL |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for setting in dict.fromkeys(key(r) for r in rows):
        sel = [r for r in rows if key(r) == setting]
        sync = {r["seed"]: r["success_after"] for r in sel if r["depth"] == 0}
        for depth in sorted({r["depth"] for r in sel}):
            runs = sorted((r for r in sel if r["depth"] == depth), key=lambda r: r["seed"])
            after = [r["success_after"] for r in runs]
            lo, hi = bootstrap_interval(after)
            diff = [r["success_after"] - sync[r["seed"]] for r in runs if r["seed"] in sync]
            if depth == 0 or not diff:
                vs = "-"
            else:
                dlo, dhi = bootstrap_interval(diff)
                lower = sum(d < 0 for d in diff)
                vs = f"{statistics.mean(diff):+.3f} [{dlo:+.3f}, {dhi:+.3f}] ({lower} of {len(diff)})"
            kls = [r["max_kl"] for r in runs if "max_kl" in r]
            big = f"{sum(bool(r['big_kl_updates']) for r in runs)} of {len(runs)}" if kls else "-"
            med = f"{statistics.median(kls):.3f}" if kls else "-"
            mode = mode_label(depth)
            lines.append(
                f"| {setting[0]} | {setting[1]} | {setting[2] or '-'} | {mode} | {len(runs)} | "
                f"{statistics.mean(after):.3f} [{lo:.3f}, {hi:.3f}] | {vs} | "
                f"{sum(a < COLLAPSED for a in after)} | {big} | {med} |"
            )
    return "\n".join(lines)


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    rows = []
    for algorithm in args.algorithms:
        if algorithm not in ALGORITHMS:
            raise SystemExit(f"--algorithms: {algorithm!r} is not one of {', '.join(ALGORITHMS)}")
        for depth in args.depths:
            for seed in args.seeds:
                row = run_row(args, algorithm, depth, seed, root)
                rows.append(row)
                print(json.dumps(row), flush=True)
    return {
        "rows": rows,
        "table": summary_table(rows),
        "learning": learning_table(rows),
        "overlap": overlap_table(rows),
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algorithms", nargs="+", default=["archer", "ppo"])
    p.add_argument("--depths", type=int, nargs="+", default=[0, 2], help="0 = synchronous")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--eval-episodes", type=int, default=128)
    p.add_argument("--json", type=Path, default=None, help="write every run's row here")
    p.add_argument(
        "--rows-from",
        type=Path,
        nargs="+",
        default=None,
        help="run nothing: print the learning and overlap tables of the rows in these --json files",
    )
    p.add_argument(
        "--cluster",
        choices=["local", "inline"],
        default="local",
        help="local: Ray (the timings); inline: one process, which plays the same episodes as "
        "Ray (the learning columns hold, the timing columns do not measure any overlap)",
    )


__all__ = [
    "ALGORITHMS", "BIG_KL", "COLLAPSED", "add_arguments", "iteration_parts", "kl_stats", "learning_table",
    "overlap_table", "run", "run_row", "summary_table",
]
