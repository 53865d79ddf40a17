"""The lean decode step: the transformer body, then the last position's logits only.

A decode step of :meth:`Policy.generate <agentrl.policy.Policy.generate>` needs the logits of
one position per row. Through the HF causal LM (``logits_to_keep=1``) that is the body plus
``lm_head`` as ``h @ W^T`` (``F.linear``). On a CPU with a large vocabulary (SmolLM2: 49152 x
256) and a small batch that product is memory-bound, and the kernel for the transposed weight
reads ``W`` at less than half the speed of ``W @ h^T`` (batch 8: 4.7 vs 2.2 ms per step, about
half of all sampling time at ArCHer's reference shape; docs/archer_update_speed.md).

:func:`lean_parts` finds ``(body, lm_head)`` for the plain decoder-only LMs of
:data:`LEAN_MODELS` (peft-wrapped too: LoRA layers live inside the body); other models (a head
with a bias, a logit scale or soft-capping, a LoRA-wrapped head, a head with forward hooks)
return None and keep the full forward. :func:`last_logits` computes the logits in the faster order; they equal the full
forward's up to float summation order.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from agentrl.policy.models import base_model

# Causal LMs whose logits are exactly ``lm_head(body(x).last_hidden_state)``.
LEAN_MODELS = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM")
SMALL_BATCH = 64  # up to this many rows, ``W @ h^T`` beats ``h @ W^T`` on the CPU


def lean_parts(model: Any) -> tuple[nn.Module, nn.Linear] | None:
    """``(body, lm_head)`` of ``model`` (peft unwrapped) when the lean step applies, else None."""
    base = base_model(model)
    if type(base).__name__ not in LEAN_MODELS:
        return None
    head = base.get_output_embeddings()
    body = getattr(base, getattr(base, "base_model_prefix", ""), None)
    if type(head) is not nn.Linear or head.bias is not None or not isinstance(body, nn.Module):
        return None
    if head._forward_hooks or head._forward_pre_hooks:  # a hook must see every head call
        return None
    return body, head


def last_logits(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``h @ weight^T`` ``[B, V]`` for ``h`` ``[B, H]``, in the faster order for small CPU batches."""
    if h.device.type == "cpu" and h.shape[0] <= SMALL_BATCH:
        return (weight @ h.t()).t().contiguous()
    return F.linear(h, weight)


__all__ = ["LEAN_MODELS", "SMALL_BATCH", "last_logits", "lean_parts"]
