"""Prefilled conversation contexts kept across sampling calls while the policy is frozen.

ArCHer's critic phase samples fresh actions at replayed states in every one of its
``critic_epochs`` steps, and the policy does not change during that phase. Each call of
:meth:`Policy.generate_shared <agentrl.policy.Policy.generate_shared>` prefills the
conversations of its batch (one KV cache per conversation, cut to each state's length,
:mod:`agentrl.policy.prefix`); with a :class:`PrefillCache` it keeps those caches, and a later
call whose state lies in a held conversation starts from the held cache: cut to the state's
length when the conversation is held that far, extended by the missing ids otherwise. So
within one cache's life every id of a conversation goes through the model once.

Why by hand: HF ``generate`` has no cache that outlives one call and serves other prompts; a
``DynamicCache`` is the cache of one batch, grown in place, and cannot be cut to a shorter
prompt, shared by several prompts, or looked up by token ids. Prefix caching across requests
exists in serving engines (vLLM's automatic prefix caching), not for this HF decode loop.

Validity: a held cache is the policy's keys and values at the weights it was computed with.
The store cannot see weight changes (fused optimizers change parameters in place without
bumping their version counters), so its owner scopes it: ArCHer creates one when a critic
phase starts and drops it when the phase ends (:meth:`CriticLearner.critic_phase
<agentrl.algorithms.archer.learner.CriticLearner.critic_phase>`), never across an actor step.
One store also serves one sampling setup: the same device and autocast (a held cache keeps
the dtype it was computed in).

Memory: ``max_bytes`` bounds the held caches (:attr:`KVCache.nbytes
<agentrl.policy.kv.KVCache.nbytes>`); the least recently used conversation goes first, and a
conversation larger than the whole budget is not kept (it is prefilled on every call, as
without a store). SmolLM2-135M in fp32 holds 46 KB per token, so 1 GiB is ~23k tokens: 12
conversations of 1,900 tokens.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from agentrl.policy.kv import KVCache


@dataclass
class PrefillStats:
    """Token counts of a :class:`PrefillCache`'s life.

    Attributes:
        prefilled_tokens: context ids run through the model by calls that used the store.
        reused_tokens: context ids served from held caches instead.
        evictions: conversations dropped to stay within the budget.
    """

    prefilled_tokens: int = 0
    reused_tokens: int = 0
    evictions: int = 0


class PrefillCache:
    """Held KV caches of conversation contexts, looked up by token ids, LRU within a byte budget.

    Entries are keyed by the context ids their cache covers (the key's length is the cache's
    :attr:`~agentrl.policy.kv.KVCache.length`); no held key is a prefix of another (a longer
    context of the same conversation replaces a shorter one).

    Args:
        max_bytes: bound of the held caches' total size (``0`` keeps nothing).
    """

    def __init__(self, max_bytes: int):
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = max_bytes
        self.nbytes = 0
        self.stats = PrefillStats()
        self._entries: OrderedDict[tuple[int, ...], KVCache] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: Sequence[int]) -> KVCache | None:
        """The held cache to start ``ids`` from, or ``None``.

        A cache whose context starts with ``ids`` (its :attr:`length` is at least
        ``len(ids)``: cut it), else the longest held cache whose context is a prefix of
        ``ids`` (shorter: prefill the rest on top of it). The entry becomes the most recently
        used; the reused ids are counted in :attr:`stats`.
        """
        key = tuple(ids)
        best: tuple[int, ...] | None = None
        for held in self._entries:
            if len(held) >= len(key) and held[: len(key)] == key:
                best = held
                break
            if len(held) < len(key) and key[: len(held)] == held:
                if best is None or len(held) > len(best):
                    best = held
        if best is None:
            return None
        self._entries.move_to_end(best)
        self.stats.reused_tokens += min(len(best), len(key))
        return self._entries[best]

    def put(self, ids: Sequence[int], cache: KVCache) -> None:
        """Hold ``cache``, the keys and values of ``ids``: held prefixes of ``ids`` are dropped
        (this one covers them), then least recently used entries until the budget holds.
        Nothing changes when a held cache already covers ``ids``."""
        key = tuple(ids)
        if cache.length != len(key):
            raise ValueError(f"a cache of {cache.length} tokens cannot hold {len(key)} ids")
        if any(len(h) > len(key) and h[: len(key)] == key for h in self._entries):
            return  # a held cache already covers ids
        for held in [h for h in self._entries if key[: len(h)] == h]:
            self._drop(held)
        if cache.nbytes > self.max_bytes:
            return
        self._entries[key] = cache
        self.nbytes += cache.nbytes
        while self.nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))
            self.stats.evictions += 1

    def clear(self) -> None:
        """Drop every held cache (the counts in :attr:`stats` stay)."""
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: tuple[int, ...]) -> None:
        self.nbytes -= self._entries.pop(key).nbytes


__all__ = ["PrefillCache", "PrefillStats"]
