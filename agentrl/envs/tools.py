"""Envs whose agent calls tools: declared with a JSON schema, called in the chat template's
format, answered with ``tool`` messages.

A :class:`ToolEnv` declares its tools as :class:`~agentrl.policy.chat.ToolSpec` objects (a
name, a description, a JSON schema of the arguments) and executes them in :meth:`call_tool`.
The rollout worker passes the specs to the chat template (``tools=``; templates without tool
support get them described in the system prompt, :func:`~agentrl.policy.chat.tools_prompt`).

A reply calls tools by holding one or more blocks in the Hermes/Qwen format that most chat
templates use::

    <tool_call>{"name": "reverse", "arguments": {"value": [3, 1, 2]}}</tool_call>

The env runs every call in order and answers with one ``tool`` message holding the results
(one line each); a reply with no ``<tool_call>`` is the agent's answer (:meth:`ToolEnv.answer`).
A malformed call (bad JSON, no name, arguments that are not an object, an unknown tool, a
tool that raises) never crashes the episode: the message says what was wrong, and the turn is
an ``invalid_action`` with the env's ``invalid_penalty``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from agentrl.envs.base import TextEnv
from agentrl.policy.chat import ToolSpec

_CALL = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
MAX_CALLS = 8


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: the tool's name and its arguments."""

    name: str
    arguments: dict[str, Any]


class ToolCallError(ValueError):
    """A ``<tool_call>`` block that cannot be run; the message is shown to the agent."""


def parse_tool_calls(text: str) -> list[ToolCall]:
    """The calls in a reply, in order (``[]`` when it holds none).

    A block may omit its closing tag at the end of the reply (a stop string cut it).

    Raises:
        ToolCallError: a block is not a JSON object with a string ``"name"`` and an object
            ``"arguments"`` (which may be omitted: ``{}``), or there are more than
            :data:`MAX_CALLS` blocks.
    """
    blocks = _CALL.findall(text)
    if len(blocks) > MAX_CALLS:
        raise ToolCallError(f"{len(blocks)} tool calls in one reply; at most {MAX_CALLS}")
    calls = []
    for i, block in enumerate(blocks, 1):
        try:
            obj = json.loads(block.strip())
        except json.JSONDecodeError as e:
            raise ToolCallError(f"tool call {i} is not valid JSON ({e.msg} at char {e.pos})") from e
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            raise ToolCallError(f'tool call {i} needs a JSON object with a string "name"')
        args = obj.get("arguments", {})
        if isinstance(args, str):  # some models emit the arguments as a JSON string
            try:
                args = json.loads(args)
            except json.JSONDecodeError as e:
                raise ToolCallError(f"tool call {i}: arguments are not valid JSON") from e
        if not isinstance(args, dict):
            raise ToolCallError(f'tool call {i}: "arguments" must be a JSON object')
        calls.append(ToolCall(obj["name"], args))
    return calls


class ToolEnv(TextEnv):
    """A conversational env with tools (see the module docstring).

    Subclasses set :attr:`tools`, implement :meth:`call_tool` (return the result as text;
    raise ``ValueError``/``TypeError``/``KeyError`` for bad arguments, shown to the agent),
    :meth:`answer` (a reply without tool calls) and :meth:`_reset`.

    Attributes:
        tool_penalty: reward of a turn that called tools (a cost per turn, default 0).
        invalid_penalty: reward of a turn whose calls could not be run.
    """

    conversational = True
    tools: ClassVar[tuple[ToolSpec, ...]] = ()
    tool_penalty: float = 0.0
    invalid_penalty: float = -0.1

    def call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        raise NotImplementedError

    def answer(self, text: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Judge a reply without tool calls: ``(message, reward, terminated, info)``."""
        raise NotImplementedError

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        try:
            calls = parse_tool_calls(action)
        except ToolCallError as e:
            return self._invalid(str(e))
        if not calls:
            return self.answer(action)
        names = [t.name for t in self.tools]
        results = []
        for call in calls:
            if call.name not in names:
                return self._invalid(
                    f"unknown tool {call.name!r}; the tools are {', '.join(names)}"
                )
            try:
                results.append(str(self.call_tool(call.name, call.arguments)))
            except (ValueError, TypeError, KeyError) as e:
                return self._invalid(f"{call.name} failed: {e}")
        info = {"role": "tool", "tool_calls": len(calls), "invalid_action": False}
        return "\n".join(results), self.tool_penalty, False, info

    def _invalid(self, why: str) -> tuple[str, float, bool, dict[str, Any]]:
        message = (
            f"Error: {why}. Call a tool as <tool_call>"
            '{"name": NAME, "arguments": {...}}</tool_call>, or reply with your answer.'
        )
        return message, self.invalid_penalty, False, {"role": "tool", "invalid_action": True}


def tool_call_text(name: str, arguments: dict[str, Any]) -> str:
    """A reply that calls ``name`` with ``arguments`` (what scripted players say)."""
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


__all__ = [
    "MAX_CALLS",
    "ToolCall",
    "ToolCallError",
    "ToolEnv",
    "parse_tool_calls",
    "tool_call_text",
]
