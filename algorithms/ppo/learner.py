"""Token-level PPO for multi-turn agents (the on-policy baseline of the ArCHer paper).

Each utterance is a sequence of tokens; every token of utterance ``t`` gets the advantage
``A_t = G_t - b(t)``, where ``G_t = sum_k gamma^k r_{t+k}`` is the reward-to-go across turns
and ``b(t)`` the batch-mean return of turns at the same position (a critic-free baseline,
as in RLOO/GRPO; the paper's baseline used a learned token-level value head). The loss is
PPO's clipped surrogate on the per-token ratio ``pi(a_t|s)/pi_old(a_t|s)`` where the old
log-probs are those captured while sampling (no re-scoring pass). Minibatches are whole
conversations (:func:`~agentrl.batch.segment_minibatches`), each scored in one forward pass
(:meth:`~agentrl.policy.Policy.span_logprobs`). Sampling at a
temperature other than 1 makes those differ from the policy's log-probs: the learner then
re-scores once before the first epoch.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import torch

from agentrl.algorithm import AlgorithmBase
from agentrl.batch import TurnBatch, build_turn_batch, segment_minibatches
from agentrl.optim import guarded_step
from agentrl.policy import Policy
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode

from .config import PPOConfig
from .losses import clipped_policy_loss, turn_advantages


class ClippedConfig(Protocol):
    """The config fields the clipped-surrogate loop reads (PPO's and GRPO's configs)."""

    lr: float
    gamma: float
    clip: float
    epochs: int
    minibatch_size: int
    grad_clip: float


class ClippedPolicyGradient(AlgorithmBase):
    """PPO's clipped surrogate on whole conversations; subclasses say what the advantage of
    each turn is (:meth:`advantages`) and may add loss terms (:meth:`extra_terms`).

    Every agent token of a turn gets the turn's advantage; the ratio is against the
    sampling log-probs captured in the rollout (re-scored once when the rollout sampled at
    another temperature); ``epochs`` passes in minibatches of whole conversations, each
    scored in one forward pass; a lifelong ``extra_loss_fn`` joins every step.
    """

    supports_extra_loss = True
    stat_prefix: ClassVar[str] = ""
    config: ClippedConfig

    def __init__(self, config: Any, policy: Policy, seed: int = 0):
        self.config = config if config is not None else self.Config()  # type: ignore[misc]
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.num_updates = 0
        self.sampling_temperature = 1.0

    @abstractmethod
    def advantages(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``[N]`` one advantage per row of ``batch`` (``build_turn_batch(episodes, gamma)``)
        and stats to log."""

    def extra_terms(
        self, logp: torch.Tensor, mb: TurnBatch, mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """A loss term added to the surrogate of minibatch ``mb`` (``logp``/``mask``: its
        per-token log-probs and agent-token mask), and stats; none by default."""
        return None, {}

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        prefix = self.stat_prefix
        start = time.perf_counter()
        batch = build_turn_batch(episodes, gamma=cfg.gamma)
        if len(batch) == 0:
            return {f"{prefix}/turns": 0.0}
        adv, adv_stats = self.advantages(episodes, batch)
        old = batch.old_logprobs
        if self.sampling_temperature != 1.0:
            with torch.no_grad():
                _, old, _ = self.policy.span_logprobs(batch.segments, batch.spans())
        # The batch is built on the CPU; the loss meets the policy's log-probs on its device.
        adv, old = adv.to(self.policy.device), old.to(self.policy.device)
        params = list(self.policy.trainable_parameters())
        self.policy.model.train()
        stats: dict[str, list[float]] = {"loss": [], "clip_frac": [], "approx_kl": [], "grad_norm": []}
        for _ in range(cfg.epochs):
            for idx in segment_minibatches(batch, cfg.minibatch_size, self.generator):
                mb = batch.select(idx)
                _, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
                loss, s = clipped_policy_loss(logp, old[idx, : logp.shape[1]], adv[idx], mask, cfg.clip)
                term, term_stats = self.extra_terms(logp, mb, mask)
                if term is not None:
                    loss = loss + term
                extra = self.extra_loss_fn(self.policy) if self.extra_loss_fn is not None else None
                if extra is not None:  # a lifelong regulariser, e.g. EWC
                    loss = loss + extra
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm, _ = guarded_step(self.optimizer, params, cfg.grad_clip)
                stats["loss"].append(loss.item())
                stats["clip_frac"].append(s["clip_frac"])
                stats["approx_kl"].append(s["approx_kl"])
                stats["grad_norm"].append(float(grad_norm))
                for k, v in term_stats.items():
                    stats.setdefault(k, []).append(v)
        self.policy.model.eval()
        self.num_updates += 1
        out = {f"{prefix}/{k}": sum(v) / max(len(v), 1) for k, v in stats.items()}
        out.update({f"{prefix}/{k}": v for k, v in adv_stats.items()})
        out[f"{prefix}/turns"] = float(len(batch))
        out[f"{prefix}/update_s"] = time.perf_counter() - start
        return out

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.num_updates = int(state["num_updates"])


@ALGORITHMS.register("ppo")
class PPO(ClippedPolicyGradient):
    """Token-level PPO on utterances (see the module docstring)."""

    Config = PPOConfig
    stat_prefix = "ppo"
    config: PPOConfig

    def advantages(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.config
        return turn_advantages(batch.returns, batch.turn_index, cfg.baseline, cfg.normalize_advantage), {}

    def extra_terms(
        self, logp: torch.Tensor, mb: TurnBatch, mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        if not self.config.entropy_coef:
            return None, {}
        return self.config.entropy_coef * (logp * mask).sum() / mask.sum().clamp(min=1), {}
