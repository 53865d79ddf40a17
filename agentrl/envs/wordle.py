"""Wordle: find a hidden five-letter word from per-letter feedback.

The hidden word and every valid guess come from the shipped list
``agentrl/envs/assets/wordle_words.txt`` (487 common English words, package data; no
corpus download). Each turn the agent's action names a guess: the last five-letter word of
the list that occurs in the action text (case-insensitive), so ``"crane"``,
``"CRANE"`` and ``"I guess crane."`` all guess CRANE.

Observation: ``"Wordle: guess the 5-letter word in 6 tries. G = right letter and place,
Y = in the word elsewhere, - = not in the word.\\n"`` then one line per past turn:
``"CRANE G-Y--\\n"``, or ``"<text> invalid\\n"`` for an action that names no word of the
list (``<text>`` sanitised, at most 100 chars). Feedback handles repeated letters like the
original: greens first, then yellows up to the letter's remaining count.

Reward: 1.0 on the solving guess (terminated, ``info["success"]``), 0.0 for any other
valid guess, ``invalid_penalty`` (-0.1) for an invalid action, which also uses up a turn
(``info["invalid_action"]``). Truncated after ``max_turns`` (6).
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from agentrl.envs.base import PRINTABLE, TextEnv

HEADER = (
    "Wordle: guess the 5-letter word in 6 tries. G = right letter and place, "
    "Y = in the word elsewhere, - = not in the word.\n"
)
_WORD = re.compile(r"[A-Za-z]+")


@cache
def word_list() -> tuple[str, ...]:
    """The shipped word list, upper-case, in file order."""
    text = resources.files("agentrl.envs").joinpath("assets/wordle_words.txt").read_text()
    return tuple(w.upper() for w in text.split())


@cache
def _word_set() -> frozenset[str]:
    return frozenset(word_list())


def feedback(guess: str, target: str) -> str:
    """Per-letter feedback of ``guess`` against ``target``: ``G``, ``Y`` or ``-`` each."""
    out = ["-"] * 5
    left: dict[str, int] = {}
    for i, (g, t) in enumerate(zip(guess, target, strict=True)):
        if g == t:
            out[i] = "G"
        else:
            left[t] = left.get(t, 0) + 1
    for i, g in enumerate(guess):
        if out[i] != "G" and left.get(g, 0) > 0:
            out[i] = "Y"
            left[g] -= 1
    return "".join(out)


def parse_guess(text: str) -> str | None:
    """The last word of the list in ``text`` (upper-case), or ``None``."""
    words = [w.upper() for w in _WORD.findall(text) if len(w) == 5]
    return next((w for w in reversed(words) if w in _word_set()), None)


def parse_observation(observation: str) -> list[tuple[str, str]]:
    """``[(guess, feedback), ...]`` of the valid past guesses in an observation."""
    pairs = []
    for line in observation.splitlines()[1:]:
        guess, _, fb = line.rpartition(" ")
        if fb != "invalid" and len(fb) == 5 and guess in _word_set():
            pairs.append((guess, fb))
    return pairs


def consistent(words: tuple[str, ...] | list[str], history: list[tuple[str, str]]) -> list[str]:
    """The words that would have produced every ``(guess, feedback)`` of ``history``."""
    return [w for w in words if all(feedback(g, w) == fb for g, fb in history)]


def _echo(text: str) -> str:
    text = "".join(ch for ch in text if ch in PRINTABLE)
    return " ".join(text.split())[:100]


class WordleEnv(TextEnv):
    """Wordle over the shipped word list (rules in the module docstring).

    Args:
        max_turns: number of tries (6).
        invalid_penalty: reward of an invalid action (-0.1).
        render_mode: ``None`` or ``"ansi"``.

    Task spec: ``{"word": "CRANE"}`` (a word of the list, any case).
    """

    max_turns = 6

    def __init__(
        self, max_turns: int = 6, invalid_penalty: float = -0.1, render_mode: str | None = None
    ):
        super().__init__(render_mode=render_mode)
        self.max_turns = max_turns
        self.invalid_penalty = float(invalid_penalty)
        self.word = word_list()[0]
        self._obs = HEADER

    def sample_task(self) -> dict[str, Any]:
        """A uniformly random word of the list, ``{"word": ...}``."""
        words = word_list()
        return {"word": words[int(self.np_random.integers(len(words)))]}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        word = str(task.get("word", "")).upper()
        if word not in _word_set():
            raise ValueError(f"task word {task.get('word')!r} is not in the Wordle word list")
        self.word = word
        self._obs = HEADER
        return self._obs, {}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        guess = parse_guess(action)
        if guess is None:
            self._obs += f"{_echo(action)} invalid\n"
            return self._obs, self.invalid_penalty, False, {"invalid_action": True}
        fb = feedback(guess, self.word)
        self._obs += f"{guess} {fb}\n"
        won = fb == "GGGGG"
        return self._obs, (1.0 if won else 0.0), won, {"success": won, "invalid_action": False}
