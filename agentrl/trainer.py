"""The composition root: a validated :class:`~agentrl.config.TrainConfig` -> a trained run.

Per iteration (the data flow)::

    weights -> workers;  curriculum.sample -> jobs;  workers.collect -> episodes
    reward relabels;  learner.update;  curriculum.update;  log;  eval every k;  checkpoint every k

Reproducibility: iteration ``i`` draws its env seeds and sampling seeds from
``(seed, i)`` only, the learner's RNG and the algorithm's generators are checkpointed, so
``resume`` replays the remaining iterations exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from agentrl.algorithm import episodes_per_task
from agentrl.checkpoint import CheckpointManager, run_paths
from agentrl.config import TrainConfig, to_plain
from agentrl.errors import LearnerLost
from agentrl.metrics import MetricsLogger
from agentrl.pipeline import Pipeline
from agentrl.play import MODES, Mode, episode_jobs, episode_stats, mode_stats, play
from agentrl.progress import Progress
from agentrl.report import finish_run
from agentrl.rollouts.backend import make_backend, sampling_config, worker_options
from agentrl.rollouts.group import PendingCollect
from agentrl.trackers import build_trackers
from agentrl.transcripts import write_transcripts
from agentrl.types import Episode
from agentrl.validate import algorithm_section, is_offline, validate_components

IterationCallback = Callable[["Trainer", int, dict[str, Any]], None]
"""``callback(trainer, iteration, row)``: see :class:`Trainer`'s ``callbacks``."""


def iteration_seeds(seed: int, iteration: int, n: int) -> list[int]:
    """Env reset seeds of iteration ``iteration`` (a pure function of its inputs)."""
    return [int(s) for s in np.random.SeedSequence([seed, iteration, 17]).generate_state(n)]


def iteration_rng_seed(seed: int, iteration: int) -> int:
    return int(np.random.SeedSequence([seed, iteration, 29]).generate_state(1)[0])


def staleness_stats(version: int, episodes: Sequence[Episode]) -> dict[str, float]:
    """How many policy versions older than the learner's ``version`` the episodes' turns
    are: the mean (``async/staleness``) and the largest (``async/staleness_max``)."""
    ages = [version - t.policy_version for e in episodes for t in e.turns] or [0]
    return {"async/staleness": sum(ages) / len(ages), "async/staleness_max": float(max(ages))}


