"""Configuration of RLTF."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RLTFConfig:
    """RLTF: k candidate plans, epsilon-greedy choice, REINFORCE with a running-mean baseline.

    Attributes:
        lr: Adam learning rate of the policy.
        num_candidates: plans sampled per task when acting (the reference: 30 beams).
        choice: how the executed plan is picked among the candidates when not exploring:
            ``"best"`` (the most probable candidate, as the reference picks its top beam) or
            ``"first"`` (the first sample, i.e. plain on-policy sampling).
        epsilon: exploration rate at update 0: with probability epsilon the executed plan
            is a uniformly random candidate (the reference: 0.2).
        epsilon_decay: epsilon is multiplied by this after every update (the reference: 0.9).
        min_epsilon: floor of the decayed epsilon.
        baseline_momentum: ``b <- m * b + (1 - m) * mean(R)`` after each update; the first
            update initialises ``b`` to its batch mean before using it.
        gamma: discount across turns (plans are one turn in ToolChain).
        kl_coef: weight of a KL penalty to the initial policy (0 = off, no reference copy).
        normalize_advantage: divide ``R - b`` by the batch std of the rewards.
        minibatch_size: turns per forward/backward pass (gradients are accumulated: one
            optimiser step per update).
        grad_clip: max global gradient norm.
    """

    lr: float = 1e-3
    num_candidates: int = 8
    choice: str = "best"
    epsilon: float = 0.2
    epsilon_decay: float = 0.9
    min_epsilon: float = 0.0
    baseline_momentum: float = 0.9
    gamma: float = 1.0
    kl_coef: float = 0.0
    normalize_advantage: bool = False
    minibatch_size: int = 64
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"rltf.lr must be > 0, got {self.lr}")
        if isinstance(self.num_candidates, bool) or self.num_candidates < 1:
            raise ValueError(
                f"rltf.num_candidates must be an integer >= 1, got {self.num_candidates!r}"
            )
        if self.choice not in ("best", "first"):
            raise ValueError(f"rltf.choice must be one of best, first; got {self.choice!r}")
        for key in ("epsilon", "epsilon_decay", "min_epsilon", "baseline_momentum", "gamma"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rltf.{key} must be in [0, 1], got {value}")
        if self.kl_coef < 0 or self.minibatch_size < 1 or self.grad_clip <= 0:
            raise ValueError("rltf.kl_coef must be >= 0, minibatch_size >= 1 and grad_clip > 0")
