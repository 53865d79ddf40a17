"""What a checkpoint of a training run holds, and how a run picks up from one.

A run's checkpoint (a :class:`~agentrl.checkpoint.CheckpointManager` directory) holds,
besides the manifest:

- the learner (``policy/``, ``algorithm/``, ``replay/``, ``lifelong/``: its own ``save``);
- the collections in flight of an asynchronous run (``pending/``:
  :meth:`agentrl.pipeline.Pipeline.save`);
- the curriculum's state (``curriculum.json``);
- the run's counters (``counters.json``: :class:`RunCounters`).

A run starts from a checkpoint (``resume``: all of it; ``init_from``: the learner's weights
only) or from scratch, and its ``metrics.jsonl`` is cut back to the checkpoint's iteration so
that the replayed iterations are not logged twice (:func:`open_run_log`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from agentrl.config import TrainConfig, to_plain
from agentrl.metrics import MetricsLogger
from agentrl.trackers import build_trackers

if TYPE_CHECKING:
    from rich.console import Console

    from agentrl.checkpoint import CheckpointManager
    from agentrl.curricula import Curriculum
    from agentrl.pipeline import Pipeline
    from agentrl.rollouts.backend import LearnerHandle


class RunCounters(TypedDict, total=False):
    """``counters.json``: where a run stands.

    Attributes:
        iteration: the last iteration done (0: none yet; the checkpoint of a warm start).
        episodes: the episodes collected so far.
        initial_eval: iteration 0's evaluation (the summary's initial numbers), once done.
        warm_start: the warm start's metrics, once done (a resume never redoes it).
        lifelong_task_end: the lifelong components' consolidation at the end of the task.
    """

    iteration: int
    episodes: int
    initial_eval: dict[str, float] | None
    warm_start: dict[str, float]
    lifelong_task_end: dict[str, float]


def checkpoint_meta(cfg: TrainConfig) -> dict[str, Any]:
    """The manifest's run fields: the resolved config and the names of its components."""
    return {
        "config": to_plain(cfg),
        "components": {
            "algorithm": cfg.algorithm["name"],
            "reward": cfg.reward["name"],
            "curriculum": cfg.curriculum["name"],
            "env": cfg.env.id,
            "model": cfg.model.name,
        },
    }


def save_run_state(
    ckpt: CheckpointManager,
    cfg: TrainConfig,
    iteration: int,
    counters: RunCounters,
    learner: LearnerHandle,
    pipeline: Pipeline,
    curriculum: Curriculum,
) -> Path:
    """Write checkpoint ``step_{iteration}`` of the run; returns its folder."""

    def write(d: Path) -> None:
        learner.save(str(d))
        pipeline.save(d)  # asynchronous mode: the collections in flight travel along
        (d / "curriculum.json").write_text(json.dumps(curriculum.state_dict()))
        (d / "counters.json").write_text(json.dumps({**counters, "iteration": iteration}))

    return ckpt.save(iteration, write, checkpoint_meta(cfg))


def start_run_state(
    resume_from: Path | None,
    init_from: Path | None,
    learner: LearnerHandle,
    pipeline: Pipeline,
    curriculum: Curriculum,
) -> RunCounters:
    """Load what the run starts from into the freshly built learner, pipeline and
    curriculum: all of checkpoint ``resume_from``, else the learner's weights of
    ``init_from``, else nothing (a new run). Returns the run's counters."""
    if resume_from is not None:
        learner.load(str(resume_from))
        curriculum.load_state_dict(json.loads((resume_from / "curriculum.json").read_text()))
        counters = cast(RunCounters, json.loads((resume_from / "counters.json").read_text()))
        pipeline.restore(resume_from, int(counters["iteration"]))
        return counters
    if init_from is not None:
        learner.load(str(init_from), weights_only=True)
    return {"iteration": 0, "episodes": 0, "initial_eval": None}


def open_run_log(
    cfg: TrainConfig,
    run_dir: Path,
    console: Console | None,
    resumed_at: int | None,
    from_scratch: bool,
) -> MetricsLogger:
    """The run's logger (``metrics.jsonl`` and the trackers: TensorBoard, W&B, MLflow), with
    ``config.json`` written and the config sent to the trackers.

    Args:
        console: where the live table prints (``None``: no table).
        resumed_at: the iteration of the checkpoint the run resumed from (``None``: not
            resumed). The rows after it are dropped, to be replayed; from a warm start's
            checkpoint (iteration 0), iteration 0's row too, as its evaluation runs again.
        from_scratch: the learner died before the first checkpoint and the run starts over:
            every row is dropped, iteration 0's too.
    """
    truncate_after = (resumed_at or -1) if resumed_at is not None else (-1 if from_scratch else None)
    log = MetricsLogger(run_dir, build_trackers(cfg.logging, run_dir), console, truncate_after=truncate_after)
    (run_dir / "config.json").write_text(json.dumps(to_plain(cfg), indent=2))
    log.log_config(to_plain(cfg))
    return log


__all__ = ["RunCounters", "checkpoint_meta", "open_run_log", "save_run_state", "start_run_state"]
