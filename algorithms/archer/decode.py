"""Lean sampling of ArCHer's fresh actions ``a' ~ pi(.|s)``.

:meth:`Policy.generate <agentrl.policy.Policy.generate>` runs the whole HF causal LM at every
decode step; with ``logits_to_keep=1`` that is the transformer body plus ``lm_head`` on the
last position, computed as ``h @ W^T`` (``F.linear``). On a CPU with a large vocabulary (SmolLM2:
49152 x 256) and a small batch, that product is memory-bound and oneDNN/MKL's kernel for the
transposed weight reads ``W`` at less than half the speed of ``W @ h^T`` (measured at batch 8:
4.7 ms vs 2.2 ms per step; ~half of all sampling time at the reference shape).

:class:`LeanSampler` keeps the policy's decode loop (batched, KV-cached, same stop handling,
constraints, row dropping and random draws, so a fixed generator gives the same samples) and
swaps the model call for a lean one: the body (``model.model``) on the new tokens, then the
logits of the last position only, as ``(W @ h^T)^T`` on the CPU for up to 64 rows (``F.linear``
otherwise). The logits are the same numbers up to float summation order.

``precision="bf16"`` (``ArcherConfig.actor_precision``) also runs the body under bf16 autocast
and the head with a bf16 copy of ``W`` made once per call (the weights themselves stay fp32);
the sampled tokens then follow the bf16 logits.

Models other than the plain decoder-only LMs in :data:`LEAN_MODELS` (a head with a bias, a
logit scale or soft-capping, a LoRA-wrapped head) fall back to :meth:`Policy.generate`.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agentrl.policy import SamplingConfig
from agentrl.types import Generation

# Causal LMs whose logits are exactly ``lm_head(body(x).last_hidden_state)``.
LEAN_MODELS = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
SMALL_BATCH = 64  # up to this many rows, ``W @ h^T`` beats ``h @ W^T`` on the CPU


def lean_parts(model: Any) -> tuple[nn.Module, nn.Linear] | None:
    """``(body, lm_head)`` of ``model`` (peft unwrapped) when the lean path applies, else None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if type(base).__name__ not in LEAN_MODELS:
        return None
    head = base.get_output_embeddings()
    body = getattr(base, getattr(base, "base_model_prefix", ""), None)
    if type(head) is not nn.Linear or head.bias is not None or not isinstance(body, nn.Module):
        return None
    return body, head


def last_logits(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``h @ weight^T`` ``[B, V]`` for ``h`` ``[B, H]``, in the faster order for small CPU batches."""
    if h.device.type == "cpu" and h.shape[0] <= SMALL_BATCH:
        return (weight @ h.t()).t().contiguous()
    return F.linear(h, weight)


class _LeanLM:
    """Stands in for ``policy.model`` inside the policy's decode loop (see the module doc)."""

    def __init__(self, model: Any, body: nn.Module, head: nn.Linear, bf16: bool):
        self._model = model
        self._body = body
        self._bf16 = bf16
        self._weight = head.weight.detach()
        if bf16:
            self._weight = self._weight.to(torch.bfloat16)
        self.generation_config = getattr(model, "generation_config", None)

    @property
    def training(self) -> bool:
        return bool(self._model.training)

    def eval(self) -> _LeanLM:
        self._model.eval()
        return self

    def train(self, mode: bool = True) -> _LeanLM:
        self._model.train(mode)
        return self

    def __call__(
        self,
        *,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        use_cache: bool = True,
        logits_to_keep: int = 1,
        **cache: Any,
    ) -> SimpleNamespace:
        # fp32: no autocast context of its own, so a caller's (the learner's on CUDA) applies
        bf16 = torch.autocast(input_ids.device.type, dtype=torch.bfloat16)
        with bf16 if self._bf16 else contextlib.nullcontext():
            out = self._body(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=use_cache,
                **cache,
            )
        h = out.last_hidden_state[:, -1]
        logits = last_logits(h.to(self._weight.dtype), self._weight).float()
        return SimpleNamespace(logits=logits.unsqueeze(1), past_key_values=out.past_key_values)


class LeanSampler:
    """Samples utterances like ``policy.generate`` with the lean model call (module doc).

    Args:
        policy: the :class:`~agentrl.policy.Policy`.
        precision: ``"fp32"`` or ``"bf16"``.
    """

    def __init__(self, policy: Any, precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        self.policy = policy
        self.precision = precision

    @property
    def is_lean(self) -> bool:
        """Whether the policy's model takes the lean path (else :meth:`generate` falls back)."""
        return lean_parts(self.policy.model) is not None

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingConfig,
        generator: torch.Generator | None = None,
    ) -> list[Generation]:
        """``policy.generate(prompt_ids, sampling, generator)`` with the lean model call."""
        parts = lean_parts(self.policy.model)
        if parts is None:
            return list(self.policy.generate(prompt_ids, sampling, generator))
        view = copy.copy(self.policy)  # shares tokenizer, caches and settings; only .model differs
        view.model = _LeanLM(self.policy.model, *parts, bf16=self.precision == "bf16")
        return list(view.generate(prompt_ids, sampling, generator))


__all__ = ["LEAN_MODELS", "LeanSampler", "last_logits", "lean_parts"]
