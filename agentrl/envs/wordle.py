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

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: the guess, its feedback and the feedback spelled out per letter.
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


def instructions(max_turns: int = 6) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    return (
        f"Let's play Wordle. I am thinking of a common 5-letter English word. Find it in at "
        f"most {max_turns} guesses. Reply with one 5-letter word on a single line, e.g. "
        f'"CRANE"; it must be a common English word from my list of {len(word_list())} '
        "words, or the guess is invalid and still uses a try.\n"
        "After each guess I give one symbol per letter: G = the right letter in the right "
        "place, Y = the letter is in the word but in another place, - = the letter is not in "
        "the word (a repeated letter is marked Y only as often as it occurs in the word)."
    )


_MEANING = {"G": "right place", "Y": "elsewhere", "-": "not in the word"}


def describe_feedback(guess: str, fb: str) -> str:
    """``"CRANE G-Y--"`` spelled out: ``"CRANE G-Y--: C right place, R not in the word, ..."``."""
    letters = ", ".join(f"{g} {_MEANING[f]}" for g, f in zip(guess, fb, strict=True))
    return f"{guess} {fb}: {letters}."


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
        return self._obs, {"instructions": instructions(self.max_turns)}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        guess = parse_guess(action)
        if guess is None:
            self._obs += f"{_echo(action)} invalid\n"
            message = self._closing(
                "Invalid guess: your reply names no word of my list. Reply with one common "
                '5-letter English word, e.g. "CRANE". This used a try.'
            )
            return (
                self._obs,
                self.invalid_penalty,
                False,
                {"invalid_action": True, "message": message},
            )
        fb = feedback(guess, self.word)
        self._obs += f"{guess} {fb}\n"
        won = fb == "GGGGG"
        if won:
            n = self._turn
            message = f"{guess} {fb}: correct! You found the word in {n} guess{'es' * (n > 1)}."
        else:
            message = self._closing(describe_feedback(guess, fb))
        info = {"success": won, "invalid_action": False, "message": message}
        return self._obs, (1.0 if won else 0.0), won, info

    def _closing(self, message: str) -> str:
        """``message``, plus a closing sentence when no try is left."""
        return f"{message} That was your last guess." if self._turn >= self.max_turns else message
