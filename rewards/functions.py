"""Rule-based reward functions (``reward=rule reward.fn=NAME``).

A reward function is batched: it takes the episodes of one iteration and returns one
float per episode, in order::

    def my_reward(episodes: Sequence[Episode], **kwargs) -> Sequence[float]: ...

``reward.fn`` names a built-in below or a user function by dotted path
(``reward.fn=my_pkg.rewards:my_reward``, with ``imports=[my_pkg.rewards]`` or the package on
``sys.path``); ``reward.kwargs`` are passed as keyword arguments. Register your own name
with ``@register_rule("name")``. Built-ins:

- ``success``: 1.0 for a successful episode, else 0.0.
- ``turn_penalty``: minus the number of turns (shorter is better).
- ``invalid_action_penalty``: minus the number of turns whose ``info["invalid_action"]`` is set.
- ``action_length_penalty``: minus the mean action length in characters, over ``scale`` (100).

The score replaces the final turn's reward (``reward.mode=replace``) or is added to the env
reward (``reward.mode=add``, ``reward.weight=0.05``: env reward plus a weighted shaping term).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentrl.registry import REWARDS, Registry
from agentrl.types import Episode

from .base import Reward, RewardConfig

RewardFn = Callable[..., Sequence[float]]
RULES: Registry[RewardFn] = Registry("reward function")


def register_rule(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: make a batched reward function available as ``reward.fn=name``."""
    return RULES.register(name)  # type: ignore[no-any-return]


@register_rule("success")
def success(episodes: Sequence[Episode]) -> list[float]:
    return [1.0 if ep.success else 0.0 for ep in episodes]


@register_rule("turn_penalty")
def turn_penalty(episodes: Sequence[Episode]) -> list[float]:
    return [-float(ep.num_turns) for ep in episodes]


@register_rule("invalid_action_penalty")
def invalid_action_penalty(episodes: Sequence[Episode]) -> list[float]:
    return [-float(sum(bool(t.info.get("invalid_action")) for t in ep.turns)) for ep in episodes]


@register_rule("action_length_penalty")
def action_length_penalty(episodes: Sequence[Episode], scale: float = 100.0) -> list[float]:
    return [
        -(sum(len(t.action) for t in ep.turns) / max(ep.num_turns, 1)) / scale for ep in episodes
    ]


@dataclass
class RuleRewardConfig(RewardConfig):
    """``fn``: a built-in rule name or ``pkg.module:function``; ``kwargs`` go to it."""

    fn: str = "success"
    kwargs: dict[str, Any] = field(default_factory=dict)


@REWARDS.register("rule")
class RuleReward(Reward):
    """A batched rule-based reward function, chosen by name or dotted path."""

    Config = RuleRewardConfig
    config: RuleRewardConfig

    def __init__(self, config: RewardConfig | None = None):
        super().__init__(config)
        self.fn = RULES.get(self.config.fn)
        if not callable(self.fn):
            raise TypeError(f"reward.fn={self.config.fn!r} is not callable")

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        scores = [float(s) for s in self.fn(list(episodes), **self.config.kwargs)]
        if len(scores) != len(episodes):
            raise ValueError(
                f"reward function {self.config.fn!r} returned {len(scores)} scores for "
                f"{len(episodes)} episodes (it must return one per episode)"
            )
        return scores
