"""``reward=learned_rm reward.path=PATH``: a trained reward model scores each episode.

The episode becomes ``(intent, response)`` through the env's ARMAP hooks
(:mod:`agentrl.rewards.trajectory`), the reward model scores it, and the score (through
``transform``: ``sigmoid`` -> (0, 1), or ``raw``) replaces or adds to the final turn's
reward. ``Episode.env_reward`` keeps the true env return, and the trainer logs both
(``train/return`` vs ``train/relabelled_return``), so reward hacking shows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrl.registry import REWARDS
from agentrl.types import Episode

from .base import RewardConfig
from .model import RewardModelError, RewardModelScorer
from .trajectory import intent_and_response


@dataclass
class LearnedRMConfig(RewardConfig):
    path: str | None = None
    """A checkpoint root (its ``latest`` version) or one version folder."""
    transform: str = "sigmoid"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """The kwargs of the env whose hooks write the (intent, response) texts: they must give
    the response form the model was trained on (Game of 24's ``hide_results``; ``agentrl
    plan`` passes its own ``env_kwargs``), and envs without ARMAP hooks replay episodes with them."""
    batch_size: int = 32
    max_length: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.transform not in ("sigmoid", "raw"):
            raise ValueError(
                f"reward.transform must be one of sigmoid, raw; got {self.transform!r}"
            )


@REWARDS.register("learned_rm")
class LearnedRewardModel:
    """Scores episodes with a checkpoint written by ``agentrl reward train``."""

    Config = LearnedRMConfig

    def __init__(self, config: LearnedRMConfig | None = None, **_: Any):
        self.config = config or LearnedRMConfig()
        if not self.config.path:
            raise RewardModelError(
                "reward=learned_rm needs reward.path=PATH (a folder written by `agentrl reward train`)"
            )
        self.scorer = RewardModelScorer(
            self.config.path, self.config.batch_size, self.config.max_length
        )

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        pairs = [intent_and_response(ep, env_kwargs=self.config.env_kwargs) for ep in episodes]
        raw = self.scorer.score([i for i, _ in pairs], [r for _, r in pairs])
        if self.config.transform == "raw":
            return raw
        return [1.0 / (1.0 + math.exp(-x)) for x in raw]
