"""Conversations as token ids: how an episode's messages become the policy's context.

An episode is a conversation: a system prompt, then alternating messages — the env's
observations as ``user``, the agent's replies as ``assistant``, tool results as ``tool``.
The policy's context at turn ``t`` is that conversation so far, and it is built
**incrementally, as token ids, never re-tokenised**:

    context_0     = start(first messages)                        (ends with the generation prompt)
    context_{t+1} = context_t + action_ids_t + continuation(action_ids_t, new messages)

``action_ids_t`` are the ids the sampler produced (stop/end-of-turn token included), so the
ids the learner trains on are exactly the ids the sampler produced and conditioned on. The
continuation closes the agent's turn (what the chat template puts after an assistant reply,
less the part the agent already emitted, e.g. ``<|im_end|>``), renders the new messages and
opens the next assistant turn. Each piece is tokenised on its own: a BPE merge can never
cross a turn boundary, and nothing is ever decoded and encoded again.

Two formats:

- :class:`TemplateFormat`, for tokenizers with a chat template (SmolLM2, Qwen2.5, Llama 3):
  the pieces are cut out of the template's own renderings of a fixed reference conversation
  (the *delta* of appending the new messages), so the result is what the template renders
  for the whole conversation, message by message. Tools are passed to the template's
  ``tools=`` support; a template that ignores them (SmolLM2's) gets them described in the
  system prompt (:func:`tools_prompt`), with the same ``<tool_call>{json}</tool_call>`` format.
- :class:`PlainFormat`, for tokenizers without one (the tiny model)::

      {system}\\n{user_0}\\nAction: {reply_0}\\n{user_1}\\nAction: {reply_1}\\n...

  A ``tool`` message renders as ``Tool result: {content}\\n`` (then ``Action: `` when it is
  the last new message); the first piece adds the tokenizer's bos. With one user message
  this is exactly the single-turn prompt ``"{system}\\n{observation}\\nAction: "``.

:func:`chat_format` picks the format of a tokenizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # envs import ToolSpec from here: no transformers import at run time
    from transformers import PreTrainedTokenizerBase

Message = dict[str, str]
"""One chat message: ``{"role": "system"|"user"|"assistant"|"tool", "content": str}``
(a ``tool`` message may carry ``"name"``)."""

ROLES = ("system", "user", "assistant", "tool")


@dataclass(frozen=True)
class ToolSpec:
    """A tool the agent may call: a name, a description and a JSON schema of its arguments.

    ``as_template_tool()`` is the OpenAI-style dict that chat templates' ``tools=`` expect.
    """

    name: str
    description: str
    parameters: dict[str, object]

    def as_template_tool(self) -> dict[str, object]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class ChatFormat(Protocol):
    """Renders a conversation as token ids, piece by piece (see the module docstring)."""

    name: str

    def start(self, messages: Sequence[Message]) -> list[int]:
        """Ids of the first context: the system prompt (if any), ``messages`` and the
        generation prompt of the first agent turn."""
        ...

    def continuation(self, action_ids: Sequence[int], messages: Sequence[Message]) -> list[int]:
        """Ids that follow the agent's sampled ``action_ids``: the close of its turn (less
        what it already emitted), ``messages`` and the next generation prompt."""
        ...

    def close(self, action_ids: Sequence[int]) -> list[int]:
        """Ids that end the agent's turn after ``action_ids`` (the episode's last turn)."""
        ...

    @property
    def end_of_turn_ids(self) -> list[int]:
        """Token ids that end an agent turn when sampled (e.g. ``<|im_end|>``); may be empty."""
        ...


def _signature(spec: ToolSpec) -> tuple[str, dict[str, str]]:
    """``name(a, [b])`` (optional arguments in brackets) and each argument's description
    (its JSON type, if given, then its description)."""
    props = spec.parameters.get("properties", {})
    required = spec.parameters.get("required", [])
    props = props if isinstance(props, dict) else {}
    required = required if isinstance(required, list) else []
    args, about = [], {}
    for name, schema in props.items():
        args.append(name if name in required else f"[{name}]")
        schema = schema if isinstance(schema, dict) else {}
        kind, text = schema.get("type"), schema.get("description")
        about[name] = ": ".join(str(x) for x in (kind, text) if x) or "any JSON value"
    return f"{spec.name}({', '.join(args)})", about


def tools_prompt(tools: Sequence[ToolSpec]) -> str:
    """How tools are described to a model whose template has no tool support (and in the
    plain format).

    A compact form rather than the JSON schemas: one line per tool (``- name(args):
    description``) and each argument described once when every tool that takes it means
    the same by it. For a small model every token of the system prompt is prefilled in
    every episode and scored in every update: ToolCalls' 16 tools take about 1040 SmolLM2
    tokens as JSON schemas and 355 in this form."""
    signatures = [_signature(t) for t in tools]
    shared: dict[str, str] = {}
    clash: set[str] = set()
    for _, about in signatures:
        for arg, text in about.items():
            if shared.setdefault(arg, text) != text:
                clash.add(arg)
    lines = []
    for spec, (sig, about) in zip(tools, signatures, strict=True):
        own = "; ".join(f"{a}: {t}" for a, t in about.items() if a in clash)
        lines.append(f"- {sig}: {spec.description}" + (f" ({own})" if own else ""))
    common = [f"{a}: {t}" for a, t in shared.items() if a not in clash]
    arguments = ("Arguments: " + "; ".join(common) + "\n") if common else ""
    return (
        "You can call these tools:\n"
        + "\n".join(lines)
        + "\n"
        + arguments
        + 'To call a tool, reply with <tool_call>{"name": "TOOL", "arguments": {...}}</tool_call>; '
        "its result comes back in the next message. When you know the answer, reply with it "
        "and no tool call."
    )


def _check_messages(messages: Sequence[Message]) -> None:
    for m in messages:
        role = m.get("role")
        if role not in ROLES:
            raise ValueError(f"message role {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(m.get("content"), str):
            raise ValueError(
                f"message content must be a str, got {type(m.get('content')).__name__}"
            )


class PlainFormat:
    """The documented format for tokenizers without a chat template (module docstring)."""

    name = "plain"
    ACTION = "\nAction: "
    TOOL = "Tool result: "

    def __init__(self, tokenizer: PreTrainedTokenizerBase, system_prompt: str | None = None):
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self._newline = self._encode("\n")

    def _encode(self, text: str, special: bool = False) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def _messages_text(self, messages: Sequence[Message]) -> str:
        _check_messages(messages)
        parts = []
        for i, m in enumerate(messages):
            last = i == len(messages) - 1
            if m["role"] == "tool":
                parts.append(f"{self.TOOL}{m['content']}" + (self.ACTION if last else "\n"))
            elif m["role"] == "system":
                parts.append(f"{m['content']}\n")
            else:  # user (an assistant message given here is shown as text too)
                parts.append(m["content"] + (self.ACTION if last else "\n"))
        return "".join(parts)

    def start(self, messages: Sequence[Message]) -> list[int]:
        head = f"{self.system_prompt}\n" if self.system_prompt else ""
        return self._encode(head + self._messages_text(messages), special=True)

    def close(self, action_ids: Sequence[int]) -> list[int]:
        """A newline unless the reply's last token already holds one (it stopped there)."""
        if action_ids and "\n" in self.tokenizer.decode([action_ids[-1]]):
            return []
        return list(self._newline)

    def continuation(self, action_ids: Sequence[int], messages: Sequence[Message]) -> list[int]:
        return self.close(action_ids) + self._encode(self._messages_text(messages))

    @property
    def end_of_turn_ids(self) -> list[int]:
        return []


