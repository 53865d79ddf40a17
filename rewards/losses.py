"""The Bradley-Terry reward-model loss (ARMAP, Chen et al. 2025, arXiv 2502.12130).

For a batch of triplets (intent, positive, negative) with scalar scores ``r_pos`` and
``r_neg`` (each ``[B]``)::

    L = mean_b BCE(sigmoid(r_pos - r_neg), 1) + c * | mean_b (r_pos + r_neg) |
      = mean_b -log sigmoid(r_pos - r_neg)    + c * | mean_b (r_pos + r_neg) |

The first term is the Bradley-Terry likelihood of preferring the positive; the second (the
paper's ``c = 1e-3``) keeps the scores centred around 0, since the first term only sees
differences. TRL's own ``center_rewards_coefficient`` uses ``mean((r_pos + r_neg)**2)``
instead; :class:`~agentrl.rewards.armap.train.BTRewardTrainer` swaps in this loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bradley_terry_loss(
    r_pos: torch.Tensor, r_neg: torch.Tensor, center_coef: float = 1e-3
) -> torch.Tensor:
    """ARMAP's loss; ``r_pos``/``r_neg`` are ``[B]`` scores; returns a scalar tensor."""
    if r_pos.shape != r_neg.shape:
        raise ValueError(
            f"r_pos and r_neg must have the same shape, got {tuple(r_pos.shape)} and {tuple(r_neg.shape)}"
        )
    bt = -F.logsigmoid(r_pos - r_neg).mean()
    return bt + center_coef * (r_pos + r_neg).mean().abs()


def pairwise_accuracy(r_pos: torch.Tensor, r_neg: torch.Tensor) -> float:
    """Share of pairs ranked correctly (``r_pos > r_neg``); ties count as half."""
    wins = (r_pos > r_neg).float() + 0.5 * (r_pos == r_neg).float()
    return float(wins.mean()) if wins.numel() else float("nan")
