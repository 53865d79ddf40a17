"""Pure functions of token-level PPO: the clipped surrogate, GAE over agent tokens, the
(clipped) value loss, the critic-free turn advantage and the adaptive KL coefficient.

Shapes: ``[N, L]`` is one row per turn (its ``L`` agent tokens, right-padded);
``[B, T]`` one row per episode or conversation, with a mask that is 1 on agent tokens and 0
on everything else (the env's tokens, padding).
"""

from __future__ import annotations

import torch

KL_GAIN = 0.1
"""Proportional gain of :func:`adaptive_kl_coef` per update (Ziegler et al., 2019)."""


def clipped_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate, averaged over action tokens.

    ``ratio_t = exp(logp_t - old_logp_t)``;
    ``loss = -mean_t w_t * min(ratio_t * A_t, clip(ratio_t, 1-eps, 1+eps) * A_t)``
    where ``A_t`` is the token's own advantage, or the utterance's advantage shared by all
    its tokens, and ``w_t`` a fixed per-token weight (1 without ``weights``). Decoupled PPO
    for stale data (:func:`behaviour_weights`) takes ``old_logp`` from the proximal policy
    (the current one before the update) and ``w`` the truncated ratio of proximal to
    behaviour policy.

    Args:
        logprobs: ``[N, L]`` per-token log-probs under the current policy.
        old_logprobs: ``[N, L]`` per-token log-probs under the sampling policy.
        advantages: ``[N]`` one advantage per utterance, or ``[N, L]`` one per token.
        mask: ``[N, L]`` 1 on action tokens.
        clip: epsilon.
        weights: ``[N, L]`` per-token weights without gradient, or None.

    Returns:
        The scalar loss and stats (clip fraction, approximate KL).
    """
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if weights is not None:
        per_token = per_token * weights.detach()
    denom = mask.sum().clamp(min=1.0)
    loss = (per_token * mask).sum() / denom
    with torch.no_grad():
        clip_frac = (((ratio - 1.0).abs() > clip).float() * mask).sum() / denom
        approx_kl = (((ratio - 1.0) - (logprobs - old_logprobs)) * mask).sum() / denom
    return loss, {"clip_frac": float(clip_frac), "approx_kl": float(approx_kl)}


def behaviour_weights(
    proximal: torch.Tensor, behaviour: torch.Tensor, stale: torch.Tensor, cap: float
) -> torch.Tensor:
    """Decoupled PPO's importance weights for turns sampled by older weights.

    ``w_t = min(pi_prox(a_t) / mu(a_t), cap)`` per token of a stale turn, where ``pi_prox``
    is the policy before the update and ``mu`` the (older) policy that sampled the turn; 1
    on the tokens of fresh turns (sampled by the current weights, where the two coincide).
    Truncating at ``cap`` bounds the variance a very unlikely old sample could add
    (Hilton et al. 2021, "Batch size-invariance for policy optimization"; AReaL).

    Args:
        proximal: ``[N, L]`` per-token log-probs under the current policy.
        behaviour: ``[N, L]`` per-token log-probs the turns were sampled with.
        stale: ``[N]`` bool, the turn was sampled by older weights.
        cap: the truncation, > 0.
    """
    w = torch.exp(proximal - behaviour).clamp(max=cap)
    return torch.where(stale.unsqueeze(-1), w, torch.ones_like(w))


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


def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
    traces: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over the agent tokens of each row, in order.

    The recursion runs from the last agent token of a row to its first and skips every
    masked position (env tokens are not actions: their rewards and values are never read).
    With ``k'`` the next agent token after ``k``::

        d_k     = 1 when k' follows k directly (the same turn), gamma when masked positions
                  lie between them (a turn boundary), 0 after the row's last agent token
        delta_k = r_k + d_k * V_{k'} - V_k
        A_k     = delta_k + d_k * lam * A_{k'}
        R_k     = A_k + V_k    (the value target)

    So ``gamma`` discounts across turns only and ``lam`` applies at every token step; the
    value after the last agent token is 0 (the episode is over).

    With ``traces`` (V-trace, Espeholt et al. 2018, for tokens sampled by an older policy
    ``mu``): ``c_k = min(1, pi(a_k) / mu(a_k))`` weighs token ``k``'s own TD error in the
    value target and cuts the trace through it, and the advantage of token ``k`` reaches the
    later tokens through their corrected targets::

        D_k = c_k * delta_k + d_k * lam * c_k * D_{k'}     (v_k - V_k, V-trace's target)
        A_k = delta_k + d_k * lam * D_{k'}
        R_k = V_k + D_k

    Token ``k``'s own ratio stays out of ``A_k`` (the policy loss weighs that token itself).
    With every ``c_k = 1`` this is the recursion above, exactly.

    Args:
        rewards: ``[B, T]`` the reward of each agent token (a turn's reward on its last agent
            token, 0 on the others).
        values: ``[B, T]`` ``V`` of the state each agent token was sampled from.
        mask: ``[B, T]`` 1 on agent tokens.
        gamma: discount across turns, in ``[0, 1]``.
        lam: GAE's lambda, in ``[0, 1]``.
        traces: ``[B, T]`` the truncated ratios ``c_k`` in ``[0, 1]`` (1 on tokens sampled by
            the current policy), or None for plain GAE.

    Returns:
        ``(advantages [B, T], returns [B, T])``, 0 at masked positions.
    """
    agent = mask.bool()
    rewards, values = rewards.float(), values.float()
    batch, length = agent.shape
    adv = torch.zeros(batch, length, dtype=torch.float32, device=values.device)
    # D_k, V-trace's corrected target; plain GAE's is its advantage, so it keeps no copy
    target = adv if traces is None else torch.zeros_like(adv)
    next_value = torch.zeros(batch, device=values.device)
    next_target = torch.zeros(batch, device=values.device)
    has_next = torch.zeros(batch, dtype=torch.bool, device=values.device)
    gap = torch.zeros(batch, dtype=torch.bool, device=values.device)  # env tokens before next
    for t in range(length - 1, -1, -1):
        here = agent[:, t]
        step = torch.where(gap, gamma, 1.0) * has_next.float()
        delta = rewards[:, t] + step * next_value - values[:, t]
        a_t = delta + step * lam * next_target
        d_t = a_t if traces is None else traces[:, t].float() * a_t
        adv[:, t] = torch.where(here, a_t, 0.0)
        if traces is not None:
            target[:, t] = torch.where(here, d_t, 0.0)
        next_value = torch.where(here, values[:, t], next_value)
        next_target = torch.where(here, d_t, next_target)
        gap = torch.where(here, False, gap | has_next)
        has_next = has_next | here
    returns = torch.where(agent, target + values, 0.0)
    return adv, returns


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float | None = None,
) -> torch.Tensor:
    """``0.5 * mean_t (V_t - R_t)^2`` over agent tokens; with ``clip`` PPO's clipped form
    ``0.5 * mean_t max((V_t - R_t)^2, (V_old,t + clip(V_t - V_old,t, -c, c) - R_t)^2)``.

    Args:
        values: ``[N, L]`` current values (differentiable).
        old_values: ``[N, L]`` values before the update.
        returns: ``[N, L]`` targets.
        mask: ``[N, L]`` 1 on agent tokens.
        clip: ``c``; ``None`` (or 0) for the plain squared error.
    """
    err = (values - returns) ** 2
    if clip:
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        err = torch.maximum(err, (clipped - returns) ** 2)
    m = mask.float()
    return 0.5 * (err * m).sum() / m.sum().clamp(min=1.0)


