"""What a training iteration collects, and how its collection reaches the workers.

Iteration ``i`` plays the tasks the curriculum samples, each ``group`` times (GRPO's groups)
with one env seed, on env seeds and a sampling seed that are functions of ``(seed, i)``
only (:func:`iteration_seeds`, :func:`iteration_rng_seed`, :func:`iteration_jobs`), so a
resumed run collects exactly what an uninterrupted one would.

:class:`IterationLauncher` is the run's side of a :class:`~agentrl.pipeline.Pipeline`: it
gives the workers the learner's weights (:meth:`~IterationLauncher.sync_weights`), submits
an iteration's episodes (:meth:`~IterationLauncher.launch`) and shows their progress bar
(:meth:`~IterationLauncher.showing`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from agentrl.rollouts.worker import EpisodeJob
from agentrl.types import TaskSpec

if TYPE_CHECKING:
    from agentrl.config import TrainConfig
    from agentrl.curricula import Curriculum
    from agentrl.progress import Progress
    from agentrl.rollouts.backend import Backend, LearnerHandle, WorkerGroup
    from agentrl.rollouts.group import PendingCollect
    from agentrl.rollouts.worker import ActFn


def iteration_seeds(seed: int, iteration: int, n: int) -> list[int]:
    """Env reset seeds of iteration ``iteration`` (a pure function of its inputs)."""
    return [int(s) for s in np.random.SeedSequence([seed, iteration, 17]).generate_state(n)]


def iteration_rng_seed(seed: int, iteration: int) -> int:
    """The sampling seed of iteration ``iteration``'s collection (a pure function of its inputs)."""
    return int(np.random.SeedSequence([seed, iteration, 29]).generate_state(1)[0])


def iteration_jobs(seed: int, iteration: int, tasks: Sequence[TaskSpec], group: int) -> list[EpisodeJob]:
    """Iteration ``iteration``'s episodes: each of ``tasks`` played ``group`` times with one
    env seed of :func:`iteration_seeds` (every job of a group gets its own copy of the task)."""
    seeds = iteration_seeds(seed, iteration, len(tasks))
    pairs = [(s, t) for s, t in zip(seeds, tasks, strict=True) for _ in range(group)]
    return [EpisodeJob(j, s, t if group == 1 else dict(t)) for j, (s, t) in enumerate(pairs)]


class IterationLauncher:
    """Launches iterations' collections on one attempt's workers.

    Args:
        cfg: the run's config (``seed``, ``rollout.episodes_per_iter``).
        backend: moves the weights (:meth:`~agentrl.rollouts.backend.Backend.sync_weights`).
        learner: the attempt's learner (its version and weights).
        workers: the attempt's rollout workers.
        curriculum: samples each iteration's tasks.
        act: the algorithm's own acting rule in the rollouts, or ``None`` to sample the policy.
        progress: draws each collection's bar.
        group: how many times each sampled task is played (GRPO's ``group_size``; else 1).

    Attributes:
        sync_bytes: bytes sent by the last weight sync (0 inline: the workers share the policy).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        backend: Backend,
        learner: LearnerHandle,
        workers: WorkerGroup,
        curriculum: Curriculum,
        act: ActFn | None,
        progress: Progress,
        group: int,
    ):
        self.cfg, self.backend, self.learner, self.workers = cfg, backend, learner, workers
        self.curriculum, self.act, self.progress, self.group = curriculum, act, progress, group
        self.sync_bytes = 0
        self._synced_version: int | None = None  # the learner version the workers hold
        self._advance: Callable[[int], None] | None = None  # the open collection bar

    def sync_weights(self) -> float:
        """Send the learner's weights to the workers (only the adapter when LoRA is on);
        returns the seconds it took and keeps the bytes sent in :attr:`sync_bytes`. Skipped
        when the workers already hold this version."""
        start = time.perf_counter()
        version = int(self.learner.get_version())
        if version == self._synced_version:  # e.g. the eval just before this iteration sent them
            return 0.0
        self._synced_version = version
        # inline workers share the learner's policy: nothing moves (0 bytes)
        self.sync_bytes = self.backend.sync_weights(self.learner, self.workers, version)
        return time.perf_counter() - start

    def launch(self, it: int) -> PendingCollect:
        """Sample tasks and submit iteration ``it``'s episodes; returns a pending collection."""
        n, seed = self.cfg.rollout.episodes_per_iter, self.cfg.seed
        jobs = iteration_jobs(seed, it, self.curriculum.sample(n // self.group), self.group)
        return self.workers.start_collect(
            jobs, rng_seed=iteration_rng_seed(seed, it), act=self.act, on_episode=self._on_episode
        )

    def _on_episode(self) -> None:
        """A collected episode finished: advance the open collection bar, if any (an inline
        group plays its episodes inside ``start_collect``, a Ray group's chunks report when
        the trainer waits for them)."""
        if self._advance is not None:
            self._advance(1)

    @contextmanager
    def showing(self, it: int) -> Iterator[None]:
        """The progress bar of iteration ``it``'s collection, while the block runs."""
        n = self.cfg.rollout.episodes_per_iter
        with self.progress.phase(f"collecting iteration {it}", n, "episode") as bar:
            self._advance = bar.advance
            try:
                yield
            finally:
                self._advance = None


__all__ = ["IterationLauncher", "iteration_jobs", "iteration_rng_seed", "iteration_seeds"]
