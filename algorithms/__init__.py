"""Built-in algorithms (installed as ``agentrl.algorithms``); importing registers them."""

from agentrl.algorithms import archer, filtered_bc, grpo, ppo, rltf  # noqa: F401
