"""The reward interface, the ``env`` reward, and how rewards are applied to episodes."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

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


class Reward(ABC):
    """The interface of a reward (``reward=NAME``): subclass it and register the subclass.

    A reward scores a batch of finished episodes, one float per episode
    (:meth:`score`); :func:`apply_reward` writes the scores into copies of the episodes as
    the config's ``mode`` and ``weight`` say. Class attributes:

    - ``Config``: the dataclass of its ``reward.*`` keys (a subclass of
      :class:`RewardConfig`, whose ``mode`` and ``weight`` every reward takes);
    - ``passthrough``: ``True`` only for a reward that leaves the env's rewards as they are
      (``env``): it is never called and, on Ray, never moved into an actor of its own.

    The constructor takes the built config (``None``: the defaults). :meth:`shutdown`
    releases what the reward holds (a remote actor); by default there is nothing to release.
    """

    Config: ClassVar[type[RewardConfig]] = RewardConfig
    passthrough: ClassVar[bool] = False

    config: RewardConfig

    def __init__(self, config: RewardConfig | None = None) -> None:
        cfg = config if config is not None else type(self).Config()
        if not isinstance(cfg, type(self).Config):
            raise TypeError(
                f"{type(self).__name__} takes a {type(self).Config.__name__}, got {type(cfg).__name__}"
            )
        self.config = cfg

    @abstractmethod
    def score(self, episodes: Sequence[Episode]) -> list[float]:
        """One score per episode, in order."""

    def shutdown(self) -> None:  # noqa: B027 -- a default that does nothing, not abstract
        """Release what the reward holds (nothing by default)."""


@REWARDS.register("env")
class EnvReward(Reward):
    """The environment's own reward (the default): episodes pass through unchanged."""

    passthrough = True

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        return [ep.env_reward for ep in episodes]


def build_reward(section: dict[str, Any]) -> Reward:
    """Build the reward named in the ``reward`` config section (a registry name or
    ``pkg.module:Class``); a class that is not a :class:`Reward` is refused by name."""
    from agentrl.config import ConfigError, make_dataclass_config

    name = section["name"]
    cls = REWARDS.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Reward)):
        raise ConfigError(
            f"reward={name} is {cls!r}, not a subclass of agentrl.rewards.Reward: a reward "
            "class subclasses it (a Config dataclass and score(episodes) -> list[float]); "
            "a plain function goes in reward=rule reward.fn=pkg.module:function"
        )
    return cls(make_dataclass_config(cls.Config, section, where=f"reward={name}"))


def apply_reward(reward: Reward, episodes: Sequence[Episode]) -> list[Episode]:
    """Relabel copies of ``episodes`` with ``reward``'s scores (inputs are not mutated)."""
    if reward.passthrough:
        return list(episodes)
    scores = reward.score(episodes)
    cfg = reward.config
    out = []
    for ep, s in zip(episodes, scores, strict=True):
        ep = copy.deepcopy(ep)
        if ep.turns:
            last = ep.turns[-1]
            last.reward = cfg.weight * s if cfg.mode == "replace" else last.reward + cfg.weight * s
        out.append(ep)
    return out
