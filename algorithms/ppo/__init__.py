"""Token-level PPO (``algorithm=ppo``)."""

from .config import PPOConfig
from .learner import PPO

__all__ = ["PPO", "PPOConfig"]
