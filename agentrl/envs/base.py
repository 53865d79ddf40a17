"""Base class for multi-turn text environments.

A :class:`TextEnv` is a ``gymnasium.Env[str, str]``: observations and actions are strings
over the printable charset. Subclasses implement :meth:`_reset` and :meth:`_step`; the base
class handles the task spec (``reset(options={"task": spec})``), the turn limit, the
standard info keys (``success``, ``task_id``, ``invalid_action``) and the error raised
when stepping after the episode ended.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
from gymnasium import spaces

PRINTABLE = string.printable
MAX_TEXT = 4096


def text_space(max_length: int = MAX_TEXT) -> spaces.Text:
    """A Gymnasium ``Text`` space over printable characters (the default is alphanumeric)."""
    return spaces.Text(max_length=max_length, min_length=0, charset=PRINTABLE)


class TextEnv(gym.Env[str, str]):
    """A multi-turn text environment.

    Subclasses set ``max_turns`` and implement:

    - ``_reset(task) -> (observation, info)``: start an episode for ``task`` (a dict,
      possibly empty: then sample one with ``self.np_random``).
    - ``_step(action) -> (observation, reward, terminated, info)``: one turn. Truncation
      at ``max_turns`` is added by the base class. ``info`` should carry ``"success"``.
    - ``sample_task() -> dict`` (optional): a task from the env's default distribution.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    max_turns: int = 20

    def __init__(self, render_mode: str | None = None):
        self.observation_space = text_space()
        self.action_space = text_space()
        self.render_mode = render_mode
        self._turn = 0
        self._done = True
        self._last_obs = ""
        self.task: dict[str, Any] = {}

    # --- subclass API ---------------------------------------------------------------
    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        raise NotImplementedError

    def sample_task(self) -> dict[str, Any]:
        """A task from the default distribution (uses ``self.np_random``)."""
        return {}

    # --- gymnasium API ----------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        options = options or {}
        task = options.get("task") or self.sample_task()
        self.task = dict(task)
        self._turn = 0
        self._done = False
        obs, info = self._reset(self.task)
        info.setdefault("success", False)
        info.setdefault("task_id", self.task_id(self.task))
        self._last_obs = obs
        return obs, info

    def step(self, action: str):
        if self._done:
            raise RuntimeError(f"{type(self).__name__}.step() called after the episode ended; call reset()")
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, got {type(action).__name__}")
        self._turn += 1
        obs, reward, terminated, info = self._step(action)
        truncated = (not terminated) and self._turn >= self.max_turns
        info.setdefault("success", False)
        info.setdefault("invalid_action", False)
        info.setdefault("task_id", self.task_id(self.task))
        info["turn"] = self._turn
        self._done = terminated or truncated
        self._last_obs = obs
        return obs, float(reward), bool(terminated), bool(truncated), info

    def render(self):
        return self._last_obs

    @staticmethod
    def task_id(task: dict[str, Any]) -> str:
        """A stable string id for a task spec."""
        return ",".join(f"{k}={task[k]}" for k in sorted(task))
