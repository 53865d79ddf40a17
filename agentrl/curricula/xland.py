"""``xland``: dynamic task generation with XLand's three filters.

Open-Ended Learning Team (DeepMind 2021, arXiv 2107.12808), section 5: a candidate task
enters the training pool only if, estimated from a few of the agent's rollouts,

- it is not too easy:      ``P(success) < max_success``            (m_s)
- it is not too hard:      ``P(reward > 0) > min_nonzero``         (m_nz)
- the agent beats a control policy on it by ``min_margin`` (m_c):
  ``P(success) - P_control(success) >= min_margin``.

How it runs here: a share ``probe`` of every batch plays candidate tasks (drawn uniformly
from the task space, ``concurrent`` at a time, ``probe_episodes`` rollouts each); the rest
plays the pool uniformly (candidates only, while the pool is empty). A pool task whose
recent success (last ``probe_episodes`` episodes) reaches ``max_success`` is retired, and
may be proposed again later. The control policy's success comes from config
(``control_success`` / ``control_success_by_task``) or from playing a scripted policy of
the env (``control_policy: random`` with ``control_env``), once per task and cached.

XLand's generations (a fresh policy kickstarted toward the previous generation with an
annealed KL term) are :mod:`agentrl.curricula.kickstart`; threshold sweeps run with Hydra
multirun (docs/curricula.md). Not here: population-based tuning of the thresholds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrl.curricula.learning_progress import resolve_tasks, task_key
from agentrl.registry import CURRICULA
from agentrl.types import Episode, TaskSpec


def passes_filters(
    success: float,
    nonzero: float,
    control: float,
    max_success: float,
    min_nonzero: float,
    min_margin: float,
) -> tuple[bool, str]:
    """XLand's three filters on estimated rates; returns ``(keep, reason)``.

    ``reason`` is ``"ok"``, ``"too easy"``, ``"too hard"`` or ``"no better than control"``.
    """
    if success >= max_success:
        return False, "too easy"
    if nonzero <= min_nonzero:
        return False, "too hard"
    if success - control < min_margin - 1e-9:  # "at least m_c", up to float error
        return False, "no better than control"
    return True, "ok"


@dataclass
class XLandConfig:
    """Config keys of ``curriculum=xland`` (module docstring)."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    tasks_from: str = ""
    max_success: float = 0.8
    min_nonzero: float = 0.1
    min_margin: float = 0.05
    probe: float = 0.25
    probe_episodes: int = 4
    concurrent: int = 4
    control_success: float = 0.0
    control_success_by_task: dict[str, float] = field(default_factory=dict)
    control_policy: str = ""
    control_env: str = ""
    control_episodes: int = 10

    def __post_init__(self) -> None:
        for name in ("max_success", "min_nonzero", "probe", "control_success"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.probe_episodes < 1 or self.concurrent < 1 or self.control_episodes < 1:
            raise ValueError("probe_episodes, concurrent and control_episodes must be >= 1")
        if self.control_policy and not self.control_env:
            raise ValueError("control_policy needs control_env (the env to play it in)")


@CURRICULA.register("xland")
class XLandCurriculum:
    """Filtered task pool (module docstring). State (JSON): pool, pending candidates and
    their rollout counts, recent pool results, cached control rates, counters, RNG."""

    Config = XLandConfig

    def __init__(self, config: XLandConfig | None = None, seed: int = 0):
        self.config = config or XLandConfig()
        self.tasks = resolve_tasks(self.config.tasks, self.config.tasks_from, "xland")
        self.index = {task_key(t): i for i, t in enumerate(self.tasks)}
        self.rng = np.random.default_rng(seed)
        self.pool: list[str] = []
        self.pending: dict[str, list[int]] = {}  # key -> [episodes, successes, nonzero]
        self.recent: dict[str, list[int]] = {}  # pool key -> last successes
        self.control: dict[str, float] = {}
        self.counts = {
            "accepted": 0,
            "too easy": 0,
            "too hard": 0,
            "no better than control": 0,
            "retired": 0,
        }
        self._cursor = 0

    # --- control policy ---------------------------------------------------------------
    def control_rate(self, key: str) -> float:
        cfg = self.config
        if key in cfg.control_success_by_task:
            return float(cfg.control_success_by_task[key])
        if not cfg.control_policy:
            return cfg.control_success
        if key not in self.control:
            import gymnasium as gym

            from agentrl.envs import make_scripted, resolve_env_id, run_scripted_episode

            env_id = resolve_env_id(cfg.control_env)
            env, policy = gym.make(env_id), make_scripted(env_id, cfg.control_policy)
            wins = [
                run_scripted_episode(env, policy, s, self.tasks[self.index[key]]).success
                for s in range(cfg.control_episodes)
            ]
            env.close()
            self.control[key] = sum(wins) / len(wins)
        return self.control[key]

    # --- sampling ---------------------------------------------------------------------
    def _refill(self) -> None:
        free = [k for k in self.index if k not in self.pool and k not in self.pending]
        while len(self.pending) < self.config.concurrent and free:
            k = free.pop(int(self.rng.integers(len(free))))
            self.pending[k] = [0, 0, 0]

    def sample(self, n: int) -> list[TaskSpec]:
        self._refill()
        n_probe = n if not self.pool else min(n, math.ceil(self.config.probe * n))
        keys: list[str] = []
        pending = list(self.pending)
        for j in range(n_probe if pending else 0):
            keys.append(pending[(self._cursor + j) % len(pending)])
        self._cursor += n_probe
        pool = self.pool or list(self.index)
        keys += [pool[int(i)] for i in self.rng.integers(len(pool), size=n - len(keys))]
        return [dict(self.tasks[self.index[k]]) for k in keys]

    # --- learning from episodes ---------------------------------------------------------
    def update(self, episodes: Sequence[Episode]) -> None:
        cfg = self.config
        for ep in episodes:
            key = task_key(ep.task)
            if key in self.pending:
                stats = self.pending[key]
                stats[0] += 1
                stats[1] += int(ep.success)
                stats[2] += int(ep.success or ep.env_reward > 0)
            elif key in self.pool:
                window = self.recent.setdefault(key, [])
                window.append(int(ep.success))
                del window[: -cfg.probe_episodes]
        for key, (n, wins, nonzero) in list(self.pending.items()):
            if n < cfg.probe_episodes:
                continue
            del self.pending[key]
            keep, reason = passes_filters(
                wins / n,
                nonzero / n,
                self.control_rate(key),
                cfg.max_success,
                cfg.min_nonzero,
                cfg.min_margin,
            )
            self.counts["accepted" if keep else reason] += 1
            if keep:
                self.pool.append(key)
                self.recent[key] = []
        for key in list(self.pool):
            window = self.recent.get(key, [])
            if len(window) >= cfg.probe_episodes and sum(window) / len(window) >= cfg.max_success:
                self.pool.remove(key)
                self.recent.pop(key, None)
                self.counts["retired"] += 1

    def stats(self) -> dict[str, float]:
        return {
            "curriculum/pool": float(len(self.pool)),
            **{f"curriculum/{k}": float(v) for k, v in self.counts.items()},
        }

    # --- checkpoints ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "pool": list(self.pool),
            "pending": {k: list(v) for k, v in self.pending.items()},
            "recent": {k: list(v) for k, v in self.recent.items()},
            "control": dict(self.control),
            "counts": dict(self.counts),
            "cursor": self._cursor,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = [k for k in [*state["pool"], *state["pending"]] if k not in self.index]
        if unknown:
            raise ValueError(
                f"curriculum=xland: the checkpoint names tasks not in this config's task list: {unknown[:3]}"
            )
        self.pool = list(state["pool"])
        self.pending = {k: list(v) for k, v in state["pending"].items()}
        self.recent = {k: list(v) for k, v in state["recent"].items()}
        self.control = {k: float(v) for k, v in state["control"].items()}
        self.counts = dict(state["counts"])
        self._cursor = int(state["cursor"])
        self.rng.bit_generator.state = state["rng"]
