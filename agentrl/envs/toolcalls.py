"""ToolCalls: ToolChain's tasks solved with real function calls (a built-in tool-using env).

The task of :mod:`agentrl.envs.toolchain` (a chain of small modules described in words) is
asked about one input; every module is a tool the agent may call (``{"value": ...}`` in, the
module's output out). The agent calls tools in the chat template's format
(:mod:`agentrl.envs.tools`), reads the ``tool`` messages, and replies with the final output
(a reply without a tool call is its answer)::

    user:      Task: flip the order, then add them up.
               Input: [3, 1, 2]
    assistant: <tool_call>{"name": "reverse", "arguments": {"value": [3, 1, 2]}}</tool_call>
    tool:      [2, 1, 3]
    assistant: <tool_call>{"name": "sum", "arguments": {"value": [2, 1, 3]}}</tool_call>
    tool:      6
    assistant: 6

Reward: 1 for the right answer (terminated, success), 0 for a wrong one (terminated); a
turn whose tool call is malformed gets ``-0.1`` and ``invalid_action`` (the message says what
was wrong); tool calls are free. Truncated after ``max_turns`` (chain length + 2 by default:
one call per module and the answer, plus one spare). Tasks come from ToolChain's splits
(``split``, ``split_seed``, ``min_chain``, ``max_chain``), so held-out module combinations
carry over. The first message states the task and how to answer; the tools are described
to the model by the chat template (or the system prompt, for templates without tools).

Scripted players: ``good`` calls the chain's modules in order and answers the result;
``random`` calls 0-2 random modules and answers the last value it saw.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import numpy as np

from agentrl.envs.toolchain import (
    MODULE_HELP,
    MODULES,
    Value,
    _fmt,
    _parse_value,
    _type_of,
    chain_from_description,
    describe,
    make_examples,
    run_chain,
    split_chains,
)
from agentrl.envs.tools import ToolEnv, tool_call_text
from agentrl.policy.chat import ToolSpec

TOOLS: tuple[ToolSpec, ...] = tuple(
    ToolSpec(
        name,
        MODULE_HELP[name],
        {
            "type": "object",
            "properties": {"value": {"description": "a word, a number or a list of numbers"}},
            "required": ["value"],
        },
    )
    for name in MODULES
)
"""One tool per ToolChain module."""


def _as_value(raw: Any) -> Value:
    if isinstance(raw, bool) or not isinstance(raw, str | int | list):
        raise TypeError(
            f"value must be a word, a number or a list of numbers, got {json.dumps(raw)}"
        )
    if isinstance(raw, list) and not all(
        isinstance(x, int) and not isinstance(x, bool) for x in raw
    ):
        raise TypeError("a list value must hold whole numbers only")
    return raw


class ToolCallsEnv(ToolEnv):
    """ToolChain tasks answered with tool calls (module docstring).

    Args:
        split / split_seed / test_fraction / min_chain / max_chain: the task split, as
            :class:`~agentrl.envs.toolchain.ToolChainEnv`.
        max_turns: turn limit; default ``max_chain + 2``.
        render_mode: ``None`` or ``"ansi"``.

    Task spec: ``{"chain": "reverse sum", "seed": 17}`` (the seed fixes the input and the
    wording).
    """

    tools: ClassVar[tuple[ToolSpec, ...]] = TOOLS

    def __init__(
        self,
        split: str = "train",
        split_seed: int = 0,
        test_fraction: float = 0.2,
        min_chain: int = 1,
        max_chain: int = 2,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        self.chains = split_chains(split, split_seed, test_fraction, min_chain, max_chain)
        self.max_turns = max_turns if max_turns is not None else max_chain + 2
        self.chain: tuple[str, ...] = ()
        self.target: Value = ""

    def sample_task(self) -> dict[str, Any]:
        chain = self.chains[int(self.np_random.integers(len(self.chains)))]
        return {"chain": " ".join(chain), "seed": int(self.np_random.integers(2**31 - 1))}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        chain = tuple(str(task["chain"]).split())
        unknown = [m for m in chain if m not in MODULES]
        if not chain or unknown:
            raise ValueError(
                f"task chain {task['chain']!r}: unknown modules {unknown}; valid: {list(MODULES)}"
            )
        rng = np.random.default_rng([int(task.get("seed", 0)), 11])
        sentence = describe(chain, rng)
        ((value, target),) = make_examples(chain, rng, 1)
        self.chain, self.target = chain, target
        text = (
            f"{sentence}\nInput: {_fmt(value)}\n"
            "Use the tools to compute the output, one call per reply. When you have it, "
            "reply with the output only."
        )
        return text, {}

    def call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        if set(arguments) != {"value"}:
            raise KeyError(f'{name} takes exactly one argument, "value"; got {sorted(arguments)}')
        value = _as_value(arguments["value"])
        entry = MODULES[name].fn.get(_type_of(value))
        if entry is None:
            return f"{name} does not accept a {_type_of(value)}"
        return _fmt(entry[1](value))

    def answer(self, text: str) -> tuple[str, float, bool, dict[str, Any]]:
        line = text.strip().splitlines()[-1].strip() if text.strip() else ""
        line = line.removeprefix("Output:").removeprefix("Answer:").strip().strip("`").strip()
        try:
            got: Value | None = _parse_value(line)
        except ValueError:
            got = None
        right = got == self.target
        message = "Correct." if right else f"Wrong: the output is {_fmt(self.target)}."
        return message, 1.0 if right else 0.0, True, {"success": right, "invalid_action": False}


def _read_task(observation: str) -> tuple[list[str], Value] | None:
    """The chain and input of a task message (``None`` for any other message)."""
    lines = observation.splitlines()
    if len(lines) < 2 or not lines[0].startswith("Task: ") or not lines[1].startswith("Input: "):
        return None
    return chain_from_description(lines[0]) or [], _parse_value(lines[1].removeprefix("Input: "))


def _read_result(observation: str) -> Value | None:
    """A tool result as a value (``None`` for an error or another message)."""
    if observation.startswith(("Error", "Task: ")) or " does not accept " in observation:
        return None
    return _parse_value(observation)


class ToolCallsGood:
    """Reads the chain from the task sentence, calls its modules in order and answers the
    result. Reads only what it is shown: mixed with the random player (``mix``) it may not
    see the task message, and then answers the last tool result it saw."""

    def reset(self, task: dict[str, Any], rng: np.random.Generator) -> None:
        self.chain: list[str] = []
        self.values: list[Value] = []
        self.step = 0
        self.last: Value = ""

    def act(self, observation: str) -> str:
        read = _read_task(observation)
        if read is not None:
            self.chain, value = read
            self.values = [value]
            for name in self.chain:
                out = run_chain([name], self.values[-1])
                self.values.append(out if out is not None else self.values[-1])
        elif (result := _read_result(observation)) is not None:
            self.last = result
        if not self.values:
            return _fmt(self.last)
        if self.step < len(self.chain):
            name, value = self.chain[self.step], self.values[self.step]
            self.step += 1
            return tool_call_text(name, {"value": value})
        return _fmt(self.values[-1])


class ToolCallsRandom:
    """Calls 0-2 random modules on the value it last saw, then answers that value."""

    def reset(self, task: dict[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng
        self.value: Value = ""
        self.calls = int(rng.integers(0, 3))

    def act(self, observation: str) -> str:
        read = _read_task(observation)
        if read is not None:
            self.value = read[1]
        elif (result := _read_result(observation)) is not None:
            self.value = result
        if self.calls > 0:
            self.calls -= 1
            name = list(MODULES)[int(self.rng.integers(len(MODULES)))]
            return tool_call_text(name, {"value": self.value})
        return _fmt(self.value)


__all__ = ["TOOLS", "ToolCallsEnv", "ToolCallsGood", "ToolCallsRandom"]
