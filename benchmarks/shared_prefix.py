"""Shared leading ids encoded once per batch (``Policy.min_shared_prefix``) vs every row whole.

Every episode of a built-in env opens with the same rules, so a batch of first turns shares
most of its prompt ids (ToolChain's rules are ~420 of a ~470-token prompt for SmolLM2).
Measures, on one machine in one run, with SmolLM2-135M-Instruct (its real chat template and
weights, LoRA on) and ``--prompts`` ToolChain first turns:

- **sampling**: ``Policy.generate`` of one plan per prompt under the plan constraint (the
  rollout's first turn, RLTF's candidates);
- **scoring**: ``Policy.action_logprobs`` of those plans with gradients, forward and backward
  (a policy-gradient update's pass),

each with the shared ids encoded once (``min_shared_prefix=32``, the default) and with it
off (``0``), median of ``--repeats`` after a warm-up, and checks that both give the same
samples and log-probs. Usage::

    python benchmarks/shared_prefix.py                 # ~2 min on 2 cores
    python benchmarks/shared_prefix.py --out docs/shared_prefix.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.rltf import make_pretrained, register_subset_constraint  # noqa: E402

MODULES = ["reverse", "sort", "double", "inc", "sum", "max"]


def prompts_of(policy: Any, n: int) -> list[list[int]]:
    """The first-turn contexts of ``n`` ToolChain test tasks, as a rollout builds them."""
    from agentrl.rollouts.worker import make_env

    env = make_env(
        "agentrl/ToolChain-v0",
        {"split": "test", "max_chain": 2, "num_examples": 2, "multi_turn": False, "modules": MODULES},
        True,
    )
    out = []
    for i in range(n):
        obs, _ = env.reset(seed=i)
        out.append(list(policy.chat_format().start([{"role": "user", "content": obs}])))
    return out


def timed(fn: Any, repeats: int) -> tuple[float, Any]:
    fn()  # warm-up
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    register_subset_constraint(MODULES, multi_turn=False)
    from benchmarks import rltf

    policy = make_pretrained(0)
    prompts = prompts_of(policy, args.prompts)
    from agentrl.policy import SamplingConfig
    from agentrl.policy.prefix import common_prefix_length

    sampling = SamplingConfig(max_new_tokens=12, constraint=rltf.CONSTRAINT)
    rows: dict[str, Any] = {
        "prompts": len(prompts),
        "prompt_tokens_mean": sum(map(len, prompts)) / len(prompts),
        "shared_tokens": common_prefix_length(prompts),
    }
    gens: dict[int, Any] = {}
    for shared in (0, 32):
        policy.min_shared_prefix = shared

        def sample() -> Any:
            return policy.generate(prompts, sampling, torch.Generator().manual_seed(0))

        rows[f"generate_s_{shared}"], gens[shared] = timed(sample, args.repeats)
    actions = [g.token_ids for g in gens[0]]
    scores: dict[int, torch.Tensor] = {}
    for shared in (0, 32):
        policy.min_shared_prefix = shared

        def score() -> torch.Tensor:
            policy.model.zero_grad(set_to_none=True)
            sums, _, _ = policy.action_logprobs(prompts, actions)
            sums.sum().backward()
            return sums.detach()

        rows[f"score_s_{shared}"], scores[shared] = timed(score, args.repeats)
    rows["same_samples"] = all(a.token_ids == b.token_ids for a, b in zip(gens[0], gens[32], strict=True))
    rows["max_logprob_diff"] = float((scores[0] - scores[32]).abs().max())
    rows["generate_speedup"] = rows["generate_s_0"] / rows["generate_s_32"]
    rows["score_speedup"] = rows["score_s_0"] / rows["score_s_32"]
    print(json.dumps(rows, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main()
