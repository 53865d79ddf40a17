"""Worker groups: the same collection API in one process or over Ray actors.

Jobs of one collect call are split into ``num_workers`` contiguous chunks and chunk ``w``
samples with the seed ``rng_seed * 1009 + w``; an inline group plays the chunks one after
another with a single worker, a Ray group plays them in parallel. Both therefore produce the
same episodes for the same weights and seeds.

``start_collect`` returns a :class:`PendingCollect` at once (a Ray group keeps collecting
in its actors while the caller trains); ``collect`` is ``start_collect(...).result()``.
An inline group collects inside ``start_collect``, so asynchronous runs inline produce the
same episodes as over Ray, only without the overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from agentrl.types import Episode

from .worker import EpisodeJob, RolloutWorker


def split_jobs(jobs: Sequence[EpisodeJob], parts: int) -> list[list[EpisodeJob]]:
    """Contiguous, near-equal chunks (the first ``len % parts`` chunks get one more)."""
    n = len(jobs)
    base, extra = divmod(n, parts)
    out, lo = [], 0
    for w in range(parts):
        hi = lo + base + (1 if w < extra else 0)
        out.append(list(jobs[lo:hi]))
        lo = hi
    return out


def chunk_seed(rng_seed: int, worker: int) -> int:
    return int(rng_seed) * 1009 + worker


class PendingCollect:
    """Episodes being collected; ``result()`` waits for them (once; later calls return the same list).

    Args:
        wait: a callable returning ``(episodes, stats)``; ``stats`` (e.g. ``gen_tokens``) is
            available as :attr:`stats` after ``result()``.
    """

    def __init__(self, wait: Any):
        self._wait = wait
        self._episodes: list[Episode] | None = None
        self.stats: dict[str, float] = {}

    def result(self) -> list[Episode]:
        if self._episodes is None:
            self._episodes, self.stats = self._wait()
            self._wait = None
        return self._episodes


class InlineWorkerGroup:
    """All collection in the calling process, with one worker sharing the learner's policy."""

    def __init__(self, worker: RolloutWorker, num_chunks: int):
        self.worker = worker
        self.num_chunks = num_chunks
        self.last_stats: dict[str, float] = {}

    def set_weights(self, weights: dict[str, torch.Tensor] | None, version: int) -> None:
        if weights is not None:
            self.worker.set_weights(weights, version)
        else:
            self.worker.policy_version = version

    def collect(
        self,
        jobs: Sequence[EpisodeJob],
        rng_seed: int,
        greedy: bool = False,
        act: Any = None,
        on_episode: Callable[[], None] | None = None,
    ) -> list[Episode]:
        return self.start_collect(jobs, rng_seed, greedy, act, on_episode).result()

    def start_collect(
        self,
        jobs: Sequence[EpisodeJob],
        rng_seed: int,
        greedy: bool = False,
        act: Any = None,
        on_episode: Callable[[], None] | None = None,
    ) -> PendingCollect:
        """Collect ``jobs`` now (``on_episode`` is called per finished episode); the returned
        :class:`PendingCollect` already holds them."""
        import time

        episodes: list[Episode] = []
        gen_tokens = 0.0
        start = time.perf_counter()
        for w, chunk in enumerate(split_jobs(jobs, self.num_chunks)):
            if chunk:
                episodes.extend(
                    self.worker.collect(
                        chunk, chunk_seed(rng_seed, w), greedy=greedy, act=act, on_episode=on_episode
                    )
                )
                gen_tokens += self.worker.last_stats.get("gen_tokens", 0.0)
        stats = {"gen_tokens": gen_tokens, "worker_busy_s": time.perf_counter() - start}
        self.last_stats = stats
        return PendingCollect(lambda: (episodes, stats))

    def shutdown(self) -> None:
        pass
