"""Reward functions and models (``reward=...``), installed as ``agentrl.rewards``.

A reward model implements ``score(episodes) -> list[float]`` (one score per episode). The
trainer calls :func:`apply_reward` between rollout and learner: ``env`` keeps the env's
rewards; any other reward replaces (or, with ``weight`` and ``mode=add``, adds to) the
final turn's reward, while ``Episode.env_reward`` always keeps the true env return so
reward hacking stays visible.
"""

from .base import EnvReward, RewardConfig, apply_reward, build_reward

__all__ = ["EnvReward", "RewardConfig", "apply_reward", "build_reward"]
