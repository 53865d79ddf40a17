"""An agentrl algorithm that lives outside the agentrl package.

Importing this package registers ``reinforce_ema`` in agentrl's algorithm registry, which
is what ``agentrl train imports=[my_algorithm]`` does before the config is validated
(docs/write_your_algorithm.md).
"""

from .reinforce import ReinforceEMA, ReinforceEMAConfig, reinforce_loss

__all__ = ["ReinforceEMA", "ReinforceEMAConfig", "reinforce_loss"]
