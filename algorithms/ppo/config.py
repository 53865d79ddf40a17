"""Configuration of token-level PPO."""

from __future__ import annotations

from dataclasses import dataclass

VALUE_HEADS = ("policy", "separate", "none")
BASELINES = ("mean", "none")


@dataclass
class PPOConfig:
    """Token-level PPO with a learned value function and GAE over agent tokens
    (``docs/ppo.md`` has the formulas).

    Attributes:
        lr: Adam learning rate of the policy and of the value function.
        value_head: where ``V`` comes from. ``"policy"``: a linear head on the policy's final
            hidden state, sharing its body, read in the same forward pass as the log-probs
            (the cheapest); ``"separate"``: a critic of its own over the same tokens (a LoRA
            adapter of its own on the policy's frozen base for a LoRA policy, else a copy of
            the policy's transformer body, taken when RL starts) with a linear head;
            ``"none"``: no value function, the critic-free advantage of ``baseline`` on
            turn returns (the algorithm before the value head).
        gamma: discount across turns: applied where a turn ends and the next begins, not
            between the tokens of one reply.
        lam: GAE's lambda, applied at every agent-token step (value heads only).
        clip: PPO ratio clip epsilon.
        epochs: passes over the iteration's turns (PPO epochs). 1 by default, as verl and
            OpenRLHF (``ppo_epochs`` / ``max_epochs``) for LLMs: the clip still acts from
            the second minibatch on; each pass costs a forward and backward of every
            conversation (docs/ppo.md has 1 against 2).
        minibatch_size: turns per optimiser step (whole conversations).
        normalize_advantage: standardise advantages over the iteration's agent tokens (value
            heads) or turns (``value_head=none``: divided by their std).
        baseline: ``value_head=none`` only: ``"mean"`` (subtract the batch-mean return of the
            turns at the same turn index) or ``"none"``.
        vf_coef: weight of the value loss in the joint loss.
        vf_clip: clip range of the value update (PPO's clipped value loss); ``None`` off.
        kl_coef: weight of the per-token KL penalty to the reference (the base model with the
            LoRA adapter off; a frozen copy of the initial model for full fine-tuning),
            subtracted from the rewards; 0 disables it.
        kl_target: with a value, ``kl_coef`` is only the start: after every update it moves
            toward this KL per agent token (adaptive KL); ``None`` keeps it fixed.
        grad_clip: max global gradient norm (policy and value parameters together).
        entropy_coef: weight of an entropy bonus estimated from the sampled tokens
            (``-logp``); 0 disables it.
        stale_weight_cap: the truncation of decoupled PPO's importance weight
            ``pi_prox / mu`` on turns sampled by older weights (asynchronous collection,
            ``rollout.max_staleness``; docs/scaling.md); not tuned.
        vtrace: value heads only: on stale turns, compute the value targets and GAE with
            V-trace's truncated importance weights (Espeholt et al. 2018, IMPALA):
            ``min(1, pi_prox / mu)`` weighs each token's TD error in the value target and
            cuts the traces through it, so values fitted to the current policy are not
            regressed toward an older policy's returns (:func:`~.losses.gae`). Equal to plain
            GAE when every turn is fresh. Off by default: in docs/scaling.md's asynchronous PPO
            runs it did not reduce the loss of return (it was larger over 48 iterations).
    """

    lr: float = 1e-4
    value_head: str = "policy"
    gamma: float = 0.95
    lam: float = 0.95
    clip: float = 0.2
    epochs: int = 1
    minibatch_size: int = 64
    normalize_advantage: bool = True
    baseline: str = "mean"
    vf_coef: float = 0.5
    vf_clip: float | None = None
    kl_coef: float = 0.0
    kl_target: float | None = None
    grad_clip: float = 1.0
    entropy_coef: float = 0.0
    stale_weight_cap: float = 2.0
    vtrace: bool = False

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"ppo.lr must be > 0, got {self.lr}")
        if self.value_head not in VALUE_HEADS:
            raise ValueError(
                f"ppo.value_head must be one of {', '.join(VALUE_HEADS)}; got {self.value_head!r}"
            )
        if not 0 <= self.gamma <= 1 or not 0 <= self.lam <= 1:
            raise ValueError(f"ppo.gamma and ppo.lam must be in [0, 1], got {self.gamma}, {self.lam}")
        if not 0 < self.clip < 1:
            raise ValueError(f"ppo.clip must be in (0, 1), got {self.clip}")
        if self.epochs < 1 or self.minibatch_size < 1:
            raise ValueError(f"ppo.epochs and ppo.minibatch_size must be >= 1, got {self.epochs}, {self.minibatch_size}")
        if self.stale_weight_cap <= 0:
            raise ValueError(f"ppo.stale_weight_cap must be > 0, got {self.stale_weight_cap}")
        if self.vtrace and self.value_head == "none":
            raise ValueError(
                "ppo.vtrace corrects a value function's targets, and value_head=none has none: "
                "set algorithm.value_head=policy or separate, or algorithm.vtrace=false"
            )
        if self.baseline not in BASELINES:
            raise ValueError(f"ppo.baseline must be one of {', '.join(BASELINES)}; got {self.baseline!r}")
        if self.vf_coef < 0:
            raise ValueError(f"ppo.vf_coef must be >= 0, got {self.vf_coef}")
        if self.vf_clip is not None and self.vf_clip <= 0:
            raise ValueError(f"ppo.vf_clip must be > 0 or null (off), got {self.vf_clip}")
        if self.kl_coef < 0:
            raise ValueError(f"ppo.kl_coef must be >= 0, got {self.kl_coef}")
        if self.kl_target is not None and (self.kl_target <= 0 or self.kl_coef <= 0):
            raise ValueError(
                f"ppo.kl_target={self.kl_target} needs kl_target > 0 and a starting kl_coef > 0 "
                f"(got kl_coef={self.kl_coef}): the adaptive coefficient scales kl_coef"
            )
