"""Test envs that fail on purpose (imported by Ray workers through ``imports``).

``agentrl-test/Faulty-v0`` plays three turns (reward -1 per turn, success at the end).
Its ``fault`` kwarg picks what goes wrong on the second step of the episodes whose reset
seed is in ``fault_seeds``: ``"hang"`` blocks for ``hang_s`` seconds, ``"raise"`` raises.
``step_sleep`` slows every step (so a test can act while a collection is under way).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import gymnasium as gym

from agentrl.envs.base import TextEnv


class FaultyEnv(TextEnv):
    max_turns = 3

    def __init__(
        self,
        fault: str = "none",
        fault_seeds: tuple[int, ...] = (),
        step_sleep: float = 0.0,
        hang_s: float = 3600.0,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode)
        self.fault = fault
        self.fault_seeds = set(fault_seeds)
        self.step_sleep = step_sleep
        self.hang_s = hang_s
        self._seed: int | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._seed = seed
        return super().reset(seed=seed, options=options)

    def _reset(self, task: dict[str, Any]) -> str:
        return "Say a word."

    def _step(self, action: str):
        if self.step_sleep:
            time.sleep(self.step_sleep)
        if self._turn == 2 and self._seed in self.fault_seeds:
            if self.fault == "hang":
                threading.Event().wait(self.hang_s)
            elif self.fault == "raise":
                raise RuntimeError(f"injected failure at seed {self._seed}")
        done = self._turn >= 3
        return f"You said {action[:12]!r}. Again.", -1.0, done, {"success": done}


if "agentrl-test/Faulty-v0" not in gym.registry:
    gym.register("agentrl-test/Faulty-v0", entry_point=FaultyEnv)
