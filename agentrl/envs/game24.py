"""Game of 24: combine four numbers with + - * / into 24, one arithmetic step per turn.

The puzzle is four integers in ``[1, 13]`` (only solvable ones are generated: a brute-force
solver over exact fractions checks every candidate, so a seed fixes the puzzle). Each turn
the agent writes one step ``"a op b = c"`` (e.g. ``"4 * 6 = 24"``): ``a`` and ``b`` must be
numbers still left, ``op`` one of ``+ - * /`` (``x`` also means ``*``), and ``c`` the exact
result (fractions as ``"8/3"``). The step replaces ``a`` and ``b`` by ``c``. After three
valid steps one number is left: reward 1.0 and ``info["success"]`` if it is 24, else 0.0.

Relaxed action forms for small models (env kwargs): ``require_result=False`` accepts the
short ``"4 * 6"`` (the env computes the result), ``letters=True`` names the numbers left
(``Numbers left: a=4 b=6 c=1 d=1``) and accepts ``"a * b"``. Either way the history and
``info["step"]`` show the step written out in full.

An invalid step (unparseable, a number not left, a wrong result, division by zero) never
raises: it costs ``invalid_penalty`` (reward ``-invalid_penalty``), sets
``info["invalid_action"]`` and ends the episode (``terminated``) -- so a trajectory is at
most three steps and its outcome is a function of its text alone.

Observation::

    Use + - * / to make 24 from: 4 6 1 1
    Write one step per turn, like "4 * 6 = 24".
    4 * 6 = 24 | left: 24 1 1
    Numbers left: 24 1 1

ARMAP hooks (used by :mod:`agentrl.rewards.armap`): :meth:`Game24Env.intent`,
:meth:`~Game24Env.response_text` (the steps, one a line), :meth:`~Game24Env.score_response`
(the env's own scorer of a written solution), :meth:`~Game24Env.corrupt_response` (the
paper's corruptions: hallucinated number, missing number, format error, number not in the
puzzle), :meth:`~Game24Env.reference_response` (the solver's solution), and
:meth:`~Game24Env.get_state` / :meth:`~Game24Env.set_state` / :meth:`~Game24Env.clone` for
tree search. With ``hide_results=True`` the response is the plan only (``"4 * 6"`` per step,
no ``"= 24"``), so a reward model has to do the arithmetic to judge it; the corruptions are
then :data:`PLAN_CORRUPTIONS` (see :func:`corrupt_plan`).

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: the step written out in full and the numbers left, or why a step is invalid.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
from fractions import Fraction
from typing import Any

import numpy as np

from agentrl.envs.base import ScoresResponses, TextEnv
from agentrl.types import Episode, TaskSpec

TARGET = 24
_NUM = r"-?\d+(?:/\d+)?"
_STEP = re.compile(rf"^\s*({_NUM})\s*([-+*/xX×])\s*({_NUM})\s*=\s*({_NUM})\s*$")
_SHORT = re.compile(rf"^\s*({_NUM})\s*([-+*/xX×])\s*({_NUM})\s*$")
_OPS = ("+", "-", "*", "/")
FULL_HINT = 'like "4 * 6 = 24".'
SHORT_HINT = 'like "4 * 6" (the result is computed for you).'
LETTER_HINT = 'like "a * b" (letters name the numbers left; the result is computed for you).'
LETTERS = "abcdefgh"
_LETTER_STEP = re.compile(rf"^\s*([{LETTERS}])\s*([-+*/xX×])\s*([{LETTERS}])\s*$")


def fmt(x: Fraction) -> str:
    """``Fraction(8, 3) -> "8/3"``, ``Fraction(24) -> "24"``."""
    return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"


def parse_number(text: str) -> Fraction | None:
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def apply_op(a: Fraction, op: str, b: Fraction) -> Fraction | None:
    """``a op b``, or ``None`` for a division by zero."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        return None
    return a / b


def parse_step(text: str) -> tuple[Fraction, str, Fraction, Fraction] | None:
    """``"4 * 6 = 24" -> (4, "*", 6, 24)``; ``None`` if the text is not one step."""
    m = _STEP.match(text.strip().splitlines()[0] if text.strip() else "")
    if m is None:
        return None
    a, b, c = (parse_number(m.group(i)) for i in (1, 3, 4))
    if a is None or b is None or c is None:
        return None
    op = "*" if m.group(2) in ("x", "X", "×") else m.group(2)
    return a, op, b, c


