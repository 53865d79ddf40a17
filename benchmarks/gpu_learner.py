"""Part 1 of the GPU proof: learner tokens/s and MFU of a policy-gradient update.

One step is what PPO/GRPO do per minibatch: :meth:`Policy.span_logprobs
<agentrl.policy.Policy.span_logprobs>` over whole multi-turn conversations (one forward per
conversation, the LM head only at agent positions), PPO's clipped surrogate
(:func:`agentrl.algorithms.ppo.losses.clipped_policy_loss`) against fixed sampling
log-probs and random per-turn advantages, backward, and a clipped AdamW step
(:func:`agentrl.optim.guarded_step`), all under bf16 autocast. Two precisions:

- ``full``: fp32 weights (the optimiser's master copy) under bf16 autocast, every weight
  trained: what ``model.dtype=float32 model.lora=false`` gives on a GPU;
- ``lora``: the preset as shipped: bf16 base weights, the preset's LoRA adapter trained.

Tokens = every id fed to the model (the conversations are scored to their last agent turn,
which ends them). FLOPs follow :mod:`agentrl.flops`: ``6 * N`` per token with ``N`` all
parameters (LoRA included, as that module explains); ``mfu_attn`` also counts causal
attention's score and value products, ``6 * layers * hidden * T`` per token for a
conversation of ``T`` ids (forward + backward, half of the full ``T x T`` matrix).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from agentrl.algorithms.ppo.losses import clipped_policy_loss
from agentrl.flops import mfu, train_flops
from agentrl.optim import guarded_step
from agentrl.policy import Policy
from agentrl.policy.device import autocast
from benchmarks.gpu_models import (
    SHAPES,
    SPECIALS,
    Layout,
    Shape,
    conversation_layout,
    parameter_count,
    random_policy,
)

PRECISIONS = ("lora", "full")


@dataclass(frozen=True)
class LearnerCase:
    """One measurement: a model shape, a conversation length and a precision."""

    shape: str
    conversation: int
    precision: str
    tokens_per_step: int


@dataclass
class LearnerRow:
    """The result of one :class:`LearnerCase`."""

    shape: str
    params: int
    trainable: int
    precision: str
    conversation: int
    conversations_per_step: int
    agent_tokens_per_step: int
    tokens_per_step: int
    steps: int
    seconds: float
    tokens_per_s: float
    tflops_per_s: float
    mfu: float | None
    mfu_attn: float | None
    peak_memory_gb: float | None
    loss: float


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(
    layout: Layout, n: int, vocab: int, gen: torch.Generator
) -> tuple[list[list[int]], list[tuple[int, int, int]]]:
    """``n`` random conversations of ``layout`` and their agent spans ``(q, start, end)``."""
    ids = torch.randint(len(SPECIALS), vocab, (n, layout.total), generator=gen)
    sequences = [row.tolist() for row in ids]
    spans = [(q, s, e) for q in range(n) for s, e in layout.spans()]
    return sequences, spans


def measure_case(
    case: LearnerCase,
    device: torch.device,
    warmup: int,
    steps: int,
    peak: float | None,
    layout_of: Callable[[int], Layout],
) -> LearnerRow:
    """Time ``steps`` update steps (after ``warmup`` untimed ones) of ``case`` on ``device``."""
    shape: Shape = SHAPES[case.shape]
    lora = case.precision == "lora"
    policy: Policy = random_policy(shape, device, torch.bfloat16 if lora else torch.float32, lora)
    model = policy.model
    params = parameter_count(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-6)
    layout = layout_of(case.conversation)
    n = max(1, case.tokens_per_step // layout.total)
    gen = torch.Generator().manual_seed(0)
    sequences, spans = _batch(layout, n, shape.vocab, gen)
    model.train()
    with torch.no_grad(), autocast(device, torch.bfloat16):
        old = policy.span_logprobs(sequences, spans)[1].float()
    advantages = torch.randn(len(spans), generator=gen).to(device)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, torch.bfloat16):
            _, logp, mask = policy.span_logprobs(sequences, spans)
            loss, _ = clipped_policy_loss(logp, old, advantages, mask, 0.2)
        loss.backward()
        guarded_step(optimizer, trainable, 1.0)
        return float(loss.detach())

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _sync(device)
    start = time.perf_counter()
    loss = 0.0
    for _ in range(steps):
        loss = step()
    _sync(device)
    seconds = time.perf_counter() - start
    tokens = n * layout.total * steps
    flops = train_flops(params, tokens)
    attn = 6.0 * shape.layers * shape.hidden * layout.total * tokens
    row = LearnerRow(
        shape=shape.label,
        params=params,
        trainable=sum(p.numel() for p in trainable),
        precision=case.precision,
        conversation=layout.total,
        conversations_per_step=n,
        agent_tokens_per_step=n * sum(e - s for s, e in layout.spans()),
        tokens_per_step=n * layout.total,
        steps=steps,
        seconds=seconds,
        tokens_per_s=tokens / seconds,
        tflops_per_s=flops / seconds / 1e12,
        mfu=mfu(flops, seconds, peak),
        mfu_attn=mfu(flops + attn, seconds, peak),
        peak_memory_gb=torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
        loss=loss,
    )
    return row


def _free(device: torch.device) -> None:
    """Return the last case's memory (its model went out of scope) before the next one."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def learner_cases(shapes: list[str], lengths: list[int], tokens_per_step: int) -> list[LearnerCase]:
    """Every shape x length x precision, the smaller shapes and shorter lengths first (so
    a part that runs out of time has measured the cheap cases)."""
    return [
        LearnerCase(shape, length, precision, tokens_per_step)
        for shape in shapes
        for length in lengths
        for precision in PRECISIONS
    ]


