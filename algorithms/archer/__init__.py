"""ArCHer (``algorithm=archer``) and CHAI (``algorithm=chai``); importing registers both."""

from .chai import Chai, ChaiConfig
from .config import ArcherConfig
from .critic import DoubleCritic, TokenCache, build_critic
from .learner import Archer, CriticLearner
from .replay import ReplayBuffer, Transition, episode_transitions

__all__ = [
    "Archer",
    "ArcherConfig",
    "Chai",
    "ChaiConfig",
    "CriticLearner",
    "DoubleCritic",
    "ReplayBuffer",
    "TokenCache",
    "Transition",
    "build_critic",
    "episode_transitions",
]
