"""Online filtered behaviour cloning (a baseline of the ArCHer paper).

Keep every trajectory collected so far (up to ``max_pool``); each iteration, select the top
``top_fraction`` by return and minimise the negative log-likelihood of their utterances,
``-mean_tokens log pi(a_t | s, a_<t)``. Ties at the threshold are all kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import torch

from agentrl.algorithm import AlgorithmBase
from agentrl.batch import TurnBatch, build_turn_batch
from agentrl.optim import guarded_step
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode

from .config import FilteredBCConfig


def top_episodes(episodes: Sequence[Episode], fraction: float) -> list[Episode]:
    """The best ``ceil(fraction * n)`` episodes by return, plus any tied with the last one."""
    if not episodes:
        return []
    k = max(1, math.ceil(fraction * len(episodes)))
    threshold = sorted((e.total_reward for e in episodes), reverse=True)[k - 1]
    return [e for e in episodes if e.total_reward >= threshold]


@ALGORITHMS.register("filtered_bc")
class FilteredBC(AlgorithmBase):
    """Online filtered BC (see the module docstring)."""

    Config = FilteredBCConfig
    supports_extra_loss = True  # ``extra_loss_fn(policy)`` (set by the learner) joins every step
    learner_group = ("ddp", "fsdp")

    def __init__(self, config: FilteredBCConfig | None, policy: Any, seed: int = 0):
        self.config = config or FilteredBCConfig()
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.pool: list[Episode] = []
        self.num_updates = 0

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer]

    def _nll(self, batch: TurnBatch, rows: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """``-mean log pi`` over the agent tokens of ``rows`` of ``batch``."""
        mb = batch.select(rows)
        _, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
        return -(logp * mask).sum() / mask.sum().clamp(min=1.0), {}

    def _extra_loss(self) -> torch.Tensor | None:
        """A lifelong regulariser (e.g. EWC) added to every step, or None."""
        return self.extra_loss_fn(self.policy) if self.extra_loss_fn is not None else None

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        start = time.perf_counter()
        self.pool.extend(episodes)
        self.pool = self.pool[-cfg.max_pool :]
        chosen = top_episodes(self.pool, cfg.top_fraction)
        batch = build_turn_batch(chosen)
        params = list(self.policy.trainable_parameters())
        self.policy.model.train()
        losses = []
        tokens = batch.action_mask.sum(-1)
        for _ in range(cfg.steps):
            idx = torch.randint(len(batch), (min(cfg.minibatch_size, len(batch)),), generator=self.generator)
            self.optimizer.zero_grad(set_to_none=True)
            # one process, or this rank's turns of a learner group (agentrl.parallel)
            loss, _ = self.data_parallel.backward(
                idx, lambda rows: self._nll(batch, rows), self._extra_loss, tokens
            )
            guarded_step(self.optimizer, params, cfg.grad_clip)
            losses.append(loss)
        self.policy.model.eval()
        self.num_updates += 1
        return {
            "filtered_bc/nll": sum(losses) / len(losses),
            "filtered_bc/kept_episodes": float(len(chosen)),
            "filtered_bc/threshold": min(e.total_reward for e in chosen),
            "filtered_bc/update_s": time.perf_counter() - start,
        }

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

    def replay_rows(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.pool]

    def load_replay_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.pool = [Episode.from_dict(r) for r in rows]