def masked_normalize(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(x - mean) / (std + eps)`` with the mean and (unbiased) std over the positions where
    ``mask`` is 1; 0 elsewhere. Fewer than two positions: centred only."""
    m = mask.float()
    n = m.sum()
    mean = (x * m).sum() / n.clamp(min=1.0)
    centred = (x - mean) * m
    if n < 2:
        return centred
    std = ((centred**2).sum() / (n - 1)).sqrt()
    return centred / (std + eps)


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """``1 - Var(R - V) / Var(R)`` over agent tokens: 1 for a perfect value function, 0 for
    one no better than a constant, negative for a worse one (NaN when ``Var(R) = 0``)."""
    m = mask.bool()
    r, v = returns[m].float(), values[m].float()
    var_r = r.var(unbiased=False)
    if r.numel() == 0 or float(var_r) == 0.0:
        return float("nan")
    return float(1.0 - (r - v).var(unbiased=False) / var_r)


def episode_returns(rewards: torch.Tensor, episode_index: torch.Tensor, gamma: float) -> torch.Tensor:
    """``[N]`` reward-to-go ``G_t = r_t + gamma G_{t+1}`` of turns listed episode by episode,
    each episode's turns in order (the row order of :func:`agentrl.batch.build_turn_batch`)."""
    out = torch.zeros_like(rewards, dtype=torch.float32)
    running = 0.0
    ep = episode_index.tolist()
    for i in range(len(ep) - 1, -1, -1):
        if i + 1 < len(ep) and ep[i + 1] != ep[i]:
            running = 0.0
        running = float(rewards[i]) + gamma * running
        out[i] = running
    return out


def adaptive_kl_coef(coef: float, kl: float, target: float, gain: float = KL_GAIN) -> float:
    """The next KL coefficient of the proportional controller of Ziegler et al. (2019):
    ``coef * (1 + gain * clip(kl / target - 1, -0.2, 0.2))`` (``kl`` per agent token)."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return coef * (1.0 + gain * error)
