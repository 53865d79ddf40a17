"""Reward functions and models (``reward=...``), installed as ``agentrl.rewards``.

A reward subclasses :class:`Reward` and implements ``score(episodes) -> list[float]`` (one
score per episode). The
trainer calls :func:`apply_reward` between rollout and learner: ``env`` keeps the env's
rewards; any other reward replaces (or, with ``weight`` and ``mode=add``, adds to) the
final turn's reward, while ``Episode.env_reward`` always keeps the true env return so
reward hacking stays visible.

Registered rewards (``reward=NAME``): ``env``, ``rule`` (batched reward functions,
:mod:`.functions`), ``learned_rm`` (:mod:`.learned`), ``llm_judge`` (:mod:`.judge`),
``combined`` (:mod:`.combined`). The ARMAP pipeline that trains reward models and plans with
them is :mod:`agentrl.rewards.armap`.
"""

from .base import EnvReward, Reward, RewardConfig, apply_reward, build_reward
from .combined import CombinedReward
from .functions import RULES, RuleReward, register_rule
from .judge import LLMJudge
from .learned import LearnedRewardModel
from .model import RewardModelError, RewardModelScorer

__all__ = [
    "RULES",
    "CombinedReward",
    "EnvReward",
    "LLMJudge",
    "LearnedRewardModel",
    "Reward",
    "RewardConfig",
    "RewardModelError",
    "RewardModelScorer",
    "RuleReward",
    "apply_reward",
    "build_reward",
    "register_rule",
]
