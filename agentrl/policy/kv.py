"""Per-conversation KV caches kept across turns, and batching them for one decode call.

A rollout worker keeps each live episode's KV cache between turns, so a turn prefills only
the tokens its conversation gained since the last turn (the agent's last token, the close of
its turn and the env's new message) instead of the whole history. Each conversation's cache
is stored alone and unpadded (:class:`KVCache`); a decode call stacks the live ones into one
batched ``DynamicCache`` (left-padded, the padding masked out), and afterwards cuts each
row's real columns back out. Stacking and cutting copy the cache once per turn: memory
bandwidth, tiny next to re-running the model over the history.

Memory: a cache holds ``2 * layers * kv_heads * head_dim`` numbers per token (SmolLM2-135M in
fp32: 30 * 2 * 3 * 64 * 4 B = 46 KB per token), so a worker's caches take
``num_envs * context_tokens * that`` (16 envs x 2k tokens of SmolLM2: 1.5 GB); a worker
holds caches of live episodes only, and ``rollout.max_context_tokens`` bounds the context.

Only plain attention caches are handled (every layer a ``DynamicLayer``: Llama, Qwen2,
SmolLM2, ...); :func:`supports_kv_reuse` says whether a model's cache qualifies, and the
worker re-prefills for models whose cache does not (sliding windows, state-space layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


@dataclass
class KVCache:
    """The keys and values of one conversation's first :attr:`length` context tokens.

    Attributes:
        layers: per layer ``(keys, values)``, each ``[1, kv_heads, length, head_dim]``.
    """

    layers: list[tuple[torch.Tensor, torch.Tensor]]

    @property
    def length(self) -> int:
        return int(self.layers[0][0].shape[2]) if self.layers else 0

    @property
    def nbytes(self) -> int:
        return sum(
            k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in self.layers
        )


def supports_kv_reuse(cache: object) -> bool:
    """Whether ``cache`` (a model's output cache) is a ``DynamicCache`` of plain layers."""
    return (
        isinstance(cache, DynamicCache)
        and len(cache.layers) > 0
        and all(type(layer) is DynamicLayer for layer in cache.layers)
    )


def stack_caches(caches: Sequence[KVCache], width: int) -> DynamicCache:
    """One ``DynamicCache`` of ``len(caches)`` rows, each left-padded with zeros to ``width``."""
    n_layers = len(caches[0].layers)
    data = []
    for layer in range(n_layers):
        k0, v0 = caches[0].layers[layer]
        keys = k0.new_zeros((len(caches), k0.shape[1], width, k0.shape[3]))
        values = v0.new_zeros((len(caches), v0.shape[1], width, v0.shape[3]))
        for row, c in enumerate(caches):
            k, v = c.layers[layer]
            if k.shape[2]:
                keys[row, :, width - k.shape[2] :] = k[0]
                values[row, :, width - v.shape[2] :] = v[0]
        data.append((keys, values))
    return DynamicCache(data)


def cut_row(cache: DynamicCache, row: int, columns: torch.Tensor) -> KVCache:
    """Row ``row`` of a batched cache, keeping the sequence ``columns`` (a long index)."""
    layers = []
    for layer in cache.layers:
        if not isinstance(layer, DynamicLayer) or layer.keys is None or layer.values is None:
            raise TypeError(f"cannot cut a {type(layer).__name__} cache layer (supports_kv_reuse)")
        cols = columns.to(layer.keys.device)
        layers.append(
            (
                layer.keys[row : row + 1].index_select(2, cols).contiguous(),
                layer.values[row : row + 1].index_select(2, cols).contiguous(),
            )
        )
    return KVCache(layers)


__all__ = ["KVCache", "cut_row", "stack_caches", "supports_kv_reuse"]
