"""ToolChain: compose small deterministic modules into a plan (the RLTF task-feedback env).

After OpenAGI (Ge et al. 2023, arXiv 2304.04370): a task is given in language plus
input/output examples; the agent answers with a *plan*, a sequence of 1 to ``max_modules``
module names; the env runs the plan on every example input and the reward is the share of
examples whose output matches (``0..1``), or ``-1`` for an invalid plan (empty, unknown
module name, too many modules, unparseable text).

Modules (:data:`MODULES`) are total functions on three types, ``str`` (lowercase words),
``list`` (small ints) and ``int``; a module applied to a type it does not accept makes that
example fail (it is not an invalid plan: the plan's syntax was fine).

Observation (one turn)::

    Task: flip the order, then add them up.
    [3, 1, 2] => 6
    [5, 0, 4, 4] => 13
    [7, 7] => 14

Action: module names separated by spaces (commas, ``|``, ``;`` and ``->`` also separate),
e.g. ``"reverse sum"``. Terminated after one turn.

Multi-turn mode (``multi_turn=True``): the plan is written one module per turn, one turn
per step of the task; each observation adds the step to do next and the intermediate
results of the modules chosen so far::

    ...examples as above...
    Now: [3, 1, 2] ; [5, 0, 4, 4] ; [7, 7]
    Step 1 of 2: flip the order.

An action is then exactly one module name (the ``toolchain_step`` constraint); the last
turn is rewarded with the share of examples the whole plan solves (0 before; -1 and the
end of the episode for an invalid action).

Task spec: ``{"chain": "reverse sum", "seed": 17}``; the seed fixes the examples and the
wording of the description. ``sample_task`` draws a chain of the env's split and a seed.

Splits: every type-correct chain of ``min_chain..max_chain`` modules (after dropping
trivially redundant ones such as ``reverse reverse`` or ``sort sort``) is enumerated in a
fixed order; a permutation seeded by ``split_seed`` puts ``test_fraction`` of the chains of
two or more modules into the ``test`` split. Test tasks therefore use module *combinations*
never seen in training (every single module still appears in training).

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: the multi-turn ``Now:``/``Step`` lines, or how many examples the plan solves.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from agentrl.envs.base import TextEnv

Value = str | int | list[int]


@dataclass(frozen=True)
class Module:
    """One tool: ``fn`` maps each accepted type name to ``(output type, function)``."""

    name: str
    fn: dict[str, tuple[str, Callable[[Any], Any]]]
    phrases: tuple[str, ...]


def _dedup(x: Any) -> Any:
    seen: list[Any] = []
    for v in x:
        if v not in seen:
            seen.append(v)
    return "".join(seen) if isinstance(x, str) else seen


def _digits(n: int) -> list[int]:
    return [int(c) for c in str(abs(n))]


_S, _L, _I = "str", "list", "int"

MODULES: dict[str, Module] = {
    m.name: m
    for m in [
        Module(
            "reverse",
            {_S: (_S, lambda s: s[::-1]), _L: (_L, lambda v: v[::-1])},
            ("reverse it", "flip the order"),
        ),
        Module(
            "sort",
            {_S: (_S, lambda s: "".join(sorted(s))), _L: (_L, sorted)},
            ("sort it", "put it in ascending order"),
        ),
        Module(
            "dedup",
            {_S: (_S, _dedup), _L: (_L, _dedup)},
            ("remove repeated items", "drop the duplicates"),
        ),
        Module("upper", {_S: (_S, str.upper)}, ("make it uppercase", "capitalise every letter")),
        Module(
            "novowel",
            {_S: (_S, lambda s: "".join(c for c in s if c.lower() not in "aeiou"))},
            ("delete the vowels", "strip out vowels"),
        ),
        Module(
            "double",
            {_L: (_L, lambda v: [2 * x for x in v]), _I: (_I, lambda n: 2 * n)},
            ("double it", "multiply by two"),
        ),
        Module(
            "inc",
            {_L: (_L, lambda v: [x + 1 for x in v]), _I: (_I, lambda n: n + 1)},
            ("add one", "increment it"),
        ),
        Module(
            "square",
            {_L: (_L, lambda v: [x * x for x in v]), _I: (_I, lambda n: n * n)},
            ("square it", "raise to the power two"),
        ),
        Module(
            "evens",
            {_L: (_L, lambda v: [x for x in v if x % 2 == 0])},
            ("keep the even numbers", "drop the odd numbers"),
        ),
        Module(
            "head",
            {_S: (_S, lambda s: s[:1]), _L: (_I, lambda v: v[0] if v else 0)},
            ("take the first item", "keep only the first"),
        ),
        Module(
            "tail",
            {_S: (_S, lambda s: s[1:]), _L: (_L, lambda v: v[1:])},
            ("drop the first item", "remove the first"),
        ),
        Module("sum", {_L: (_I, sum)}, ("add them up", "compute the total")),
        Module("length", {_S: (_I, len), _L: (_I, len)}, ("count the items", "measure the length")),
        Module(
            "max", {_L: (_I, lambda v: max(v, default=0))}, ("take the largest", "find the maximum")
        ),
        Module(
            "min",
            {_L: (_I, lambda v: min(v, default=0))},
            ("take the smallest", "find the minimum"),
        ),
        Module("digits", {_I: (_L, _digits)}, ("split into digits", "list the digits")),
    ]
}
"""The module library, by name (16 modules)."""

MODULE_NAMES: tuple[str, ...] = tuple(MODULES)

MODULE_HELP: dict[str, str] = {
    "reverse": "reverse a list, or the letters of a word",
    "sort": "sort a list in ascending order, or the letters of a word",
    "dedup": "remove repeated items of a list or letters of a word (the first stays)",
    "upper": "make a word uppercase",
    "novowel": "delete the vowels of a word",
    "double": "multiply a number, or every number of a list, by 2",
    "inc": "add 1 to a number, or to every number of a list",
    "square": "square a number, or every number of a list",
    "evens": "keep the even numbers of a list",
    "head": "the first number of a list (0 if empty), or the first letter of a word",
    "tail": "drop the first item of a list, or the first letter of a word",
    "sum": "the sum of a list",
    "length": "the number of items of a list, or of letters of a word",
    "max": "the largest number of a list (0 if empty)",
    "min": "the smallest number of a list (0 if empty)",
    "digits": "the digits of a number, as a list",
}
"""What each module does, in words (the instructions for a chat model)."""
PLAN_SEPARATOR = " "
"""The canonical separator between module names in a plan (the constrained decoder's)."""

_IDEMPOTENT = {"sort", "dedup", "upper", "novowel", "evens", "head"}
_PHRASE_TO_MODULE = {p: m.name for m in MODULES.values() for p in m.phrases}
_SPLIT = re.compile(r"(?:\s|,|;|\||->)+")
_STEP = re.compile(r"\nStep \d+ of \d+: (.*)\.$")
_WORDS = (
    "apple river stone candle forest garden mirror pepper rocket silver tiger violin basket".split()
)


def parse_plan(text: str, max_modules: int = 4) -> list[str] | None:
    """Module names of a plan text, or ``None`` if the plan is invalid.

    Invalid: no module, more than ``max_modules``, or any piece that is not a module name.
    """
    if not isinstance(text, str):
        return None
    pieces = [p for p in _SPLIT.split(text.strip()) if p]
    if not 1 <= len(pieces) <= max_modules or any(p not in MODULES for p in pieces):
        return None
    return pieces


def output_type(chain: list[str] | tuple[str, ...], start: str) -> str | None:
    """The type a chain produces from ``start``, or ``None`` if some module rejects its input."""
    t: str | None = start
    for name in chain:
        entry = MODULES[name].fn.get(t or "")
        if entry is None:
            return None
        t = entry[0]
    return t


def run_chain(chain: list[str] | tuple[str, ...], value: Value) -> Value | None:
    """Apply ``chain`` to ``value``; ``None`` if a module does not accept its input type."""
    out: Any = value
    for name in chain:
        t = _type_of(out)
        entry = MODULES[name].fn.get(t)
        if entry is None:
            return None
        out = entry[1](out)
    return out


def _type_of(v: Any) -> str:
    return _S if isinstance(v, str) else _L if isinstance(v, list) else _I


def _redundant(chain: tuple[str, ...]) -> bool:
    for a, b in itertools.pairwise(chain):
        if a == b and a in _IDEMPOTENT or (a, b) == ("reverse", "reverse"):
            return True
    return False


@lru_cache(maxsize=16)
def all_chains(
    min_chain: int = 1, max_chain: int = 4, modules: tuple[str, ...] | None = None
) -> tuple[tuple[str, ...], ...]:
    """Every type-correct, non-redundant chain from a ``str`` or ``list`` input, in a fixed
    order, over ``modules`` (default: all of :data:`MODULES`)."""
    names = MODULE_NAMES if modules is None else tuple(m for m in MODULE_NAMES if m in modules)
    out = []
    for n in range(min_chain, max_chain + 1):
        for chain in itertools.product(names, repeat=n):
            if _redundant(chain):
                continue
            if output_type(chain, _S) is not None or output_type(chain, _L) is not None:
                out.append(chain)
    return tuple(out)


@lru_cache(maxsize=16)
def split_chains(
    split: str,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    min_chain: int = 1,
    max_chain: int = 4,
    modules: tuple[str, ...] | None = None,
) -> tuple[tuple[str, ...], ...]:
    """The chains of ``split`` (``"train"``, ``"test"`` or ``"all"``); see the module docstring."""
    if split not in ("train", "test", "all"):
        raise ValueError(f"unknown split {split!r}; valid splits: ['all', 'test', 'train']")
    chains = all_chains(min_chain, max_chain, modules)
    if split == "all":
        return chains
    multi = [i for i, c in enumerate(chains) if len(c) >= 2]
    perm = np.random.default_rng([split_seed, 6]).permutation(len(multi))
    n_test = int(round(test_fraction * len(multi)))
    test = {multi[i] for i in perm[:n_test]}
    return tuple(c for i, c in enumerate(chains) if (i in test) == (split == "test"))


def make_examples(
    chain: tuple[str, ...], rng: np.random.Generator, n: int
) -> list[tuple[Value, Value]]:
    """``n`` example ``(input, output)`` pairs of ``chain`` with distinct inputs."""
    starts = [t for t in (_L, _S) if output_type(chain, t) is not None]
    if not starts:
        raise ValueError(f"chain {' '.join(chain)!r} accepts neither a str nor a list")
    start = starts[int(rng.integers(len(starts)))]
    examples: list[tuple[Value, Value]] = []
    seen: set[str] = set()
    for _ in range(50 * n):
        value: Value
        if start == _S:
            value = str(_WORDS[int(rng.integers(len(_WORDS)))])
        else:
            value = [int(x) for x in rng.integers(0, 10, size=int(rng.integers(3, 7)))]
        if repr(value) in seen:
            continue
        seen.add(repr(value))
        out = run_chain(chain, value)
        assert out is not None  # the start type was checked
        examples.append((value, out))
        if len(examples) == n:
            break
    return examples


def describe(chain: tuple[str, ...], rng: np.random.Generator) -> str:
    """The task sentence: one paraphrase per module, joined by ``", then "``."""
    phrases = [MODULES[m].phrases[int(rng.integers(len(MODULES[m].phrases)))] for m in chain]
    return "Task: " + ", then ".join(phrases) + "."


def _fmt(v: Value) -> str:
    return repr(v) if not isinstance(v, str) else v


def render_task(
    chain: tuple[str, ...], seed: int, num_examples: int
) -> tuple[str, list[tuple[Value, Value]]]:
    """The observation text and the examples of the task ``(chain, seed)``."""
    rng = np.random.default_rng([seed, 3])
    description = describe(chain, rng)
    examples = make_examples(chain, rng, num_examples)
    lines = [description] + [f"{_fmt(x)} => {_fmt(y)}" for x, y in examples]
    return "\n".join(lines), examples


def parse_observation(observation: str) -> tuple[list[str], list[tuple[str, str]]]:
    """``(description phrases, [(input text, output text), ...])`` of an observation."""
    lines = observation.splitlines()
    if not lines or not lines[0].startswith("Task: "):
        raise ValueError(f"not a ToolChain observation: {observation[:80]!r}")
    phrases = lines[0][len("Task: ") :].rstrip(".").split(", then ")
    pairs = [tuple(line.split(" => ", 1)) for line in lines[1:] if " => " in line]
    return phrases, [(a, b) for a, b in pairs]


def chain_from_description(observation: str) -> list[str] | None:
    """Read the chain back from the task sentence (``None`` if a phrase is unknown)."""
    phrases, _ = parse_observation(observation)
    chain = [_PHRASE_TO_MODULE.get(p) for p in phrases]
    return None if any(c is None for c in chain) else [c for c in chain if c is not None]


def instructions(max_modules: int = 4, multi_turn: bool = False, steps: int = 1) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    modules = "\n".join(f"- {name}: {MODULE_HELP[name]}" for name in MODULE_NAMES)
    if multi_turn:
        how = (
            f"Build the plan one module per reply, {steps} replies in all: each reply is "
            'exactly one module name on a single line, e.g. "reverse". Before each reply I '
            'show the current values of the examples ("Now: ...") and the step to do next. '
            "Any other reply is invalid: it scores -1 and ends the game."
        )
    else:
        how = (
            f"Reply with a plan of 1 to {max_modules} module names on a single line, separated "
            'by spaces, e.g. "reverse sum". A plan that is empty, too long or names an unknown '
            "module is invalid and scores -1."
        )
    return (
        "Write a plan that turns every example input into its output: a sequence of modules, "
        "applied in order from left to right. Values are lists of small numbers, lowercase "
        "words or numbers; a module given a value it does not accept makes that example fail. "
        "Your score is the share of examples your plan solves.\n"
        f"{how}\nModules:\n{modules}"
    )


class ToolChainEnv(TextEnv):
    """Write a plan of module names that maps every example input to its output.

    Args:
        split: ``"train"``, ``"test"`` or ``"all"``: which chains :meth:`sample_task` draws.
        split_seed: seeds the held-out choice of test chains.
        test_fraction: share of the multi-module chains held out for ``test``.
        min_chain / max_chain: length range of task chains (1..4).
        max_modules: longest valid plan (4).
        num_examples: examples per task (3); the reward is the share solved.
        num_tasks: if > 0, :meth:`sample_task` draws from only the first ``num_tasks``
            tasks of a fixed seeded list of the split (a small task set); 0 = unlimited.
        modules: build task chains from these modules only (default: all); plans may
            still name any module.
        multi_turn: one module per turn with intermediate results shown (module docstring).
        render_mode: ``None`` or ``"ansi"``.
    """

    max_turns = 1

    def __init__(
        self,
        split: str = "train",
        split_seed: int = 0,
        test_fraction: float = 0.2,
        min_chain: int = 1,
        max_chain: int = 4,
        max_modules: int = 4,
        num_examples: int = 3,
        num_tasks: int = 0,
        modules: list[str] | tuple[str, ...] | None = None,
        multi_turn: bool = False,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if not 1 <= min_chain <= max_chain <= max_modules:
            raise ValueError(
                f"need 1 <= min_chain ({min_chain}) <= max_chain ({max_chain}) <= max_modules ({max_modules})"
            )
        if num_examples < 1 or num_tasks < 0:
            raise ValueError(
                f"num_examples must be >= 1 and num_tasks >= 0, got {num_examples}, {num_tasks}"
            )
        if modules is not None:
            unknown = sorted(set(modules) - set(MODULE_NAMES))
            if unknown or not modules:
                raise ValueError(f"unknown modules {unknown}; valid: {list(MODULE_NAMES)}")
        subset = None if modules is None else tuple(sorted(modules))
        self.chains = split_chains(split, split_seed, test_fraction, min_chain, max_chain, subset)
        if not self.chains:
            raise ValueError(f"split {split!r} has no chains (test_fraction={test_fraction})")
        self.split = split
        self.max_modules = max_modules
        self.num_examples = num_examples
        self.num_tasks = num_tasks
        self.multi_turn = bool(multi_turn)
        self.examples: list[tuple[Value, Value]] = []
        self.chain: tuple[str, ...] = ()
        self.plan: list[str] = []
        self._task_text = ""
        self._phrases: list[str] = []

    def task_list(self, n: int) -> list[dict[str, Any]]:
        """A fixed, seeded list of ``n`` tasks of this split (the same for every instance)."""
        rng = np.random.default_rng([len(self.chains), 11])
        idx = rng.permutation(len(self.chains))
        return [
            {"chain": " ".join(self.chains[int(idx[i % len(idx)])]), "seed": int(i)}
            for i in range(n)
        ]

    def sample_task(self) -> dict[str, Any]:
        if self.num_tasks:
            return self.task_list(self.num_tasks)[int(self.np_random.integers(self.num_tasks))]
        chain = self.chains[int(self.np_random.integers(len(self.chains)))]
        return {"chain": " ".join(chain), "seed": int(self.np_random.integers(2**31))}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        chain = parse_plan(str(task.get("chain", "")), max_modules=len(MODULE_NAMES))
        if chain is None:
            raise ValueError(
                f"task chain {task.get('chain')!r} is not a sequence of module names {list(MODULE_NAMES)}"
            )
        if "seed" not in task:
            task["seed"] = int(self.np_random.integers(2**31))
        self.chain = tuple(chain)
        obs, self.examples = render_task(self.chain, int(task["seed"]), self.num_examples)
        if self.multi_turn:
            self.max_turns = len(chain)
            self.plan = []
            self._task_text = obs
            self._phrases = parse_observation(obs)[0]
            obs = self._step_observation()
        text = instructions(self.max_modules, self.multi_turn, len(chain))
        return obs, {"chain_length": len(chain), "instructions": text}

    def _progress(self) -> str:
        """The ``Now:`` and ``Step i of n:`` lines of a multi-turn observation."""
        values = [run_chain(self.plan, x) for x, _ in self.examples]
        now = " ; ".join("error" if v is None else _fmt(v) for v in values)
        i = len(self.plan)
        return f"Now: {now}\nStep {i + 1} of {len(self.chain)}: {self._phrases[i]}."

    def _step_observation(self) -> str:
        return f"{self._task_text}\n{self._progress()}"

    def _result(self, score: float) -> str:
        """``info["message"]`` of the last turn: how many examples the plan solved."""
        if score < 0:
            if self.multi_turn:
                return "Invalid reply: it is not exactly one module name. Score -1, game over."
            return (
                f"Invalid plan: it is not 1 to {self.max_modules} module names of the list. "
                "Score -1, game over."
            )
        solved, n = round(score * len(self.examples)), len(self.examples)
        if solved == n:
            return f"Your plan solves all {n} examples!"
        return f"Your plan solves {solved} of {n} examples (score {score:.2f})."

    def score(self, plan: list[str]) -> float:
        """Share of this task's examples that ``plan`` maps to the expected output."""
        solved = sum(run_chain(plan, x) == y for x, y in self.examples)
        return solved / len(self.examples)

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.multi_turn:
            return self._step_one(action)
        plan = parse_plan(action, self.max_modules)
        if plan is None:
            return "", -1.0, True, self._final_info(-1.0, invalid=True)
        score = self.score(plan)
        return "", score, True, self._final_info(score)

    def _final_info(self, score: float, invalid: bool = False) -> dict[str, Any]:
        return {
            "success": score == 1.0,
            "invalid_action": invalid,
            "score": score,
            "message": self._result(score),
        }

    def _step_one(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        step = parse_plan(action, max_modules=1)
        if step is None:
            return "", -1.0, True, self._final_info(-1.0, invalid=True)
        self.plan.append(step[0])
        if len(self.plan) < len(self.chain):
            info = {"invalid_action": False, "message": self._progress()}
            return self._step_observation(), 0.0, False, info
        score = self.score(self.plan)
        return "", score, True, self._final_info(score)


# --- scripted players (registered in agentrl.envs.scripted) ------------------------------


def _parse_value(text: str) -> Value:
    text = text.strip()
    if text.startswith("["):
        return [int(x) for x in text.strip("[]").split(",") if x.strip()]
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def consistent(chain: list[str] | tuple[str, ...], observation: str) -> bool:
    """Whether ``chain`` maps every example input of the observation to its output."""
    _, pairs = parse_observation(observation)
    for x, y in pairs:
        out = run_chain(chain, _parse_value(x))
        if out is None or _fmt(out) != y:
            return False
    return True


class ToolChainRandom:
    """A uniformly random plan: 1..``max_modules`` uniformly random module names (always valid)."""

    def __init__(self, max_modules: int = 4):
        self.max_modules = max_modules
        self.rng = np.random.default_rng(0)

    def reset(self, task: dict[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, observation: str) -> str:
        n = 1 if _STEP.search(observation) else int(self.rng.integers(1, self.max_modules + 1))
        return PLAN_SEPARATOR.join(
            MODULE_NAMES[int(i)] for i in self.rng.integers(len(MODULE_NAMES), size=n)
        )


class ToolChainGood:
    """Reads the chain back from the task sentence and checks it on the examples; if that
    fails, returns the shortest chain (up to ``search_depth`` modules, ties at random)
    consistent with the examples. Solves every task of the env."""

    def __init__(self, search_depth: int = 3):
        self.search_depth = search_depth
        self.rng = np.random.default_rng(0)

    def reset(self, task: dict[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, observation: str) -> str:
        step = _STEP.search(observation)
        if step is not None:  # multi-turn: the module of the step asked for
            module = _PHRASE_TO_MODULE.get(step.group(1))
            return (
                module
                if module is not None
                else MODULE_NAMES[int(self.rng.integers(len(MODULE_NAMES)))]
            )
        chain = chain_from_description(observation)
        if chain is not None and consistent(chain, observation):
            return PLAN_SEPARATOR.join(chain)
        for n in range(1, self.search_depth + 1):
            fits = [
                c for c in itertools.product(MODULE_NAMES, repeat=n) if consistent(c, observation)
            ]
            if fits:
                return PLAN_SEPARATOR.join(fits[int(self.rng.integers(len(fits)))])
        return MODULE_NAMES[int(self.rng.integers(len(MODULE_NAMES)))]
