"""Peak memory and wall time of one learner step with and without activation checkpointing.

One minibatch of ``--conversations`` conversations of ``--tokens`` ids each (the last
``--agent-turns`` turns of ``--agent-tokens`` ids are the agent's, the rest is the env's) is
scored in one pass (:meth:`Policy.span_logprobs <agentrl.policy.Policy.span_logprobs>`, the
path every on-policy update takes) and back-propagated, as one PPO/GRPO minibatch is. Each
setting runs in a fresh process, so its peak resident memory (``ru_maxrss``) is its own; the
model's loaded size (measured before the step) is reported separately. ``--model smollm2``
uses SmolLM2-135M-Instruct with the LoRA of ``model=smollm2``; the ids are random, which does
not change memory or time.

    python benchmarks/learner_memory.py --out docs/learner_memory.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch


def _rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One setting, in this process: load, then one forward + backward of the minibatch."""
    from agentrl.policy import ModelConfig, Policy

    torch.manual_seed(0)
    cfg = ModelConfig(name=args.model, lora=True, gradient_checkpointing=args.checkpointing)
    policy = Policy.from_config(cfg, device="cpu")
    vocab = int(policy.model.config.vocab_size)
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randint(10, vocab, (args.tokens,), generator=gen).tolist() for _ in range(args.conversations)]
    spans = []
    gap = args.agent_tokens + args.env_tokens
    for q in range(args.conversations):
        for t in range(args.agent_turns):
            end = args.tokens - t * gap
            spans.append((q, end - args.agent_tokens, end))
    loaded = _rss_gb()
    policy.model.train()
    start = time.perf_counter()
    _, per_token, mask = policy.span_logprobs(seqs, spans)
    (-(per_token * mask).sum() / mask.sum()).backward()
    wall = time.perf_counter() - start
    return {
        "checkpointing": args.checkpointing,
        "loaded_gb": round(loaded, 2),
        "peak_gb": round(_rss_gb(), 2),
        "step_gb": round(_rss_gb() - loaded, 2),
        "step_s": round(wall, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2", help="model.name (default smollm2)")
    ap.add_argument("--conversations", type=int, default=16)
    ap.add_argument("--tokens", type=int, default=700, help="ids per conversation")
    ap.add_argument("--agent-turns", type=int, default=3)
    ap.add_argument("--agent-tokens", type=int, default=30, help="ids per agent turn")
    ap.add_argument("--env-tokens", type=int, default=40, help="ids between agent turns")
    ap.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    ap.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    need = args.agent_turns * (args.agent_tokens + args.env_tokens)
    if args.tokens <= need:
        ap.error(
            f"--tokens={args.tokens} must exceed --agent-turns x (--agent-tokens + --env-tokens) = {need}"
        )
    if args.child:
        print(json.dumps(child(args)))
        return {}
    setup = {
        "model": args.model,
        "conversations": args.conversations,
        "tokens": args.tokens,
        "agent_turns": args.agent_turns,
        "agent_tokens": args.agent_tokens,
        "env_tokens": args.env_tokens,
    }
    base = [f"--{k.replace('_', '-')}={v}" for k, v in setup.items()]
    rows = []
    for checkpointing in (False, True):
        cmd = [sys.executable, __file__, *base, "--child"] + (["--checkpointing"] if checkpointing else [])
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(
            f"checkpointing={str(checkpointing).lower():5}  step {r['step_s']:6.1f} s  "
            f"memory of the step {r['step_gb']:5.2f} GB  peak {r['peak_gb']:5.2f} GB",
            flush=True,
        )
    result = {
        "setup": setup,
        "torch": torch.__version__,
        "rows": rows,
        "step_memory_ratio": round(rows[0]["step_gb"] / max(rows[1]["step_gb"], 1e-9), 2),
        "time_ratio": round(rows[1]["step_s"] / max(rows[0]["step_s"], 1e-9), 2),
    }
    print(f"memory of the step: {result['step_memory_ratio']}x less; time: {result['time_ratio']}x")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
