"""RLTF, reinforcement learning from task feedback (``algorithm=rltf``)."""

from .config import RLTFConfig
from .learner import RLTF

__all__ = ["RLTF", "RLTFConfig"]
