"""Pure functions of RLTF: the REINFORCE loss, the running-mean baseline, the
epsilon-greedy choice among candidates, the epsilon schedule and the KL penalty."""

from __future__ import annotations

import torch


def reinforce_loss(plan_logprobs: torch.Tensor, advantages: torch.Tensor) -> torch.Tensor:
    """``-mean_i A_i * log pi(plan_i)``.

    Args:
        plan_logprobs: ``[N]`` summed token log-probs of each executed plan (differentiable).
        advantages: ``[N]`` ``R_i - b`` (no gradient).
    """
    return -(advantages.detach() * plan_logprobs).mean()


def running_baseline(
    baseline: float | None, rewards: torch.Tensor, momentum: float
) -> tuple[float, float]:
    """The baseline to use for this batch and the one to keep.

    ``None`` (no update yet) starts from this batch's mean; after using ``b`` the kept value
    is ``momentum * b + (1 - momentum) * mean(rewards)``, so a batch never enters its own
    baseline except on the first update.

    Returns:
        ``(b used now, b kept for the next update)``.
    """
    mean = float(rewards.mean()) if rewards.numel() else 0.0
    used = mean if baseline is None else float(baseline)
    return used, momentum * used + (1.0 - momentum) * mean


def epsilon_at(step: int, epsilon: float, decay: float, floor: float = 0.0) -> float:
    """``max(floor, epsilon * decay**step)`` (the reference decays by 0.9 per step)."""
    return max(floor, epsilon * decay**step)


def epsilon_greedy(
    scores: torch.Tensor,
    epsilon: float,
    generator: torch.Generator | None = None,
    greedy_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Pick a candidate per row: random with probability ``epsilon``, else the greedy one.

    Args:
        scores: ``[B, k]`` candidate scores (plan log-probs); greedy = argmax.
        epsilon: exploration probability.
        generator: source of the draws (CPU).
        greedy_index: ``[B]`` override of the greedy pick (e.g. always candidate 0).

    Returns:
        ``[B]`` long indices in ``[0, k)``.
    """
    b, k = scores.shape
    greedy = scores.argmax(dim=-1) if greedy_index is None else greedy_index
    explore = torch.rand(b, generator=generator) < epsilon
    random = torch.randint(k, (b,), generator=generator)
    return torch.where(explore, random, greedy.cpu())


def kl_k3(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-plan KL(pi || pi_ref) estimate on the sampled tokens (Schulman's k3, always >= 0):
    ``sum_t exp(r_t) - r_t - 1`` with ``r_t = log pi_ref - log pi``; ``[N, L]`` -> ``[N]``."""
    r = (ref_logprobs - logprobs).masked_fill(~mask, 0.0)
    return ((torch.exp(r) - r - 1.0) * mask).sum(-1)
