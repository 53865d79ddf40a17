"""Built-in algorithms (installed as ``agentrl.algorithms``); importing registers them."""

from agentrl.algorithms import archer, filtered_bc, ppo  # noqa: F401
from agentrl.algorithms import rltf  # noqa: F401
