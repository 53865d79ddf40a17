"""Scoring yes/no questions with a causal LM, sharing the prompt's common prefix.

The LLM model of interestingness (:mod:`.omni`) asks one question per (learned task,
candidate task) pair, and all questions of one labelling sweep share a long prefix (the
instructions and the in-context examples). :func:`answer_logprobs` runs the prefix once,
keeps its KV cache, and runs only each question's own tokens on top of it, in batches;
it returns the log-probabilities of the answer tokens at the position after the question
(one forward per question, no sampling, so scores are reproducible).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import torch

from agentrl.policy.models import base_model


def single_token(tokenizer: Any, text: str) -> int:
    """The id of ``text`` when it is exactly one token, else a ValueError naming the pieces."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise ValueError(
            f"answer {text!r} must be a single token of the MoI model's tokenizer, got {len(ids)}: "
            f"{[tokenizer.decode([i]) for i in ids]}"
        )
    return int(ids[0])


@torch.no_grad()
def answer_logprobs(
    model: Any,
    prefix_ids: Sequence[int],
    suffix_ids: Sequence[Sequence[int]],
    answer_ids: Sequence[int],
    batch_size: int = 32,
    pad_id: int = 0,
) -> torch.Tensor:
    """``[B, A]`` next-token log-probs of ``answer_ids`` after ``prefix + suffix_b``.

    Args:
        model: an HF causal LM (in eval mode).
        prefix_ids: the tokens every question starts with (non-empty); run once.
        suffix_ids: ``B`` non-empty token lists, each question's own tokens.
        answer_ids: ``A`` single-token answers whose log-probs are read.
        batch_size: suffixes per forward pass.
        pad_id: id used for right padding (its positions are masked and never read).
    """
    if not prefix_ids:
        raise ValueError("prefix_ids must not be empty")
    if any(not s for s in suffix_ids):
        raise ValueError("every suffix must hold at least one token")
    dev = next(model.parameters()).device
    answers = torch.tensor(list(answer_ids), device=dev)
    if not suffix_ids:
        return torch.zeros(0, len(answers))
    prefix = torch.tensor([list(prefix_ids)], device=dev)
    out = model(input_ids=prefix, use_cache=True)
    cache = getattr(out, "cache", None)
    cache = out.past_key_values if cache is None else cache
    base = base_model(model)
    # transformers 5 names the cache argument ``cache``, older versions ``past_key_values``
    kw = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
    rows = []
    for i in range(0, len(suffix_ids), batch_size):
        chunk = suffix_ids[i : i + batch_size]
        n, width = len(chunk), max(len(s) for s in chunk)
        ids = torch.full((n, width), pad_id, dtype=torch.long, device=dev)
        mask = torch.zeros((n, prefix.shape[1] + width), dtype=torch.long, device=dev)
        mask[:, : prefix.shape[1]] = 1
        for r, s in enumerate(chunk):  # right padding: each row's last real token is read
            ids[r, : len(s)] = torch.tensor(list(s), device=dev)
            mask[r, prefix.shape[1] : prefix.shape[1] + len(s)] = 1
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(n)
        logits = model(input_ids=ids, attention_mask=mask, **{kw: past}).logits
        last = torch.tensor([len(s) - 1 for s in chunk], device=dev)
        logp = torch.log_softmax(logits[torch.arange(n, device=dev), last].float(), dim=-1)
        rows.append(logp[:, answers].cpu())
    return torch.cat(rows)
