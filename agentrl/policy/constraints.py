"""Constrained decoding: a logits processor that only lets the policy write valid plans.

A *plan grammar* is ``NAME (SEP NAME){0, max_items - 1}`` followed by a terminator (the stop
string ``"\\n"`` or eos), where NAME is one of a fixed set of names (ToolChain's modules).
:class:`TokenConstraint` turns it into a mask over the vocabulary for every decode step.

Why a text-level trie rather than a trie of token-id sequences: a token-id trie fixes one
tokenisation per name, but a tokenizer may write the same name with other tokens (TRL's
SFTTrainer tokenises ``prompt + completion`` jointly, BPE merges across a space, ...). Here
a token is allowed when the text generated so far plus the token's text is still a prefix
of some valid plan text: every tokenisation of every valid plan stays reachable, and no
invalid one is. The decoding state is ``(names completed before the last separator, text
after it)``; masks are cached per state and computed once per state by checking only the
tokens whose first character can come next (cheap even for a 49k vocabulary).

The text of a sequence is taken as the concatenation of its tokens' single-token decodes
(true for the char/word tokenizers and for byte-level BPE on ASCII names); tokens that
decode to ``""`` (special tokens) are never allowed except eos, which is allowed exactly
where the plan is complete.

Log-probs: under a constraint, :meth:`Policy.generate` samples from, and reports the
log-probs of, the *constrained* distribution (the policy's softmax renormalised over the
allowed tokens), and :meth:`Policy.action_logprobs` with the same constraint (by default
``policy.default_constraint``) scores the same distribution, so sampling and learning agree.

Other grammars: :class:`ChoiceGrammar` is exactly one of a finite set of strings (then the
terminator), checked the same way at the text level; :class:`PromptGrammar` builds the
grammar of each row from its prompt text (the decode loop and :meth:`Policy.action_logprobs`
pass the decoded prompt), e.g. ``ruleworld``: ``touch <object> with <object>`` over the
objects in the observation's ``Room:`` line only, so every sampled action names two objects
of the room. Masks are cached per ``(grammar, state)``; a prompt grammar's per-prompt
grammars and masks live in bounded caches.

Constraints are named (``rollout.sampling.constraint=toolchain``); a dotted path
``"pkg.module:factory"`` to a zero-argument function returning a :class:`PlanGrammar`,
:class:`ChoiceGrammar` or :class:`PromptGrammar` also works.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class PlanGrammar:
    """``NAME (SEP NAME){0, max_items-1} TERMINATOR`` over a finite set of names.

    Attributes:
        names: the allowed names (non-empty strings without the separator).
        separator: text between names.
        max_items: most names in a plan (at least one is required).
        terminator: text that ends a plan (the sampling stop string).
    """

    names: tuple[str, ...]
    separator: str = " "
    max_items: int = 4
    terminator: str = "\n"

    def __post_init__(self) -> None:
        if not self.names or any(not n or self.separator in n for n in self.names):
            raise ValueError(
                "a plan grammar needs non-empty names that do not contain the separator"
            )
        if self.max_items < 1 or not self.separator or not self.terminator:
            raise ValueError("max_items must be >= 1 and separator/terminator non-empty")

    def state(self, text: str) -> tuple[int, str]:
        """``(names before the last separator, text after it)``."""
        parts = text.split(self.separator)
        return len(parts) - 1, parts[-1]

    def is_prefix(self, text: str) -> bool:
        """Whether ``text`` can be extended to ``plan + terminator`` (itself included)."""
        return self._ok(0, text)

    def is_complete(self, text: str) -> bool:
        """Whether ``text`` is a whole plan (without the terminator)."""
        done, last = self.state(text)
        return last in self.names and done + 1 <= self.max_items and self._ok(0, text)

    def _ok(self, done: int, rest: str) -> bool:
        """Can ``rest`` continue a plan that has ``done`` names before it?"""
        if rest == "":
            return done < self.max_items
        for name in self.names:
            if name.startswith(rest):
                if done < self.max_items:
                    return True
                continue
            if not rest.startswith(name) or done + 1 > self.max_items:
                continue
            after = rest[len(name) :]
            if after == "" or self.terminator.startswith(after):
                return True
            if self.separator.startswith(after):
                if done + 1 < self.max_items:
                    return True
                continue
            if after.startswith(self.separator) and self._ok(
                done + 1, after[len(self.separator) :]
            ):
                return True
        return False

    def valid_plan(self, text: str) -> bool:
        """A whole plan, optionally followed by the terminator."""
        if text.endswith(self.terminator):
            text = text[: -len(self.terminator)]
        return self.is_complete(text)

    def alphabet(self) -> set[str]:
        """Every character a plan (with its terminator) can contain."""
        return {c for n in self.names for c in n} | set(self.separator) | set(self.terminator)


@dataclass(frozen=True)
class ChoiceGrammar:
    """Exactly one of a finite set of strings (``choices``), then ``terminator``.

    Same interface as :class:`PlanGrammar` (``state``, ``_ok``, ``is_complete``, ...), so
    :class:`TokenConstraint` masks it the same way: a token is allowed when the text so far
    plus its text is a prefix of ``choice + terminator`` for some choice. The choices are
    kept sorted and unique; a prefix test is a binary search.
    """

    choices: tuple[str, ...]
    terminator: str = "\n"
    _set: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.terminator:
            raise ValueError("a choice grammar needs a non-empty terminator")
        if not self.choices or any(not c or self.terminator in c for c in self.choices):
            raise ValueError(
                "a choice grammar needs non-empty choices that do not contain the terminator"
            )
        object.__setattr__(self, "choices", tuple(sorted(set(self.choices))))
        object.__setattr__(self, "_set", frozenset(self.choices))

    def state(self, text: str) -> tuple[int, str]:
        """``(0, text)``: the whole text is the state."""
        return 0, text

    def _ok(self, done: int, rest: str) -> bool:
        """Is ``rest`` a prefix of ``choice + terminator`` for some choice?"""
        i = bisect_left(self.choices, rest)
        if i < len(self.choices) and self.choices[i].startswith(rest):
            return True
        for k in range(1, len(self.terminator) + 1):
            if rest.endswith(self.terminator[:k]) and rest[:-k] in self._set:
                return True
        return False

    def is_prefix(self, text: str) -> bool:
        return self._ok(0, text)

    def is_complete(self, text: str) -> bool:
        """Whether ``text`` is one of the choices (without the terminator)."""
        return text in self._set

    def valid_plan(self, text: str) -> bool:
        """One of the choices, optionally followed by the terminator."""
        if text.endswith(self.terminator):
            text = text[: -len(self.terminator)]
        return self.is_complete(text)

    def alphabet(self) -> set[str]:
        return {c for n in self.choices for c in n} | set(self.terminator)


Grammar = PlanGrammar | ChoiceGrammar


@dataclass(frozen=True)
class PromptGrammar:
    """A grammar built from each prompt's text: ``build(prompt_text) -> grammar``.

    ``build`` must be a pure function of the text (its results are cached per prompt).
    """

    build: Callable[[str], Grammar]
    name: str = "prompt"


def toolchain_grammar() -> PlanGrammar:
    """The ToolChain env's plans: 1-4 module names separated by spaces."""
    from agentrl.envs.toolchain import MODULE_NAMES, PLAN_SEPARATOR

    return PlanGrammar(names=MODULE_NAMES, separator=PLAN_SEPARATOR, max_items=4, terminator="\n")


