"""ARMAP: automatic reward-model learning and reward-guided planning (Chen et al., ICLR 2025).

Stages (each a function here and an ``agentrl`` command, each resumable, writing JSONL):

1. :func:`collect` (``agentrl reward collect``): exploration trajectories.
2. :func:`synthesize` (``agentrl reward synthesize``): (intent, positive, negative) triplets.
3. :func:`train_reward_model` (``agentrl reward train``): a Bradley-Terry reward model.
4. :mod:`.planners` (``agentrl plan``): Best-of-N, Reflexion-style retry, MCTS.
"""

from .collect import CollectConfig, collect
from .synthesize import SynthesizeConfig, parse_llm_output, synthesize
from .train import TrainRMConfig, train_reward_model

__all__ = [
    "CollectConfig",
    "SynthesizeConfig",
    "TrainRMConfig",
    "collect",
    "parse_llm_output",
    "synthesize",
    "train_reward_model",
]
