"""Guess the Number: find a hidden integer from higher/lower feedback.

A toy multi-turn game with a known optimum (binary search), useful for fast tests of
multi-turn credit assignment. An integer ``target`` in ``[low, high]`` is hidden (defaults
1 and 16); each turn the agent's action is text containing an integer -- the first integer
in it is the guess, so ``"7"``, ``"Guess: 7"`` and ``"I say 7."`` all guess 7.

Observation: ``"Guess the number between <low> and <high>.\\n"`` followed by one line per
past turn: ``"<guess>: lower\\n"`` (the target is lower than the guess), ``"<guess>: higher\\n"``,
``"<guess>: correct\\n"``, or ``"<text>: invalid\\n"`` when the action holds no integer or
one out of range (``<text>`` is the action, one line, cut at 100 chars).
Reward: 1.0 on the correct guess (terminated, ``info["success"]`` True), 0.0 otherwise;
invalid actions get ``invalid_penalty`` (0.0 by default, so they score like a wrong guess;
a negative value teaches a pretrained chat model the reply format faster) and
``info["invalid_action"] = True``. Truncated after
``max_turns`` (6) turns; binary search always wins within ``ceil(log2(16)) + 1 = 5``.

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: ``"Higher."``, ``"Lower."``, ``"Correct! ..."`` or why a guess is invalid.
"""

from __future__ import annotations

import re
from typing import Any

from agentrl.envs.base import PRINTABLE, TextEnv

_INT = re.compile(r"-?\d+")
_HEADER = re.compile(r"between (-?\d+) and (-?\d+)")


def parse_guess(text: str) -> int | None:
    """The first integer in ``text`` (``None`` if there is none or it is absurdly long)."""
    m = _INT.search(text)
    if m is None or len(m.group()) > 18:
        return None
    return int(m.group())


def _echo(text: str, max_chars: int = 100) -> str:
    """An action as echoed in the observation: printable, one line, cut at ``max_chars``."""
    text = "".join(ch for ch in text if ch in PRINTABLE)
    return " ".join(text.split())[:max_chars]


def header(low: int, high: int) -> str:
    """The first line of every observation."""
    return f"Guess the number between {low} and {high}.\n"


def parse_observation(observation: str) -> tuple[int, int, list[tuple[str, str]]]:
    """Split an observation into ``(low, high, [(guess_text, feedback), ...])``."""
    lines = observation.splitlines()
    m = _HEADER.search(lines[0]) if lines else None
    if m is None:
        raise ValueError(f"not a GuessTheNumber observation: {observation[:80]!r}")
    turns = []
    for line in lines[1:]:
        text, _, feedback = line.rpartition(":")
        turns.append((text.strip(), feedback.strip()))
    return int(m.group(1)), int(m.group(2)), turns


def instructions(low: int, high: int, max_turns: int) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    return (
        f"Let's play Guess the Number. I am thinking of a whole number between {low} and "
        f"{high} (both included). Find it in at most {max_turns} guesses. After each guess I "
        'answer "Higher." (my number is higher than your guess), "Lower." (my number is '
        'lower) or "Correct!".\n'
        f'Reply with just your guess on a single line: one number, e.g. "{(low + high) // 2}".'
    )


class GuessTheNumberEnv(TextEnv):
    """Guess a hidden integer in ``[low, high]`` with higher/lower feedback.

    Args:
        low: smallest possible target (1).
        high: largest possible target (16).
        max_turns: turn limit (6).
        invalid_penalty: reward of an invalid guess (0.0).
        render_mode: ``None`` or ``"ansi"``.

    Task spec: ``{"target": 7}``, optionally with ``"low"``/``"high"`` overriding the range
    (``{"low": 1, "high": 50}`` alone samples the target uniformly in that range).
    """

    max_turns = 6

    def __init__(
        self,
        low: int = 1,
        high: int = 16,
        max_turns: int = 6,
        invalid_penalty: float = 0.0,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if low > high:
            raise ValueError(f"low ({low}) must be <= high ({high})")
        self.low, self.high = int(low), int(high)
        self.max_turns = max_turns
        self.invalid_penalty = float(invalid_penalty)
        self.target = low
        self._range = (self.low, self.high)
        self._obs = ""

    def sample_task(self) -> dict[str, Any]:
        """A uniformly random target in ``[low, high]``, ``{"target": ...}``."""
        return {"target": int(self.np_random.integers(self.low, self.high + 1))}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        low, high = int(task.get("low", self.low)), int(task.get("high", self.high))
        if low > high:
            raise ValueError(f"task low ({low}) must be <= high ({high})")
        if "target" not in task:  # a range-only task: sample the target (recorded in the task)
            task["target"] = int(self.np_random.integers(low, high + 1))
        target = int(task["target"])
        if not low <= target <= high:
            raise ValueError(f"task target {target} is outside [{low}, {high}]")
        self._range, self.target = (low, high), target
        self._obs = header(low, high)
        return self._obs, {"instructions": instructions(low, high, self.max_turns)}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        guess = parse_guess(action)
        low, high = self._range
        if guess is None or not low <= guess <= high:
            self._obs += f"{_echo(action)}: invalid\n"
            if guess is None:
                message = "Invalid guess: your reply has no number. Reply with a single number"
            else:
                message = f"Invalid guess: {guess} is not a possible number; guess one"
            message += f" between {low} and {high}."
            info = {"success": False, "invalid_action": True, "message": self._closing(message)}
            return self._obs, self.invalid_penalty, False, info
        if guess == self.target:
            feedback = "correct"
        else:
            feedback = "lower" if self.target < guess else "higher"
        self._obs += f"{guess}: {feedback}\n"
        won = feedback == "correct"
        if won:
            n = self._turn
            message = f"Correct! You found it in {n} guess{'es' * (n > 1)}."
        else:
            message = self._closing(f"{feedback.capitalize()}.")
        info = {"success": won, "invalid_action": False, "message": message}
        return self._obs, (1.0 if won else 0.0), won, info

    def _closing(self, message: str) -> str:
        """``message``, plus a closing sentence when no guess is left."""
        return f"{message} That was your last guess." if self._turn >= self.max_turns else message
