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
from collections.abc import Sequence
from typing import Any

import torch

from agentrl.algorithm import AlgorithmBase
from agentrl.batch import build_turn_batch, segment_minibatches
from agentrl.optim import guarded_step
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode

from .config import PPOConfig
from .losses import clipped_policy_loss, turn_advantages


@ALGORITHMS.register("ppo")
class PPO(AlgorithmBase):
    """Token-level PPO on utterances (see the module docstring)."""

    Config = PPOConfig
    supports_extra_loss = True  # ``extra_loss_fn(policy)`` (set by the learner) joins every step

    def __init__(self, config: PPOConfig | None, policy: Any, seed: int = 0):
        self.config = config or PPOConfig()
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.num_updates = 0
        self.sampling_temperature = 1.0

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        start = time.perf_counter()
        batch = build_turn_batch(episodes, gamma=cfg.gamma)
        if len(batch) == 0:
            return {"ppo/turns": 0.0}
        adv = turn_advantages(batch.returns, batch.turn_index, cfg.baseline, cfg.normalize_advantage)
        old = batch.old_logprobs
        if self.sampling_temperature != 1.0:
            with torch.no_grad():
                _, old, _ = self.policy.span_logprobs(batch.segments, batch.spans())
        # The batch is built on the CPU; the loss meets the policy's log-probs on its device.
        adv, old = adv.to(self.policy.device), old.to(self.policy.device)
        params = list(self.policy.trainable_parameters())
        self.policy.model.train()
        stats: dict[str, list[float]] = {"loss": [], "clip_frac": [], "approx_kl": [], "grad_norm": []}
        n = len(batch)
        for _ in range(cfg.epochs):
            for idx in segment_minibatches(batch, cfg.minibatch_size, self.generator):
                mb = batch.select(idx)
                _, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
                loss, s = clipped_policy_loss(logp, old[idx, : logp.shape[1]], adv[idx], mask, cfg.clip)
                if cfg.entropy_coef:
                    loss = loss + cfg.entropy_coef * (logp * mask).sum() / mask.sum().clamp(min=1)
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
        self.policy.model.eval()
        self.num_updates += 1
        out = {f"ppo/{k}": sum(v) / max(len(v), 1) for k, v in stats.items()}
        out["ppo/turns"] = float(n)
        out["ppo/update_s"] = time.perf_counter() - start
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
