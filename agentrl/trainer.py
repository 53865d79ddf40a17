"""The composition root: a validated :class:`~agentrl.config.TrainConfig` -> a trained run.

Per iteration (the data flow)::

    weights -> workers;  curriculum.sample -> jobs;  workers.collect -> episodes
    reward relabels;  learner.update;  curriculum.update;  log;  eval every k;  checkpoint every k

The trainer is the loop, its start and its restarts; docs/design.md says where the jobs
around it live (backends, collection, checkpoints of a run, evaluation, reporting).

Reproducibility: iteration ``i`` draws its env seeds and sampling seeds from
``(seed, i)`` only, the learner's RNG and the algorithm's generators are checkpointed, so
``resume`` replays the remaining iterations exactly as an uninterrupted run would.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentrl.algorithm import episodes_per_task
from agentrl.checkpoint import CheckpointManager, default_run_dir, run_paths
from agentrl.collect import IterationLauncher
from agentrl.config import TrainConfig
from agentrl.errors import LearnerLost
from agentrl.evaluate import evaluate_run
from agentrl.interrupt import StopOnCtrlC
from agentrl.metrics import MetricsLogger
from agentrl.pipeline import Pipeline, staleness_stats, throughput_stats
from agentrl.play import episode_stats
from agentrl.progress import Progress
from agentrl.report import finish_run, nonfinite_stop_reason
from agentrl.rollouts.backend import learner_options, make_backend, sampling_config, worker_options
from agentrl.run_state import RunCounters, open_run_log, save_run_state, start_run_state
from agentrl.types import Episode
from agentrl.validate import algorithm_section, is_offline, validate_components

IterationCallback = Callable[["Trainer", int, dict[str, Any]], None]
"""``callback(trainer, iteration, row)``: see :class:`Trainer`'s ``callbacks``."""


