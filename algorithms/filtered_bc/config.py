"""Configuration of online filtered behaviour cloning."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FilteredBCConfig:
    """Imitate the best trajectories seen so far.

    Attributes:
        top_fraction: share of all trajectories so far (by return) that is imitated (0.1 in
            the ArCHer paper).
        lr: Adam learning rate.
        steps: optimiser steps per iteration.
        minibatch_size: turns per step.
        max_pool: how many trajectories are remembered (oldest dropped first).
        grad_clip: max global gradient norm.
    """

    top_fraction: float = 0.1
    lr: float = 1e-4
    steps: int = 8
    minibatch_size: int = 64
    max_pool: int = 10000
    grad_clip: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.top_fraction <= 1:
            raise ValueError(f"filtered_bc.top_fraction must be in (0, 1], got {self.top_fraction}")
        if self.steps < 1 or self.minibatch_size < 1:
            raise ValueError("filtered_bc.steps and filtered_bc.minibatch_size must be >= 1")
