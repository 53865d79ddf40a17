"""The reward interface, the ``env`` reward, and how rewards are applied to episodes."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentrl.registry import REWARDS
from agentrl.types import Episode


@dataclass
class RewardConfig:
    """``mode``: ``replace`` the final-turn reward with ``weight * score``, or ``add`` it."""

    mode: str = "replace"
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.mode not in ("replace", "add"):
            raise ValueError(f"reward.mode must be one of replace, add; got {self.mode!r}")


@REWARDS.register("env")
class EnvReward:
    """The environment's own reward (the default): episodes pass through unchanged."""

    Config = RewardConfig
    passthrough = True

    def __init__(self, config: RewardConfig | None = None, **_: Any):
        self.config = config or RewardConfig()

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        return [ep.env_reward for ep in episodes]


def build_reward(section: dict[str, Any]) -> Any:
    """Build the reward named in the ``reward`` config section."""
    from agentrl.config import make_dataclass_config

    name = section["name"]
    cls = REWARDS.get(name)
    config_cls = getattr(cls, "Config", None)
    cfg = make_dataclass_config(config_cls, section, where=f"reward={name}") if config_cls else None
    return cls(cfg)


def apply_reward(reward: Any, episodes: Sequence[Episode]) -> list[Episode]:
    """Relabel copies of ``episodes`` with ``reward``'s scores (inputs are not mutated)."""
    if getattr(reward, "passthrough", False):
        return list(episodes)
    scores = reward.score(episodes)
    cfg = getattr(reward, "config", RewardConfig())
    out = []
    for ep, s in zip(episodes, scores, strict=True):
        ep = copy.deepcopy(ep)
        if ep.turns:
            last = ep.turns[-1]
            last.reward = cfg.weight * s if cfg.mode == "replace" else last.reward + cfg.weight * s
        out.append(ep)
    return out