def default_run_dir(cfg: TrainConfig) -> Path:
    env = cfg.env.id.split("/")[-1].split("-")[0].lower()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{env}-{cfg.algorithm['name']}-{stamp}"


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
        self._stop_requested = False
        # progress of long phases (collection, evaluation, warm start): bars on a terminal,
        # occasional plain lines otherwise (agentrl.progress); the table prints on its console
        self._progress = bool(console and cfg.logging.progress)
        self.progress = Progress(enabled=self._progress)
        self._log: MetricsLogger | None = None  # the running attempt's logger (transcripts)
        self._advance_collection: Callable[[int], None] | None = None
        # the iterations' collections in flight (agentrl/pipeline.py): none ahead when
        # synchronous, rollout.max_staleness ahead with rollout.async_collection
        self.pipeline = Pipeline(
            cfg.rollout.max_staleness if cfg.rollout.async_collection else 0,
            self._launch,
            self._sync_weights,
            self.backend.overlaps_collection,
            self._collecting,
        )
        self.sync_bytes = (
            0  # bytes of the last weight sync sent (0 inline: workers share the policy)
        )
        self._synced_version: int | None = None  # the learner version the workers hold
        self._offline = is_offline(cfg)  # learns from cfg.data only: no rollouts
        # GRPO's groups: each task played this many times (checked in validate_components)
        self.episodes_per_task = episodes_per_task(cfg.algorithm["name"], algorithm_section(cfg))
        self.stop_reason: str | None = None  # why the run stopped early (NaN/inf updates)
        self._restart_from_scratch = False  # the learner died before the first checkpoint

    # --- setup --------------------------------------------------------------------------
    def _build(self) -> None:
        from agentrl.curricula import build_curriculum
        from agentrl.rewards import build_reward

        cfg = self.cfg
        self.sampling = sampling_config(cfg)
        learner_kwargs: dict[str, Any] = dict(
            model=cfg.model,
            algorithm=algorithm_section(cfg),
            seed=cfg.seed,
            sampling_temperature=cfg.rollout.sampling.temperature,
            imports=list(cfg.imports),
            lifelong=list(cfg.lifelong),
            sampling_constraint=cfg.rollout.sampling.constraint,
            import_path=os.getcwd(),
        )
        self.learner, self.workers = self.backend.build(learner_kwargs, self.sampling, worker_options(cfg))
        self.backend.describe(self.run_dir, self.workers)
        self.reward = self.backend.wrap_reward(build_reward(cfg.reward))
        self.curriculum = build_curriculum(cfg.curriculum, seed=cfg.seed)
        # An algorithm with its own acting rule (CHAI: best of k by the critic) acts in rollouts.
        self._act = self.backend.acting_rule(self.learner, self.sampling)

    # --- pieces of the loop ---------------------------------------------------------------
    def _sync_weights(self) -> float:
        """Send the learner's weights to the workers (only the adapter when LoRA is on);
        returns the seconds it took and keeps the bytes sent in ``self.sync_bytes``. Skipped
        when the workers already hold this version."""
        start = time.perf_counter()
        version = int(self.learner.get_version())
        if version == self._synced_version:  # e.g. the eval just before this iteration sent them
            return 0.0
        self._synced_version = version
        # inline workers share the learner's policy: nothing moves (0 bytes)
        self.sync_bytes = self.backend.sync_weights(self.learner, self.workers, version)
        return time.perf_counter() - start

    def evaluate(self, iteration: int | None = None) -> dict[str, float]:
        """Greedy (``eval/*``) and sampled (``eval_sample/*``) episodes on the fixed eval seeds.

        With an ``iteration``, the first ``logging.transcripts`` episodes of each mode are
        written to ``run_dir/transcripts/iter_NNNNNN.md`` and ``.jsonl``
        (:func:`agentrl.transcripts.write_transcripts`) and the Markdown goes to the trackers'
        text tabs (during :meth:`run`)."""
        cfg = self.cfg
        self._sync_weights()  # the workers may still hold the weights they collected with
        jobs = episode_jobs(cfg.eval.episodes, cfg.eval.seed)
        modes: list[Mode] = [m for m, on in zip(MODES, (cfg.eval.greedy, cfg.eval.sample), strict=True) if on]
        start = time.perf_counter()
        say = self.progress.console.print
        if self._progress and jobs and modes:
            say(f"evaluating: {len(jobs)} episodes, {' and '.join(modes)} ...", highlight=False)
        # the sampled mode with the algorithm's own acting rule, if it has one (CHAI)
        shown = play(self.workers, jobs, cfg.eval.seed, modes, act=self._act, progress=self.progress)
        out = mode_stats(shown)
        eps = shown[modes[-1]] if modes else []
        if iteration is not None and cfg.logging.transcripts > 0 and shown:
            markdown = write_transcripts(
                self.run_dir / "transcripts",
                {m: e[: cfg.logging.transcripts] for m, e in shown.items()},
                iteration,
            )
            if self._log is not None:
                self._log.log_text(iteration, "transcripts", markdown)
        if eps:  # which policy was evaluated (the learner's number of updates)
            out["eval/policy_version"] = float(min(e.policy_version for e in eps))
        if self._progress and jobs and modes:
            say(f"evaluated in {time.perf_counter() - start:.0f} s", highlight=False)
        return out

    def _save(self, iteration: int, counters: dict[str, Any]) -> Path:
        meta = {
            "config": to_plain(self.cfg),
            "components": {
                "algorithm": self.cfg.algorithm["name"],
                "reward": self.cfg.reward["name"],
                "curriculum": self.cfg.curriculum["name"],
                "env": self.cfg.env.id,
                "model": self.cfg.model.name,
            },
        }

        def write(d: Path) -> None:
            self.learner.save(str(d))
            self.pipeline.save(d)  # asynchronous mode: the collections in flight travel along
            (d / "curriculum.json").write_text(json.dumps(self.curriculum.state_dict()))
            (d / "counters.json").write_text(json.dumps({**counters, "iteration": iteration}))

        return self.ckpt.save(iteration, write, meta)

    def _restore(self, path: Path) -> dict[str, Any]:
        self.learner.load(str(path))
        self.curriculum.load_state_dict(json.loads((path / "curriculum.json").read_text()))
        counters: dict[str, Any] = json.loads((path / "counters.json").read_text())
        self.pipeline.restore(path, int(counters["iteration"]))
        return counters

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
                    self.backend.stop_actors(self.workers, self.learner, self.reward)
                    self.resume_from = checkpoint
                    self._restart_from_scratch = checkpoint is None
                    self.pipeline.drop()
                    self._synced_version = None
        finally:
            self.backend.shutdown(
                getattr(self, "workers", None), getattr(self, "learner", None), getattr(self, "reward", None)
            )

    def _run_attempt(self) -> dict[str, Any]:
        cfg = self.cfg
        log: MetricsLogger | None = None
        try:
            self._build()
            counters: dict[str, Any] = {"iteration": 0, "episodes": 0, "initial_eval": None}
            if self.resume_from is not None:
                counters = self._restore(self.resume_from)
            elif self.init_from is not None:
                self.learner.load(str(self.init_from), weights_only=True)
            log = MetricsLogger(
                self.run_dir,
                build_trackers(cfg.logging, self.run_dir),  # TensorBoard, W&B, MLflow
                self.progress.console if self._progress else None,
                # resumed: replay the rows after the checkpoint (from its warm start, step 0:
                # iteration 0's eval too); restarted from scratch (the learner died before the
                # first checkpoint): drop every row, iteration 0 too
                truncate_after=(counters["iteration"] or -1)
                if self.resume_from
                else (-1 if self._restart_from_scratch else None),
            )
            self._log = log
            (self.run_dir / "config.json").write_text(json.dumps(to_plain(cfg), indent=2))
            log.log_config(to_plain(cfg))
            if self.resume_from is not None:
                log.print(f"resumed from {self.resume_from} at iteration {counters['iteration']}")
            start_it = int(counters["iteration"])
            if start_it == 0:
                if cfg.lifelong:
                    self.learner.lifelong_task_start(self.lifelong_task)
                extra: dict[str, float] = dict(counters.get("warm_start") or {})
                if cfg.warm_start.enabled and self.init_from is None and not extra:
                    log.print(
                        f"warm start: behaviour cloning of the '{cfg.warm_start.policy}' scripted policy "
                        f"({cfg.warm_start.episodes} episodes) with TRL SFTTrainer ..."
                    )
                    from agentrl.warmstart import warm_start_learner

                    extra = warm_start_learner(self.cfg, self.learner, progress=self._progress)
                    counters["warm_start"] = extra
                    if cfg.checkpoint.every:  # a warm start can take long: never redo it
                        log.print(f"warm start saved: {self._save(0, counters)}")
                initial = self.evaluate(0)  # syncs the (warm-started) weights first
                counters["initial_eval"] = initial
                row0 = {**initial, **extra}
                log.log(0, row0)
                self._notify(0, row0)
            previous = signal.signal(signal.SIGINT, self._on_sigint) if _main_thread() else None
            it = start_it
            try:
                nonfinite = 0  # iterations in a row with skipped (NaN/inf) steps
                for it in range(start_it + 1, cfg.iterations + 1):
                    row = self._iteration(it, counters)
                    log.log(it, row)
                    counters["iteration"] = it
                    self._notify(it, row)
                    nonfinite = nonfinite + 1 if row.get("fault/skipped_steps", 0) > 0 else 0
                    if nonfinite >= cfg.fault.max_nonfinite_iters:
                        self.stop_reason = (
                            f"{nonfinite} iterations in a row had NaN/inf losses or gradients "
                            f"(their steps were skipped, see fault/skipped_steps in "
                            f"{log.path}); usual causes: NaN rewards, a too high learning rate. "
                            f"The last good checkpoint is {self.ckpt.latest()}"
                        )
                        break
                    if nonfinite == 0 and cfg.checkpoint.every and it % cfg.checkpoint.every == 0:
                        self._save(it, counters)
                    if self._stop_requested:
                        break
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)
            interrupted = self._stop_requested
            done_it = int(counters["iteration"])
            stopped = self.stop_reason is not None  # no checkpoint of a failing state
            if (
                cfg.lifelong and not interrupted and not stopped and done_it == cfg.iterations
            ):  # task end: consolidate
                counters["lifelong_task_end"] = self.learner.lifelong_task_end()
                self._save(done_it, counters)
            last = self.ckpt.latest()
            if not stopped and (last is None or last.name != f"step_{done_it:06d}"):
                self._save(done_it, counters)
            summary = finish_run(
                cfg, log, self.run_dir, done_it, counters.get("initial_eval") or {},
                interrupted, self.ckpt.latest(), self.stop_reason,
            )
            return summary
        except BaseException:
            if log is not None:
                log.close(failed=True)  # trackers end marked failed (MLflow FAILED, W&B exit 1)
            raise
        finally:
            self._log = None

    def _notify(self, it: int, row: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(self, it, row)

    def _launch(self, it: int) -> PendingCollect:
        """Sample tasks and submit iteration ``it``'s episodes; returns a pending collection."""
        from agentrl.rollouts.worker import EpisodeJob

        cfg = self.cfg
        n, group = cfg.rollout.episodes_per_iter, self.episodes_per_task
        # each sampled task is played `group` times with one env seed (GRPO's groups)
        tasks = self.curriculum.sample(n // group)
        seeds = iteration_seeds(cfg.seed, it, n // group)
        pairs = [(s, t) for s, t in zip(seeds, tasks, strict=True) for _ in range(group)]
        jobs = [EpisodeJob(j, s, t if group == 1 else dict(t)) for j, (s, t) in enumerate(pairs)]
        return self.workers.start_collect(
            jobs,
            rng_seed=iteration_rng_seed(cfg.seed, it),
            act=self._act,
            on_episode=self._on_episode,
        )

    def _on_episode(self) -> None:
        """A collected episode finished: advance the open collection bar, if any (an inline
        group plays its episodes inside ``start_collect``, a Ray group's chunks report when
        the trainer waits for them)."""
        if self._advance_collection is not None:
            self._advance_collection(1)

    @contextmanager
    def _collecting(self, it: int) -> Iterator[None]:
        """The progress bar of iteration ``it``'s collection, while the block runs."""
        n = 0 if self._offline else self.cfg.rollout.episodes_per_iter
        with self.progress.phase(f"collecting iteration {it}", n, "episode") as bar:
            self._advance_collection = bar.advance
            try:
                yield
            finally:
                self._advance_collection = None

    def _iteration(self, it: int, counters: dict[str, Any]) -> dict[str, Any]:
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
            "train/relabelled_return": sum(e.total_reward for e in labelled)
            / max(len(labelled), 1),
            **stats,
            **perf,
            "perf/update_s": update_s,
            "perf/sync_mb": self.sync_bytes / 2**20,
            **staleness_stats(version, episodes),
            "episodes_total": counters["episodes"],
            **(
                self.curriculum.stats() if hasattr(self.curriculum, "stats") else {}
            ),  # curriculum/*
        }
        train_s = time.perf_counter() - t0  # one iteration's collection + update, without eval
        row["perf/tokens_per_s"] = collect_stats.get("gen_tokens", 0.0) / max(train_s, 1e-9)
        row["perf/episodes_per_s"] = len(episodes) / max(train_s, 1e-9)
        row["perf/learner_wait_frac"] = perf["perf/collect_wait_s"] / max(train_s, 1e-9)
        # the rollout workers' time on this iteration's episodes (summed over workers; under
        # asynchronous collection spent during earlier iterations): docs/scaling.md
        row["perf/worker_busy_s"] = collect_stats.get("worker_busy_s", 0.0)
        if (cfg.eval.every and it % cfg.eval.every == 0) or it == cfg.iterations:
            row.update(self.evaluate(it))
        row["perf/iteration_s"] = time.perf_counter() - t0
        return row

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop_requested:  # a second Ctrl-C aborts at once
            raise KeyboardInterrupt
        self._stop_requested = True
        print(
            "\nCtrl-C: finishing this iteration, saving a checkpoint, then exiting (Ctrl-C again to abort)"
        )


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(cfg: TrainConfig, console: bool = True) -> dict[str, Any]:
    """Train with ``cfg``; see :class:`Trainer`."""
    return Trainer(cfg, console=console).run()


__all__ = ["Trainer", "episode_stats", "iteration_seeds", "train"]
