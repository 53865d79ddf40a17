"""Scaling of collection and training: 1 vs 2 rollout workers, async collection off vs on.

``--part async`` instead compares asynchronous with synchronous training for the same
trajectory budget, learning included (:mod:`benchmarks.scaling_async`).

Two parts, both on local Ray with the main job's model (``model=tiny``) and env
(TwentyQuestions):

- **collect**: a :class:`~agentrl.rollouts.ray_actors.RayWorkerGroup` of 1 and of 2 workers
  collects ``--episodes`` episodes (after one warm-up collect); episodes/s and generated
  tokens/s of collection alone.
- **train**: ``--iterations`` ArCHer iterations (no eval, no warm start) for each of
  ``workers in (1, 2) x async in (off, on)``; per iteration (the first is dropped as
  warm-up): episodes/s and tokens/s of the whole iteration, the update time, and the
  fraction of the iteration the learner waits for data (``perf/learner_wait_frac``).

Ratios are to the 1-worker synchronous row of the same run (machines are noisy, so compare
within one run). Usage::

    python benchmarks/scaling.py --out docs/scaling.md
    python benchmarks/scaling.py --quick            # a smoke run (tests use it)
"""

# ruff: noqa: E402  (environment variables must be set before torch is imported)
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import argparse
import datetime as _dt
import json
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the benchmarks package lives in the repo root
    sys.path.insert(0, str(ROOT))

from agentrl.config import load_config
from agentrl.trainer import Trainer


