"""One training run of the comparison: its overrides, running it in-process, and reading
back its metrics rows and wall time."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrl.metrics import read_metrics
from agentrl.trainer import Trainer

Rows = list[dict[str, Any]]  # a run's metrics rows (agentrl.metrics.read_metrics)
# {"wall_s": ..., "warm_start_s": ...}: seconds of the run's Trainer(...).run() and of its BC
# warm start (0 without one), next to metrics.jsonl
WALL_FILE = "wall.json"


@dataclass(frozen=True)
class RunTimes:
    """Seconds a run took in all (``wall_s``) and in its BC warm start (``warm_start_s``)."""

    wall_s: float
    warm_start_s: float


def check_budget(label: str, budget: int, per_iter: int, eval_traj: int) -> None:
    """Refuse a budget or eval interval that is not a whole number of iterations."""
    if per_iter <= 0 or budget % per_iter or eval_traj % per_iter:
        raise SystemExit(
            f"{label}: --trajectories {budget} and --eval-trajectories {eval_traj} "
            f"must be multiples of its per-iteration count {per_iter}"
        )


def run_overrides(
    algorithm: str,
    seed: int,
    budget: int,
    per_iter: int,
    eval_traj: int,
    run_dir: Path,
    extra: list[str],
) -> list[str]:
    """The config overrides of one run (``extra`` last, so it wins)."""
    return [
        f"algorithm={algorithm}",
        "cluster=inline",
        f"seed={seed}",
        f"iterations={budget // per_iter}",
        f"rollout.episodes_per_iter={per_iter}",
        f"rollout.envs_per_worker={min(per_iter, 8)}",
        f"eval.every={eval_traj // per_iter}",
        f"run_dir={run_dir}",
        "logging.tensorboard=false",
        "logging.plot=false",
        "logging.progress=false",
        f"checkpoint.every={budget // per_iter}",
        *extra,
    ]


def run_one(
    algorithm: str,
    seed: int,
    budget: int,
    per_iter: int,
    eval_traj: int,
    root: Path,
    extra: list[str],
    reuse: bool = False,
    label: str | None = None,
) -> Rows:
    """One training run; returns its metrics rows (``episodes_total`` = trajectories so far).

    ``algorithm`` is the ``algorithm=`` choice; ``label`` names the run
    (``root/{label}-seed{seed}``; default the algorithm's name). Its wall time goes to
    ``wall.json`` in the run folder (:func:`wall_seconds`)."""
    from agentrl.config import load_config

    label = label or algorithm
    check_budget(label, budget, per_iter, eval_traj)
    run_dir = root / f"{label}-seed{seed}"
    if reuse and (run_dir / "summary.json").exists():  # a finished run of an earlier invocation
        return read_rows(run_dir)
    if run_dir.exists():  # the benchmark owns its root: a rerun starts fresh
        shutil.rmtree(run_dir)
    overrides = run_overrides(algorithm, seed, budget, per_iter, eval_traj, run_dir, extra)
    start = time.perf_counter()
    trainer = TimedTrainer(load_config(overrides), console=False)
    trainer.run()
    wall = time.perf_counter() - start
    times = RunTimes(wall, trainer.warm_start_s)
    (run_dir / WALL_FILE).write_text(
        json.dumps({"wall_s": times.wall_s, "warm_start_s": times.warm_start_s})
    )
    print(f"[{label} seed {seed}] {wall:.0f} s", flush=True)
    return read_rows(run_dir)


class TimedTrainer(Trainer):
    """A :class:`~agentrl.trainer.Trainer` that times its BC warm start (``warm_start_s``,
    0 when the run has none)."""

    warm_start_s: float = 0.0

    def _warm_start(self) -> dict[str, float]:
        start = time.perf_counter()
        out = super()._warm_start()
        self.warm_start_s = time.perf_counter() - start
        return out


def read_rows(run_dir: Path) -> Rows:
    """A run's metrics rows, each with ``episodes_total`` (0 before the first iteration)."""
    rows = read_metrics(run_dir / "metrics.jsonl")
    for r in rows:
        r.setdefault("episodes_total", 0)
    return rows


def run_times(run_dir: Path) -> RunTimes | None:
    """The times :func:`run_one` recorded for the run (None for a run it did not time)."""
    path = run_dir / WALL_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return RunTimes(float(data["wall_s"]), float(data.get("warm_start_s", 0.0)))


def wall_seconds(run_dir: Path) -> float | None:
    """The wall time :func:`run_one` recorded for the run (None for a run it did not time)."""
    times = run_times(run_dir)
    return times.wall_s if times else None
