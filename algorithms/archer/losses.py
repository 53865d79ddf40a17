"""ArCHer's losses as pure functions on tensors (no modules, no state).

Shapes: ``B`` is the batch of utterance-level transitions; every value tensor is ``[B]``.
Every function returns a scalar (mean over the batch) unless it says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def q_loss(
    q1: torch.Tensor,
    q2: torch.Tensor,
    r: torch.Tensor,
    done: torch.Tensor,
    v1_target_next: torch.Tensor,
    v2_target_next: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """TD loss of the two Q heads against the target critic's V of the next state.

    ``y_i = r + gamma * (1 - done) * Vbar_i(s')`` and
    ``L_Q = mean((Q_1(s,a) - y_1)^2) + mean((Q_2(s,a) - y_2)^2)``. Each Q head regresses on
    its own target V head (as the reference); targets carry no gradient.

    Args:
        q1: online ``Q_1(s, a)``, ``[B]``.
        q2: online ``Q_2(s, a)``, ``[B]``.
        r: rewards, ``[B]``.
        done: 1.0 where the transition ends the episode (no bootstrap), ``[B]``.
        v1_target_next: target ``Vbar_1(s')``, ``[B]`` (any value where done).
        v2_target_next: target ``Vbar_2(s')``, ``[B]`` (any value where done).
        gamma: discount.
    """
    not_done = 1.0 - done.to(q1.dtype)
    y1 = (r + gamma * not_done * v1_target_next).detach()
    y2 = (r + gamma * not_done * v2_target_next).detach()
    return F.mse_loss(q1, y1) + F.mse_loss(q2, y2)


def v_loss(
    v1: torch.Tensor, v2: torch.Tensor, q1_target: torch.Tensor, q2_target: torch.Tensor
) -> torch.Tensor:
    """Loss of the two V heads: ``V_i(s) <- Qbar_i(s, a')`` with ``a' ~ pi(.|s)`` sampled fresh.

    ``L_V = mean((V_1(s) - Qbar_1(s,a'))^2) + mean((V_2(s) - Qbar_2(s,a'))^2)``: a one-sample
    estimate of ``E_{a'~pi} Qbar_i(s, a')`` from the target critic, as the reference does.

    Args:
        v1: online ``V_1(s)``, ``[B]``.
        v2: online ``V_2(s)``, ``[B]``.
        q1_target: target ``Qbar_1(s, a')`` for fresh actions, ``[B]`` (detached here).
        q2_target: target ``Qbar_2(s, a')`` for fresh actions, ``[B]`` (detached here).
    """
    return F.mse_loss(v1, q1_target.detach()) + F.mse_loss(v2, q2_target.detach())


def advantage(
    q1: torch.Tensor, q2: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor
) -> torch.Tensor:
    """Utterance advantage ``A(s,a) = min(Q_1, Q_2)(s,a) - min(V_1, V_2)(s)``, ``[B]``."""
    return torch.minimum(q1, q2) - torch.minimum(v1, v2)


def actor_loss(
    logprob_sums: torch.Tensor,
    advantage: torch.Tensor,
    old_logprobs: torch.Tensor | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """Utterance-level policy gradient with a critic advantage.

    Without ``clip`` (the reference): ``L = -mean(A * log pi(a|s))`` where
    ``log pi(a|s) = sum_t log pi(a_t | s, a_<t)`` is the utterance's summed token log-prob.
    With ``clip`` (an extension): ``rho = exp(log pi(a|s) - log pi_old(a|s))``,
    ``L = -mean(min(rho * A, clip(rho, 1 - clip, 1 + clip) * A))``.

    Args:
        logprob_sums: ``log pi(a|s)`` under the current policy, differentiable, ``[B]``.
        advantage: ``A(s, a)``, ``[B]`` (detached here).
        old_logprobs: ``log pi_old(a|s)`` of the sampling policy, ``[B]``; needed with ``clip``.
        clip: PPO clip range epsilon, or None.
    """
    adv = advantage.detach().to(logprob_sums.dtype)
    if clip is None:
        return -(adv * logprob_sums).mean()
    if old_logprobs is None:
        raise ValueError("actor_loss: clip needs old_logprobs")
    ratio = torch.exp(logprob_sums - old_logprobs.detach())
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    return -torch.minimum(ratio * adv, clipped * adv).mean()


@torch.no_grad()
def polyak_update_(
    target_params: Sequence[torch.Tensor], online_params: Sequence[torch.Tensor], tau: float
) -> None:
    """In place ``target <- (1 - tau) * target + tau * online`` for every pair (one fused op)."""
    target_params = list(target_params)
    online_params = list(online_params)
    if len(target_params) != len(online_params):
        raise ValueError(
            f"polyak_update_: {len(target_params)} target vs {len(online_params)} online tensors"
        )
    if target_params:
        torch._foreach_lerp_(target_params, online_params, tau)


def expectile_loss(diff: torch.Tensor, tau: float) -> torch.Tensor:
    """IQL expectile regression: ``mean(|tau - 1[diff < 0]| * diff^2)``.

    With ``diff = Q(s,a) - V(s)`` and ``tau > 0.5``, V fits an upper expectile of Q over the
    dataset's actions (offline ArCHer's critic).

    Args:
        diff: ``[B]`` residuals.
        tau: expectile in (0, 1); 0.5 gives half the MSE.
    """
    weight = torch.where(diff < 0, 1.0 - tau, tau)
    return (weight * diff.pow(2)).mean()


def awr_weights(advantage: torch.Tensor, beta: float, max_weight: float = 100.0) -> torch.Tensor:
    """Advantage-weighted regression weights ``min(exp(A / beta), max_weight)``, ``[B]``, detached.

    ``beta`` is the temperature (smaller = greedier); the cap keeps one transition from
    dominating a batch.
    """
    return torch.exp(advantage.detach() / beta).clamp(max=max_weight)
