"""Part 3 of the GPU proof: one end-to-end iteration of ArCHer and of GRPO.

Each is an ordinary inline run through :class:`agentrl.trainer.Trainer` (``cluster=inline``:
the rollout worker shares the learner's policy on the GPU; the initial and final greedy
evaluations and the final checkpoint included), metered by
:func:`benchmarks.gpu_throughput.measure` (learner tokens/s, MFU, rollout tokens/s).
GuessTheNumber keeps the episodes short (at most 6 turns of at most 8 tokens). No BC warm
start: it needs TRL (and datasets/pyarrow), which the GPU machine lacks.

The model is agentrl's ``tiny`` Llama, built from the config alone; on the GPU it is given
the body of Qwen2.5-0.5B (hidden 896, 24 layers, 14 heads, MLP 4864; no grouped KV heads,
and the tiny word tokenizer's 414-piece vocabulary instead of Qwen's: ~391 M parameters)
with the preset's LoRA adapter, and ``--small`` keeps it tiny.
"""

from __future__ import annotations

import time

from benchmarks.gpu_throughput import measure

QWEN_0_5B_BODY = [
    "model.hidden_size=896",
    "model.num_layers=24",
    "model.num_heads=14",
    "model.intermediate_size=4864",
    "model.max_position_embeddings=4096",
    "model.lora=true",
    "model.lora_r=16",
    "model.lora_alpha=32",
    "model.lora_target_modules=[q_proj,k_proj,v_proj,o_proj]",
]
SMALL_MODEL = [
    "model.hidden_size=64",
    "model.num_layers=1",
    "model.num_heads=2",
    "model.intermediate_size=128",
]
COMMON = [
    "env=guess_the_number",
    "iterations=1",
    "warm_start.enabled=false",
    "eval.every=0",
    "eval.sample=false",
]
ALGORITHMS: dict[str, list[str]] = {
    "archer": [
        "algorithm=archer",
        "algorithm.warmup_iters=0",  # the actor trains in the first iteration
        "algorithm.critic_epochs=2",
        "algorithm.actor_epochs=1",
    ],
    "grpo": ["algorithm=grpo"],
}


SMALL_ARCHER_CRITIC = [
    "algorithm.critic_model.hidden_size=16",
    "algorithm.critic_model.num_layers=1",
    "algorithm.critic_head_hidden=32",
    "algorithm.critic_epochs=1",
]


def e2e_overrides(algorithm: str, device: str, small: bool) -> list[str]:
    """The overrides of one end-to-end iteration of ``algorithm`` (``archer`` or ``grpo``)."""
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}; choose from {', '.join(ALGORITHMS)}")
    episodes = 4 if small else 32
    batch = [
        f"rollout.episodes_per_iter={episodes}",
        f"rollout.envs_per_worker={episodes}",
        f"eval.episodes={2 if small else 8}",
    ]
    if algorithm == "archer":  # critic and actor steps of this many turns
        batch += [
            f"algorithm.batch_size={8 if small else 16}",
            *(SMALL_ARCHER_CRITIC if small else []),
        ]
    else:  # one minibatch of every conversation; groups of 4 (2 with --small)
        batch += [
            f"algorithm.minibatch_size={episodes}",
            f"algorithm.group_size={2 if small else 4}",
        ]
    model = SMALL_MODEL if small else QWEN_0_5B_BODY
    return ["model=tiny", f"model.device={device}", *model, *COMMON, *ALGORITHMS[algorithm], *batch]


def run_e2e(algorithm: str, device: str, small: bool) -> dict[str, object]:
    """One metered iteration of ``algorithm``; its result and wall time (start-up included)."""
    start = time.monotonic()
    label = "tiny (small)" if small else "tiny Llama, Qwen2.5-0.5B body + LoRA"
    result = measure(e2e_overrides(algorithm, device, small), label)
    return {**result, "wall_s": time.monotonic() - start}


__all__ = ["ALGORITHMS", "e2e_overrides", "run_e2e"]
