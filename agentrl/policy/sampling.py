"""Sampling next tokens from logits: temperature, top-k, greedy, inverse-CDF draw.

Pure functions on tensors. The draw is softmax + cumsum + ``searchsorted`` on one uniform
number per row, not ``torch.multinomial``: on CPU with a 49k vocabulary multinomial costs
~40x more and was half of all rollout time (measured on this project's CPU; rollout
throughput in docs/benchmarks.md). Log-probs are returned with the samples so nothing has to be re-scored later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class SamplingConfig:
    """How :meth:`Policy.generate` picks tokens.

    Attributes:
        temperature: logits are divided by it before the softmax; ``<= 0`` means greedy.
        top_k: keep only the ``top_k`` most likely tokens (0 = off).
        max_new_tokens: at most this many tokens per utterance (stop token included).
        stop: generation of a sequence ends at the first token whose text contains one of
            these strings (or at eos); the returned text is cut before the stop string.
        greedy: take the argmax instead of sampling.
        constraint: name of a decoding constraint (:mod:`agentrl.policy.constraints`, e.g.
            ``"toolchain"``): tokens that cannot continue a valid plan are masked before
            temperature/top-k, and the log-probs are those of the constrained distribution.
    """

    temperature: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 24
    stop: tuple[str, ...] | list[str] = ("\n",)
    greedy: bool = False
    constraint: str | None = None

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature <= 0


def scale_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0) -> torch.Tensor:
    """Temperature-scale ``logits`` ``[..., V]`` (float32) and mask all but the top-k to -inf."""
    scaled = logits.float()
    if temperature > 0 and temperature != 1.0:
        scaled = scaled / temperature
    if 0 < top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    return scaled


def inverse_cdf_sample(
    scaled: torch.Tensor, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one token per row from ``softmax(scaled)`` by inverting the CDF.

    Args:
        scaled: ``[B, V]`` float logits (already temperature-scaled / masked; -inf allowed).
        generator: torch generator for the uniform draws (on CPU or the logits' device).

    Returns:
        ``(ids [B] long, logprobs [B] float32)``: the sampled ids and their log-probs under
        ``softmax(scaled)``.
    """
    shifted = scaled - scaled.max(dim=-1, keepdim=True).values
    weights = shifted.exp()  # [B, V], unnormalised probabilities in (0, 1]
    cdf = weights.cumsum(dim=-1)
    dev = generator.device if generator is not None else scaled.device
    u = torch.rand(scaled.shape[0], 1, generator=generator, device=dev).to(scaled.device)
    # right=True: first index whose cdf exceeds u, so zero-probability tokens are never hit.
    ids = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=scaled.shape[-1] - 1)
    # Log-prob from the exact (pairwise) sum, not the sequential cumsum's last entry.
    logprobs = shifted.gather(-1, ids) - weights.sum(dim=-1, keepdim=True).log()
    return ids.squeeze(-1), logprobs.squeeze(-1)


def greedy_sample(scaled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax per row of ``scaled`` ``[B, V]``; log-probs under ``softmax(scaled)``."""
    ids = scaled.argmax(dim=-1, keepdim=True)
    logprobs = scaled.gather(-1, ids) - torch.logsumexp(scaled, dim=-1, keepdim=True)
    return ids.squeeze(-1), logprobs.squeeze(-1)


def sample_next(
    logits: torch.Tensor, cfg: SamplingConfig, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick the next token for every row of ``logits`` ``[B, V]`` according to ``cfg``.

    Returns:
        ``(ids [B], logprobs [B])``. The log-probs are under the temperature-scaled (and
        top-k truncated) distribution; with temperature 1 and no top-k they are the
        policy's own log-probs. Greedy decoding reports the log-prob under the
        temperature-scaled softmax (temperature 1 when ``temperature <= 0``), i.e. the
        policy's probability of the argmax token rather than the point mass's 0.
    """
    temperature = cfg.temperature if cfg.temperature > 0 else 1.0
    scaled = scale_logits(logits, temperature, cfg.top_k)
    if cfg.is_greedy:
        return greedy_sample(scaled)
    return inverse_cdf_sample(scaled, generator)


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string (every backend's rule)."""
    cuts = [i for i in (text.find(s) for s in stop) if i >= 0]
    return text[: min(cuts)] if cuts else text