class Trainer:
    """Builds every component from ``cfg`` and runs the training loop.

    Args:
        cfg: a validated config.
        console: print the live table (tests turn it off).
        lifelong_task: the task this run is, for lifelong components (default: the env's name).
        callbacks: called as ``callback(trainer, iteration, row)`` after the initial evaluation
            of a new run (iteration 0, ``row`` = the initial eval and warm-start metrics) and
            after every iteration, once its metrics row is logged and before its checkpoint.
            A callback reads the trainer (``trainer.learner``, ``trainer.curriculum``,
            ``trainer.workers``) and must not change it; what it returns is ignored. Use it
            for extra evaluations or custom logging without subclassing the trainer.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        console: bool = True,
        lifelong_task: dict[str, Any] | None = None,
        callbacks: Sequence[IterationCallback] = (),
    ):
        self.cfg = cfg
        self.callbacks = list(callbacks)
        # With lifelong components, a run is one task unless a detector finds boundaries in it.
        self.lifelong_task = lifelong_task or {"name": cfg.env.id.split("/")[-1].split("-")[0]}
        self.console = console
        # where the learner and the rollout workers run (inline or Ray): rollouts/backend.py
        self.backend = make_backend(cfg, console)
        validate_components(cfg)
        self.run_dir, self.resume_from, self.init_from = run_paths(cfg, default_run_dir(cfg))
        self.ckpt = CheckpointManager(self.run_dir / "checkpoints", keep=cfg.checkpoint.keep)
        self._ctrl_c = StopOnCtrlC()  # the first Ctrl-C stops the run after its iteration
        # progress of long phases (collection, evaluation, warm start): bars on a terminal,
        # occasional plain lines otherwise (agentrl.progress); the table prints on its console
        self._progress = bool(console and cfg.logging.progress)
        self.progress = Progress(enabled=self._progress)
        self._log: MetricsLogger | None = None  # the running attempt's logger (transcripts)
        self._offline = is_offline(cfg)  # learns from cfg.data only: no rollouts
        # GRPO's groups: each task played this many times (checked in validate_components)
        self.episodes_per_task = episodes_per_task(cfg.algorithm["name"], algorithm_section(cfg))
        self.stop_reason: str | None = None  # why the run stopped early (NaN/inf updates)
        self._restart_from_scratch = False  # the learner died before the first checkpoint
        self._actors: tuple[object, ...] = ()  # what the backend stops: workers, learner, reward

    # --- setup --------------------------------------------------------------------------
    def _build(self) -> None:
        from agentrl.curricula import build_curriculum
        from agentrl.rewards import build_reward

        cfg = self.cfg
        self.sampling = sampling_config(cfg)
        self.learner, self.workers = self.backend.build(learner_options(cfg), self.sampling, worker_options(cfg))
        self._actors = (self.workers, self.learner)
        self.backend.describe(self.run_dir, self.workers)
        self.reward = self.backend.wrap_reward(build_reward(cfg.reward))
        self._actors = (self.workers, self.learner, self.reward)
        self.curriculum = build_curriculum(cfg.curriculum, seed=cfg.seed)
        # An algorithm with its own acting rule (CHAI: best of k by the critic) acts in rollouts.
        self._act = self.backend.acting_rule(self.learner, self.sampling)
        # weight syncs and each iteration's jobs (agentrl/collect.py); the collections in flight
        # (agentrl/pipeline.py): none ahead when synchronous, rollout.max_staleness ahead with
        # rollout.async_collection
        self.launcher = IterationLauncher(
            cfg, self.backend, self.learner, self.workers, self.curriculum, self._act,
            self.progress, self.episodes_per_task,
        )  # fmt: skip
        depth = cfg.rollout.max_staleness if cfg.rollout.async_collection else 0
        launcher, overlaps = self.launcher, self.backend.overlaps_collection
        self.pipeline = Pipeline(depth, launcher.launch, launcher.sync_weights, overlaps, launcher.showing)

    def _warm_start(self) -> dict[str, float]:
        """Behaviour cloning of the env's scripted player (:func:`agentrl.warmstart.warm_start_learner`);
        returns the metrics logged at iteration 0. A subclass may warm-start otherwise."""
        from agentrl import warmstart

        return warmstart.warm_start_learner(self.cfg, self.learner, progress=self._progress)

    def _save(self, iteration: int, counters: RunCounters) -> Path:
        return save_run_state(
            self.ckpt, self.cfg, iteration, counters, self.learner, self.pipeline, self.curriculum
        )

    def evaluate(self, iteration: int | None = None) -> dict[str, float]:
        """Greedy (``eval/*``) and sampled (``eval_sample/*``) episodes on the fixed eval seeds
        with the learner's current weights (:func:`agentrl.evaluate.evaluate_run`).

        With an ``iteration``, the first ``logging.transcripts`` episodes of each mode are
        written to ``run_dir/transcripts/iter_NNNNNN.md`` and ``.jsonl`` and the Markdown
        goes to the trackers' text tabs (during :meth:`run`)."""
        self.launcher.sync_weights()  # the workers may still hold the weights they collected with
        return evaluate_run(
            self.cfg, self.workers, self._act, self.progress, self.run_dir, iteration, self._log
        )

    # --- the loop -------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Train; returns the summary (initial and final eval, paths).

        If the learner actor dies (its process is killed, its node goes away), the run
        resumes from the last intact checkpoint on its own, ``fault.learner_restarts`` times.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.backend.start()
        restarts = 0
        try:
            while True:
                try:
                    return self._run_attempt()
                except LearnerLost as e:
                    restarts += 1
                    checkpoint = self.ckpt.latest_valid()
                    if restarts > self.cfg.fault.learner_restarts:
                        raise LearnerLost(
                            f"the learner died {restarts} times (fault.learner_restarts="
                            f"{self.cfg.fault.learner_restarts}); last: {e}. Continue with "
                            f"resume=latest run_dir={self.run_dir}"
                        ) from e
                    where = checkpoint or "the start (no checkpoint yet)"
                    print(
                        f"agentrl: the learner died ({e}); resuming from {where} "
                        f"(restart {restarts}/{self.cfg.fault.learner_restarts})",
                        file=sys.stderr,
                    )
                    self.backend.stop_actors(*self._actors)
                    self.resume_from = checkpoint  # the next attempt builds a new pipeline
                    self._restart_from_scratch = checkpoint is None
        finally:
            self.backend.shutdown(*self._actors)

    def _run_attempt(self) -> dict[str, Any]:
        """Build, start (:meth:`_start`), loop (:meth:`_loop`), checkpoint and report."""
        log: MetricsLogger | None = None
        try:
            self._build()
            counters = start_run_state(
                self.resume_from, self.init_from, self.learner, self.pipeline, self.curriculum
            )
            console = self.progress.console if self._progress else None
            resumed_at = int(counters["iteration"]) if self.resume_from is not None else None
            log = self._log = open_run_log(self.cfg, self.run_dir, console, resumed_at, self._restart_from_scratch)
            if self.resume_from is not None:
                log.print(f"resumed from {self.resume_from} at iteration {counters['iteration']}")
            self._start(log, counters)
            self._loop(log, counters)
            return self._finish(log, counters)
        except BaseException:
            if log is not None:
                log.close(failed=True)  # trackers end marked failed (MLflow FAILED, W&B exit 1)
            raise
        finally:
            self._log = None

    def _start(self, log: MetricsLogger, counters: RunCounters) -> None:
        """Iteration 0 of a run that has none yet: the lifelong task's start, the warm start
        (saved as checkpoint step 0: a resume from it does not redo it) and the initial
        evaluation."""
        cfg = self.cfg
        if int(counters["iteration"]) != 0:
            return
        if cfg.lifelong:
            self.learner.lifelong_task_start(self.lifelong_task)
        extra: dict[str, float] = dict(counters.get("warm_start") or {})
        if cfg.warm_start.enabled and self.init_from is None and not extra:
            log.print(
                f"warm start: behaviour cloning of the '{cfg.warm_start.policy}' scripted policy "
                f"({cfg.warm_start.episodes} episodes) with TRL SFTTrainer ..."
            )
            extra = self._warm_start()
            counters["warm_start"] = extra
            if cfg.checkpoint.every:  # a warm start can take long: never redo it
                log.print(f"warm start saved: {self._save(0, counters)}")
        initial = self.evaluate(0)  # syncs the (warm-started) weights first
        counters["initial_eval"] = initial
        row0 = {**initial, **extra}
        log.log(0, row0)
        self._notify(0, row0)

    def _loop(self, log: MetricsLogger, counters: RunCounters) -> None:
        """Iterations after ``counters["iteration"]`` up to ``cfg.iterations``, each logged,
        shown to the callbacks and checkpointed every ``checkpoint.every``; stops early on
        Ctrl-C or after ``fault.max_nonfinite_iters`` iterations in a row of NaN/inf steps."""
        cfg = self.cfg
        nonfinite = 0  # iterations in a row with skipped (NaN/inf) steps
        with self._ctrl_c:
            for it in range(int(counters["iteration"]) + 1, cfg.iterations + 1):
                row = self._iteration(it, counters)
                log.log(it, row)
                counters["iteration"] = it
                self._notify(it, row)
                nonfinite = nonfinite + 1 if row.get("fault/skipped_steps", 0) > 0 else 0
                if nonfinite >= cfg.fault.max_nonfinite_iters:
                    self.stop_reason = nonfinite_stop_reason(nonfinite, log.path, self.ckpt.latest())
                    break
                if nonfinite == 0 and cfg.checkpoint.every and it % cfg.checkpoint.every == 0:
                    self._save(it, counters)
                if self._ctrl_c.requested:
                    break

    def _finish(self, log: MetricsLogger, counters: RunCounters) -> dict[str, Any]:
        """The lifelong task's end, the last checkpoint (none of a failing state), and
        ``summary.json`` with the last lines (:func:`agentrl.report.finish_run`)."""
        cfg = self.cfg
        interrupted, stopped = self._ctrl_c.requested, self.stop_reason is not None
        done_it = int(counters["iteration"])
        if cfg.lifelong and not interrupted and not stopped and done_it == cfg.iterations:
            counters["lifelong_task_end"] = self.learner.lifelong_task_end()  # consolidate
            self._save(done_it, counters)
        last = self.ckpt.latest()
        if not stopped and (last is None or last.name != f"step_{done_it:06d}"):
            self._save(done_it, counters)
        initial = counters.get("initial_eval") or {}
        return finish_run(
            cfg, log, self.run_dir, done_it, initial, interrupted, self.ckpt.latest(), self.stop_reason
        )

    def _notify(self, it: int, row: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(self, it, row)

    def _iteration(self, it: int, counters: RunCounters) -> dict[str, Any]:
        """One iteration: take collection ``it`` from the pipeline (which keeps the next ones
        launched in asynchronous mode), relabel its rewards, update, log, evaluate."""
        from agentrl.rewards import apply_reward

        cfg = self.cfg
        t0 = time.perf_counter()
        episodes: list[Episode] = []
        collect_stats: dict[str, float] = {}
        perf = {"perf/sync_s": 0.0, "perf/collect_wait_s": 0.0}
        if not self._offline:
            episodes, collect_stats, perf = self.pipeline.take(it)
        version = int(self.learner.get_version())
        labelled = apply_reward(self.reward, episodes)
        t2 = time.perf_counter()
        stats = self.learner.update(labelled)
        update_s = time.perf_counter() - t2
        self.curriculum.update(labelled)
        counters["episodes"] = int(counters.get("episodes", 0)) + len(episodes)
        row: dict[str, Any] = {
            **episode_stats("train", episodes),
            "train/relabelled_return": sum(e.total_reward for e in labelled) / max(len(labelled), 1),
            **stats,
            **perf,
            "perf/update_s": update_s,
            "perf/sync_mb": self.launcher.sync_bytes / 2**20,
            **staleness_stats(version, episodes),
            "episodes_total": counters["episodes"],
            **self.curriculum.stats(),  # curriculum/*
        }
        train_s = time.perf_counter() - t0  # one iteration's collection + update, without eval
        row.update(throughput_stats(train_s, len(episodes), collect_stats, perf["perf/collect_wait_s"]))
        if (cfg.eval.every and it % cfg.eval.every == 0) or it == cfg.iterations:
            row.update(self.evaluate(it))
        row["perf/iteration_s"] = time.perf_counter() - t0
        return row


def train(cfg: TrainConfig, console: bool = True) -> dict[str, Any]:
    """Train with ``cfg``; see :class:`Trainer`."""
    return Trainer(cfg, console=console).run()


__all__ = ["IterationCallback", "Trainer", "train"]
