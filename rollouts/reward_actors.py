"""Ray at the edge for rewards: the reward model in its own actor, and ARMAP collection
on Ray workers. (``agentrl.rewards`` itself never imports ``ray``.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import ray

from agentrl.rewards import Reward
from agentrl.types import Episode


class _RewardActor:
    def __init__(self, section: dict[str, Any], imports: list[str], import_path: str | None):
        from agentrl.registry import import_user_modules
        from agentrl.rewards import build_reward

        import_user_modules(imports, import_path)
        self.reward = build_reward(section)

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        return [float(s) for s in self.reward.score(episodes)]


class RemoteReward(Reward):
    """A reward (model) living in its own Ray actor; ``score`` sends a batch and waits.

    A :class:`~agentrl.rewards.Reward` with the local reward's ``config``, so
    :func:`agentrl.rewards.apply_reward` uses it unchanged; :meth:`shutdown` kills the actor.
    """

    def __init__(
        self,
        section: dict[str, Any],
        local: Reward,
        num_cpus: float = 0.0,
        num_gpus: float = 0.0,
        imports: list[str] | None = None,
        import_path: str | None = None,
    ):
        self.config = local.config
        cls = ray.remote(_RewardActor).options(num_cpus=num_cpus, num_gpus=num_gpus)
        self.actor: Any = cls.remote(dict(section), list(imports or []), import_path)

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        return list(ray.get(self.actor.score.remote(list(episodes))))

    def shutdown(self) -> None:
        ray.kill(self.actor)


def ray_map_chunks(num_workers: int, num_cpus: float = 1.0) -> Any:
    """A ``map_chunks`` for :func:`agentrl.rewards.armap.collect` running chunks as Ray tasks
    (``num_workers`` at a time); yields each wave's rows in order as it finishes."""
    from agentrl.rewards.armap.collect import collect_chunk

    remote = ray.remote(num_cpus=num_cpus, max_retries=2)(collect_chunk)

    def map_chunks(cfg: Any, chunks: list[list[int]]) -> Iterator[list[dict[str, Any]]]:
        for k in range(0, len(chunks), num_workers):
            wave = [remote.remote(cfg, c) for c in chunks[k : k + num_workers]]
            yield from ray.get(wave)

    return map_chunks
