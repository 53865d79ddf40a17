"""REINFORCE with a moving-average baseline over conversation tokens (``reinforce_ema``).

Every agent token of turn ``t`` gets the advantage ``A_t = G_t - b``, where
``G_t = sum_k gamma^k r_{t+k}`` is the turn's reward-to-go and ``b`` an exponential moving
average of the reward-to-go of all turns seen in earlier updates (0 before the first).
The loss is the per-token mean

    L = -(1 / #agent tokens) * sum_{turns t} sum_{tokens j of t} A_t * log pi(a_j | context)

and one update is one Adam step on all of the iteration's episodes (gradients accumulated
over minibatches of whole conversations, each scored in one forward pass). Env tokens are
context only: they get no gradient. After the step, ``b <- m * b + (1 - m) * mean_t G_t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentrl.algorithm import AlgorithmBase
from agentrl.batch import build_turn_batch, segment_minibatches
from agentrl.optim import guarded_step
from agentrl.policy import Policy
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode


@dataclass
class ReinforceEMAConfig:
    """The ``algorithm`` config section of ``reinforce_ema``.

    Attributes:
        lr: Adam learning rate of the policy.
        gamma: discount of the reward-to-go across turns, in (0, 1].
        baseline_momentum: ``m`` of the moving-average baseline, in [0, 1); 0 makes the
            baseline the previous update's mean reward-to-go.
        minibatch_size: turns per forward pass (whole conversations); bounds memory only,
            the update is still one optimiser step.
        grad_clip: max global gradient norm (0 disables clipping).
    """

    lr: float = 1e-4
    gamma: float = 1.0
    baseline_momentum: float = 0.9
    minibatch_size: int = 64
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        if not 0 <= self.baseline_momentum < 1:
            raise ValueError(f"baseline_momentum must be in [0, 1), got {self.baseline_momentum!r}")
        if self.minibatch_size < 1:
            raise ValueError(f"minibatch_size must be >= 1, got {self.minibatch_size!r}")
        if self.grad_clip < 0:
            raise ValueError(f"grad_clip must be >= 0 (0 = no clipping), got {self.grad_clip!r}")


def reinforce_loss(
    token_logprobs: torch.Tensor, mask: torch.Tensor, advantages: torch.Tensor, num_tokens: float
) -> torch.Tensor:
    """``-sum_{i,j} A_i * logp_{i,j} * mask_{i,j} / num_tokens``.

    Args:
        token_logprobs: ``[N, L]`` per-token log-probs of ``N`` turns (differentiable).
        mask: ``[N, L]`` 1.0 on the turns' agent tokens, 0.0 on padding.
        advantages: ``[N]`` one advantage per turn (no gradient flows into it).
        num_tokens: the normaliser: agent tokens of the whole update, so that summing the
            losses of the minibatches gives the per-token mean over the update.
    """
    weighted = advantages.detach().unsqueeze(-1) * token_logprobs * mask
    return -weighted.sum() / max(num_tokens, 1.0)


@ALGORITHMS.register("reinforce_ema")
class ReinforceEMA(AlgorithmBase):
    """REINFORCE with a moving-average baseline (see the module docstring).

    Args:
        config: the validated ``algorithm`` section (defaults when ``None``).
        policy: the policy to train in place.
        seed: seeds the minibatch order.
    """

    Config = ReinforceEMAConfig
    config: ReinforceEMAConfig

    def __init__(self, config: ReinforceEMAConfig | None, policy: Policy, seed: int = 0):
        self.config = config if config is not None else ReinforceEMAConfig()
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.baseline = 0.0
        self.num_updates = 0

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        """One Adam step on ``episodes``; returns ``reinforce_ema/*`` stats."""
        cfg = self.config
        batch = build_turn_batch(episodes, gamma=cfg.gamma)
        if len(batch) == 0:
            return {"reinforce_ema/turns": 0.0}
        baseline = self.baseline
        advantages = (batch.returns - baseline).to(self.policy.device)
        num_tokens = float(batch.action_mask.sum())
        params = list(self.policy.trainable_parameters())
        self.optimizer.zero_grad(set_to_none=True)
        self.policy.model.train()
        loss_sum = 0.0
        for rows in segment_minibatches(batch, cfg.minibatch_size, self.generator):
            mb = batch.select(rows)
            _, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
            loss = reinforce_loss(logp, mask.float(), advantages[rows.to(advantages.device)], num_tokens)
            loss.backward()
            loss_sum += loss.item()
        self.policy.model.eval()
        grad_norm, stepped = guarded_step(self.optimizer, params, cfg.grad_clip)
        mean_return = float(batch.returns.mean())
        m = cfg.baseline_momentum
        self.baseline = m * baseline + (1.0 - m) * mean_return
        self.num_updates += 1
        return {
            "reinforce_ema/loss": loss_sum,
            "reinforce_ema/baseline": baseline,
            "reinforce_ema/mean_return_to_go": mean_return,
            "reinforce_ema/grad_norm": grad_norm,
            "reinforce_ema/stepped": float(stepped),
            "reinforce_ema/turns": float(len(batch)),
        }

    def state_dict(self) -> dict[str, Any]:
        """Optimiser, minibatch generator, baseline and counter (tensors and numbers only)."""
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "baseline": self.baseline,
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = float(state["baseline"])
        self.num_updates = int(state["num_updates"])
