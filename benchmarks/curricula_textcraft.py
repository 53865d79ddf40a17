"""Curricula on TextCraft with a tiny policy (the OMNI setting, small): docs/curricula.md.

Each run: the tiny model, a behaviour-cloning warm start on the scripted ``mix`` player,
then PPO for ``--iterations`` iterations with the curriculum choosing TextCraft tasks
(the 105 tasks; ``max_turns`` 12, so the deep and high-count tasks are out of reach as well
as the impossible ones). At the end every task is played ``--eval-episodes`` times with
sampling; a skill (achievement) counts as learned at threshold ``x`` when one of its
variants succeeds more often than ``x``. Curricula: uniform, learning_progress, omni with
the rule MoI (the oracle), omni with the LLM MoI (SmolLM2, answers cached in
``--moi-cache``). Usage::

    python benchmarks/curricula_textcraft.py --seeds 0 1 2 --curricula uniform omni_rule --out /tmp/a.json
    python benchmarks/curricula_textcraft.py --merge /tmp/a.json /tmp/b.json   # table into docs
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- textcraft:start -->", "<!-- textcraft:end -->"
TINY = [
    "model.hidden_size=64",
    "model.num_layers=1",
    "model.intermediate_size=128",
    "model.num_heads=2",
]
CURRICULA = {
    "uniform": ["curriculum=uniform"],  # the env's own distribution: uniform over the 105 tasks
    "learning_progress": ["curriculum=learning_progress"],
    "omni_llm": ["curriculum=omni", "curriculum.moi=llm"],
    "omni_rule": ["curriculum=omni", "curriculum.moi=rule"],
}
THRESHOLDS = (0.1, 0.2, 0.4)


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from agentrl.config import load_config
    from agentrl.envs.textcraft import task_list
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
    from agentrl.trainer import Trainer

    extra = list(CURRICULA[name])
    if name == "omni_llm":
        extra.append(f"curriculum.cache_path={args.moi_cache}")
    run_dir = Path(args.run_root) / f"{name}_s{seed}"
    overrides = [*TINY, "cluster=inline", "algorithm=ppo", f"run_dir={run_dir}", f"seed={seed}",
                 "logging.tensorboard=false", "logging.plot=false", "logging.progress=false",
                 "warm_start.enabled=true", f"warm_start.episodes={args.warm_episodes}", f"warm_start.epochs={args.warm_epochs}",
                 "env=textcraft", "++env.kwargs.max_turns=12", f"iterations={args.iterations}",
                 "rollout.episodes_per_iter=16", "rollout.envs_per_worker=16", "eval.episodes=16",
                 "eval.sample=false", "checkpoint.every=1000", *extra]  # fmt: skip
    t0 = time.perf_counter()
    trainer = Trainer(load_config(overrides), console=False)
    trainer.run()
    tasks = task_list()
    worker = RolloutWorker(
        "agentrl/TextCraft-v0",
        {"max_turns": 12},
        16,
        SamplingConfig(max_new_tokens=8),
        policy=trainer.learner.policy,
    )
    jobs = [
        EpisodeJob(j, 10_000 + j, t)
        for j, t in enumerate(t for t in tasks for _ in range(args.eval_episodes))
    ]
    eps = worker.collect(jobs, rng_seed=seed)
    rate: dict[str, list[float]] = {}
    for e in eps:
        rate.setdefault(f"{e.task['achievement']}/{e.task['count']}", []).append(float(e.success))
    per_task = {k: sum(v) / len(v) for k, v in rate.items()}
    out: dict[str, Any] = {"curriculum": name, "seed": seed, "seconds": time.perf_counter() - t0}
    for th in THRESHOLDS:
        hit = [k for k, v in per_task.items() if v > th]
        out[f"skills@{th}"] = len({k.split("/")[0] for k in hit})
        out[f"tasks@{th}"] = len(hit)
    out["per_task"] = per_task
    out["curriculum_stats"] = (
        trainer.curriculum.stats() if hasattr(trainer.curriculum, "stats") else {}
    )
    print(json.dumps({k: v for k, v in out.items() if k != "per_task"}), flush=True)
    return out


def table(results: list[dict[str, Any]]) -> str:
    names = [n for n in CURRICULA if any(r["curriculum"] == n for r in results)]
    lines = [
        "| curriculum | seeds | "
        + " | ".join(f"skills > {t}" for t in THRESHOLDS)
        + " | tasks > 0.4 |",
        "|---|---|" + "---|" * (len(THRESHOLDS) + 1),
    ]
    for n in names:
        rs = [r for r in results if r["curriculum"] == n]

        def cell(key: str, rs: list[dict[str, Any]] = rs) -> str:
            v = np.array([r[key] for r in rs], dtype=float)
            return f"{v.mean():.1f} ± {v.std():.1f}"

        cells = [cell(f"skills@{t}") for t in THRESHOLDS] + [cell("tasks@0.4")]
        lines.append(f"| {n} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--curricula", nargs="+", default=list(CURRICULA), choices=list(CURRICULA))
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--eval-episodes", type=int, default=4)
    ap.add_argument("--warm-episodes", type=int, default=200)
    ap.add_argument("--warm-epochs", type=float, default=6.0)
    ap.add_argument("--run-root", default="/tmp/curricula_textcraft")
    ap.add_argument("--moi-cache", default="/tmp/curricula_textcraft/moi_cache.json")
    ap.add_argument("--out", default="")
    ap.add_argument("--merge", nargs="+", default=[])
    ap.add_argument("--doc", default=str(ROOT / "docs" / "curricula.md"))
    args = ap.parse_args(argv)
    if args.merge:
        results = [r for p in args.merge for r in json.loads(Path(p).read_text())]
        text = table(results)
        print(text)
        Path(ROOT / "docs" / "curricula_textcraft.json").write_text(json.dumps(results, indent=1))
        doc = Path(args.doc)
        body = doc.read_text()
        if START in body:
            head, _, rest = body.partition(START)
            _, _, tail = rest.partition(END)
            doc.write_text(f"{head}{START}\n{text}{END}{tail}")
        return
    results = [run_one(n, s, args) for s in args.seeds for n in args.curricula]
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
