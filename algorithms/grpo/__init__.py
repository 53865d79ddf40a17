"""Group-relative policy optimisation for multi-turn agents: GRPO, RLOO and a turn-level
variant (``algorithm=grpo`` / ``algorithm=rloo``)."""

from .config import GRPOConfig, RLOOConfig
from .learner import GRPO, RLOO

__all__ = ["GRPO", "GRPOConfig", "RLOO", "RLOOConfig"]
