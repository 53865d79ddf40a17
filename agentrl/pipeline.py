"""The iterations' collections in flight: the trainer's rollout pipeline.

Iteration ``i`` trains on the episodes of *collection* ``i`` (its env seeds and sampling
seeds are functions of ``(seed, i)`` only). When the collection is launched decides how
old its policy is:

- ``rollout.async_collection=false`` (synchronous): collection ``i`` is launched with the
  newest weights and waited for; the learner waits for the workers, the workers for the
  learner.
- ``rollout.async_collection=true``, ``rollout.max_staleness=k``: after taking collection
  ``i``, collections ``i+1 .. i+k`` are kept launched, each with the weights current when it
  was launched, so while the learner updates the workers keep collecting, up to ``k``
  iterations ahead. The episodes an update trains on are then exactly ``k`` policy versions
  old (``async/staleness``; the first ``k`` iterations' are younger), which bounds how stale
  an on-policy learner's data can be; PPO/GRPO/RLOO correct for it with importance weights
  against the behaviour log-probs (docs/scaling.md), ArCHer learns from its replay buffer
  as ever. A weight update never aborts a collection in flight: it applies to collections
  launched after it.

Over Ray the launched collections run in the actors, queued in launch order, while the
trainer updates; inline they are collected at launch, so an asynchronous inline run gives
the same episodes as over Ray, only without the overlap. Because every collection is a
function of its iteration and the weights it was launched with, a checkpoint stores the
collections in flight (their episodes) and a resumed run continues exactly as an
uninterrupted one.

What collection ``i`` plays is a function of ``(seed, i)`` and the curriculum's tasks only
(:func:`agentrl.collect.iteration_jobs`); :func:`staleness_stats` measures how old the policy
that played it was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from agentrl.rollouts.group import PendingCollect
from agentrl.types import Episode, load_episodes, save_episodes

Launch = Callable[[int], PendingCollect]
"""``launch(iteration)``: sample the iteration's tasks and submit its episodes."""


def staleness_stats(version: int, episodes: Sequence[Episode]) -> dict[str, float]:
    """How many policy versions older than the learner's ``version`` the episodes' turns
    are: the mean (``async/staleness``) and the largest (``async/staleness_max``)."""
    ages = [version - t.policy_version for e in episodes for t in e.turns] or [0]
    return {"async/staleness": sum(ages) / len(ages), "async/staleness_max": float(max(ages))}


def throughput_stats(
    train_s: float, episodes: int, collect_stats: dict[str, float], wait_s: float
) -> dict[str, float]:
    """An iteration's throughput from its ``train_s`` seconds of collection and update:
    generated tokens (``perf/tokens_per_s``) and ``episodes`` per second, the share of it the
    learner waited for the collection (``wait_s``), and the rollout workers' time on its
    episodes (``perf/worker_busy_s``: summed over workers; under asynchronous collection spent
    during earlier iterations, docs/scaling.md)."""
    return {
        "perf/tokens_per_s": collect_stats.get("gen_tokens", 0.0) / max(train_s, 1e-9),
        "perf/episodes_per_s": episodes / max(train_s, 1e-9),
        "perf/learner_wait_frac": wait_s / max(train_s, 1e-9),
        "perf/worker_busy_s": collect_stats.get("worker_busy_s", 0.0),
    }


class Pipeline:
    """Collections launched ahead of the learner (see the module docstring).

    Args:
        depth: collections kept launched beyond the one being trained on (0: synchronous).
        launch: submits one iteration's collection with the workers' current weights.
        sync: gives the workers the learner's newest weights; returns the seconds it took.
        overlaps: the backend collects while the trainer updates (Ray); inline, a launched
            collection is played at once, inside ``showing(iteration)``.
        showing: the progress bar of one iteration's collection, as a context manager.
    """

    def __init__(
        self,
        depth: int,
        launch: Launch,
        sync: Callable[[], float],
        overlaps: bool,
        showing: Callable[[int], AbstractContextManager[None]],
    ):
        if depth < 0:
            raise ValueError(f"pipeline depth must be >= 0, got {depth}")
        self.depth = depth
        self._launch = launch
        self._sync = sync
        self._overlaps = overlaps
        self._showing = showing
        self.pending: dict[int, PendingCollect] = {}

    def take(self, it: int) -> tuple[list[Episode], dict[str, float], dict[str, float]]:
        """Collection ``it``'s episodes and stats, with ``perf/sync_s`` and
        ``perf/collect_wait_s`` (how long the learner waited for them); then keeps
        collections ``it+1 .. it+depth`` launched."""
        sync_s = 0.0
        with self._showing(it):
            if it not in self.pending:
                sync_s += self._sync()
                self.pending[it] = self._launch(it)
            start = time.perf_counter()
            collection = self.pending.pop(it)
            episodes = collection.result()
            wait_s = time.perf_counter() - start
        # Launched even after the last iteration: the final checkpoint then carries them, so
        # a resumed or extended run continues exactly as an uninterrupted one would.
        for ahead in range(it + 1, it + self.depth + 1):
            if ahead not in self.pending:
                sync_s += self._sync()
                # inline, the collection is played right here, under its own bar; over Ray it
                # runs in the actors and its bar shows while a later iteration waits for it
                with nullcontext() if self._overlaps else self._showing(ahead):
                    self.pending[ahead] = self._launch(ahead)
        return episodes, collection.stats, {"perf/sync_s": sync_s, "perf/collect_wait_s": wait_s}

    def drop(self) -> None:
        """Forget the collections in flight (the workers that ran them are gone)."""
        self.pending.clear()

    # --- checkpoints ----------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write the collections in flight (waiting for them) to ``directory/pending/``."""
        if not self.pending:
            return
        folder = directory / "pending"
        folder.mkdir()
        for it, collection in sorted(self.pending.items()):
            save_episodes(str(folder / f"iter_{it:06d}.jsonl"), collection.result())
            (folder / f"iter_{it:06d}.json").write_text(json.dumps(collection.stats))

    def restore(self, directory: Path, iteration: int) -> None:
        """Load the collections a checkpoint of ``iteration`` holds (also the one-collection
        layout of earlier versions, ``pending_episodes.jsonl``)."""
        self.pending = {}
        for it, episodes, stats in _stored(directory, iteration):
            self.pending[it] = PendingCollect(lambda e=episodes, s=stats: (e, s))


def _stored(directory: Path, iteration: int) -> Iterator[tuple[int, list[Episode], dict[str, float]]]:
    old = directory / "pending_episodes.jsonl"
    if old.exists():
        stats = json.loads((directory / "pending_stats.json").read_text())
        yield iteration + 1, load_episodes(str(old)), stats
    folder = directory / "pending"
    for path in sorted(folder.glob("iter_*.jsonl")) if folder.is_dir() else []:
        it = int(path.stem.split("_")[1])
        stats = json.loads(path.with_suffix(".json").read_text())
        yield it, load_episodes(str(path)), stats


__all__ = ["Launch", "Pipeline", "staleness_stats", "throughput_stats"]
