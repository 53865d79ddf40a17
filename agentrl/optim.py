"""Optimiser helpers shared by the algorithms.

:func:`guarded_step` is the one place an algorithm's optimiser steps: it clips the gradient
and skips the step when the gradient norm is NaN/inf (a NaN loss, an exploding update), so
a bad batch never reaches the weights or the optimiser's moments. Skipped steps are counted
in this process; the learner reports them as ``fault/skipped_steps`` and the trainer stops a
run after ``fault.max_nonfinite_iters`` iterations in a row with skips (docs/faults.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

_skipped = 0


def guarded_step(
    optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor], grad_clip: float | None
) -> tuple[float, bool]:
    """Clip the gradients of ``params`` to ``grad_clip`` (no clipping when ``None`` or
    ``<= 0``), then ``optimizer.step()`` unless their norm is not finite.

    Returns ``(grad_norm, stepped)``. A skipped step clears the gradients.
    """
    global _skipped
    max_norm = grad_clip if grad_clip and grad_clip > 0 else math.inf
    norm = float(torch.nn.utils.clip_grad_norm_(list(params), max_norm))
    if not math.isfinite(norm):
        optimizer.zero_grad(set_to_none=True)
        _skipped += 1
        return norm, False
    optimizer.step()
    return norm, True


def pop_skipped_steps() -> int:
    """Steps skipped by :func:`guarded_step` in this process since the last call."""
    global _skipped
    n, _skipped = _skipped, 0
    return n


__all__ = ["guarded_step", "pop_skipped_steps"]
