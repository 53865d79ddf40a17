"""``reward=learned_rm reward.path=PATH``: a trained reward model scores each episode.

The episode becomes ``(intent, response)`` through the env's ARMAP hooks
(:mod:`agentrl.rewards.trajectory`), the reward model scores it, and the score (through
``transform``: ``sigmoid`` -> (0, 1), or ``raw``) replaces or adds to the final turn's
reward. ``Episode.env_reward`` keeps the true env return, and the trainer logs both
(``train/return`` vs ``train/relabelled_return``), so reward hacking shows.

The texts are written in the response format the checkpoint records
(:class:`~agentrl.rewards.model.ResponseFormat`: the hooks of its env made with its env
kwargs). ``reward.env_kwargs`` may restate the recorded kwargs but not contradict them, and
episodes of another env than the recorded one are refused: a model trained on Game of 24's
plans (``hide_results``) would otherwise silently score full responses it never saw. A
checkpoint saved without a record reads as the default kwargs ``{}``, or as
``reward.env_kwargs`` when set (there is nothing to check them against).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentrl.registry import REWARDS
from agentrl.types import Episode

from .base import Reward, RewardConfig
from .model import ResponseFormat, RewardModelError, RewardModelScorer
from .trajectory import intent_and_response


@dataclass
class LearnedRMConfig(RewardConfig):
    path: str | None = None
    """A checkpoint root (its ``latest`` version) or one version folder."""
    transform: str = "sigmoid"
    env_kwargs: dict[str, Any] | None = None
    """The kwargs of the env whose hooks write the (intent, response) texts (envs without
    ARMAP hooks also replay episodes with them). ``None``: the kwargs the checkpoint records;
    a value that differs from the record is a :class:`RewardModelError`."""
    batch_size: int = 32
    max_length: int = 512

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.transform not in ("sigmoid", "raw"):
            raise ValueError(
                f"reward.transform must be one of sigmoid, raw; got {self.transform!r}"
            )


def format_kwargs(
    recorded: ResponseFormat | None, asked: dict[str, Any] | None, path: str
) -> dict[str, Any]:
    """The env kwargs that write the texts a checkpoint at ``path`` scores: the ``recorded``
    ones (``asked``, if given, must equal them), or for a checkpoint without a record
    ``asked`` or ``{}``. A contradiction is a :class:`RewardModelError` naming both formats."""
    if recorded is None:
        return dict(asked or {})
    if asked is not None and asked != recorded.env_kwargs:
        asked_fmt = ResponseFormat(recorded.env, dict(asked))
        raise RewardModelError(
            f"reward=learned_rm: reward.env_kwargs asks for responses in the format "
            f"{asked_fmt.describe()}, but the reward model {path!r} was trained on "
            f"{recorded.describe()}; leave reward.env_kwargs unset to score in the trained "
            "format, or train a reward model on triplets in the format you want"
        )
    return dict(recorded.env_kwargs)


@REWARDS.register("learned_rm")
class LearnedRewardModel(Reward):
    """Scores episodes with a checkpoint written by ``agentrl reward train``."""

    Config = LearnedRMConfig
    config: LearnedRMConfig

    def __init__(self, config: RewardConfig | None = None):
        super().__init__(config)
        if not self.config.path:
            raise RewardModelError(
                "reward=learned_rm needs reward.path=PATH (a folder written by `agentrl reward train`)"
            )
        self.scorer = RewardModelScorer(
            self.config.path, self.config.batch_size, self.config.max_length
        )
        self.recorded = self.scorer.response_format
        self.env_kwargs = format_kwargs(self.recorded, self.config.env_kwargs, self.config.path)

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        if self.recorded is not None:
            for ep in episodes:
                if ep.env_id != self.recorded.env:
                    raise RewardModelError(
                        f"reward=learned_rm: the reward model {self.config.path!r} was trained on "
                        f"{self.recorded.describe()}, but is asked to score an episode of "
                        f"{ep.env_id!r}"
                    )
        pairs = [intent_and_response(ep, env_kwargs=self.env_kwargs) for ep in episodes]
        raw = self.scorer.score([i for i, _ in pairs], [r for _, r in pairs])
        if self.config.transform == "raw":
            return raw
        return [1.0 / (1.0 + math.exp(-x)) for x in raw]
