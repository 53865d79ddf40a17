"""``learning_progress``: OMNI's bidirectional learning-progress curriculum.

Zhang et al., "OMNI: Open-endedness via Models of human Notions of Interestingness"
(ICLR 2024, arXiv 2306.01711), after Kanitscheider et al. (2021). Per task ``i``, from
its measured success rate ``raw_i`` (docs/curricula.md)::

    norm   = max(raw - r_i, 0) / (1 - r_i)            r_i: a random policy's success rate
    p_fast <- a * norm   + (1 - a) * p_fast             a = 0.1
    p_slow <- a * p_fast + (1 - a) * p_slow
    f(p)   = (1 - t) p / (p + t (1 - 2 p))             t = 0.1: stretches low success
    LP     = |f(p_fast) - f(p_slow)|                    bidirectional: learning or forgetting

Sampling weights: over the tasks with ``LP > 0`` or ``p_fast > 0`` (some success), the LPs
are z-scored, squashed by a sigmoid and normalised; every other task gets 0. When no task
qualifies yet, the same transform runs over all tasks (uniform when all LPs are equal).

Where this deviates from the paper: OMNI evaluates every task periodically to measure
``raw``. Here the measurement comes from the episodes the trainer hands to
:meth:`LearningProgressCurriculum.update` (the per-task mean success of each batch), and a
share ``explore`` of every batch cycles round-robin over all tasks, which is that periodic
evaluation folded into training (without it, a task at weight 0 would never be measured
again). :meth:`~LearningProgressCurriculum.update_success` takes rates measured elsewhere
(e.g. a separate per-task evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrl.registry import CURRICULA, import_dotted
from agentrl.types import Episode, TaskSpec


def task_key(task: TaskSpec) -> str:
    """A stable id for a task spec (the format of ``TextEnv.task_id``: ``k=v`` by key)."""
    return ",".join(f"{k}={task[k]}" for k in sorted(task))


def normalise(raw: float, random_rate: float) -> float:
    """Success above a random policy's, rescaled to ``[0, 1]``."""
    if not 0.0 <= random_rate < 1.0:
        raise ValueError(f"random_rate must be in [0, 1), got {random_rate}")
    return max(raw - random_rate, 0.0) / (1.0 - random_rate)


def reweight(p: float, t: float = 0.1) -> float:
    """OMNI's ``f(p) = (1-t) p / (p + t (1-2p))``: f(0)=0, f(t)=0.5, f(1)=1."""
    denom = p + t * (1.0 - 2.0 * p)
    return 0.0 if denom == 0.0 else (1.0 - t) * p / denom


def learning_progress(p_fast: float, p_slow: float, t: float = 0.1) -> float:
    """``|f(p_fast) - f(p_slow)|``."""
    return abs(reweight(p_fast, t) - reweight(p_slow, t))


def lp_weights(lp: np.ndarray, success: np.ndarray) -> np.ndarray:
    """Sampling weights ``[N]`` from learning progress ``[N]`` and smoothed success ``[N]``.

    Tasks with ``lp > 0`` or ``success > 0`` get ``sigmoid(zscore(lp))`` (z-scored among
    themselves), normalised to sum 1; the rest get exactly 0. If none qualifies, all do.
    """
    lp = np.asarray(lp, dtype=float)
    active = (lp > 0) | (np.asarray(success, dtype=float) > 0)
    if not active.any():
        active = np.ones_like(lp, dtype=bool)
    sub = lp[active]
    std = float(sub.std())
    z = (sub - sub.mean()) / (std if std > 0 else 1.0)
    s = 1.0 / (1.0 + np.exp(-z))
    out = np.zeros_like(lp)
    out[active] = s / s.sum()
    return out


@dataclass
class LearningProgressConfig:
    """Config keys of ``curriculum=learning_progress``.

    Attributes:
        tasks: the task specs to choose from.
        tasks_from: or a ``"module:function"`` returning them (e.g.
            ``agentrl.envs.textcraft:task_list``); used when ``tasks`` is empty.
        alpha: EMA rate ``a`` of the fast and slow success estimates.
        theta: ``t`` of the reweighting ``f(p)``.
        random_success: a random policy's success rate ``r`` (one for all tasks), or
            ``random_success_by_task`` (task key -> rate) for some.
        explore: share of every batch cycled round-robin over all tasks (the periodic
            per-task evaluation of the paper).
        min_episodes: episodes of a task in one batch needed to update its estimate.
    """

    tasks: list[dict[str, Any]] = field(default_factory=list)
    tasks_from: str = ""
    alpha: float = 0.1
    theta: float = 0.1
    random_success: float = 0.0
    random_success_by_task: dict[str, float] = field(default_factory=dict)
    explore: float = 0.2
    min_episodes: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0.0 < self.theta < 0.5:
            raise ValueError(f"theta must be in (0, 0.5), got {self.theta}")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {self.explore}")
        if self.min_episodes < 1:
            raise ValueError(f"min_episodes must be >= 1, got {self.min_episodes}")
        normalise(0.0, self.random_success)  # validates the rate