def toolchain_step_grammar() -> PlanGrammar:
    """One ToolChain module name per turn (the env's ``multi_turn`` mode)."""
    from agentrl.envs.toolchain import MODULE_NAMES

    return PlanGrammar(names=MODULE_NAMES, separator=" ", max_items=1, terminator="\n")


def ruleworld_grammar() -> PromptGrammar:
    """RuleWorld's actions: ``touch A with B`` over the objects in the prompt's room
    (:func:`agentrl.envs.ruleworld.action_grammar`)."""
    from agentrl.envs.ruleworld import action_grammar

    return PromptGrammar(build=action_grammar, name="ruleworld")


CONSTRAINTS: dict[str, Callable[[], Grammar | PromptGrammar]] = {
    "toolchain": toolchain_grammar,
    "toolchain_step": toolchain_step_grammar,
    "ruleworld": ruleworld_grammar,
}
"""Named constraints (``rollout.sampling.constraint=<name>``)."""


def resolve_grammar(name: str) -> Grammar | PromptGrammar:
    """The grammar of a constraint name or ``"pkg.module:factory"`` path; raises ``ValueError``
    listing the valid names for an unknown one."""
    if name in CONSTRAINTS:
        return CONSTRAINTS[name]()
    if ":" in name:
        from agentrl.registry import import_dotted

        factory = import_dotted(name)
        grammar = factory()
        if not isinstance(grammar, PlanGrammar | ChoiceGrammar | PromptGrammar):
            raise ValueError(
                f"constraint {name!r} did not return a PlanGrammar, ChoiceGrammar or PromptGrammar"
            )
        return grammar
    raise ValueError(
        f"unknown sampling constraint {name!r}; valid: {sorted(CONSTRAINTS)} or 'pkg.module:factory'"
    )