# Reference contents for the template deltas: distinct, and unlikely to be rewritten by a
# template (no leading/trailing whitespace, no special characters).
_REF_USER = "agentrl-reference-user-message"
_REF_REPLY = "agentrl-reference-assistant-reply"


class TemplateFormat:
    """A tokenizer's own chat template, rendered piece by piece (module docstring).

    Construction renders a small reference conversation to find the template's pieces and
    raises ``ValueError`` when the template is not *append-only* (rendering one more
    message must extend the previous rendering), which the incremental context needs.

    Args:
        tokenizer: a tokenizer with ``chat_template``.
        system_prompt: the system message (omitted when None; templates that add a default
            system prompt keep theirs).
        tools: tools passed to the template's ``tools=`` (their description is rendered
            where the template puts it, usually in the system turn).
    """

    name = "template"

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        system_prompt: str | None = None,
        tools: Sequence[ToolSpec] = (),
    ):
        if not tokenizer.chat_template:
            raise ValueError("TemplateFormat needs a tokenizer with a chat_template")
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.tools: list[dict[Any, Any] | Callable[..., Any]] = [t.as_template_tool() for t in tools]
        probe = [{"role": "user", "content": _REF_USER}]
        self.native_tools = bool(tools) and self._render(probe, False) != self._render_plain(probe)
        if tools and not self.native_tools:  # the template ignores tools= : describe them
            self.tools = []
            head_text = f"{system_prompt}\n\n" if system_prompt else ""
            self.system_prompt = head_text + tools_prompt(tools)
        head = self._head()
        user = [{"role": "user", "content": _REF_USER}]
        prompt = self._render(head + user, generation_prompt=True)
        with_reply = self._render(
            head + user + [{"role": "assistant", "content": _REF_REPLY}], generation_prompt=False
        )
        lead = prompt + _REF_REPLY
        if not with_reply.startswith(lead):
            raise ValueError(
                "chat template is not append-only: the rendered assistant reply does not extend "
                "the generation prompt; use a template that renders messages in order"
            )
        self._close_text = with_reply[len(lead) :]
        self._close = self._encode(self._close_text)
        self._reference = head + user + [{"role": "assistant", "content": _REF_REPLY}]
        self._reference_text = with_reply
        eos = tokenizer.eos_token_id
        self._end_ids = [self._close[0]] if self._close else ([eos] if eos is not None else [])

    def _head(self) -> list[Message]:
        return [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []

    def _render(self, messages: Sequence[Message], generation_prompt: bool) -> str:
        text = self.tokenizer.apply_chat_template(
            list(messages),
            tools=self.tools or None,
            tokenize=False,
            add_generation_prompt=generation_prompt,
        )
        return str(text)

    def _render_plain(self, messages: Sequence[Message]) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=False
            )
        )

    def _encode(self, text: str) -> list[int]:
        # A rendered template holds its own special tokens (bos included where it adds one).
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def start(self, messages: Sequence[Message]) -> list[int]:
        _check_messages(messages)
        return self._encode(self._render(self._head() + list(messages), generation_prompt=True))

    def close(self, action_ids: Sequence[int]) -> list[int]:
        if action_ids and self._close and action_ids[-1] == self._close[0]:
            return list(self._close[1:])  # the agent emitted the end-of-turn token itself
        return list(self._close)

    def continuation(self, action_ids: Sequence[int], messages: Sequence[Message]) -> list[int]:
        _check_messages(messages)
        full = self._render(self._reference + list(messages), generation_prompt=True)
        if not full.startswith(self._reference_text):
            raise ValueError(
                "chat template is not append-only for messages "
                f"{[m['role'] for m in messages]}: rendering them after a reply rewrites it"
            )
        return self.close(action_ids) + self._encode(full[len(self._reference_text) :])

    @property
    def end_of_turn_ids(self) -> list[int]:
        return list(self._end_ids)


def chat_format(
    tokenizer: PreTrainedTokenizerBase,
    system_prompt: str | None = None,
    tools: Sequence[ToolSpec] = (),
) -> ChatFormat:
    """The tokenizer's :class:`TemplateFormat` when it has a chat template, else
    :class:`PlainFormat`. Tools go to the template's ``tools=``; a template that ignores them,
    and the plain format, get them in the system prompt (:func:`tools_prompt`)."""
    if tokenizer.chat_template:
        return TemplateFormat(tokenizer, system_prompt, tools)
    if tools:
        head = f"{system_prompt}\n\n" if system_prompt else ""
        system_prompt = head + tools_prompt(tools)
    return PlainFormat(tokenizer, system_prompt)


__all__ = [
    "ChatFormat",
    "Message",
    "PlainFormat",
    "ROLES",
    "TemplateFormat",
    "ToolSpec",
    "chat_format",
    "tools_prompt",
]
