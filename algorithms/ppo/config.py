"""Configuration of token-level PPO."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PPOConfig:
    """Token-level PPO with a per-utterance reward-to-go advantage.

    Attributes:
        lr: Adam learning rate of the policy.
        gamma: discount across turns for the reward-to-go.
        clip: PPO ratio clip epsilon.
        epochs: passes over the iteration's turns. 1 by default, as verl and OpenRLHF
            (``ppo_epochs`` / ``max_epochs``) and TRL's GRPO (``num_iterations``) do for LLMs:
            the clip still acts from the second minibatch on; more passes cost proportionally
            more update time (docs/benchmarks.md).
        minibatch_size: turns per optimiser step.
        normalize_advantage: standardise advantages over the iteration's turns.
        baseline: ``"mean"`` (subtract the batch mean of the returns at the same turn
            index) or ``"none"``.
        grad_clip: max global gradient norm.
        entropy_coef: weight of an entropy bonus estimated from the sampled tokens
            (``-logp``); 0 disables it.
    """

    lr: float = 1e-4
    gamma: float = 0.95
    clip: float = 0.2
    epochs: int = 1
    minibatch_size: int = 64
    normalize_advantage: bool = True
    baseline: str = "mean"
    grad_clip: float = 1.0
    entropy_coef: float = 0.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"ppo.lr must be > 0, got {self.lr}")
        if not 0 < self.clip < 1:
            raise ValueError(f"ppo.clip must be in (0, 1), got {self.clip}")
        if self.epochs < 1 or self.minibatch_size < 1:
            raise ValueError(f"ppo.epochs and ppo.minibatch_size must be >= 1, got {self.epochs}, {self.minibatch_size}")
        if self.baseline not in ("mean", "none"):
            raise ValueError(f"ppo.baseline must be one of mean, none; got {self.baseline!r}")
