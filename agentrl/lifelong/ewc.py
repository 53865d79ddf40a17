"""Elastic weight consolidation (``lifelong=[ewc]``) and online EWC (``lifelong=[online_ewc]``).

EWC (Kirkpatrick et al. 2017) adds to the loss of every later update

    lambda / 2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2

with one anchor ``theta*_k`` (the weights at the end of task ``k``) and one diagonal Fisher
``F_k`` per finished task. Online EWC (Schwarz et al. 2018, "progress & compress") keeps a
single anchor (the latest) and one running Fisher ``F <- gamma * F_old + F_new``.

The Fisher is the empirical diagonal Fisher of the policy's *utterance* log-likelihood on
the task's most recent episodes: for each of up to ``fisher_turns`` recent turns ``(s, a)``,
``g = grad_theta sum_t log pi(a_t | s, a_<t)`` (the token log-probs summed over the
utterance, at temperature 1), and ``F = mean over turns of g * g``. It is computed at the
task end (in ``consolidate``, so after ``on_task_end``), with dropout off.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentrl.lifelong.base import LifelongComponent
from agentrl.registry import LIFELONG
from agentrl.types import Episode


def ewc_penalty(
    params: Mapping[str, torch.Tensor],
    anchor: Mapping[str, torch.Tensor],
    fisher: Mapping[str, torch.Tensor],
    lam: float,
) -> torch.Tensor:
    """``lam / 2 * sum_i F_i (theta_i - anchor_i)^2`` over the names in ``fisher``.

    Differentiable in ``params``; ``anchor`` and ``fisher`` are constants.
    """
    total: torch.Tensor | None = None
    for name, f in fisher.items():
        p = params[name]
        term = (f.to(p.device) * (p - anchor[name].to(p.device)) ** 2).sum()
        total = term if total is None else total + term
    if total is None:
        return torch.zeros(())
    return 0.5 * lam * total


def trainable_named_parameters(policy: Any) -> dict[str, torch.nn.Parameter]:
    """The policy's parameters with ``requires_grad`` (the adapter only under LoRA)."""
    return {n: p for n, p in policy.model.named_parameters() if p.requires_grad}


def fisher_diagonal(
    policy: Any, turns: Sequence[tuple[list[int], list[int]]]
) -> dict[str, torch.Tensor]:
    """Empirical diagonal Fisher: mean over ``turns`` of the squared gradient of each turn's
    summed action log-prob. ``turns`` are ``(prompt_ids, action_ids)`` pairs."""
    params = trainable_named_parameters(policy)
    fisher = {n: torch.zeros_like(p, device="cpu") for n, p in params.items()}
    used = [(p, a) for p, a in turns if a]
    if not used:
        return fisher
    was_training = policy.model.training
    policy.model.eval()
    names, tensors = list(params), list(params.values())
    for prompt, action in used:
        sums, _, _ = policy.action_logprobs([prompt], [action])
        grads = torch.autograd.grad(sums[0], tensors, allow_unused=True)
        for n, g in zip(names, grads, strict=True):
            if g is not None:
                fisher[n] += g.detach().to("cpu") ** 2
    policy.model.train(was_training)
    return {n: f / len(used) for n, f in fisher.items()}


def _recent_turns(episodes: Sequence[Episode], limit: int) -> list[tuple[list[int], list[int]]]:
    turns = [
        (context, list(t.action_ids))
        for e in episodes
        for t, context in zip(e.turns, e.contexts(), strict=True)
    ]
    return turns[-limit:]


@dataclass
class EWCConfig:
    """Attributes:
    lam: the penalty weight ``lambda``.
    fisher_turns: recent turns the Fisher is estimated on.
    recent_episodes: episodes remembered for that estimate.
    gamma: online EWC only: decay of the old Fisher (``F <- gamma * F_old + F_new``).
    """

    lam: float = 100.0
    fisher_turns: int = 64
    recent_episodes: int = 64
    gamma: float = 1.0

    def __post_init__(self) -> None:
        if self.lam < 0:
            raise ValueError(f"ewc lam must be >= 0, got {self.lam}")
        if self.fisher_turns < 1 or self.recent_episodes < 1:
            raise ValueError("ewc fisher_turns and recent_episodes must be >= 1")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"online_ewc gamma must be in [0, 1], got {self.gamma}")


class _EWCBase(LifelongComponent):
    Config = EWCConfig
    supports_extra_loss = True

    def __init__(self, config: EWCConfig | None = None, seed: int = 0):
        self.config = config or EWCConfig()
        self.recent: deque[Episode] = deque(maxlen=self.config.recent_episodes)
        # One (anchor, fisher) per finished task (EWC) or a single one (online EWC).
        self.anchors: list[dict[str, torch.Tensor]] = []
        self.fishers: list[dict[str, torch.Tensor]] = []

    def on_task_start(self, task: dict[str, Any]) -> None:
        self.recent.clear()

    def on_episode(self, episode: Episode) -> None:
        self.recent.append(episode)

    def _new_fisher(self, learner: Any) -> dict[str, torch.Tensor]:
        return fisher_diagonal(
            learner.policy, _recent_turns(list(self.recent), self.config.fisher_turns)
        )

    def extra_loss(self, policy: Any) -> torch.Tensor | None:
        if not self.anchors:
            return None
        params = trainable_named_parameters(policy)
        total = None
        for anchor, fisher in zip(self.anchors, self.fishers, strict=True):
            term = ewc_penalty(params, anchor, fisher, self.config.lam)
            total = term if total is None else total + term
        return total

    def penalty_value(self, policy: Any) -> float:
        with torch.no_grad():
            value = self.extra_loss(policy)
        return 0.0 if value is None else float(value)

    def state_dict(self) -> dict[str, Any]:
        # The recent episodes travel too: a detected boundary in the next run needs them.
        return {
            "anchors": self.anchors,
            "fishers": self.fishers,
            "recent": [e.to_dict() for e in self.recent],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.anchors = [dict(a) for a in state["anchors"]]
        self.fishers = [dict(f) for f in state["fishers"]]
        self.recent.clear()
        self.recent.extend(Episode.from_dict(d) for d in state.get("recent", []))


def _snapshot(policy: Any) -> dict[str, torch.Tensor]:
    return {
        n: p.detach().to("cpu", copy=True) for n, p in trainable_named_parameters(policy).items()
    }


@LIFELONG.register("ewc")
class EWC(_EWCBase):
    """EWC: one anchor and one Fisher per finished task; the penalties add up."""

    def consolidate(self, learner: Any) -> dict[str, float]:
        if not self.recent:
            return {"skipped": 1.0}
        fisher = self._new_fisher(learner)
        self.anchors.append(_snapshot(learner.policy))
        self.fishers.append(fisher)
        return {"anchors": float(len(self.anchors)), "fisher_mean": _mean(fisher)}


@LIFELONG.register("online_ewc")
class OnlineEWC(_EWCBase):
    """Online EWC: one anchor (the latest task end) and a running Fisher."""

    def consolidate(self, learner: Any) -> dict[str, float]:
        if not self.recent:
            return {"skipped": 1.0}
        new = self._new_fisher(learner)
        if self.fishers:
            old = self.fishers[0]
            new = {n: self.config.gamma * old[n] + f for n, f in new.items()}
        self.anchors = [_snapshot(learner.policy)]
        self.fishers = [new]
        return {"anchors": 1.0, "fisher_mean": _mean(new)}


def _mean(fisher: Mapping[str, torch.Tensor]) -> float:
    total = sum(float(f.sum()) for f in fisher.values())
    count = sum(f.numel() for f in fisher.values())
    return total / max(count, 1)
