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
from collections.abc import Sequence
from typing import Any

import torch

from agentrl.batch import TurnBatch
from agentrl.policy import Policy
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode

from ..ppo.learner import ClippedPolicyGradient
from .config import GRPOConfig, RLOOConfig
from .losses import episode_advantages, group_index, kl_penalty, turn_advantages


@ALGORITHMS.register("grpo")
class GRPO(ClippedPolicyGradient):
    """Group-relative policy optimisation (see the module docstring)."""

    Config = GRPOConfig
    stat_prefix = "grpo"
    config: GRPOConfig

    def __init__(self, config: GRPOConfig | None, policy: Policy, seed: int = 0):
        super().__init__(config, policy, seed)
        # the KL reference: the adapter switched off under LoRA, else a frozen copy
        self.reference: Policy | None = None
        if self.config.kl_coef > 0 and not policy.is_lora:
            self.reference = copy.deepcopy(policy)
            self.reference.model.requires_grad_(False)

    @classmethod
    def check_group(cls, config: Any, strategy: str) -> None:
        """FSDP shards the policy alone: the frozen reference copy of ``kl_coef > 0`` would
        be a second, unsharded model."""
        super().check_group(config, strategy)
        if strategy == "fsdp" and isinstance(config, GRPOConfig) and config.kl_coef > 0:
            raise ValueError(
                f"with fsdp the policy is the only sharded model, so kl_coef={config.kl_coef:g} "
                "(a frozen copy of it) must be 0: set algorithm.kl_coef=0, or "
                "cluster.learner_strategy=ddp"
            )

    @classmethod
    def episodes_per_task(cls, config: Any) -> int:
        """How many episodes the trainer plays of each sampled task: one group."""
        return int(config.group_size)

    def advantages(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``[N]`` advantages of the rows of ``batch = build_turn_batch(episodes, gamma)``,
        and stats."""
        cfg = self.config
        groups = group_index(episodes)
        sizes = torch.bincount(groups).float()
        if float(sizes.mean()) < 2:
            raise ValueError(
                "grpo: every group holds one episode; groups are episodes of the same task and "
                f"env seed (the trainer plays each task group_size={cfg.group_size} times)"
            )
        if cfg.advantage == "turn":
            adv = turn_advantages(batch.returns, groups[batch.episode_index], batch.turn_index, cfg.scale_by_std)
        else:
            returns = torch.tensor([e.total_reward for e in episodes], dtype=torch.float32)
            adv = episode_advantages(returns, groups, cfg.advantage, cfg.scale_by_std)[batch.episode_index]
        stats = {
            "groups": float(len(sizes)),
            "group_size": float(sizes.mean()),
            "zero_adv_frac": float((adv.abs() < 1e-8).float().mean()) if len(adv) else 0.0,
        }
        return adv, stats

    def extra_terms(
        self, logp: torch.Tensor, mb: TurnBatch, mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """The KL penalty to the reference, ``kl_coef * KL`` (none when ``kl_coef`` is 0)."""
        if self.config.kl_coef <= 0:
            return None, {}
        if self.reference is not None:
            with torch.no_grad():
                ref = self.reference.span_logprobs(mb.segments, mb.spans())[1]
        else:
            ref = self.policy.reference_logprobs(mb.segments, mb.spans())
        kl = kl_penalty(logp, ref.to(logp.device), mask.float())
        return self.config.kl_coef * kl, {"kl_ref": float(kl)}


@ALGORITHMS.register("rloo")
class RLOO(GRPO):
    """GRPO with the leave-one-out baseline (:class:`RLOOConfig`)."""

    Config = RLOOConfig
