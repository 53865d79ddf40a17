"""Part 2 of the GPU proof: rollout tokens/s of the HF backend (:meth:`Policy.generate`).

A batch of ``batch`` distinct random prompts of ``prompt`` ids each (no shared prefix) is
decoded for exactly ``new_tokens`` tokens (no stop strings; a random model hits its eos
about once in ``vocab`` tokens, so a row may end a little early: only sampled tokens are
counted) with agentrl's batched KV-cache decode loop, temperature 1. Two weight setups of
the same shape: ``lora`` (the preset as shipped: bf16 base weights plus its LoRA adapter,
what an inline or HF rollout worker decodes with) and ``bf16`` (the same weights without
the adapter, as after a merge).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from agentrl.policy import Policy, SamplingConfig
from benchmarks.gpu_models import SHAPES, SPECIALS, random_policy

SETUPS = ("lora", "bf16")


@dataclass
class RolloutRow:
    """Decode throughput of one weight setup."""

    shape: str
    setup: str
    batch: int
    prompt: int
    new_tokens: int
    repeats: int
    seconds: float
    sampled_tokens: int
    tokens_per_s: float
    prefill_tokens_per_s: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_setup(
    shape_key: str,
    setup: str,
    device: torch.device,
    batch: int,
    prompt: int,
    new_tokens: int,
    repeats: int,
) -> RolloutRow:
    """Time ``repeats`` calls of :meth:`Policy.generate` (after a short untimed one), and the
    prefill of the batch alone (a call for one new token)."""
    shape = SHAPES[shape_key]
    policy: Policy = random_policy(shape, device, torch.bfloat16, lora=setup == "lora")
    gen = torch.Generator().manual_seed(0)
    prompts = torch.randint(len(SPECIALS), shape.vocab, (batch, prompt), generator=gen).tolist()
    sampling = SamplingConfig(max_new_tokens=new_tokens, stop=())
    # warm-up: kernels, allocator and cache growth for the first decode steps
    policy.generate(prompts, SamplingConfig(max_new_tokens=min(8, new_tokens), stop=()))
    # the prefill alone: one forward of the whole batch, as the first decode step does
    _sync(device)
    start = time.perf_counter()
    policy.generate(
        prompts, SamplingConfig(max_new_tokens=1, stop=()), torch.Generator().manual_seed(2)
    )
    _sync(device)
    prefill_s = time.perf_counter() - start
    sampled = 0
    _sync(device)
    start = time.perf_counter()
    for r in range(repeats):
        gens = policy.generate(prompts, sampling, torch.Generator().manual_seed(3 + r))
        sampled += sum(len(g.token_ids) for g in gens)
    _sync(device)
    seconds = time.perf_counter() - start
    row = RolloutRow(
        shape=shape.label,
        setup=setup,
        batch=batch,
        prompt=prompt,
        new_tokens=new_tokens,
        repeats=repeats,
        seconds=seconds,
        sampled_tokens=sampled,
        tokens_per_s=sampled / seconds,
        prefill_tokens_per_s=batch * prompt / prefill_s,
    )
    return row


def run_rollout(
    shape_key: str,
    device: torch.device,
    batch: int,
    prompt: int,
    new_tokens: int,
    repeats: int,
    report: Callable[[dict[str, object]], None] = lambda result: None,
) -> dict[str, object]:
    """Every setup of :data:`SETUPS`; a setup that fails is reported and the next runs;
    ``report`` gets the result so far after every setup."""
    rows: list[dict[str, object]] = []
    errors: list[str] = []
    result: dict[str, object] = {"rows": rows, "errors": errors}
    for setup in SETUPS:
        try:
            row = measure_setup(shape_key, setup, device, batch, prompt, new_tokens, repeats)
            rows.append(asdict(row))
            print(f"rollout {setup}: {row.tokens_per_s:,.0f} sampled tokens/s", flush=True)
        except Exception as e:  # report it, measure the other
            errors.append(f"{setup}: {type(e).__name__}: {e}")
        gc.collect()  # the last setup's model went out of scope: free it before the next
        if device.type == "cuda":
            torch.cuda.empty_cache()
        report(result)
    return result


__all__ = ["RolloutRow", "SETUPS", "measure_setup", "run_rollout"]
