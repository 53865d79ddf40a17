"""agentrl: reinforcement learning for multi-turn LLM agents.

Ray actors collect multi-turn trajectories from Gymnasium text environments; learners train
the policy with ArCHer, PPO, filtered BC and friends; everything is configured with Hydra
and swappable by registry name.
"""

__version__ = "0.1.0"
