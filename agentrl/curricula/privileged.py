"""``privileged``: a privileged-action curriculum that removes privileges step by step.

After Mao et al. 2025 (arXiv 2502.15442): training starts with privileges the real task
does not allow (for text agents: hints, an oracle peek, macro actions, extra turns) and
the level drops by one each time the rolling success rate at the current level reaches
``threshold`` over the last ``window`` episodes played at that level, until level 0 (the
real task). Success is always judged on the real task by the env.

Every sampled spec carries ``{"privilege": level}`` (added to a task of ``tasks`` /
``tasks_from`` drawn uniformly, or alone, when the env samples its own task: TextCraft
does). The trainer's evaluation jobs carry no task spec, so evaluation always runs at the
env's default, privilege 0. :meth:`PrivilegedCurriculum.stats` reports the level and the
share of episodes that used a privilege (``info["privilege_used"]`` of any step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrl.curricula.learning_progress import resolve_tasks
from agentrl.registry import CURRICULA
from agentrl.types import Episode, TaskSpec


@dataclass
class PrivilegedConfig:
    """Config keys of ``curriculum=privileged``.

    Attributes:
        tasks / tasks_from: base task specs (empty: the env samples the task).
        start_level: the privilege level training starts at.
        threshold: rolling success rate that lowers the level.
        window: episodes at the current level the rate is computed over (and needed).
        key: the task-spec key of the privilege level.
    """

    tasks: list[dict[str, Any]] = field(default_factory=list)
    tasks_from: str = ""
    start_level: int = 2
    threshold: float = 0.8
    window: int = 20
    key: str = "privilege"

    def __post_init__(self) -> None:
        if self.start_level < 0:
            raise ValueError(f"start_level must be >= 0, got {self.start_level}")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")


def next_level(level: int, recent: Sequence[int], threshold: float, window: int) -> int:
    """The schedule: one level lower once ``window`` results at ``level`` average >= ``threshold``."""
    if level > 0 and len(recent) >= window and sum(recent[-window:]) / window >= threshold:
        return level - 1
    return level


@CURRICULA.register("privileged")
class PrivilegedCurriculum:
    """Lowers the privilege level on success (module docstring). State (JSON): level,
    recent results, history of level changes, counters, RNG."""

    Config = PrivilegedConfig

    def __init__(self, config: PrivilegedConfig | None = None, seed: int = 0):
        self.config = config or PrivilegedConfig()
        cfg = self.config
        self.tasks: list[TaskSpec] = (
            resolve_tasks(cfg.tasks, cfg.tasks_from, "privileged")
            if cfg.tasks or cfg.tasks_from
            else []
        )
        self.rng = np.random.default_rng(seed)
        self.level = cfg.start_level
        self.recent: list[int] = []
        self.history: list[list[int]] = [[0, self.level]]  # [episodes seen, level]
        self.episodes = 0
        self.privileged_episodes = 0

    def sample(self, n: int) -> list[TaskSpec]:
        if not self.tasks:
            return [{self.config.key: self.level} for _ in range(n)]
        idx = self.rng.integers(len(self.tasks), size=n)
        return [{**self.tasks[i], self.config.key: self.level} for i in idx]

    def update(self, episodes: Sequence[Episode]) -> None:
        cfg = self.config
        for ep in episodes:
            self.episodes += 1
            self.privileged_episodes += int(any(t.info.get("privilege_used") for t in ep.turns))
            if int(ep.task.get(cfg.key, 0)) != self.level:
                continue  # played at a level already left (asynchronous collection)
            self.recent.append(int(ep.success))
            del self.recent[: -cfg.window]
            level = next_level(self.level, self.recent, cfg.threshold, cfg.window)
            if level != self.level:
                self.level, self.recent = level, []
                self.history.append([self.episodes, level])

    def stats(self) -> dict[str, float]:
        return {
            "curriculum/privilege_level": float(self.level),
            "curriculum/privilege_use": self.privileged_episodes / max(self.episodes, 1),
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "recent": list(self.recent),
            "history": [list(h) for h in self.history],
            "episodes": self.episodes,
            "privileged_episodes": self.privileged_episodes,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.level = int(state["level"])
        self.recent = [int(x) for x in state["recent"]]
        self.history = [list(h) for h in state["history"]]
        self.episodes = int(state["episodes"])
        self.privileged_episodes = int(state["privileged_episodes"])
        self.rng.bit_generator.state = state["rng"]