def run_learner(
    device: torch.device,
    cases: list[LearnerCase],
    warmup: int,
    steps: int,
    peak: float | None,
    deadline: float,
    turn: tuple[int, int, int],
    report: Callable[[dict[str, object]], None] = lambda result: None,
) -> dict[str, object]:
    """Measure ``cases`` in order until ``deadline`` (``time.time()``); a case that fails is
    reported with its error and the next one runs; ``report`` gets the result so far after
    every case (so a part killed at its cap keeps what it measured). ``turn`` is ``(agent
    ids, env ids, minimum opening ids)`` of the conversations."""
    agent, env, opening = turn
    rows: list[dict[str, object]] = []
    errors: list[str] = []
    skipped: list[str] = []
    result: dict[str, object] = {"rows": rows, "errors": errors, "skipped_for_time": skipped}
    last: tuple[float, int] | None = None  # (seconds, approximate parameters) of the last case
    for case in cases:
        label = f"{case.shape}/{case.conversation}/{case.precision}"
        size = SHAPES[case.shape].approx_params
        # a case costs about the last one's time, scaled by model size: skip it rather than
        # be killed mid-case at the part's cap
        expected = last[0] * size / last[1] if last else 0.0
        if time.time() + expected > deadline:
            skipped.append(label)
            report(result)
            continue
        began = time.time()
        try:
            row = measure_case(
                case,
                device,
                warmup,
                steps,
                peak,
                lambda t: conversation_layout(t, agent, env, opening),
            )
            rows.append(asdict(row))
            print(f"learner {label}: {row.tokens_per_s:,.0f} tokens/s, mfu {row.mfu}", flush=True)
        except Exception as e:  # report it, measure the others
            errors.append(f"{label}: {type(e).__name__}: {e}")
        _free(device)
        last = (time.time() - began, size)
        report(result)
    return result


__all__ = [
    "LearnerCase",
    "LearnerRow",
    "PRECISIONS",
    "learner_cases",
    "measure_case",
    "run_learner",
]