def resolve_tasks(tasks: list[dict[str, Any]], tasks_from: str, name: str) -> list[TaskSpec]:
    """The task list of a config: ``tasks``, else ``tasks_from()``; never empty."""
    out = [dict(t) for t in tasks]
    if not out and tasks_from:
        out = [dict(t) for t in import_dotted(tasks_from)()]
    if not out:
        raise ValueError(
            f"curriculum={name} needs a task list: set tasks=[...] or tasks_from=module:function "
            "(e.g. agentrl.envs.textcraft:task_list)"
        )
    keys = [task_key(t) for t in out]
    if len(set(keys)) != len(keys):
        raise ValueError(f"curriculum={name}: duplicate tasks in the task list")
    return out


@CURRICULA.register("learning_progress")
class LearningProgressCurriculum:
    """Samples tasks in proportion to OMNI's learning-progress weights (module docstring).

    State (JSON): the fast/slow EMAs, the number of measurements per task, the round-robin
    pointer and the RNG.
    """

    Config = LearningProgressConfig
    name = "learning_progress"

    def __init__(self, config: LearningProgressConfig | None = None, seed: int = 0):
        self.config = config or LearningProgressConfig()
        self.tasks = resolve_tasks(self.config.tasks, self.config.tasks_from, self.name)
        self.keys = [task_key(t) for t in self.tasks]
        self.index = {k: i for i, k in enumerate(self.keys)}
        n = len(self.tasks)
        self.p_fast = np.zeros(n)
        self.p_slow = np.zeros(n)
        self.measured = np.zeros(n, dtype=int)
        self.random_rate = np.array(
            [
                self.config.random_success_by_task.get(k, self.config.random_success)
                for k in self.keys
            ]
        )
        for r in self.random_rate:
            normalise(0.0, float(r))
        self.rng = np.random.default_rng(seed)
        self.cursor = 0

    # --- estimates --------------------------------------------------------------------
    def update_success(self, rates: dict[str, float]) -> None:
        """One measurement of success rate per task key (unknown keys are ignored)."""
        a = self.config.alpha
        for key, raw in rates.items():
            i = self.index.get(key)
            if i is None:
                continue
            norm = normalise(float(raw), float(self.random_rate[i]))
            self.p_fast[i] = a * norm + (1 - a) * self.p_fast[i]
            self.p_slow[i] = a * self.p_fast[i] + (1 - a) * self.p_slow[i]
            self.measured[i] += 1

    def update(self, episodes: Sequence[Episode]) -> None:
        """Per-task mean success of ``episodes`` -> :meth:`update_success`."""
        wins: dict[str, list[float]] = {}
        for ep in episodes:
            wins.setdefault(task_key(ep.task), []).append(float(ep.success))
        self.update_success(
            {k: sum(v) / len(v) for k, v in wins.items() if len(v) >= self.config.min_episodes}
        )

    def learning_progress(self) -> np.ndarray:
        """LP per task ``[N]``."""
        t = self.config.theta
        return np.array(
            [learning_progress(f, s, t) for f, s in zip(self.p_fast, self.p_slow, strict=True)]
        )

    def success(self) -> np.ndarray:
        """Smoothed normalised success per task ``[N]`` (the fast EMA)."""
        return self.p_fast.copy()

    def weights(self) -> np.ndarray:
        """Sampling weights ``[N]`` (sum 1)."""
        return lp_weights(self.learning_progress(), self.success())

    # --- sampling ---------------------------------------------------------------------
    def sample(self, n: int) -> list[TaskSpec]:
        n_explore = min(n, math.ceil(self.config.explore * n))
        idx = [(self.cursor + j) % len(self.tasks) for j in range(n_explore)]
        self.cursor = (self.cursor + n_explore) % len(self.tasks)
        if n > n_explore:
            w = self.weights()
            idx += [int(i) for i in self.rng.choice(len(self.tasks), size=n - n_explore, p=w)]
        return [dict(self.tasks[i]) for i in idx]

    def stats(self) -> dict[str, float]:
        """Scalars to log: mean LP, tasks with any success, weight entropy."""
        w = self.weights()
        nz = w[w > 0]
        return {
            "curriculum/mean_lp": float(self.learning_progress().mean()),
            "curriculum/tasks_with_success": float((self.p_fast > 0).sum()),
            "curriculum/weight_entropy": float(-(nz * np.log(nz)).sum()),
        }

    # --- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "keys": list(self.keys),
            "p_fast": [float(x) for x in self.p_fast],
            "p_slow": [float(x) for x in self.p_slow],
            "measured": [int(x) for x in self.measured],
            "cursor": self.cursor,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["keys"]) != self.keys:
            raise ValueError(
                f"curriculum={self.name}: the checkpoint's task list ({len(state['keys'])} tasks) "
                f"differs from this config's ({len(self.keys)} tasks)"
            )
        self.p_fast = np.array(state["p_fast"], dtype=float)
        self.p_slow = np.array(state["p_slow"], dtype=float)
        self.measured = np.array(state["measured"], dtype=int)
        self.cursor = int(state["cursor"])
        self.rng.bit_generator.state = state["rng"]