class TokenConstraint:
    """A grammar as per-step vocabulary masks for one tokenizer.

    Args:
        grammar: the plans allowed (a :class:`PromptGrammar`: per prompt, see ``allowed``).
        tokenizer: the policy's tokenizer.
        vocab_size: width of the logits (may exceed ``len(tokenizer)``: extra ids are banned).
        eos_ids: ids that end a sequence; allowed exactly where the plan is complete.
        cache_size: most masks (and per-prompt grammars) kept; the caches are emptied when
            full (a prompt grammar meets a new grammar with every new room).
    """

    def __init__(
        self,
        grammar: Grammar | PromptGrammar,
        tokenizer: Any,
        vocab_size: int,
        eos_ids: Sequence[int] = (),
        cache_size: int = 20000,
    ):
        self.grammar = grammar
        self.cache_size = cache_size
        n_tok = len(tokenizer)
        self.vocab_size = max(vocab_size, n_tok)
        texts = tokenizer.batch_decode([[i] for i in range(n_tok)])
        self.eos_ids = sorted({int(i) for i in eos_ids if 0 <= int(i) < self.vocab_size})
        special = set(getattr(tokenizer, "all_special_ids", [])) | set(self.eos_ids)
        self.token_text: list[str] = [("" if i in special else t) for i, t in enumerate(texts)]
        self.token_text += [""] * (self.vocab_size - n_tok)
        self._by_first: dict[str, list[int]] = {}
        for i, t in enumerate(self.token_text):
            if t:
                self._by_first.setdefault(t[0], []).append(i)
        self._cache: dict[tuple[Grammar, tuple[int, str]], torch.Tensor] = {}
        self._alphabets: dict[Grammar, list[str]] = {}
        self._by_prompt: dict[str, Grammar] = {}

    @property
    def needs_prompt(self) -> bool:
        """Whether masks depend on the prompt (a :class:`PromptGrammar`)."""
        return isinstance(self.grammar, PromptGrammar)

    def grammar_for(self, prompt: str | None = None) -> Grammar:
        """The grammar of a row: the constraint's own, or the one built from ``prompt``."""
        if not isinstance(self.grammar, PromptGrammar):
            return self.grammar
        if prompt is None:
            raise ValueError(f"the {self.grammar.name!r} constraint needs the prompt text")
        grammar = self._by_prompt.get(prompt)
        if grammar is None:
            if len(self._by_prompt) >= self.cache_size:
                self._by_prompt.clear()
            grammar = self._by_prompt[prompt] = self.grammar.build(prompt)
        return grammar

    def allowed(self, text: str, prompt: str | None = None) -> torch.Tensor:
        """``[V]`` bool: the tokens that may follow ``text`` (all False once the plan ended);
        ``prompt``: the row's prompt text, needed by a :class:`PromptGrammar`."""
        grammar = self.grammar_for(prompt)
        state = grammar.state(text)
        key = (grammar, state)
        mask = self._cache.get(key)
        if mask is None:
            mask = torch.zeros(self.vocab_size, dtype=torch.bool)
            done, last = state
            if grammar._ok(done, last):
                alphabet = self._alphabets.get(grammar)
                if alphabet is None:
                    alphabet = self._alphabets[grammar] = sorted(grammar.alphabet())
                for ch in alphabet:
                    if not grammar._ok(done, last + ch):
                        continue
                    for i in self._by_first.get(ch, ()):
                        if grammar._ok(done, last + self.token_text[i]):
                            mask[i] = True
                if grammar.is_complete(text):
                    mask[self.eos_ids] = True
            if len(self._cache) >= self.cache_size:
                self._cache.clear()
                self._alphabets.clear()
            self._cache[key] = mask
        return mask

    def masks(
        self,
        texts: Sequence[str],
        device: torch.device | str | None = None,
        prompts: Sequence[str] | None = None,
    ) -> torch.Tensor:
        """``[B, V]`` bool masks for ``B`` texts (and their prompts, see ``allowed``)."""
        rows = prompts if prompts is not None else [None] * len(texts)
        return torch.stack([self.allowed(t, p) for t, p in zip(texts, rows, strict=True)]).to(
            device
        )

    def apply(
        self, logits: torch.Tensor, texts: Sequence[str], prompts: Sequence[str] | None = None
    ) -> torch.Tensor:
        """Set disallowed logits ``[B, V]`` to ``-inf``. A row with no allowed token (a plan
        that has already ended) is left as it is: its samples are discarded anyway."""
        mask = self.masks(texts, logits.device, prompts)
        mask = mask | ~mask.any(dim=-1, keepdim=True)
        return logits.masked_fill(~mask, float("-inf"))

    def texts_of(self, token_ids: Sequence[int]) -> list[str]:
        """The text before each position of ``token_ids``: ``[L]`` prefixes, as the decoder sees them."""
        out, text = [], ""
        for i in token_ids:
            out.append(text)
            text += self.token_text[int(i)] if 0 <= int(i) < self.vocab_size else ""
        return out


__all__ = [
    "CONSTRAINTS",
    "ChoiceGrammar",
    "Grammar",
    "PlanGrammar",
    "PromptGrammar",
    "TokenConstraint",
    "resolve_grammar",
    "ruleworld_grammar",
    "toolchain_grammar",
    "toolchain_step_grammar",
]