def apply_step(
    numbers: list[Fraction], text: str, require_result: bool = True
) -> tuple[list[Fraction] | None, str, str]:
    """Apply one written step to ``numbers``.

    Returns ``(new_numbers, "", "a op b = c")`` (the step written out in full) or
    ``(None, why, "")``. With ``require_result=False`` the short form ``"a op b"`` is
    accepted too and the result is computed (a result that is written must still be right).
    """
    step: tuple[Fraction, str, Fraction, Fraction | None] | None = parse_step(text)
    if step is None and not require_result:
        m = _SHORT.match(text.strip().splitlines()[0] if text.strip() else "")
        a0, b0 = (parse_number(m.group(1)), parse_number(m.group(3))) if m else (None, None)
        if m and a0 is not None and b0 is not None:
            step = (a0, "*" if m.group(2) in ("x", "X", "×") else m.group(2), b0, None)
    if step is None:
        return None, "format", ""
    a, op, b, c = step
    left = list(numbers)
    for x in (a, b):
        if x not in left:
            return None, "number not left", ""
        left.remove(x)
    result = apply_op(a, op, b)
    if result is None:
        return None, "division by zero", ""
    if c is not None and result != c:
        return None, "wrong result", ""
    return [*left, result], "", f"{fmt(a)} {op} {fmt(b)} = {fmt(result)}"


@functools.lru_cache(maxsize=20000)
def _solve(numbers: tuple[Fraction, ...]) -> tuple[str, ...] | None:
    if len(numbers) == 1:
        return () if numbers[0] == TARGET else None
    for i, j in itertools.permutations(range(len(numbers)), 2):
        a, b = numbers[i], numbers[j]
        rest = [numbers[k] for k in range(len(numbers)) if k not in (i, j)]
        for op in _OPS:
            if op in ("+", "*") and i > j:  # commutative: one order is enough
                continue
            c = apply_op(a, op, b)
            if c is None:
                continue
            tail = _solve(tuple(sorted([*rest, c])))
            if tail is not None:
                return (f"{fmt(a)} {op} {fmt(b)} = {fmt(c)}", *tail)
    return None


def solve(numbers: list[int] | list[Fraction] | tuple[Any, ...]) -> list[str] | None:
    """The steps of a solution (brute force over exact fractions), or ``None`` if unsolvable."""
    out = _solve(tuple(sorted(Fraction(n) for n in numbers)))
    return None if out is None else list(out)


def score_response(task: TaskSpec, response: str, hide_results: bool = False) -> float:
    """The env's own scorer: 1.0 if ``response`` (steps, one a line) solves the puzzle, else 0.0.

    Steps are ``"a op b = c"``; with ``hide_results`` the plan form ``"a op b"`` (the
    result computed here) is accepted too, and a result that is written must still be right.
    """
    numbers = [Fraction(n) for n in task["numbers"]]
    lines = [ln for ln in response.splitlines() if ln.strip()]
    if len(lines) != len(numbers) - 1:
        return 0.0
    for line in lines:
        new, _why, _ = apply_step(numbers, line, require_result=not hide_results)
        if new is None:
            return 0.0
        numbers = new
    return 1.0 if numbers == [TARGET] else 0.0


CORRUPTIONS = ("hallucinated_number", "missing_number", "format_error", "number_not_in_puzzle")


def corrupt_response(
    task: TaskSpec,
    response: str,
    rng: np.random.Generator,
    kind: str | None = None,
    hide_results: bool = False,
) -> str:
    """A wrong variant of ``response`` (the ARMAP corruptions of a correct solution).

    Kinds (:data:`CORRUPTIONS`): ``hallucinated_number`` (a result is off),
    ``missing_number`` (the last step is dropped, so a number is never used),
    ``format_error`` (a step loses its ``=``), ``number_not_in_puzzle`` (an operand is
    replaced by a number the puzzle lacks). With ``hide_results`` the response is a plan
    (``"a op b"`` per step) and :func:`corrupt_plan` makes the corruption instead.
    """
    if hide_results:
        return corrupt_plan(task, response, rng, kind)
    if kind is not None and kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; valid kinds: {', '.join(CORRUPTIONS)}")
    lines = [ln for ln in response.splitlines() if ln.strip()] or ["1 + 1 = 2"]
    kind = kind or CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
    i = int(rng.integers(len(lines)))
    parsed = parse_step(lines[i])
    if kind == "missing_number" and len(lines) > 1:
        return "\n".join(lines[:-1])
    if kind == "format_error" or parsed is None:
        return "\n".join(
            [*lines[:i], lines[i].replace("=", "").replace("  ", " "), *lines[i + 1 :]]
        )
    a, op, b, c = parsed
    if kind == "hallucinated_number":
        c = c + int(rng.choice([-2, -1, 1, 2]))
    else:  # number_not_in_puzzle (also the fallback of missing_number for one line)
        present = {Fraction(n) for n in task["numbers"]}
        choices = [Fraction(n) for n in range(1, 14) if Fraction(n) not in present]
        a = choices[int(rng.integers(len(choices)))]
        c = apply_op(a, op, b) or c
    lines[i] = f"{fmt(a)} {op} {fmt(b)} = {fmt(c)}"
    return "\n".join(lines)


