"""ArCHer (``archer``), offline ArCHer (``archer_offline``) and CHAI (``chai``).

Importing this package registers all three.
"""

from .chai import Chai, ChaiConfig
from .config import ArcherConfig, ArcherOfflineConfig
from .critic import DoubleCritic, TokenCache, build_critic
from .learner import Archer, ArcherOffline, CriticLearner, load_episodes
from .replay import ReplayBuffer, Transition, episode_transitions

__all__ = [
    "Archer",
    "ArcherConfig",
    "ArcherOffline",
    "ArcherOfflineConfig",
    "Chai",
    "ChaiConfig",
    "CriticLearner",
    "DoubleCritic",
    "ReplayBuffer",
    "TokenCache",
    "Transition",
    "build_critic",
    "episode_transitions",
    "load_episodes",
]
