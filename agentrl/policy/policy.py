"""The policy: an HF causal LM + tokenizer that samples utterances and scores them.

Prompt format (:meth:`Policy.format_prompt`):

- tokenizer with a chat template (e.g. SmolLM2-Instruct): ``[system?, user=observation]``
  rendered with ``add_generation_prompt=True``; the template adds its own special tokens.
- otherwise (the tiny char model): ``"{system_prompt}\\n{observation}\\nAction: "``, the
  first line only when a system prompt is set; bos is added when the tokenizer adds it.

Generation is our own batched decode loop (left-padded prefill, then one token per step
with the KV cache) so that the log-probs come out of sampling for free and the draw uses
the cheap inverse-CDF sampler (:mod:`agentrl.policy.sampling`). Scoring
(:meth:`Policy.action_logprobs`) runs the model once on prompt+action and computes the
log-softmax only at action positions.

Constrained decoding (``SamplingConfig.constraint``, else :attr:`Policy.default_constraint`;
:mod:`agentrl.policy.constraints`) masks the logits of every step to the tokens that keep
the text a valid plan prefix; the reported log-probs are those of that constrained
distribution, and :meth:`Policy.action_logprobs` applies the same masks (its
``constraint`` argument, else ``default_constraint``), so re-scored log-probs match
sampled ones. A constraint whose grammar depends on the prompt (``ruleworld``: the objects
of the room) gets each row's decoded prompt in both places. With neither set, decoding and
scoring are unchanged.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from agentrl.policy.chat import ChatFormat, ToolSpec, chat_format
from agentrl.policy.constraints import TokenConstraint, resolve_grammar
from agentrl.policy.device import resolve_device
from agentrl.policy.kv import KVCache, cut_row, stack_caches, supports_kv_reuse
from agentrl.policy.lean import last_logits, lean_parts
from agentrl.policy.models import (
    ModelConfig,
    base_model,
    hf_quietly,
    is_peft,
    load_model_and_tokenizer,
    peft_quietly,
    torch_dtype,
)
from agentrl.policy.prefill_cache import PrefillCache
from agentrl.policy.sampling import SamplingConfig, cut_at_stop, sample_next
from agentrl.types import Generation

POLICY_META = "agentrl_policy.json"


class Policy:
    """An HF causal LM (optionally a peft LoRA model) with its tokenizer.

    Attributes:
        model: the ``PreTrainedModel`` or ``PeftModel``.
        tokenizer: its tokenizer (left padding).
        device: where inputs are put.
        version: version of the weights; bumped by :meth:`set_weights`.
        system_prompt: see :meth:`format_prompt`.
        model_config: the :class:`ModelConfig` it was built from, when known (needed to
            rebuild the base model of a LoRA policy in :meth:`load`).
        default_constraint: the decoding constraint :meth:`generate` and
            :meth:`action_logprobs` apply when the caller names none (the learner sets it to
            ``rollout.sampling.constraint``, so an algorithm that samples on its own, like
            ArCHer's fresh actions, or re-scores, gets the same constrained distribution).
        lean_decode: decode steps call the transformer body and compute the last position's
            logits as ``W @ h^T`` (:mod:`agentrl.policy.lean`; the same logits up to float
            summation order; the head product runs ~2x faster for a large vocabulary at small
            CPU batches, whole sampling 1.08x at 16 prompts, docs/benchmarks.md). Models the
            lean step does not cover use the full forward; False forces the full forward.
        min_shared_prefix: when at least this many leading ids are shared by every prompt
            of a :meth:`generate` batch (or a scoring chunk of :meth:`action_logprobs`),
            they are run through the model once for the batch (the env's rules and system
            prompt that open every episode; the same values up to float summation order,
            docs/benchmarks.md); 0 turns this off.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        system_prompt: str | None = None,
        device: str | torch.device | None = None,
        model_config: ModelConfig | None = None,
    ) -> None:
        if device is not None:
            model = model.to(device)
        self.model = model
        self.tokenizer = tokenizer
        self.device = (
            torch.device(device) if device is not None else next(model.parameters()).device
        )
        self.system_prompt = system_prompt
        self.model_config = model_config
        self.version = 0
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        base = base_model(model)
        params = inspect.signature(base.forward).parameters
        # transformers 5.x renamed ``past_key_values`` to ``cache``.
        self._cache_kwarg = "cache" if "cache" in params else "past_key_values"
        self._stop_cache: dict[tuple[tuple[str, ...], int], torch.Tensor] = {}
        self.default_constraint: str | None = None
        self.lean_decode = True
        self.min_shared_prefix = 32
        self._constraints: dict[tuple[str, int], TokenConstraint] = {}
        self._chat_formats: dict[tuple[str, ...], ChatFormat] = {}

    @classmethod
    def from_config(cls, cfg: ModelConfig, device: str | torch.device | None = None) -> Policy:
        """Build the model and tokenizer described by ``cfg`` (see :mod:`.models`).

        The model goes to ``device``, default ``cfg.device`` resolved in this process
        (:func:`agentrl.policy.device.resolve_device`: ``auto`` is CUDA when visible, else
        CPU; ``cuda`` without CUDA raises a ``ConfigError``).
        """
        target = device if device is not None else resolve_device(cfg.device)
        model, tok = load_model_and_tokenizer(cfg)
        return cls(model, tok, system_prompt=cfg.system_prompt, device=target, model_config=cfg)

    # ------------------------------------------------------------------ prompts

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def chat_format(self, tools: Sequence[ToolSpec] = ()) -> ChatFormat:
        """The :class:`~agentrl.policy.chat.ChatFormat` of this tokenizer and system prompt
        (its chat template, else the plain format), with ``tools``; cached."""
        key = tuple(json.dumps(t.as_template_tool(), sort_keys=True) for t in tools)
        if key not in self._chat_formats:
            self._chat_formats[key] = chat_format(self.tokenizer, self.system_prompt, tools)
        return self._chat_formats[key]

    @property
    def max_context_tokens(self) -> int:
        """The longest context the model takes (its ``max_position_embeddings``)."""
        return int(getattr(self.model.config, "max_position_embeddings", None) or 2**31 - 1)

    def format_prompt(self, observation: str) -> str:
        """Render one observation as the prompt text (format in the module docstring)."""
        if self.has_chat_template:
            messages = [{"role": "user", "content": observation}]
            if self.system_prompt:
                messages.insert(0, {"role": "system", "content": self.system_prompt})
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
            return str(text)
        head = f"{self.system_prompt}\n" if self.system_prompt else ""
        return f"{head}{observation}\nAction: "

    def encode_prompts(self, observations: Sequence[str]) -> list[list[int]]:
        """Format and tokenize observations: ``B`` lists of prompt ids ``[P_i]``, unpadded."""
        texts = [self.format_prompt(o) for o in observations]
        # A rendered chat template already holds its special tokens.
        enc = self.tokenizer(texts, add_special_tokens=not self.has_chat_template)
        return [list(ids) for ids in enc["input_ids"]]

    # --------------------------------------------------------------- generation

    def stop_token_mask(self, stop: Sequence[str], vocab_size: int | None = None) -> torch.Tensor:
        """``[V]`` bool: tokens whose decoded text contains a stop string, plus eos.

        ``V = vocab_size`` (the logits' width, which may exceed ``len(tokenizer)`` when the
        embedding matrix is padded; ids past the tokenizer never stop). Cached per stop set.
        """
        n_tok = len(self.tokenizer)
        vocab = max(vocab_size or 0, n_tok)
        key = (tuple(stop), vocab)
        if key not in self._stop_cache:
            texts = self.tokenizer.batch_decode([[i] for i in range(n_tok)])
            mask = torch.zeros(vocab, dtype=torch.bool)
            mask[:n_tok] = torch.tensor([any(s in t for s in stop) for t in texts])
            for eos in self._eos_ids():
                if 0 <= eos < vocab:
                    mask[eos] = True
            self._stop_cache[key] = mask.to(self.device)
        return self._stop_cache[key]

    def token_constraint(self, name: str, vocab_size: int) -> TokenConstraint:
        """The (cached) :class:`TokenConstraint` of constraint ``name`` for this tokenizer."""
        key = (name, vocab_size)
        if key not in self._constraints:
            self._constraints[key] = TokenConstraint(
                resolve_grammar(name), self.tokenizer, vocab_size, sorted(self._eos_ids())
            )
        return self._constraints[key]

    def _eos_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_cfg = getattr(self.model, "generation_config", None)
        extra = getattr(gen_cfg, "eos_token_id", None)
        ids.update(extra if isinstance(extra, list) else [extra])
        return {i for i in ids if i is not None}

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Generation]:
        """Sample one utterance per prompt with a batched KV-cache decode loop.

        Prompts are left-padded to ``[B, P]``; every step feeds the last token of each
        live sequence (``[B', 1]``) with ``position_ids`` counted from each prompt's first
        real token. A sequence ends at a stop token / eos (``"stop"``) or after
        ``max_new_tokens`` (``"length"``); the loop ends when all have ended. Finished
        rows are dropped from the cache once they are half of the batch. Each step runs the
        lean step (``lean_decode``) where the model allows it, and honours a caller's autocast
        context (e.g. ArCHer's ``actor_precision=bf16``).

        Args:
            prompt_ids: ``B`` token-id lists ``[P_i]`` (non-empty, no padding).
            sampling: temperature / top-k / stop strings; defaults to ``SamplingConfig()``.
            generator: source of the uniform draws (same seed -> same samples).

        Returns:
            ``B`` :class:`Generation` objects in the input order.
        """
        sampling = sampling or SamplingConfig()
        if not prompt_ids:
            return []
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                tokens, logps, stopped, _ = self._decode(prompt_ids, sampling, generator)
        finally:
            self.model.train(was_training)
        return [
            self._make_generation(p, t, lp, s, sampling.stop)
            for p, t, lp, s in zip(prompt_ids, tokens, logps, stopped, strict=True)
        ]

    def generate_continue(
        self,
        prompt_ids: Sequence[Sequence[int]],
        caches: Sequence[KVCache | None],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Generation], list[KVCache | None]]:
        """:meth:`generate` that reuses and returns each row's KV cache (multi-turn rollouts).

        Row ``i``'s cache holds the keys/values of the first ``caches[i].length`` ids of
        ``prompt_ids[i]`` (its conversation so far, :mod:`agentrl.policy.kv`); only the ids
        after them are prefilled. The returned cache of a row covers its prompt and all but
        the last sampled token (which the next turn's prompt starts with). Sampling draws and
        log-probs are those of :meth:`generate` on the same prompts, up to float summation
        order. Returns ``None`` caches when the model's cache cannot be reused (not a plain
        ``DynamicCache``); callers then pass ``None`` and the full prompt is prefilled.
        """
        sampling = sampling or SamplingConfig()
        if len(caches) != len(prompt_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(caches)} caches")
        if not prompt_ids:
            return [], []
        for i, (p, c) in enumerate(zip(prompt_ids, caches, strict=True)):
            if c is not None and c.length >= len(p):
                raise ValueError(
                    f"row {i}: the cache covers {c.length} tokens but the prompt has {len(p)}; "
                    "a prompt must extend its cached context by at least one token"
                )
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                tokens, logps, stopped, out_caches = self._decode(
                    prompt_ids, sampling, generator, caches, keep=True
                )
        finally:
            self.model.train(was_training)
        gens = [
            self._make_generation(p, t, lp, s, sampling.stop)
            for p, t, lp, s in zip(prompt_ids, tokens, logps, stopped, strict=True)
        ]
        return gens, out_caches

    def _decode(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingConfig,
        generator: torch.Generator | None,
        caches: Sequence[KVCache | None] | None = None,
        keep: bool = False,
    ) -> tuple[list[list[int]], list[list[float]], list[bool], list[KVCache | None]]:
        dev = self.device
        batch = len(prompt_ids)
        caches = self._shared_prefix_caches(prompt_ids, caches)
        past = [c.length if c is not None else 0 for c in caches] if caches else [0] * batch
        new = [list(p)[s:] for p, s in zip(prompt_ids, past, strict=True)]
        lens = torch.tensor([len(p) for p in prompt_ids], device=dev)
        s_width = max(past)
        width = max(len(n) for n in new)
        pad = self.tokenizer.pad_token_id
        # Filled on the CPU and moved once: per-row copies to a GPU cost a launch each.
        # Layout of row i: [pad | its cached s_i columns | pad | its m_i new ids]; the
        # padding is masked out, positions are counted over the real tokens only.
        input_ids = torch.full((batch, width), pad, dtype=torch.long)
        attn = torch.zeros((batch, s_width + width), dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        for i, (n, s) in enumerate(zip(new, past, strict=True)):
            input_ids[i, width - len(n) :] = torch.as_tensor(n)
            attn[i, s_width - s : s_width] = 1
            attn[i, s_width + width - len(n) :] = 1
            positions[i, width - len(n) :] = torch.arange(s, s + len(n))
        input_ids, attn, positions = input_ids.to(dev), attn.to(dev), positions.to(dev)
        cache: Any = None
        if s_width:
            assert caches is not None
            empty = next(c for c in caches if c is not None)
            cache = stack_caches(
                [c if c is not None else KVCache([(k[:, :, :0], v[:, :, :0]) for k, v in empty.layers]) for c in caches],
                s_width,
            )
        # Multi-character stop strings can straddle tokens: also check the decoded text.
        check_text = any(len(s) > 1 for s in sampling.stop)

        forward = self._decode_step()
        logits, cache = forward(input_ids, attn, positions, cache)  # [B, V]
        reuse = keep and supports_kv_reuse(cache)
        out_caches: list[KVCache | None] = [None] * batch
        # the columns of each row's real context in the stacked cache (decode columns follow)
        base_cols = [
            torch.cat(
                [torch.arange(s_width - s, s_width), torch.arange(s_width + width - len(n), s_width + width)]
            )
            for n, s in zip(new, past, strict=True)
        ] if reuse else []
        stop_mask = self.stop_token_mask(sampling.stop, logits.shape[-1])
        name = sampling.constraint or self.default_constraint
        constraint = self.token_constraint(name, logits.shape[-1]) if name else None
        texts = [""] * batch  # text so far per original row (only tracked under a constraint)
        prompts = self._prompt_texts(prompt_ids, constraint)
        next_pos = lens.clone()  # [B'] position of the token fed next
        rows = list(range(batch))  # original index of each row still in the cache
        live = torch.ones(batch, dtype=torch.bool, device=dev)  # [B'] not finished yet
        tokens: list[list[int]] = [[] for _ in range(batch)]
        logps: list[list[float]] = [[] for _ in range(batch)]
        stopped = [False] * batch

        def cut(j: int, r: int) -> None:
            # row r (batch index j): its context, then the sampled tokens fed so far
            fed = torch.arange(s_width + width, s_width + width + len(tokens[r]) - 1)
            out_caches[r] = cut_row(cache, j, torch.cat([base_cols[r], fed]))

        for step in range(sampling.max_new_tokens):
            if constraint is not None:
                logits = constraint.apply(
                    logits,
                    [texts[r] for r in rows],
                    None if prompts is None else [prompts[r] for r in rows],
                )
            ids, lp = sample_next(logits, sampling, generator)  # [B'], [B']
            hit = stop_mask[ids]
            ids_l, lp_l, hit_l, live_l = ids.tolist(), lp.tolist(), hit.tolist(), live.tolist()
            for j, r in enumerate(rows):
                if not live_l[j]:
                    continue
                tokens[r].append(ids_l[j])
                logps[r].append(lp_l[j])
                if constraint is not None:
                    texts[r] += constraint.token_text[ids_l[j]]
                if not hit_l[j] and check_text:
                    hit_l[j] = self._text_has_stop(tokens[r], sampling.stop)
                if hit_l[j]:
                    stopped[r] = True
                    live_l[j] = False
            live = torch.tensor(live_l, dtype=torch.bool, device=dev)
            n_live = int(live.sum())
            if n_live == 0 or step == sampling.max_new_tokens - 1:
                break
            if n_live <= len(rows) // 2 and hasattr(cache, "batch_select_indices"):
                if reuse:
                    for j, r in enumerate(rows):
                        if not live_l[j]:
                            cut(j, r)
                keep_idx = live.nonzero().squeeze(-1)
                cache.batch_select_indices(keep_idx)
                rows = [rows[k] for k in keep_idx.tolist()]
                ids, attn, next_pos, live = ids[keep_idx], attn[keep_idx], next_pos[keep_idx], live[keep_idx]
            attn = torch.cat([attn, attn.new_ones(attn.shape[0], 1)], dim=-1)
            logits, cache = forward(ids.unsqueeze(-1), attn, next_pos.unsqueeze(-1), cache)
            next_pos = next_pos + 1
        if reuse:
            for j, r in enumerate(rows):
                cut(j, r)
        return tokens, logps, stopped, out_caches

    def _shared_prefix_caches(
        self, prompt_ids: Sequence[Sequence[int]], caches: Sequence[KVCache | None] | None
    ) -> Sequence[KVCache | None] | None:
        """``caches`` with every uncached row given the KV cache of the ids all uncached rows
        share (:func:`~agentrl.policy.prefix.common_prefix_length`), computed once with batch
        1, when they share at least :attr:`min_shared_prefix` ids. Each row keeps at least
        its last prompt id to prefill (the decode loop needs its logits). Unchanged when the
        model's cache cannot be reused."""
        from agentrl.policy.prefix import common_prefix_length

        open_rows = [i for i in range(len(prompt_ids)) if not caches or caches[i] is None]
        if len(open_rows) < 2 or not self.min_shared_prefix:
            return caches
        n = min(
            common_prefix_length([prompt_ids[i] for i in open_rows]),
            min(len(prompt_ids[i]) for i in open_rows) - 1,
        )
        if n < self.min_shared_prefix:
            return caches
        ids = torch.tensor([list(prompt_ids[open_rows[0]][:n])], dtype=torch.long, device=self.device)
        _, cache = self._decode_step()(ids, torch.ones_like(ids), torch.arange(n, device=self.device)[None], None)
        if not supports_kv_reuse(cache):
            return caches
        shared = cut_row(cache, 0, torch.arange(n))
        out: list[KVCache | None] = list(caches) if caches else [None] * len(prompt_ids)
        for i in open_rows:
            out[i] = shared  # stack_caches copies it into each row of the batched cache
        return out

    def _decode_step(self) -> Callable[..., tuple[torch.Tensor, Any]]:
        """``(input_ids, attention_mask, position_ids, cache) -> (last logits [B, V], cache)``.

        The lean step (:mod:`.lean`: body, then ``W @ h^T`` for the last position) when
        ``lean_decode`` is on and the model allows it, else the full forward with
        ``logits_to_keep=1``. Under an autocast context the head weight is cast once here,
        not at every step.
        """
        parts = lean_parts(self.model) if self.lean_decode else None
        kwarg = self._cache_kwarg

        def full(ids: Any, attn: Any, pos: Any, cache: Any) -> tuple[torch.Tensor, Any]:
            past = {} if cache is None else {kwarg: cache}
            out = self.model(
                input_ids=ids,
                attention_mask=attn,
                position_ids=pos,
                use_cache=True,
                logits_to_keep=1,
                **past,
            )
            return out.logits[:, -1], _cache_of(out)

        if parts is None:
            return full
        body, head = parts
        weight = head.weight.detach()
        dev = self.device.type
        if torch.is_autocast_enabled(dev):
            weight = weight.to(torch.get_autocast_dtype(dev))

        def lean(ids: Any, attn: Any, pos: Any, cache: Any) -> tuple[torch.Tensor, Any]:
            past = {} if cache is None else {kwarg: cache}
            out = body(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, **past)
            h = out.last_hidden_state[:, -1]
            return last_logits(h.to(weight.dtype), weight).float(), _cache_of(out)

        return lean

    def _prompt_texts(
        self, prompt_ids: Sequence[Sequence[int]], constraint: TokenConstraint | None
    ) -> list[str] | None:
        """The decoded prompts, for a constraint whose grammar depends on them."""
        if constraint is None or not constraint.needs_prompt:
            return None
        return [str(t) for t in self.tokenizer.batch_decode([list(p) for p in prompt_ids])]

    def _text_has_stop(self, token_ids: list[int], stop: Sequence[str]) -> bool:
        text = self.tokenizer.decode(token_ids, skip_special_tokens=True)
        return any(s in text for s in stop)

    def _make_generation(
        self,
        prompt: Sequence[int],
        token_ids: list[int],
        logprobs: list[float],
        stopped: bool,
        stop: Sequence[str],
    ) -> Generation:
        text = cut_at_stop(str(self.tokenizer.decode(token_ids, skip_special_tokens=True)), stop)
        return Generation(
            text=text,
            token_ids=token_ids,
            logprobs=logprobs,
            prompt_ids=list(prompt),
            finish_reason="stop" if stopped else "length",
        )

    def generate_text(
        self,
        observations: Sequence[str],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Generation]:
        """:meth:`encode_prompts` then :meth:`generate`."""
        return self.generate(self.encode_prompts(observations), sampling, generator)

    # ------------------------------------------------------------------ scoring

    def action_logprobs(
        self,
        prompt_ids: Sequence[Sequence[int]],
        action_ids: Sequence[Sequence[int]],
        *,
        temperature: float = 1.0,
        batch_size: int | None = None,
        constraint: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs of ``action_ids`` given ``prompt_ids``, differentiable.

        One forward per chunk of ``batch_size`` rows (all rows when ``None``) on
        ``[left-padded prompt | right-padded action]``, so every action starts at the same
        column; only the logits of the ``L`` action positions are computed (``logits_to_keep``)
        and log-softmaxed. Gradients flow unless the caller disables them; the model's
        train/eval mode is left as it is (call ``model.eval()`` for dropout-free scores).

        Args:
            prompt_ids: ``B`` non-empty prompt id lists ``[P_i]``.
            action_ids: ``B`` action id lists ``[L_i]`` (may be empty).
            temperature: logits are divided by it (use the sampling temperature to
                reproduce :class:`Generation` log-probs; top-k truncation is not applied).
            batch_size: rows per forward pass, to bound memory.
            constraint: score under this decoding constraint (the softmax renormalised over
                the tokens it allows at each position, as :meth:`generate` samples);
                default :attr:`default_constraint`.

        Returns:
            ``(sums [B], per_token [B, L], mask [B, L])`` with ``L = max L_i``;
            ``per_token`` is 0 where ``mask`` (bool) is False.
        """
        if len(prompt_ids) != len(action_ids):
            raise ValueError("prompt_ids and action_ids must have the same length")
        batch = len(prompt_ids)
        width = max((len(a) for a in action_ids), default=0)
        if batch == 0:
            empty = torch.zeros(0, 0, device=self.device)
            return empty.sum(-1), empty, empty.bool()
        step = batch_size or batch
        constraint = constraint or self.default_constraint
        chunks = [
            self._score_chunk(
                prompt_ids[i : i + step], action_ids[i : i + step], temperature, width, constraint
            )
            for i in range(0, batch, step)
        ]
        per_token = torch.cat([c[0] for c in chunks])
        mask = torch.cat([c[1] for c in chunks])
        return per_token.sum(-1), per_token, mask

    def span_logprobs(
        self,
        sequences: Sequence[Sequence[int]],
        spans: Sequence[tuple[int, int, int]],
        *,
        temperature: float = 1.0,
        batch_size: int | None = None,
        constraint: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs of token spans of whole sequences, one forward pass per sequence.

        The update-side twin of a multi-turn rollout: ``sequences`` are episodes'
        conversations (:meth:`Episode.segments <agentrl.types.Episode.segments>`) and each
        span ``(sequence, start, end)`` one agent turn's ids ``sequences[sequence][start:end]``,
        scored given everything before it. A sequence is run once, whatever the number of its
        turns (the per-turn path, :meth:`action_logprobs`, re-encodes the history for every
        turn: O(turns^2) tokens). Only the agent positions go through the LM head (the lean
        split of :mod:`.lean`), so env tokens cost no ``[T, vocab]`` logits.

        Args:
            sequences: unpadded token-id lists.
            spans: ``N`` ``(sequence index, start, end)`` with ``1 <= start <= end``.
            temperature: as :meth:`action_logprobs`.
            constraint: as :meth:`action_logprobs` (a constraint, which needs each turn's
                decoded prompt, is scored by :meth:`action_logprobs`).
            batch_size: sequences per forward pass (all when None).

        Returns:
            ``(sums [N], per_token [N, L], mask [N, L])`` with ``L`` the longest span, in
            the layout of :meth:`action_logprobs`.
        """
        constraint = constraint or self.default_constraint
        if constraint is not None:
            prompts = [list(sequences[q][:s]) for q, s, _ in spans]
            actions = [list(sequences[q][s:e]) for q, s, e in spans]
            return self.action_logprobs(
                prompts, actions, temperature=temperature, constraint=constraint
            )
        per_token, mask, _ = self._span_scores(sequences, spans, temperature, batch_size, False)
        return per_token.sum(-1), per_token, mask

    def span_logprobs_hidden(
        self,
        sequences: Sequence[Sequence[int]],
        spans: Sequence[tuple[int, int, int]],
        *,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`span_logprobs` (temperature 1) plus the model's final hidden state at every
        scored position, from the same forward pass: for a value head on the policy's body.

        The hidden state of agent token ``k`` is read at the position that predicts it (the
        state the token was sampled from). A decoding constraint is not supported (its
        scoring is per turn, :meth:`action_logprobs`): a ``ValueError`` names it.

        Returns:
            ``(per_token [N, L], mask [N, L], hidden [N, L, H])``; ``hidden`` is 0 where
            ``mask`` is False.
        """
        if self.default_constraint is not None:
            raise ValueError(
                f"span_logprobs_hidden cannot score under the decoding constraint "
                f"{self.default_constraint!r} (constrained scoring is per turn)"
            )
        per_token, mask, hidden = self._span_scores(sequences, spans, 1.0, batch_size, True)
        assert hidden is not None
        return per_token, mask, hidden

    def _span_scores(
        self,
        sequences: Sequence[Sequence[int]],
        spans: Sequence[tuple[int, int, int]],
        temperature: float,
        batch_size: int | None,
        with_hidden: bool,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The unconstrained body of :meth:`span_logprobs`: ``(per_token, mask, hidden or None)``."""
        n = len(spans)
        width = max((e - s for _, s, e in spans), default=0)
        dev = self.device
        if n == 0 or width == 0:
            empty = torch.zeros(n, width, device=dev)
            size = int(self.model.config.hidden_size)
            hidden_empty = torch.zeros(n, width, size, device=dev) if with_hidden else None
            return empty, empty.bool(), hidden_empty
        for q, s, e in spans:
            if not 1 <= s <= e <= len(sequences[q]):
                raise ValueError(f"span {(q, s, e)} is outside sequence {q} of {len(sequences[q])} ids")
        used = sorted({q for q, _, _ in spans})
        step = batch_size or len(used)
        per_token = torch.zeros(n, width, device=dev)
        mask = torch.zeros(n, width, dtype=torch.bool, device=dev)
        hidden: torch.Tensor | None = None
        by_seq: dict[int, list[int]] = {}
        for i, (q, _, _) in enumerate(spans):
            by_seq.setdefault(q, []).append(i)
        for lo in range(0, len(used), step):
            chunk = used[lo : lo + step]
            rows = [i for q in chunk for i in by_seq[q]]
            ends = {q: 0 for q in chunk}
            for i in rows:  # a sequence is run only up to its last scored token
                ends[spans[i][0]] = max(ends[spans[i][0]], spans[i][2])
            lp, h = self._score_spans(
                [sequences[q][: ends[q]] for q in chunk],
                [(chunk.index(spans[i][0]), spans[i][1], spans[i][2]) for i in rows],
                temperature,
                width,
                with_hidden,
            )
            index = torch.tensor(rows, device=dev)
            per_token = per_token.index_copy(0, index, lp)
            if h is not None:
                if hidden is None:
                    hidden = torch.zeros(n, width, h.shape[-1], device=dev, dtype=h.dtype)
                hidden = hidden.index_copy(0, index, h)
            lengths = torch.tensor([spans[i][2] - spans[i][1] for i in rows], device=dev)
            mask[index] = torch.arange(width, device=dev)[None, :] < lengths[:, None]
        return per_token, mask, hidden

    def generate_shared(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
        prefill: PrefillCache | None = None,
    ) -> list[Generation]:
        """:meth:`generate`, prefilling once the prompts that are prefixes of a longer one.

        The prompts are grouped under roots (:func:`~agentrl.policy.prefix.prefix_groups`);
        each root's context is run through the model once, and every member starts from
        the root's KV cache cut to its own length, so only its last prompt token and the
        sampled tokens are computed per prompt (:mod:`agentrl.policy.prefix`). Draws and
        log-probs are those of :meth:`generate` on the same prompts, up to float summation
        order. Without any shared prefix, or for a model whose cache cannot be reused
        (:func:`~agentrl.policy.kv.supports_kv_reuse`), this is :meth:`generate`.

        ``prefill`` keeps the roots' caches across calls (:mod:`agentrl.policy.prefill_cache`):
        a root held that far is not run again, a root that extends a held context runs only
        its new ids on top of it. The caller must drop the store when the weights change.
        """
        from agentrl.policy.prefix import prefix_groups

        sampling = sampling or SamplingConfig()
        roots, root_of = prefix_groups(prompt_ids)
        if (len(roots) == len(prompt_ids) and prefill is None) or any(
            len(p) == 0 for p in prompt_ids
        ):
            return self.generate(prompt_ids, sampling, generator)
        forward = self._decode_step()
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                root_caches: list[KVCache | None] = []
                for root in roots:
                    n = len(root) - 1  # the last prompt token is fed by the decode loop
                    if n == 0:
                        root_caches.append(None)
                        continue
                    rc = self._prefill_context(root[:n], forward, prefill)
                    if rc is None:
                        return self.generate(prompt_ids, sampling, generator)
                    root_caches.append(rc)
                caches: list[KVCache | None] = []
                for p, r in zip(prompt_ids, root_of, strict=True):
                    rc, n = root_caches[r], len(p) - 1
                    caches.append(
                        None if rc is None or n == 0 else KVCache([(k[:, :, :n], v[:, :, :n]) for k, v in rc.layers])
                    )
                if all(c is None for c in caches):
                    caches = []
                tokens, logps, stopped, _ = self._decode(prompt_ids, sampling, generator, caches or None)
        finally:
            self.model.train(was_training)
        return [
            self._make_generation(p, t, lp, s, sampling.stop)
            for p, t, lp, s in zip(prompt_ids, tokens, logps, stopped, strict=True)
        ]

    def _prefill_context(
        self,
        ids: Sequence[int],
        forward: Callable[..., tuple[torch.Tensor, Any]],
        prefill: PrefillCache | None,
    ) -> KVCache | None:
        """The KV cache of at least the context ``ids`` (batch 1): held in ``prefill``, or a held
        prefix extended by the remaining ids, or one forward pass over ``ids``; ``None`` when
        the model's cache cannot be reused. A computed cache is put into ``prefill``."""
        held = prefill.lookup(ids) if prefill is not None else None
        start = held.length if held is not None else 0
        if held is not None and start >= len(ids):
            return held
        dev = self.device
        new = torch.tensor([list(ids[start:])], dtype=torch.long, device=dev)
        past = stack_caches([held], start) if held is not None else None
        attn = torch.ones((1, len(ids)), dtype=torch.long, device=dev)
        _, cache = forward(new, attn, torch.arange(start, len(ids), device=dev)[None], past)
        if not supports_kv_reuse(cache):
            return None
        out = cut_row(cache, 0, torch.arange(len(ids)))
        if prefill is not None:
            prefill.stats.prefilled_tokens += len(ids) - start
            prefill.put(ids, out)
        return out

    def shared_action_logprobs(
        self,
        prompt_ids: Sequence[Sequence[int]],
        action_ids: Sequence[Sequence[int]],
        *,
        temperature: float = 1.0,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`action_logprobs`, running each shared prompt prefix through the model once.

        Prompts that are prefixes of a longer one are grouped under it
        (:func:`~agentrl.policy.prefix.prefix_groups`) and scored by :meth:`branch_logprobs`;
        ``batch_size`` counts roots per forward. Without any shared prefix, under a decoding
        constraint, or with an attention implementation that takes no custom mask (only
        ``sdpa`` and ``eager`` do), this is :meth:`action_logprobs`. Same values and
        gradients, up to float summation order.
        """
        from agentrl.policy.prefix import prefix_groups

        roots, root_of = prefix_groups(prompt_ids)
        impl = getattr(self.model.config, "_attn_implementation", None)
        if (
            len(roots) == len(prompt_ids)
            or self.default_constraint is not None
            or impl not in ("sdpa", "eager")
        ):
            return self.action_logprobs(
                prompt_ids, action_ids, temperature=temperature, batch_size=batch_size
            )
        branches = [
            (r, len(p), list(a)) for p, a, r in zip(prompt_ids, action_ids, root_of, strict=True)
        ]
        return self.branch_logprobs(roots, branches, temperature=temperature, batch_size=batch_size)

    def branch_logprobs(
        self,
        roots: Sequence[Sequence[int]],
        branches: Sequence[tuple[int, int, Sequence[int]]],
        *,
        temperature: float = 1.0,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs of actions that branch off shared contexts, one forward per root.

        Branch ``(root, L, action)`` is ``action`` given ``roots[root][:L]``. A root and all
        its branches are packed into one sequence (the root, then each action) with a 4D
        attention mask and position ids that give every action token exactly the context
        it has when its state is encoded alone (:func:`~agentrl.policy.prefix.branch_layout`),
        so the model runs over a root once however many states branch off it. Only the
        action positions go through the LM head. Differentiable.

        Args:
            roots: unpadded token-id lists.
            branches: ``N`` ``(root index, prefix length >= 1, action ids)``.
            temperature: divides the logits.
            batch_size: roots per forward pass (all when None).

        Returns:
            ``(sums [N], per_token [N, W], mask [N, W])`` with ``W`` the longest action, in
            the layout of :meth:`action_logprobs`.
        """
        from agentrl.policy.prefix import branch_layout

        dev = self.device
        n = len(branches)
        width = max((len(a) for _, _, a in branches), default=0)
        per_token = torch.zeros(n, width, device=dev)
        mask = torch.zeros(n, width, dtype=torch.bool, device=dev)
        if n == 0 or width == 0:
            return per_token.sum(-1), per_token, mask
        by_root: dict[int, list[int]] = {}
        for i, (r, prefix, _) in enumerate(branches):
            if not 0 <= r < len(roots) or not 1 <= prefix <= len(roots[r]):
                raise ValueError(f"branch {i}: prefix {prefix} of root {r} is outside the roots")
            by_root.setdefault(r, []).append(i)
        used = sorted(by_root)
        step = batch_size or len(used)
        eager = getattr(self.model.config, "_attn_implementation", None) == "eager"
        pad = self.tokenizer.pad_token_id
        parts = lean_parts(self.model)
        for lo in range(0, len(used), step):
            chunk = used[lo : lo + step]
            layouts, seqs, picks = [], [], []  # picks: (branch, row, prediction columns)
            for row, r in enumerate(chunk):
                members = by_root[r]
                root_len = max(branches[i][1] for i in members)
                pos, allowed, starts = branch_layout(
                    root_len, [(branches[i][1], len(branches[i][2])) for i in members]
                )
                ids = list(roots[r][:root_len])
                for i, start in zip(members, starts, strict=True):
                    prefix, action = branches[i][1], list(branches[i][2])
                    ids += action
                    if action:
                        picks.append((i, row, [prefix - 1] + list(range(start, start + len(action) - 1))))
                layouts.append((pos, allowed))
                seqs.append(ids)
            t_width = max(len(x) for x in seqs)
            seq = torch.full((len(chunk), t_width), pad, dtype=torch.long)
            positions = torch.zeros((len(chunk), t_width), dtype=torch.long)
            allow = torch.eye(t_width, dtype=torch.bool).repeat(len(chunk), 1, 1)  # pads see themselves
            for row, (ids, (pos, allowed)) in enumerate(zip(seqs, layouts, strict=True)):
                seq[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
                positions[row, : len(ids)] = pos
                allow[row, : len(ids), : len(ids)] = allowed
            attn: torch.Tensor = allow[:, None].to(dev)
            if eager:  # eager attention adds its mask to the scores
                floor = torch.finfo(next(self.model.parameters()).dtype).min
                attn = torch.zeros(attn.shape, device=dev).masked_fill(~attn, floor)
            seq, positions = seq.to(dev), positions.to(dev)
            rows = torch.tensor([row for _, row, cols in picks for _ in cols], device=dev)
            cols = torch.tensor([c for _, _, cs in picks for c in cs], device=dev)
            targets = torch.tensor(
                [t for i, _, _ in picks for t in branches[i][2]], dtype=torch.long, device=dev
            )
            if parts is not None:
                body, head = parts
                hidden = body(
                    input_ids=seq, attention_mask=attn, position_ids=positions, use_cache=False
                ).last_hidden_state
                logits = head(hidden[rows, cols]).float()
            else:
                logits = self.model(
                    input_ids=seq, attention_mask=attn, position_ids=positions, use_cache=False
                ).logits[rows, cols].float()
            if temperature != 1.0:
                logits = logits / temperature
            lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            branch = torch.tensor([i for i, _, cs in picks for _ in cs], device=dev)
            token = torch.tensor([k for _, _, cs in picks for k in range(len(cs))], device=dev)
            per_token = per_token.index_put((branch, token), lp)
            mask[branch, token] = True
        return per_token.sum(-1), per_token, mask

    def _score_spans(
        self,
        sequences: Sequence[Sequence[int]],
        spans: Sequence[tuple[int, int, int]],
        temperature: float,
        width: int,
        with_hidden: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``[len(spans), width]`` log-probs (0 past each span's end) from one forward, and
        with ``with_hidden`` the final hidden states ``[len(spans), width, H]`` at the same
        positions (0 past each span's end)."""
        dev = self.device
        t_width = max(len(s) for s in sequences)
        pad = self.tokenizer.pad_token_id
        seq = torch.full((len(sequences), t_width), pad, dtype=torch.long)
        attn = torch.zeros_like(seq)
        for i, s in enumerate(sequences):
            seq[i, : len(s)] = torch.as_tensor(list(s), dtype=torch.long)
            attn[i, : len(s)] = 1
        # position p predicts token p + 1: span [s, e) is read at positions s-1 .. e-2
        rows = torch.tensor([q for q, _, _ in spans]).repeat_interleave(width)
        cols = torch.cat([torch.arange(s - 1, s - 1 + width) for _, s, _ in spans]).clamp_(max=t_width - 1)
        target_cols = (cols + 1).clamp_(max=t_width - 1)
        valid = torch.cat([torch.arange(width) < e - s for _, s, e in spans])
        seq, attn = seq.to(dev), attn.to(dev)
        rows, cols, target_cols, valid = rows.to(dev), cols.to(dev), target_cols.to(dev), valid.to(dev)
        parts = lean_parts(self.model)
        states: torch.Tensor | None = None
        if parts is not None:
            body, head = parts
            hidden = body(input_ids=seq, attention_mask=attn, use_cache=False).last_hidden_state
            states = hidden[rows, cols]  # [N * width, H]
            logits = head(states).float()  # [N * width, V]
        else:
            out = self.model(
                input_ids=seq, attention_mask=attn, use_cache=False, output_hidden_states=with_hidden
            )
            logits = out.logits[rows, cols].float()
            if with_hidden:
                states = out.hidden_states[-1][rows, cols]
        if temperature != 1.0:
            logits = logits / temperature
        targets = seq[rows, target_cols]
        lp = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        lp = lp.masked_fill(~valid, 0.0).view(len(spans), width)
        if not with_hidden or states is None:
            return lp, None
        states = states.masked_fill(~valid[:, None], 0.0).view(len(spans), width, -1)
        return lp, states

    def _score_chunk(
        self,
        prompt_ids: Sequence[Sequence[int]],
        action_ids: Sequence[Sequence[int]],
        temperature: float,
        width: int,
        constraint: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dev = self.device
        batch = len(prompt_ids)
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        a_width = max((len(a) for a in action_ids), default=0)
        per_token = torch.zeros(batch, width, device=dev)
        mask = torch.zeros(batch, width, dtype=torch.bool, device=dev)
        if a_width == 0:
            return per_token, mask
        full_prompts = prompt_ids
        shared, n_shared = self._shared_prefix_scoring(prompt_ids)
        if shared is not None:
            prompt_ids = [list(p)[n_shared:] for p in prompt_ids]
        p_width = max(len(p) for p in prompt_ids)
        pad = self.tokenizer.pad_token_id
        # Filled on the CPU and moved once (one copy per tensor, not per row, on a GPU).
        seq = torch.full((batch, p_width + a_width), pad, dtype=torch.long)
        attn = torch.zeros_like(seq)
        targets = torch.full((batch, a_width), pad, dtype=torch.long)
        rows_mask = torch.zeros(batch, width, dtype=torch.bool)
        for i, (p, a) in enumerate(zip(prompt_ids, action_ids, strict=True)):
            seq[i, p_width - len(p) : p_width] = torch.as_tensor(list(p))
            seq[i, p_width : p_width + len(a)] = torch.as_tensor(list(a), dtype=torch.long)
            attn[i, p_width - len(p) : p_width + len(a)] = 1
            targets[i, : len(a)] = torch.as_tensor(list(a), dtype=torch.long)
            rows_mask[i, : len(a)] = True
        seq, attn, targets, mask = seq.to(dev), attn.to(dev), targets.to(dev), rows_mask.to(dev)
        positions = (attn.cumsum(-1) - 1).clamp_(min=0)
        past: dict[str, Any] = {}
        if shared is not None:  # the shared ids come first, once, as every row's cache
            positions = positions + n_shared
            attn = torch.cat([attn.new_ones(batch, n_shared), attn], dim=-1)
            past = {self._cache_kwarg: shared, "use_cache": True}
        # Keep the logits of columns p_width-1 .. p_width+a_width-2: those predict the action.
        out = self.model(
            input_ids=seq,
            attention_mask=attn,
            position_ids=positions,
            logits_to_keep=a_width + 1,
            **({"use_cache": False} | past),
        )
        logits = out.logits[:, :-1].float()  # [b, a_width, V]
        if temperature != 1.0:
            logits = logits / temperature
        if constraint is not None:
            tc = self.token_constraint(constraint, logits.shape[-1])
            prompts = self._prompt_texts(full_prompts, tc)
            allowed = torch.stack(
                [
                    tc.masks(
                        tc.texts_of(list(a)) + [""] * (a_width - len(a)),
                        dev,
                        None if prompts is None else [prompts[i]] * a_width,
                    )
                    for i, a in enumerate(action_ids)
                ]
            )  # [b, a_width, V]; padded positions are masked out of the result below
            allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
            logits = logits.masked_fill(~allowed, float("-inf"))
        chosen = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        lp = chosen - torch.logsumexp(logits, dim=-1)  # [b, a_width]
        per_token[:, :a_width] = lp.masked_fill(~mask[:, :a_width], 0.0)
        return per_token, mask

    def _shared_prefix_scoring(self, prompt_ids: Sequence[Sequence[int]]) -> tuple[Any, int]:
        """``(cache, n)``: the ids every prompt shares run through the model once (with
        gradients) and their keys/values broadcast over the batch as a ``DynamicCache``, when
        at least :attr:`min_shared_prefix` are shared (each prompt keeps at least one id of
        its own); ``(None, 0)`` otherwise or when the model's cache cannot be reused.

        The gradient of every row reaches the shared ids' computation through the broadcast
        (autograd sums it), so values and gradients are those of encoding each row whole.
        """
        from transformers.cache_utils import DynamicCache

        from agentrl.policy.prefix import common_prefix_length

        if len(prompt_ids) < 2 or not self.min_shared_prefix:
            return None, 0
        n = min(common_prefix_length(prompt_ids), min(len(p) for p in prompt_ids) - 1)
        if n < self.min_shared_prefix:
            return None, 0
        ids = torch.tensor([list(prompt_ids[0][:n])], dtype=torch.long, device=self.device)
        out = self.model(
            input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True, logits_to_keep=1
        )
        cache = _cache_of(out)
        if not supports_kv_reuse(cache):
            return None, 0
        b = len(prompt_ids)
        return DynamicCache(
            [(layer.keys.expand(b, -1, -1, -1), layer.values.expand(b, -1, -1, -1)) for layer in cache.layers]
        ), n

    # ------------------------------------------------------------------ weights

    def get_weights(self) -> dict[str, torch.Tensor]:
        """CPU clones of the weights: the LoRA adapter only for a peft model, else all.

        A tied weight (``lm_head.weight`` = ``embed_tokens.weight``) is sent once, under
        its first name (for SmolLM2 the embedding is 17 % of the state dict;
        :meth:`set_weights` restores the other name through the tie).
        """
        if is_peft(self.model):
            from peft import get_peft_model_state_dict

            sd = get_peft_model_state_dict(self.model)
        else:
            sd = self.model.state_dict()
            tied = _tied_duplicates(sd)
            sd = {k: v for k, v in sd.items() if k not in tied}
        return {k: v.detach().to("cpu", copy=True) for k, v in sd.items()}

    def set_weights(self, weights: dict[str, torch.Tensor], version: int | None = None) -> None:
        """Load weights from :meth:`get_weights`; sets ``version`` (default: ``version + 1``).

        Strict: an unknown key, or a missing one that is not tied to a loaded weight,
        raises ``KeyError``.
        """
        if is_peft(self.model):
            from peft import set_peft_model_state_dict

            result = set_peft_model_state_dict(self.model, weights)
            unexpected = getattr(result, "unexpected_keys", [])
            if unexpected:
                raise KeyError(f"unexpected adapter keys: {unexpected[:5]}")
        else:
            tied = _tied_duplicates(self.model.state_dict())
            result = self.model.load_state_dict(weights, strict=False)
            missing = [k for k in result.missing_keys if k not in tied]
            if missing or result.unexpected_keys:
                raise KeyError(
                    f"weights do not match the model: missing {missing[:5]}, "
                    f"unexpected {list(result.unexpected_keys)[:5]}"
                )
        self.version = self.version + 1 if version is None else int(version)

    @property
    def is_lora(self) -> bool:
        """Whether the model is a peft (LoRA) model: its adapter can be switched off."""
        return is_peft(self.model)

    def reference_logprobs(
        self, sequences: Sequence[Sequence[int]], spans: Sequence[tuple[int, int, int]]
    ) -> torch.Tensor:
        """Per-token log-probs of ``spans`` (layout of :meth:`span_logprobs`) under the
        base model with the LoRA adapter switched off: the frozen reference of a KL
        penalty, at no memory cost. Not differentiable. Needs :attr:`is_lora`."""
        if not self.is_lora:
            raise ValueError("reference_logprobs needs a LoRA policy (model.lora=true)")
        with torch.no_grad(), self.model.disable_adapter():
            _, per_token, _ = self.span_logprobs(sequences, spans)
        return per_token

    def trainable_parameters(self) -> Iterator[torch.nn.Parameter]:
        """The parameters with ``requires_grad`` (the adapter only under LoRA)."""
        return (p for p in self.model.parameters() if p.requires_grad)

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.trainable_parameters())

    # --------------------------------------------------------------- save / load

    def save(self, path: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
        """Write safetensors weights (the adapter only under LoRA), tokenizer and metadata;
        ``state_dict``: the weights to write instead of the model's own (a sharded model's
        gathered full state, :mod:`agentrl.fsdp`)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with hf_quietly():
            self.model.save_pretrained(path, safe_serialization=True, state_dict=state_dict)
        self.tokenizer.save_pretrained(path)
        meta = {
            "version": self.version,
            "system_prompt": self.system_prompt,
            "lora": is_peft(self.model),
            "model_config": dataclasses.asdict(self.model_config) if self.model_config else None,
        }
        (path / POLICY_META).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str | torch.device | None = None,
        model_config: ModelConfig | None = None,
    ) -> Policy:
        """Rebuild a policy saved by :meth:`save` (safetensors and JSON only, no pickle).

        A LoRA policy rebuilds its base model from ``model_config`` (default: the config
        stored at save time) and then loads the adapter.
        """
        path = Path(path)
        meta_file = path / POLICY_META
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        if model_config is None and meta.get("model_config"):
            model_config = ModelConfig(**meta["model_config"])
        tok = AutoTokenizer.from_pretrained(path)
        tok.padding_side = "left"
        model: Any
        if meta.get("lora") or (path / "adapter_config.json").is_file():
            if model_config is None:
                raise ValueError(f"{path} holds a LoRA adapter: pass the base model_config")
            from peft import PeftModel

            base_cfg = dataclasses.replace(model_config, lora=False)
            base, _ = load_model_and_tokenizer(base_cfg)
            with peft_quietly():
                model = PeftModel.from_pretrained(base, path, is_trainable=True)
        else:
            dtype = torch_dtype(model_config.dtype) if model_config else torch.float32
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=True)
        model.eval()
        system_prompt = meta.get("system_prompt")
        if system_prompt is None and model_config is not None:
            system_prompt = model_config.system_prompt
        policy = cls(model, tok, system_prompt, device=device, model_config=model_config)
        policy.version = int(meta.get("version", 0))
        return policy


def _tied_duplicates(state: dict[str, torch.Tensor]) -> set[str]:
    """Keys of ``state`` whose tensor is the same storage view as an earlier key's (tied
    weights such as ``lm_head.weight`` = ``model.embed_tokens.weight``)."""
    seen: set[tuple[int, tuple[int, ...], tuple[int, ...]]] = set()
    dups = set()
    for k, v in state.items():
        view = (v.data_ptr(), tuple(v.shape), tuple(v.stride()))
        if view in seen and v.numel() > 0:
            dups.add(k)
        seen.add(view)
    return dups


def _cache_of(out: Any) -> Any:
    """The KV cache of a model output (``cache`` in transformers 5, else ``past_key_values``)."""
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values
