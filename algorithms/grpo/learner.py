"""GRPO and RLOO for multi-turn agents (``algorithm=grpo``, ``algorithm=rloo``).

The trainer plays every sampled task ``group_size`` times with the same env seed (the
algorithm's :meth:`~GRPO.episodes_per_task`), so the episodes of a group differ only by the
policy's sampling. Each episode's return is compared with its group's
(:func:`~.losses.episode_advantages`; per turn with ``advantage=turn``,
:func:`~.losses.turn_advantages`), and every agent token of the episode gets that advantage
in PPO's clipped surrogate (:func:`agentrl.algorithms.ppo.losses.clipped_policy_loss`; env
tokens are masked), optionally with a KL penalty to the frozen reference. Whole
conversations are scored in one forward pass (:meth:`~agentrl.policy.Policy.span_logprobs`).
No value function: the group is the baseline.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch

from agentrl.algorithm import AlgorithmBase
from agentrl.batch import TurnBatch, build_turn_batch, segment_minibatches
from agentrl.optim import guarded_step
from agentrl.policy import Policy
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode

from ..ppo.losses import clipped_policy_loss
from .config import GRPOConfig, RLOOConfig
from .losses import episode_advantages, group_index, kl_penalty, turn_advantages


@ALGORITHMS.register("grpo")
class GRPO(AlgorithmBase):
    """Group-relative policy optimisation (see the module docstring)."""

    Config: ClassVar[type[GRPOConfig]] = GRPOConfig  # type: ignore[misc]
    supports_extra_loss: ClassVar[bool] = True
    extra_loss_fn: Callable[[Policy], torch.Tensor | None] | None = None

    def __init__(self, config: GRPOConfig | None, policy: Policy, seed: int = 0):
        self.config = config or self.Config()
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.num_updates = 0
        self.sampling_temperature = 1.0
        # the KL reference: the adapter switched off under LoRA, else a frozen copy
        self.reference: Policy | None = None
        if self.config.kl_coef > 0 and not policy.is_lora:
            self.reference = copy.deepcopy(policy)
            self.reference.model.requires_grad_(False)

    @classmethod
    def episodes_per_task(cls, config: Any) -> int:
        """How many episodes the trainer plays of each sampled task: one group."""
        return config.group_size

    def advantages(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``[N]`` advantages of the rows of ``batch = build_turn_batch(episodes, gamma)``,
        and stats."""
        cfg = self.config
        groups = group_index(episodes)
        sizes = torch.bincount(groups).float()
        if cfg.advantage == "turn":
            adv = turn_advantages(batch.returns, groups[batch.episode_index], batch.turn_index, cfg.scale_by_std)
        else:
            returns = torch.tensor([e.total_reward for e in episodes], dtype=torch.float32)
            adv = episode_advantages(returns, groups, cfg.advantage, cfg.scale_by_std)[batch.episode_index]
        stats = {
            "groups": float(len(sizes)),
            "group_size": float(sizes.mean()) if len(sizes) else 0.0,
            "zero_adv_frac": float((adv.abs() < 1e-8).float().mean()) if len(adv) else 0.0,
        }
        return adv, stats

    def _reference_logprobs(self, segments: list[list[int]], spans: list[tuple[int, int, int]]) -> torch.Tensor:
        if self.reference is not None:
            with torch.no_grad():
                return self.reference.span_logprobs(segments, spans)[1]
        return self.policy.reference_logprobs(segments, spans)

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        start = time.perf_counter()
        batch = build_turn_batch(episodes, gamma=cfg.gamma)
        if len(batch) == 0:
            return {"grpo/turns": 0.0}
        adv, adv_stats = self.advantages(episodes, batch)
        if adv_stats["group_size"] < 2:
            raise ValueError(
                "grpo: every group holds one episode; groups are episodes of the same task and "
                f"env seed (the trainer plays each task group_size={cfg.group_size} times)"
            )
        old = batch.old_logprobs
        if self.sampling_temperature != 1.0:
            with torch.no_grad():
                _, old, _ = self.policy.span_logprobs(batch.segments, batch.spans())
        adv, old = adv.to(self.policy.device), old.to(self.policy.device)
        params = list(self.policy.trainable_parameters())
        self.policy.model.train()
        stats: dict[str, list[float]] = {"loss": [], "clip_frac": [], "approx_kl": [], "kl_ref": [], "grad_norm": []}
        for _ in range(cfg.epochs):
            for idx in segment_minibatches(batch, cfg.minibatch_size, self.generator):
                mb = batch.select(idx)
                _, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
                loss, s = clipped_policy_loss(logp, old[idx, : logp.shape[1]], adv[idx], mask, cfg.clip)
                kl = torch.zeros(())
                if cfg.kl_coef > 0:
                    ref = self._reference_logprobs(mb.segments, mb.spans()).to(logp.device)
                    kl = kl_penalty(logp, ref, mask.float())
                    loss = loss + cfg.kl_coef * kl
                extra = self.extra_loss_fn(self.policy) if self.extra_loss_fn is not None else None
                if extra is not None:
                    loss = loss + extra
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grad_norm, _ = guarded_step(self.optimizer, params, cfg.grad_clip)
                stats["loss"].append(loss.item())
                stats["clip_frac"].append(s["clip_frac"])
                stats["approx_kl"].append(s["approx_kl"])
                stats["kl_ref"].append(float(kl))
                stats["grad_norm"].append(float(grad_norm))
        self.policy.model.eval()
        self.num_updates += 1
        out = {f"grpo/{k}": sum(v) / max(len(v), 1) for k, v in stats.items()}
        out.update({f"grpo/{k}": v for k, v in adv_stats.items()})
        out["grpo/turns"] = float(len(batch))
        out["grpo/update_s"] = time.perf_counter() - start
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


@ALGORITHMS.register("rloo")
class RLOO(GRPO):
    """GRPO with the leave-one-out baseline (:class:`RLOOConfig`)."""

    Config: ClassVar[type[GRPOConfig]] = RLOOConfig  # type: ignore[misc]
