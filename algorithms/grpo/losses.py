"""Pure functions of GRPO / RLOO: groups and group-relative advantages."""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch

from agentrl.types import Episode


def group_index(episodes: Sequence[Episode]) -> torch.Tensor:
    """``[E]`` long: episodes of the same task spec and env seed share a group id (ids in
    order of first appearance)."""
    ids: dict[str, int] = {}
    out = []
    for ep in episodes:
        key = json.dumps([ep.task, ep.seed, ep.env_id], sort_keys=True, default=str)
        out.append(ids.setdefault(key, len(ids)))
    return torch.tensor(out, dtype=torch.long)


def _group_stats(values: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per element: its group's mean, unbiased std (0 for a group of one) and size."""
    n = int(groups.max()) + 1 if groups.numel() else 0
    size = torch.zeros(n).index_add_(0, groups, torch.ones_like(values))
    mean = torch.zeros(n).index_add_(0, groups, values) / size.clamp(min=1)
    dev = values - mean[groups]
    var = torch.zeros(n).index_add_(0, groups, dev * dev) / (size - 1).clamp(min=1)
    return mean[groups], var.sqrt()[groups], size[groups]


def episode_advantages(
    returns: torch.Tensor, groups: torch.Tensor, kind: str, scale_by_std: bool = True
) -> torch.Tensor:
    """``[E]`` advantages of episode returns within their groups.

    ``grpo``: ``R_i - mean_g``, divided by ``std_g + 1e-6`` with ``scale_by_std`` (a group
    whose returns are all equal gets 0); ``rloo``: ``R_i - mean_{j != i} R_j = G/(G-1) (R_i -
    mean_g)`` (0 for a group of one).
    """
    returns = returns.float()
    mean, std, size = _group_stats(returns, groups)
    centred = returns - mean
    if kind == "grpo":
        return centred / (std + 1e-6) if scale_by_std else centred
    if kind == "rloo":
        return torch.where(size > 1, centred * size / (size - 1).clamp(min=1), torch.zeros_like(centred))
    raise ValueError(f"unknown episode advantage {kind!r}; valid: grpo, rloo")


def turn_advantages(
    returns_to_go: torch.Tensor,
    groups: torch.Tensor,
    turn_index: torch.Tensor,
    scale_by_std: bool = True,
) -> torch.Tensor:
    """``[N]`` turn-level advantages: each turn's return-to-go against the mean of its
    group's turns at the same index (its peers: the same task, the same point of the game);
    divided by the std of those peers' values with ``scale_by_std``. A turn without a peer
    at its index gets 0."""
    key = groups * (int(turn_index.max()) + 1 if turn_index.numel() else 1) + turn_index
    _, cell = torch.unique(key, return_inverse=True)
    mean, std, size = _group_stats(returns_to_go.float(), cell)
    adv = returns_to_go.float() - mean
    if scale_by_std:
        adv = adv / (std + 1e-6)
    return torch.where(size > 1, adv, torch.zeros_like(adv))


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over agent tokens of ``exp(r) - r - 1`` with ``r = ref - logp`` (the "k3"
    estimator of KL(pi || pi_ref): non-negative, unbiased for samples of pi)."""
    r = ref_logprobs - logprobs
    per_token = torch.exp(r) - r - 1.0
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)
