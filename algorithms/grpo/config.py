"""Configuration of GRPO / RLOO."""

from __future__ import annotations

from dataclasses import dataclass

ADVANTAGES = ("grpo", "rloo", "turn")


@dataclass
class GRPOConfig:
    """GRPO for multi-turn agents: ``group_size`` episodes of the same task and env seed per
    group, advantages relative to the group.

    Attributes:
        lr: Adam learning rate of the policy.
        group_size: episodes per group (``G``); ``rollout.episodes_per_iter`` must be a
            multiple of it (the trainer plays each sampled task ``G`` times).
        advantage: ``"grpo"``: ``(R_i - mean_g R) / (std_g R + 1e-6)``, the episode's return
            against its group, on every agent token of the episode; ``"rloo"``: the
            leave-one-out baseline ``R_i - mean_{j != i} R_j``; ``"turn"``: each turn's own
            return-to-go against the mean return-to-go of the group's turns at the same turn
            index (a turn with no peer at its index gets 0).
        scale_by_std: divide by the group's standard deviation (``grpo`` and ``turn``; the
            "Dr. GRPO" correction turns it off).
        gamma: discount of the return-to-go (``turn``; episode returns are undiscounted).
        clip: PPO ratio clip epsilon.
        epochs: passes over the iteration's episodes.
        minibatch_size: turns per optimiser step (whole conversations, as PPO).
        kl_coef: weight of the KL penalty to the frozen reference policy (the base model
            with the LoRA adapter off; a frozen copy for full fine-tuning), estimated per
            token with ``exp(r) - r - 1``, ``r = log pi_ref - log pi``; 0 disables it.
        grad_clip: max global gradient norm.
        stale_weight_cap: the truncation of decoupled PPO's importance weight
            ``pi_prox / mu`` on turns sampled by older weights (asynchronous collection,
            ``rollout.max_staleness``; docs/scaling.md); not tuned.
    """

    lr: float = 1e-4
    group_size: int = 8
    advantage: str = "grpo"
    scale_by_std: bool = True
    gamma: float = 1.0
    clip: float = 0.2
    epochs: int = 1
    minibatch_size: int = 64
    kl_coef: float = 0.0
    grad_clip: float = 1.0
    stale_weight_cap: float = 2.0

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 (a group needs peers), got {self.group_size}")
        if self.advantage not in ADVANTAGES:
            raise ValueError(
                f"advantage must be one of {', '.join(ADVANTAGES)}; got {self.advantage!r}"
            )
        if not 0 < self.clip < 1:
            raise ValueError(f"clip must be in (0, 1), got {self.clip}")
        if self.stale_weight_cap <= 0:
            raise ValueError(f"stale_weight_cap must be > 0, got {self.stale_weight_cap}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}")
        if self.epochs < 1 or self.minibatch_size < 1:
            raise ValueError(
                f"epochs and minibatch_size must be >= 1, got {self.epochs}, {self.minibatch_size}"
            )
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")


@dataclass
class RLOOConfig(GRPOConfig):
    """:class:`GRPOConfig` with the leave-one-out advantage (``algorithm=rloo``)."""

    advantage: str = "rloo"
    scale_by_std: bool = False
