"""Task-change detection (``lifelong=[task_change, ...]``) for runs without given boundaries.

The detector keeps reference statistics of the current task from its first ``window``
episodes, then compares each new batch with them:

- observations: the share of batch episodes whose *first observation* was never seen in
  the reference window (a new instruction, a new range, a new word list ...); a change
  when it exceeds ``novel_obs_fraction``;
- rewards: a two-sample z statistic of the batch's mean episode return against the
  reference, ``|m_batch - m_ref| / sqrt(s_ref^2 / n_ref + s_batch^2 / n_batch + eps)``;
  a change when it exceeds ``z_threshold``.

On a change the stack ends the task (``on_task_end`` + ``consolidate`` of every component:
EWC's Fisher and anchor, a sleep phase) and starts a new one; the detector then rebuilds
its reference from the new task's episodes. Nothing is reported during the first
``window`` episodes of a task.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentrl.lifelong.base import LifelongComponent
from agentrl.registry import LIFELONG
from agentrl.types import Episode


@dataclass
class TaskChangeConfig:
    """Attributes:
    window: episodes that form the reference statistics of a task.
    z_threshold: return-shift threshold (z statistic); 0 turns the reward test off.
    novel_obs_fraction: first-observation novelty threshold; > 1 turns it off.
    """

    window: int = 32
    z_threshold: float = 4.0
    novel_obs_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"task_change.window must be >= 2, got {self.window}")


def _mean_var(xs: Sequence[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    return m, sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1)


def return_shift(reference: Sequence[float], batch: Sequence[float], eps: float = 1e-6) -> float:
    """The two-sample z statistic of the mean returns (see the module docstring)."""
    if len(reference) < 2 or len(batch) < 1:
        return 0.0
    m_ref, v_ref = _mean_var(reference)
    m_b, v_b = _mean_var(batch) if len(batch) > 1 else (batch[0], 0.0)
    return abs(m_b - m_ref) / math.sqrt(v_ref / len(reference) + v_b / len(batch) + eps)


@LIFELONG.register("task_change")
class TaskChangeDetector(LifelongComponent):
    """Detects a shift of the reward or observation statistics (see the module docstring)."""

    Config = TaskChangeConfig

    def __init__(self, config: TaskChangeConfig | None = None, seed: int = 0):
        self.config = config or TaskChangeConfig()
        self.ref_returns: list[float] = []
        self.ref_obs: set[str] = set()
        self.changes = 0
        self.last_stats: dict[str, float] = {}

    def on_task_start(self, task: dict[str, Any]) -> None:
        self.ref_returns, self.ref_obs = [], set()

    def detect_task_change(self, episodes: Sequence[Episode]) -> bool:
        cfg = self.config
        eps = [e for e in episodes if e.turns]
        if not eps:
            return False
        if len(self.ref_returns) < cfg.window:  # still building the reference
            for e in eps[: cfg.window - len(self.ref_returns)]:
                self.ref_returns.append(e.env_reward)
                self.ref_obs.add(e.turns[0].observation)
            return False
        novel = sum(e.turns[0].observation not in self.ref_obs for e in eps) / len(eps)
        z = return_shift(self.ref_returns, [e.env_reward for e in eps])
        self.last_stats = {"novel_obs": novel, "z": z}
        changed = novel > cfg.novel_obs_fraction or (cfg.z_threshold > 0 and z > cfg.z_threshold)
        if changed:
            self.changes += 1
        return changed

    def state_dict(self) -> dict[str, Any]:
        return {
            "ref_returns": list(self.ref_returns),
            "ref_obs": sorted(self.ref_obs),
            "changes": self.changes,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ref_returns = [float(x) for x in state["ref_returns"]]
        self.ref_obs = set(state["ref_obs"])
        self.changes = int(state["changes"])
