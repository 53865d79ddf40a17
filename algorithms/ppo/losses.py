"""Pure loss functions of token-level PPO."""

from __future__ import annotations

import torch


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate, averaged over action tokens.

    ``ratio_t = exp(logp_t - old_logp_t)``;
    ``loss = -mean_t min(ratio_t * A, clip(ratio_t, 1-eps, 1+eps) * A)``
    where every token of an utterance shares the utterance's advantage ``A``.

    Args:
        logprobs: ``[N, L]`` per-token log-probs under the current policy.
        old_logprobs: ``[N, L]`` per-token log-probs under the sampling policy.
        advantages: ``[N]`` one advantage per utterance.
        mask: ``[N, L]`` 1 on action tokens.
        clip: epsilon.

    Returns:
        The scalar loss and stats (clip fraction, approximate KL).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(-1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv
    per_token = -torch.minimum(unclipped, clipped)
    denom = mask.sum().clamp(min=1.0)
    loss = (per_token * mask).sum() / denom
    with torch.no_grad():
        clip_frac = (((ratio - 1.0).abs() > clip).float() * mask).sum() / denom
        approx_kl = (((ratio - 1.0) - (logprobs - old_logprobs)) * mask).sum() / denom
    return loss, {"clip_frac": float(clip_frac), "approx_kl": float(approx_kl)}


def turn_advantages(
    returns: torch.Tensor, turn_index: torch.Tensor, baseline: str = "mean", normalize: bool = True
) -> torch.Tensor:
    """Advantages ``G_t - b(t)`` where ``b(t)`` is the mean return of turns at index ``t``.

    Args:
        returns: ``[N]`` reward-to-go per turn.
        turn_index: ``[N]`` position of each turn in its episode.
        baseline: ``"mean"`` or ``"none"``.
        normalize: divide by the standard deviation (plus 1e-8) after centring.
    """
    adv = returns.clone()
    if baseline == "mean":
        for t in torch.unique(turn_index):
            sel = turn_index == t
            adv[sel] = returns[sel] - returns[sel].mean()
    if normalize and adv.numel() > 1:
        adv = adv / (adv.std() + 1e-8)
    return adv
