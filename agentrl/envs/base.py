"""Base class for multi-turn text environments.

A :class:`TextEnv` is a ``gymnasium.Env[str, str]``: observations and actions are strings
over the printable charset. Subclasses implement :meth:`_reset` and :meth:`_step`; the base
class handles the task spec (``reset(options={"task": spec})``), the turn limit, the
standard info keys (``success``, ``task_id``, ``invalid_action``) and the error raised
when stepping after the episode ended.
"""

from __future__ import annotations

import abc
import copy
import string
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agentrl.policy.chat import ToolSpec
from agentrl.types import Episode

PRINTABLE = string.printable
MAX_TEXT = 4096


def text_space(max_length: int = MAX_TEXT) -> spaces.Text:
    """A Gymnasium ``Text`` space over printable characters (the default is alphanumeric)."""
    return spaces.Text(max_length=max_length, min_length=0, charset=PRINTABLE)


class TextEnv(gym.Env[str, str]):
    """A multi-turn text environment.

    Subclasses set ``max_turns`` and implement:

    - ``_reset(task) -> observation`` or ``(observation, info)``: start an episode for
      ``task`` (a dict, possibly empty: then sample one with ``self.np_random``).
    - ``_step(action) -> (observation, reward, terminated)`` or ``(observation, reward,
      terminated, info)``: one turn. Truncation at ``max_turns`` is added by the base
      class. ``info`` should carry ``"success"`` (default: ``terminated and reward > 0``).
    - ``sample_task() -> dict`` (optional): a task from the env's default distribution.

    That is all a user's env needs (docs/howto_env.md has a complete example); register
    it with :func:`register_env` and check it with ``agentrl check-env``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    max_turns: int = 20
    conversational: ClassVar[bool] = False
    """True when every observation is the env's *new* message (the agent keeps the
    conversation); False when it is the whole state (a transcript), which the agent sees as
    a fresh one-message conversation each turn. ``docs/conversations.md``."""
    tools: ClassVar[tuple[ToolSpec, ...]] = ()
    """Tools the agent may call, passed to the chat template (:class:`ToolEnv` executes them)."""

    def __init__(self, render_mode: str | None = None):
        self.observation_space = text_space()
        self.action_space = text_space()
        self.render_mode = render_mode
        self._turn = 0
        self._done = True
        self._last_obs = ""
        self.task: dict[str, Any] = {}

    # --- subclass API ---------------------------------------------------------------
    def _reset(self, task: dict[str, Any]) -> str | tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def _step(
        self, action: str
    ) -> tuple[str, float, bool] | tuple[str, float, bool, dict[str, Any]]:
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
        out = self._reset(self.task)
        obs, info = (out, {}) if isinstance(out, str) else out
        info = dict(info)
        info.setdefault("success", False)
        info.setdefault("task_id", self.task_id(self.task))
        self._last_obs = obs
        return obs, info

    def step(self, action: str):
        if self._done:
            raise RuntimeError(
                f"{type(self).__name__}.step() called after the episode ended; call reset()"
            )
        if not isinstance(action, str):
            raise TypeError(f"action must be a str, got {type(action).__name__}")
        self._turn += 1
        out = self._step(action)
        if len(out) == 3:
            obs, reward, terminated = out  # type: ignore[misc]
            info: dict[str, Any] = {"success": bool(terminated and reward > 0)}
        else:
            obs, reward, terminated, info = out  # type: ignore[misc]
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

    # --- optional hooks: how reward models read an episode, and tree search ----------
    def intent(self, task: dict[str, Any]) -> str | None:
        """The instruction of ``task`` as a reward model reads it (:mod:`agentrl.rewards`);
        ``None`` (the default): the episode's first observation."""
        return None

    def response_text(self, episode: Episode) -> str | None:
        """What the agent produced in ``episode``, as a reward model reads it; ``None`` (the
        default): the text the final observation adds to the first one."""
        return None

    def clone(self) -> TextEnv:
        """An independent copy at the current state (MCTS expands from copies). The default
        deep-copies the env; override it where that is slow or cannot copy the state."""
        try:
            return copy.deepcopy(self)
        except Exception as e:  # anything a member's __deepcopy__ raises
            raise TypeError(
                f"MCTS needs a cloneable env: {type(self).__name__} cannot be deep-copied ({e}); "
                "override TextEnv.clone()"
            ) from e

    @staticmethod
    def task_id(task: dict[str, Any]) -> str:
        """A stable string id for a task spec."""
        return ",".join(f"{k}={task[k]}" for k in sorted(task))


class ScoresResponses(abc.ABC):
    """An env that judges responses itself (a mixin beside :class:`TextEnv`).

    ARMAP's synthesize stage then makes its pairs from the env's own scorer, corruptions and
    reference solutions (``docs/rewards.md``); envs without it get pairs ranked by return.
    Game of 24 is one.
    """

    @abc.abstractmethod
    def score_response(self, task: dict[str, Any], response: str) -> float:
        """Above 0 when ``response`` (in this env's response form) solves ``task``."""

    @abc.abstractmethod
    def corrupt_response(self, task: dict[str, Any], response: str, rng: np.random.Generator) -> str:
        """A wrong variant of a good ``response``."""

    def reference_response(self, task: dict[str, Any]) -> str | None:
        """A known-good response to ``task``, or ``None`` (the default: none known)."""
        return None


def register_env(env_id: str, entry_point: Any, alias: str | None = None, **kwargs: Any) -> str:
    """Register a text env with Gymnasium (and an optional config alias); returns the id.

    Args:
        env_id: the Gymnasium id, e.g. ``"myproject/Counter-v0"``.
        entry_point: the class, a factory, or a lazy ``"module:Class"`` string.
        alias: a short name usable as ``env=<alias>`` in configs and CLIs.
        **kwargs: default constructor kwargs.

    Registering the same id again (a module imported twice, e.g. in a Ray worker) is a no-op.
    """
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=entry_point, kwargs=kwargs)
    if alias is not None:
        from agentrl.envs import ENV_ALIASES

        if ENV_ALIASES.get(alias, env_id) != env_id:
            raise ValueError(f"alias {alias!r} already names {ENV_ALIASES[alias]!r}")
        ENV_ALIASES[alias] = env_id
    return env_id
