"""Worker groups: the same collection API in one process or over Ray actors.

Jobs of one collect call are split into ``num_workers`` contiguous chunks and chunk ``w``
samples with the seed ``rng_seed * 1009 + w``; an inline group plays the chunks one after
another with a single worker, a Ray group plays them in parallel. Both therefore produce the
same episodes for the same weights and seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def collect(self, jobs: Sequence[EpisodeJob], rng_seed: int, greedy: bool = False, act: Any = None) -> list[Episode]:
        episodes: list[Episode] = []
        gen_tokens = 0.0
        for w, chunk in enumerate(split_jobs(jobs, self.num_chunks)):
            if chunk:
                episodes.extend(self.worker.collect(chunk, chunk_seed(rng_seed, w), greedy=greedy, act=act))
                gen_tokens += self.worker.last_stats.get("gen_tokens", 0.0)
        self.last_stats = {"gen_tokens": gen_tokens}
        return episodes

    def shutdown(self) -> None:
        pass
