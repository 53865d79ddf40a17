"""``reward=combined``: a weighted sum of several rewards.

Each term is a reward section of its own (``{name: ..., weight: ..., <its keys>}``); the
episode's score is ``sum_i weight_i * score_i`` and is applied with the outer ``mode``. The
``env`` term scores the true env return. Example (``configs/reward/combined.yaml``)::

    name: combined
    mode: replace
    terms:
      - {name: env, weight: 1.0}
      - {name: rule, fn: turn_penalty, weight: 0.05}

For the common "env reward plus a weighted shaping term" a single reward with
``mode=add`` is enough: ``reward=rule reward.fn=turn_penalty reward.mode=add reward.weight=0.05``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrl.registry import REWARDS
from agentrl.types import Episode

from .base import Reward, RewardConfig, build_reward


@dataclass
class CombinedConfig(RewardConfig):
    terms: list[dict[str, Any]] = field(default_factory=lambda: [{"name": "env", "weight": 1.0}])


@REWARDS.register("combined")
class CombinedReward(Reward):
    """``score = sum_i weight_i * term_i.score``; each term's own ``mode`` is ignored."""

    Config = CombinedConfig
    config: CombinedConfig

    def __init__(self, config: RewardConfig | None = None):
        super().__init__(config)
        if not self.config.terms:
            raise ValueError("reward=combined needs at least one term in reward.terms")
        self.terms: list[tuple[float, Reward]] = []
        for i, term in enumerate(self.config.terms):
            term = dict(term)
            if "name" not in term:
                raise ValueError(f"reward.terms[{i}] needs a 'name' (a reward name); got {term}")
            weight = float(term.pop("weight", 1.0))
            if term["name"] == "combined":
                raise ValueError("reward.terms cannot nest 'combined'")
            self.terms.append((weight, build_reward(term)))

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        total = [0.0] * len(episodes)
        for weight, reward in self.terms:
            for j, s in enumerate(reward.score(episodes)):
                total[j] += weight * float(s)
        return total
