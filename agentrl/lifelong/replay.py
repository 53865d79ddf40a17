"""Experience replay with a reservoir buffer (``lifelong=[replay]``).

Every fresh episode is offered to a reservoir of ``capacity`` episodes (Vitter's
algorithm R): the ``n``-th episode seen (0-based) is kept with probability
``capacity / (n + 1)``, replacing a uniformly chosen slot, so at any time the buffer is a
uniform sample of *all* episodes seen so far -- old tasks keep their share however long
the current task lasts. Before each update, ``round(ratio * len(batch))`` episodes drawn
uniformly without replacement from the buffer are appended to the fresh ones.

With on-policy algorithms (PPO) the replayed turns carry the log-probs of the policy that
sampled them; PPO's clipping then bounds their update. Filtered BC uses them as they are
(its filter keeps the best of fresh and replayed episodes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from agentrl.lifelong.base import LifelongComponent
from agentrl.registry import LIFELONG
from agentrl.types import Episode

T = TypeVar("T")


class Reservoir(Generic[T]):
    """A uniform sample of at most ``capacity`` items from a stream (algorithm R).

    Args:
        capacity: the most items kept.
        seed: seeds the numpy generator (its state is part of :meth:`state_dict`).
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"reservoir capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.items: list[T] = []
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, item: T) -> None:
        if len(self.items) < self.capacity:
            self.items.append(item)
        else:
            j = int(self.rng.integers(0, self.seen + 1))
            if j < self.capacity:
                self.items[j] = item
        self.seen += 1

    def sample(self, k: int) -> list[T]:
        """``min(k, len)`` items uniformly without replacement."""
        k = min(int(k), len(self.items))
        if k <= 0:
            return []
        idx = self.rng.choice(len(self.items), size=k, replace=False)
        return [self.items[int(i)] for i in idx]

    def rng_state(self) -> dict[str, Any]:
        state = self.rng.bit_generator.state
        return {
            "bit_generator": state["bit_generator"],
            "state": {k: str(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }

    def set_rng_state(self, s: dict[str, Any]) -> None:
        self.rng.bit_generator.state = {
            "bit_generator": s["bit_generator"],
            "state": {k: int(v) for k, v in s["state"].items()},
            "has_uint32": int(s["has_uint32"]),
            "uinteger": int(s["uinteger"]),
        }


@dataclass
class ReplayConfig:
    """Attributes:
    capacity: episodes kept in the reservoir.
    ratio: replayed episodes per fresh episode in each update (1.0 = as many as fresh).
    """

    capacity: int = 1000
    ratio: float = 1.0

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"replay.capacity must be >= 1, got {self.capacity}")
        if self.ratio < 0:
            raise ValueError(f"replay.ratio must be >= 0, got {self.ratio}")


@LIFELONG.register("replay")
class ExperienceReplay(LifelongComponent):
    """Reservoir experience replay mixed into learner batches (see the module docstring)."""

    Config = ReplayConfig

    def __init__(self, config: ReplayConfig | None = None, seed: int = 0):
        self.config = config or ReplayConfig()
        self.buffer: Reservoir[Episode] = Reservoir(self.config.capacity, seed=seed)
        self.task = ""

    def on_task_start(self, task: dict[str, Any]) -> None:
        self.task = str(task.get("name", ""))

    def on_episode(self, episode: Episode) -> None:
        # Remember which task an episode came from (reporting; the env id is not enough).
        if self.task and "lifelong_task" not in episode.task:
            episode = Episode.from_dict(
                {**episode.to_dict(), "task": {**episode.task, "lifelong_task": self.task}}
            )
        self.buffer.add(episode)

    def augment_batch(self, episodes: Sequence[Episode]) -> list[Episode]:
        k = int(round(self.config.ratio * len(episodes)))
        return [*episodes, *self.buffer.sample(k)]

    def task_counts(self) -> dict[str, int]:
        """How many buffered episodes each task contributed."""
        out: dict[str, int] = {}
        for e in self.buffer.items:
            key = str(e.task.get("lifelong_task", ""))
            out[key] = out.get(key, 0) + 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "episodes": [e.to_dict() for e in self.buffer.items],
            "seen": self.buffer.seen,
            "rng": self.buffer.rng_state(),
            "task": self.task,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.items = [Episode.from_dict(d) for d in state["episodes"]][
            : self.buffer.capacity
        ]
        self.buffer.seen = int(state["seen"])
        self.buffer.set_rng_state(state["rng"])
        self.task = str(state.get("task", ""))