def _overrides(args: argparse.Namespace, workers: int, async_on: bool, run_dir: Path) -> list[str]:
    envs = max(1, args.episodes_per_iter // workers)
    return [
        "algorithm=archer",
        f"iterations={args.iterations}",
        f"rollout.num_workers={workers}",
        f"rollout.envs_per_worker={envs}",
        f"rollout.episodes_per_iter={args.episodes_per_iter}",
        f"rollout.async_collection={str(async_on).lower()}",
        f"algorithm.critic_epochs={args.critic_epochs}",
        "algorithm.warmup_iters=0",
        "warm_start.enabled=false",
        "eval.every=0",
        "eval.greedy=false",
        "eval.sample=false",
        "checkpoint.every=0",
        "logging.tensorboard=false",
        "logging.plot=false",
        "logging.progress=false",
        f"run_dir={run_dir}",
        *args.override,
    ]


def collect_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Collection alone: RayWorkerGroup of 1 and 2 workers."""
    import ray

    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.ray_actors import RayWorkerGroup
    from agentrl.rollouts.worker import EpisodeJob

    cfg = load_config(list(args.override))
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=cfg.env.max_new_tokens)
    rows = []
    ray.init(num_cpus=3, include_dashboard=False, configure_logging=False, log_to_driver=False)
    try:
        for workers in (1, 2):
            envs = max(1, args.episodes // workers)
            group = RayWorkerGroup(
                workers, cfg.env.id, cfg.env.kwargs, envs, sampling, cfg.model, num_cpus=1.0
            )
            try:
                jobs = [EpisodeJob(i, 10_000 + i) for i in range(args.episodes)]
                group.collect(jobs, rng_seed=0)  # warm-up
                times, tokens = [], []
                for r in range(args.repeats):
                    start = time.perf_counter()
                    group.collect(jobs, rng_seed=1 + r)
                    times.append(time.perf_counter() - start)
                    tokens.append(group.last_stats.get("gen_tokens", 0.0))
            finally:
                group.shutdown()
            t = statistics.median(times)
            rows.append(
                {
                    "part": "collect",
                    "workers": workers,
                    "async": "-",
                    "episodes_per_s": args.episodes / t,
                    "tokens_per_s": statistics.median(tokens) / t,
                    "seconds": t,
                }
            )
            print(f"collect {workers} worker(s): {args.episodes / t:.2f} episodes/s", flush=True)
    finally:
        ray.shutdown()
    return rows


def train_rows(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """Whole ArCHer iterations for workers x async."""
    rows = []
    for workers in (1, 2):
        for async_on in (False, True):
            run_dir = root / f"w{workers}_async{int(async_on)}"
            cfg = load_config(_overrides(args, workers, async_on, run_dir))
            Trainer(cfg, console=False).run()
            metrics = [
                json.loads(line)
                for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                if line.strip()
            ]
            its = [m for m in metrics if m.get("iteration", 0) >= 2]  # drop the warm-up one

            def med(key: str, its: list[dict[str, Any]] = its) -> float:
                return statistics.median(float(m[key]) for m in its)

            rows.append(
                {
                    "part": "train",
                    "workers": workers,
                    "async": "on" if async_on else "off",
                    "episodes_per_s": med("perf/episodes_per_s"),
                    "tokens_per_s": med("perf/tokens_per_s"),
                    "seconds": med("perf/iteration_s"),
                    "update_s": med("perf/update_s"),
                    "learner_wait_frac": med("perf/learner_wait_frac"),
                    "staleness": med("async/staleness"),
                }
            )
            r = rows[-1]
            print(
                f"train {workers} worker(s), async {r['async']}: {r['episodes_per_s']:.2f} "
                f"episodes/s, learner waits {100 * r['learner_wait_frac']:.0f}% of the iteration",
                flush=True,
            )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def ratio(row: dict[str, Any]) -> str:
        base = next(
            r
            for r in rows
            if r["part"] == row["part"] and r["workers"] == 1 and r["async"] in ("-", "off")
        )
        return f"{row['episodes_per_s'] / base['episodes_per_s']:.2f}x"

    lines = [
        "| part | workers | async | episodes/s | vs 1 worker sync | tokens/s | s per iteration (collect: per batch) | update s | learner waits | staleness |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        wait = f"{100 * r['learner_wait_frac']:.0f}%" if "learner_wait_frac" in r else "-"
        lines.append(
            f"| {r['part']} | {r['workers']} | {r['async']} | {r['episodes_per_s']:.2f} | {ratio(r)} | "
            f"{r['tokens_per_s']:.0f} | {r['seconds']:.2f} | "
            f"{r.get('update_s', float('nan')):.2f} | {wait} | {r.get('staleness', float('nan')):.2f} |"
        )
    return "\n".join(lines).replace("| nan |", "| - |")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=32, help="episodes per timed collect")
    p.add_argument("--episodes-per-iter", type=int, default=32)
    p.add_argument("--iterations", type=int, default=6)
    p.add_argument("--critic-epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3, help="timed collects per worker count")
    p.add_argument("--quick", action="store_true", help="tiny smoke run")
    p.add_argument("--override", nargs="*", default=[], help="extra Hydra overrides")
    p.add_argument("--out", type=Path, default=None, help="write the table (markdown) here")
    p.add_argument("--part", choices=["scale", "async"], default="scale")
    from benchmarks.scaling_async import add_arguments, run

    add_arguments(p)
    args = p.parse_args(argv)
    if args.part == "async":
        return _async_part(args, argv, run)
    if args.quick:
        args.episodes, args.episodes_per_iter, args.iterations = 4, 4, 2
        args.critic_epochs, args.repeats = 1, 1
        args.override = [*args.override, "+env.kwargs.max_turns=3"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = collect_rows(args) + train_rows(args, Path(tmp))
    text = table(rows)
    print(text)
    if args.out is not None:
        cmd = "python benchmarks/scaling.py " + " ".join(
            shlex.quote(a) for a in (argv or sys.argv[1:])
        )
        header = (
            "# Collection and training scaling\n\n"
            f"Produced by `{cmd}` on {_dt.date.today()} ({platform.machine()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}).\n\n"
        )
        args.out.write_text(header + text + "\n")
    return {"rows": rows, "table": text}


def _async_part(args: argparse.Namespace, argv: list[str] | None, run: Any) -> dict[str, Any]:
    if args.rows_from:
        from benchmarks.scaling_async import learning_table, overlap_table

        rows = []
        for f in args.rows_from:
            data = json.loads(Path(f).read_text())
            # rows written before they recorded their settings: the file's arguments
            given = data.get("args", {})
            known = {k: given[k] for k in ("iterations", "episodes_per_iter", "override", "cluster") if k in given}
            rows += [{**known, **r} for r in data["rows"]]
        text, overlap = learning_table(rows), overlap_table(rows)
        print(text)
        print(overlap)
        return {"rows": rows, "learning": text, "overlap": overlap}
    if args.quick:
        args.iterations, args.episodes_per_iter, args.eval_episodes = 2, 4, 4
        args.seeds, args.algorithms, args.depths = [0], ["ppo"], [0, 1]
    with tempfile.TemporaryDirectory() as tmp:
        out = run(args, Path(tmp))
    print(out["table"])
    print(out["learning"])
    print(out["overlap"])
    if args.json is not None:
        args.json.write_text(json.dumps({"args": vars(args) | {"out": str(args.out), "json": str(args.json)}, "rows": out["rows"]}, indent=1))
    if args.out is not None:
        cmd = "python benchmarks/scaling.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        args.out.write_text(
            f"Produced by `{cmd}` on {_dt.date.today()} ({platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}).\n\n" + out["table"] + "\n\n" + out["learning"] + "\n\n"
            + out["overlap"] + "\n"
        )
    return out


if __name__ == "__main__":
    main()
