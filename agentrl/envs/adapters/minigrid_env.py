"""BabyAI / MiniGrid levels as agentrl text envs.

Needs ``pip install 'agentrl[minigrid]'``. Wraps any MiniGrid or BabyAI level
(``env_name``, default ``BabyAI-GoToRedBallNoDists-v0``). The level is seeded by the task.

Observation: ``"Mission: <mission>\\n"``, then the agent's egocentric 7x7 view as text:
one line per visible object, closest first, e.g. ``"a red ball, 2 steps forward and
1 step left"``, ``"a closed yellow door, 3 steps forward"``, a line for what is right in
front of the agent (``"In front of you: a wall."``) and what it carries, then one line
of feedback for the last action (``"You moved forward."``, ``"You bumped into a wall."``...).
Walls and empty floor are not listed.

Actions (case-insensitive, the first match in the text): ``turn left`` / ``left``,
``turn right`` / ``right``, ``go forward`` / ``forward``, ``pick up`` / ``pickup``,
``drop``, ``toggle`` / ``open``, ``done`` -> MiniGrid's discrete actions 0..6. Text that
names none is an invalid action: the level does not move, the reward is
``invalid_penalty`` (-0.1) and ``info["invalid_action"]`` is set.

Reward: MiniGrid's (``1 - 0.9 * steps / max_steps`` on success, else 0); terminated and
truncated as the level says (the level's ``max_steps`` ends it), ``info["success"]`` on a
positive terminal reward. ``max_turns`` (default: the level's ``max_steps`` + 20) also
truncates, counting invalid actions (which do not advance the level's own clock).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from agentrl.envs.adapters import require
from agentrl.envs.base import TextEnv

ACTIONS: dict[str, int] = {
    "turn left": 0, "left": 0, "turn right": 1, "right": 1, "go forward": 2, "forward": 2,
    "pick up": 3, "pickup": 3, "drop": 4, "toggle": 5, "open": 5, "done": 6,
}  # fmt: skip
ACTION_NAMES = ("turn left", "turn right", "go forward", "pick up", "drop", "toggle", "done")
_ACTION = re.compile(r"\b(" + "|".join(sorted(ACTIONS, key=len, reverse=True)) + r")\b")
_DOOR_STATES = {0: "open", 1: "closed", 2: "locked"}


def parse_action(text: str) -> int | None:
    """The discrete action named first in ``text``, or ``None``."""
    m = _ACTION.search(text.lower())
    return ACTIONS[m.group(1)] if m else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def describe_view(image: np.ndarray, carrying: str | None = None) -> list[str]:
    """Text lines for an egocentric MiniGrid view ``image`` ``[7, 7, 3]`` (type, color, state).

    The agent sits at the bottom middle cell ``(3, 6)`` facing up (``image[x, y]``).
    """
    from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

    width, height = image.shape[0], image.shape[1]
    ax, ay = width // 2, height - 1
    seen = []
    for x in range(width):
        for y in range(height):
            kind = IDX_TO_OBJECT.get(int(image[x, y, 0]), "unseen")
            if kind in ("unseen", "empty", "wall", "floor", "agent"):
                continue
            color = IDX_TO_COLOR.get(int(image[x, y, 1]), "")
            state = _DOOR_STATES.get(int(image[x, y, 2]), "") if kind == "door" else ""
            name = " ".join(p for p in ("a", state, color, kind) if p)
            forward, side = ay - y, x - ax
            where = []
            if forward:
                where.append(f"{_plural(forward, 'step')} forward")
            if side:
                where.append(f"{_plural(abs(side), 'step')} {'right' if side > 0 else 'left'}")
            seen.append((forward + abs(side), f"{name}, {' and '.join(where) or 'here'}"))
    lines = [text for _, text in sorted(seen)] or ["nothing of interest"]
    front = IDX_TO_OBJECT.get(int(image[ax, ay - 1, 0]), "unseen")
    front_text = "nothing" if front in ("empty", "floor") else f"a {front}"
    return [
        "You see: " + "; ".join(lines) + ".",
        f"In front of you: {front_text}.",
        f"You are carrying: {carrying or 'nothing'}.",
    ]


class MiniGridTextEnv(TextEnv):
    """A MiniGrid / BabyAI level with text observations and actions (module docstring).

    Args:
        env_name: a Gymnasium id of a MiniGrid or BabyAI level.
        max_turns: turn limit (default: the level's ``max_steps`` + 20).
        invalid_penalty: reward of an action text that names no action (-0.1).

    Task spec: ``{"level_seed": int}`` (the seed of the level's own reset).
    """

    def __init__(
        self,
        env_name: str = "BabyAI-GoToRedBallNoDists-v0",
        max_turns: int | None = None,
        invalid_penalty: float = -0.1,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        require("minigrid", "minigrid")
        import gymnasium as gym

        self.env_name = env_name
        self.level: Any = gym.make(env_name)
        base: Any = self.level.unwrapped
        self._limit = max_turns if max_turns is not None else int(base.max_steps) + 20
        self.max_turns = self._limit
        self.invalid_penalty = float(invalid_penalty)
        self._image: np.ndarray | None = None

    def sample_task(self) -> dict[str, Any]:
        return {"level_seed": int(self.np_random.integers(2**31))}

    def _observe(self, obs: dict[str, Any], feedback: str) -> str:
        self._image = obs["image"]
        carrying = self.level.unwrapped.carrying
        held = f"a {carrying.color} {carrying.type}" if carrying is not None else None
        lines = [f"Mission: {obs['mission']}", *describe_view(obs["image"], held), feedback]
        return "\n".join(lines) + "\n"

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if "level_seed" not in task:
            raise ValueError(f"a MiniGrid task needs 'level_seed', got {task}")
        obs, _ = self.level.reset(seed=int(task["level_seed"]))
        self.max_turns = self._limit
        self._mission = str(obs["mission"])
        return self._observe(obs, "Start."), {"mission": self._mission}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        act = parse_action(action)
        if act is None:
            obs = {"image": self._image, "mission": self._mission}
            text = self._observe(obs, f"Invalid action. Say one of: {', '.join(ACTION_NAMES)}.")
            return text, self.invalid_penalty, False, {"invalid_action": True}
        before = self.level.unwrapped.agent_pos
        obs, reward, terminated, truncated, _ = self.level.step(act)
        if act == 2 and tuple(self.level.unwrapped.agent_pos) == tuple(before):
            feedback = "You bumped into something."
        else:
            feedback = f"You did: {ACTION_NAMES[act]}."
        won = bool(terminated and reward > 0)
        text = self._observe(obs, feedback)
        if truncated and not terminated:  # the level's time limit: report it as truncation
            self.max_turns = self._turn
        return text, float(reward), bool(terminated), {"success": won, "invalid_action": False}

    def close(self) -> None:
        self.level.close()