PLAN_CORRUPTIONS = ("wrong_operator", "wrong_operand", "missing_number", "number_not_in_puzzle")
"""The corruptions of a plan (``hide_results=True``): each yields a plan that is really wrong."""


def plan_step(text: str) -> tuple[Fraction, str, Fraction] | None:
    """``"4 * 6" -> (4, "*", 6)`` (a written ``"= c"`` is ignored); ``None`` if not one step."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    full = parse_step(line)
    if full is not None:
        return full[0], full[1], full[2]
    m = _SHORT.match(line)
    a, b = (parse_number(m.group(1)), parse_number(m.group(3))) if m else (None, None)
    if m is None or a is None or b is None:
        return None
    return a, "*" if m.group(2) in ("x", "X", "×") else m.group(2), b


def plan_text(step: str) -> str:
    """A step without its result: ``"4 * 6 = 24" -> "4 * 6"`` (other text unchanged)."""
    parsed = parse_step(step)
    return step if parsed is None else f"{fmt(parsed[0])} {parsed[1]} {fmt(parsed[2])}"


def _numbers_before_each_step(
    task: TaskSpec, steps: list[tuple[Fraction, str, Fraction]]
) -> list[list[Fraction]]:
    """The numbers left before each step of ``steps`` (a step that fails leaves them as they were)."""
    left = [Fraction(n) for n in task["numbers"]]
    out = []
    for a, op, b in steps:
        out.append(list(left))
        new, _, _ = apply_step(left, f"{fmt(a)} {op} {fmt(b)}", require_result=False)
        left = new if new is not None else left
    return out


def _plan_candidates(
    task: TaskSpec, lines: list[str], rng: np.random.Generator, kind: str
) -> list[list[str]]:
    """The plans that corruption ``kind`` may make of ``lines``, in a random order."""
    parsed = [plan_step(ln) for ln in lines]
    if kind == "missing_number":
        return [lines[:-1]] if len(lines) > 1 else []
    steps = [p for p in parsed if p is not None]
    if len(steps) != len(lines):
        return []  # not a plan: only the missing_number corruption applies
    before = _numbers_before_each_step(task, steps)
    puzzle = {Fraction(n) for n in task["numbers"]}
    out: list[list[str]] = []
    for i, (a, op, b) in enumerate(steps):
        variants: list[tuple[Fraction, str, Fraction]] = []
        if kind == "wrong_operator":
            variants = [(a, o, b) for o in _OPS if o != op]
        elif kind in ("wrong_operand", "number_not_in_puzzle"):
            if kind == "wrong_operand":  # another number that is left at this step
                pool = sorted(set(before[i]) - {a, b})
            else:  # a number of 1..13 that is neither in the puzzle nor left at this step
                pool = [
                    Fraction(n) for n in range(1, 14) if Fraction(n) not in puzzle | set(before[i])
                ]
            variants = [(v, op, b) for v in pool] + [(a, op, v) for v in pool]
        else:
            raise ValueError(
                f"unknown plan corruption {kind!r}; valid kinds: {', '.join(PLAN_CORRUPTIONS)}"
            )
        for x, o, y in variants:
            out.append([*lines[:i], f"{fmt(x)} {o} {fmt(y)}", *lines[i + 1 :]])
    return [out[int(k)] for k in rng.permutation(len(out))]


def corrupt_plan(
    task: TaskSpec, response: str, rng: np.random.Generator, kind: str | None = None
) -> str:
    """A wrong variant of a plan (``"a op b"`` per line) that still looks like a plan.

    Kinds (:data:`PLAN_CORRUPTIONS`): ``wrong_operator`` (one step's operator changed),
    ``wrong_operand`` (one operand replaced by another number left at that step),
    ``missing_number`` (the last step dropped), ``number_not_in_puzzle`` (an operand
    replaced by a number of 1..13 that is neither in the puzzle nor left at that step).
    Every candidate is checked with :func:`score_response`: the result differs from
    ``response`` and does not solve the puzzle. A kind with no such candidate (e.g. every
    operator reaches 24) falls back to the next kind; a response that is no plan at all gets
    an impossible step (``"0 / 0"``) appended.
    """
    if kind is not None and kind not in PLAN_CORRUPTIONS:
        raise ValueError(
            f"unknown plan corruption {kind!r}; valid kinds: {', '.join(PLAN_CORRUPTIONS)}"
        )
    lines = [" ".join(ln.split()) for ln in response.splitlines() if ln.strip()]
    first = PLAN_CORRUPTIONS.index(kind) if kind else int(rng.integers(len(PLAN_CORRUPTIONS)))
    for k in range(len(PLAN_CORRUPTIONS)):
        chosen = PLAN_CORRUPTIONS[(first + k) % len(PLAN_CORRUPTIONS)]
        for cand in _plan_candidates(task, lines, rng, chosen):
            text = "\n".join(cand)
            if text != response and score_response(task, text, hide_results=True) == 0.0:
                return text
    return "\n".join([*lines, "0 / 0"])


def response_text(episode: Episode, hide_results: bool = False) -> str:
    """A trajectory's response: its steps written out in full, one a line (the plan form
    ``"a op b"`` with ``hide_results``); an invalid step as the agent wrote it."""
    lines = []
    for t in episode.turns:
        raw = " ".join(t.action.strip().splitlines()[0].split()) if t.action.strip() else ""
        step = t.info.get("step")
        if not step:
            lines.append(raw)
        else:
            lines.append(plan_text(str(step)) if hide_results else str(step))
    return "\n".join(lines)


_WHY = {
    "format": "it is not one step written like the example",
    "number not left": "it uses a number that is not left",
    "division by zero": "it divides by zero",
    "wrong result": "the result is wrong",
}
"""The invalid-step reasons of :func:`apply_step` in words (``info["message"]``)."""


def instructions(count: int, require_result: bool = True, letters: bool = False) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    if letters:
        form = (
            "the numbers left are named by letters (a=4 b=6 c=1 d=1); write the step with two "
            'letters, like "a * b", and I compute the result'
        )
    elif require_result:
        form = 'write the step with its exact result, like "4 * 6 = 24" (fractions as 8/3)'
    else:
        form = 'write the step without its result, like "4 * 6", and I compute the result'
    return (
        f"Let's play the Game of 24. Combine the {count} numbers with + - * / to make "
        f"{TARGET}, using each number exactly once.\n"
        "Work one step per reply, on a single line: pick two of the numbers left and an "
        f"operation; {form}. The two numbers are replaced by the result. After "
        f"{count - 1} steps one number is left, and you win if it is {TARGET}. An invalid "
        "step (a number that is not left, a wrong result, any other text) ends the game."
    )


class Game24Env(TextEnv, ScoresResponses):
    """Game of 24 with one arithmetic step per turn.

    Args:
        low / high: range of the puzzle's four numbers (1..13).
        invalid_penalty: an invalid step is rewarded ``-invalid_penalty`` and ends the episode.
        require_result: steps must state their result (``"4 * 6 = 24"``); with ``False``
            the short form ``"4 * 6"`` is accepted and the env computes the result (a
            relaxed action form that small models can learn without arithmetic).
        letters: name the numbers left by letters (``Numbers left: a=4 b=6 c=1 d=1``) and
            accept steps like ``"a * b"`` (the result is computed); the most relaxed form,
            for tiny models that cannot yet copy numbers from the prompt.
        hide_results: the ARMAP response (:meth:`response_text`, :meth:`reference_response`)
            is the plan only, each step ``"a op b"`` without ``"= c"``: the results are
            the env's arithmetic, and a reward model that sees them can read success off
            the last line (``"= 24"``); without them it must judge the plan. The scorer
            and the corruptions (:data:`PLAN_CORRUPTIONS`) follow the same form. Play
            (observations, rewards, success) is the same either way.
        render_mode: ``None`` or ``"ansi"``.

    Task spec: ``{"numbers": [4, 6, 1, 1]}`` (need not be solvable); an empty spec samples a
    solvable puzzle with ``self.np_random``.
    """

    def __init__(
        self,
        low: int = 1,
        high: int = 13,
        invalid_penalty: float = 0.1,
        require_result: bool = True,
        letters: bool = False,
        render_mode: str | None = None,
        hide_results: bool = False,
    ):
        super().__init__(render_mode=render_mode)
        if not 1 <= low <= high:
            raise ValueError(f"need 1 <= low <= high, got low={low}, high={high}")
        self.low, self.high = int(low), int(high)
        self.invalid_penalty = float(invalid_penalty)
        self.require_result = bool(require_result)
        self.letters = bool(letters)
        self.hide_results = bool(hide_results)
        self.max_turns = 3
        self.numbers: list[Fraction] = []
        self.history: list[str] = []

    # --- TextEnv API -----------------------------------------------------------------------
    def sample_task(self) -> dict[str, Any]:
        """A solvable puzzle drawn with ``self.np_random`` (rejection sampling)."""
        for _ in range(10_000):
            nums = sorted(int(x) for x in self.np_random.integers(self.low, self.high + 1, size=4))
            if solve(nums) is not None:
                return {"numbers": nums}
        raise RuntimeError(f"no solvable puzzle found in [{self.low}, {self.high}]")

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        nums = task.get("numbers")
        if not isinstance(nums, list | tuple) or len(nums) < 2:
            raise ValueError(
                f"a Game24 task needs 'numbers': a list of >= 2 integers, got {nums!r}"
            )
        task["numbers"] = [int(n) for n in nums]
        self.numbers = [Fraction(n) for n in task["numbers"]]
        self.history = []
        self.max_turns = len(self.numbers) - 1
        info = {"instructions": instructions(len(self.numbers), self.require_result, self.letters)}
        return self._observation(), info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        line = action.strip().splitlines()[0] if action.strip() else ""
        new, why, full = apply_step(
            self.numbers, self._from_letters(line), self.require_result and not self.letters
        )
        if new is None:
            self.history.append(f"{' '.join(line.split())[:60]} | invalid ({why})")
            message = f"Invalid step: {_WHY.get(why, why)}. Game over."
            info = {"success": False, "invalid_action": True, "error_kind": why, "message": message}
            return self._observation(), -self.invalid_penalty, True, info
        self.numbers = new
        self.history.append(f"{full} | left: {self._left()}")
        message = f"{full}. Numbers left: {self._named_left()}."
        if len(self.numbers) == 1:
            won = self.numbers[0] == TARGET
            message += f" You made {TARGET}!" if won else f" That is not {TARGET}. Game over."
            info = {"success": won, "step": full, "message": message}
            return self._observation(), (1.0 if won else 0.0), True, info
        return self._observation(), 0.0, False, {"success": False, "step": full, "message": message}

    def _from_letters(self, line: str) -> str:
        """``"a * b"`` -> ``"4 * 6"`` in letters mode (other text is returned unchanged)."""
        m = _LETTER_STEP.match(line) if self.letters else None
        if m is None:
            return line
        i, j = LETTERS.index(m.group(1)), LETTERS.index(m.group(3))
        if i == j or max(i, j) >= len(self.numbers):
            return f"{line} (no such pair)"  # not a valid step: reported as a format error
        op = "*" if m.group(2) in ("x", "X", "×") else m.group(2)
        return f"{fmt(self.numbers[i])} {op} {fmt(self.numbers[j])}"

    # --- text --------------------------------------------------------------------------------
    def _left(self) -> str:
        return " ".join(fmt(x) for x in self.numbers)

    def _named_left(self) -> str:
        """The numbers left as the ``Numbers left:`` line shows them (``a=4 b=6`` with letters)."""
        if self.letters:
            return " ".join(f"{LETTERS[k]}={fmt(x)}" for k, x in enumerate(self.numbers))
        return self._left()

    def _observation(self) -> str:
        intent = self.intent(self.task)
        if self.letters:
            intent = intent.replace(FULL_HINT, LETTER_HINT)
        elif not self.require_result:
            intent = intent.replace(FULL_HINT, SHORT_HINT)
        return "\n".join([intent, *self.history, f"Numbers left: {self._named_left()}"]) + "\n"

    # --- ARMAP hooks ---------------------------------------------------------------------------
    @staticmethod
    def intent(task: TaskSpec) -> str:
        """The task instruction for a puzzle."""
        nums = " ".join(str(n) for n in task["numbers"])
        return f"Use + - * / to make 24 from: {nums}\nWrite one step per turn, {FULL_HINT}"

    def response_text(self, episode: Episode) -> str:
        """A trajectory's response: its steps, one a line, in full (``"4 * 6 = 24"``) or as
        the plan (``"4 * 6"``) with ``hide_results``; an invalid step as the agent wrote it."""
        return response_text(episode, self.hide_results)

    def score_response(self, task: TaskSpec, response: str) -> float:
        """1.0 if ``response`` (in this env's response form) solves ``task``, else 0.0."""
        return score_response(task, response, self.hide_results)

    def corrupt_response(self, task: TaskSpec, response: str, rng: np.random.Generator) -> str:
        """A wrong variant of a good ``response``: :data:`CORRUPTIONS`, or
        :data:`PLAN_CORRUPTIONS` with ``hide_results``."""
        return corrupt_response(task, response, rng, hide_results=self.hide_results)

    def reference_response(self, task: TaskSpec) -> str | None:
        """The solver's solution in this env's response form (``None`` if unsolvable)."""
        steps = solve(task["numbers"])
        if steps is None:
            return None
        return "\n".join(plan_text(st) if self.hide_results else st for st in steps)

    def get_state(self) -> dict[str, Any]:
        """Everything that determines the future of the episode (JSON-able)."""
        return {
            "task": copy.deepcopy(self.task),
            "numbers": [fmt(x) for x in self.numbers],
            "history": list(self.history),
            "turn": self._turn,
            "done": self._done,
        }

    def set_state(self, state: dict[str, Any]) -> str:
        """Restore :meth:`get_state`'s output; returns the observation at that state."""
        self.task = copy.deepcopy(state["task"])
        self.numbers = [Fraction(x) for x in state["numbers"]]
        self.history = list(state["history"])
        self._turn, self._done = int(state["turn"]), bool(state["done"])
        self.max_turns = len(self.task["numbers"]) - 1
        self._last_obs = self._observation()
        return self._last_obs

    def clone(self) -> Game24Env:
        """An independent copy at the same state (for tree search)."""
        other = Game24Env(
            self.low,
            self.high,
            self.invalid_penalty,
            self.require_result,
            self.letters,
            self.render_mode,
            self.hide_results,
        )
        other.set_state(self.get_state())
        return other


# --- scripted players (registered in agentrl.envs.scripted) ----------------------------------


def parse_left(observation: str) -> list[Fraction]:
    """The numbers left, read from the last ``Numbers left:`` line of an observation."""
    for line in reversed(observation.splitlines()):
        if line.startswith("Numbers left:"):
            out = [parse_number(t.rpartition("=")[2]) for t in line.split(":", 1)[1].split()]
            return [x for x in out if x is not None]
    raise ValueError(f"not a Game24 observation: {observation[:80]!r}")


def write_step(nums: list[Fraction], i: int, op: str, j: int, observation: str) -> str:
    """The step ``nums[i] op nums[j]`` in the form the observation asks for: full
    (``"4 * 6 = 24"``), short (``"4 * 6"``) or letters (``"a * b"``)."""
    if LETTER_HINT in observation:
        return f"{LETTERS[i]} {op} {LETTERS[j]}"
    a, b = nums[i], nums[j]
    if SHORT_HINT in observation:
        return f"{fmt(a)} {op} {fmt(b)}"
    c = apply_op(a, op, b)
    return f"{fmt(a)} {op} {fmt(b)} = {fmt(c) if c is not None else '?'}"


class Game24Random:
    """A uniformly random step: two numbers left, a random operator, the correct result."""

    rng: np.random.Generator

    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, observation: str) -> str:
        nums = parse_left(observation)
        if len(nums) < 2:
            return "done"
        while True:
            i, j = (int(k) for k in self.rng.choice(len(nums), size=2, replace=False))
            op = _OPS[int(self.rng.integers(4))]
            c = apply_op(nums[i], op, nums[j])
            if c is not None:
                return write_step(nums, i, op, j, observation)


class Game24Good(Game24Random):
    """The solver's next step from the numbers left (a random step if none solves them)."""

    def act(self, observation: str) -> str:
        steps = solve(parse_left(observation))
        if not steps:
            return super().act(observation)
        step = parse_step(steps[0])
        assert step is not None
        nums = parse_left(observation)
        a, op, b, _ = step
        i = nums.index(a)
        j = next(k for k, x in enumerate(nums) if x == b and k != i)
        return write_step(nums, i, op, j, observation)
