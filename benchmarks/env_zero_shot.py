"""SmolLM2-135M-Instruct zero-shot on every built-in env: before and after conversations.

For each built-in env (its ``configs/env/*.yaml`` settings), the prompted model plays
``--episodes`` fixed-seed episodes in two ways:

- ``transcript`` (before): each turn a fresh prompt ``[system, user=observation]`` holding
  the env's whole transcript, as agentrl played every env before conversations existed
  (TwentyQuestions' first observation is the bare header ``Questions:``);
- ``conversation`` (after): the episode is a conversation, its first message the env's plain
  words ``info["instructions"]`` and the first observation, then one message per turn
  (``env.conversation=true``; ToolCalls is a conversation either way).

Reported per env and mode: success rate, invalid-action rate (share of turns with
``info["invalid_action"]``), mean turns, wall time. Decoding is greedy (the prompted model's
own choice); the system prompt is the ``model=smollm2`` preset's; replies end at a newline or
the model's end-of-turn token (``env.stop`` of the env's config). Usage::

    python benchmarks/env_zero_shot.py --out docs/env_zero_shot.json
    python benchmarks/env_zero_shot.py --envs guess_the_number --episodes 2   # smoke
"""

# ruff: noqa: E402
from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import time
from typing import Any

import torch

from agentrl.config import load_config
from agentrl.policy import Policy, SamplingConfig
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

ENVS = (
    "twenty_questions", "guess_the_number", "guess_my_city", "wordle", "maze",
    "game24", "toolchain", "textcraft", "ruleworld", "toolcalls",
)  # fmt: skip


def play(policy: Policy, env: str, conversation: bool, episodes: int, seed: int) -> dict[str, Any]:
    cfg = load_config([f"env={env}", "model=smollm2"])
    sampling = SamplingConfig(max_new_tokens=cfg.env.max_new_tokens, stop=tuple(cfg.env.stop), greedy=True)
    worker = RolloutWorker(
        cfg.env.id, cfg.env.kwargs, episodes, sampling, policy=policy,
        conversation=conversation or cfg.env.conversation,
    )  # fmt: skip
    start = time.perf_counter()
    eps = worker.collect([EpisodeJob(i, seed + i) for i in range(episodes)], rng_seed=seed)
    turns = [t for e in eps for t in e.turns]
    return {
        "env": env,
        "mode": "conversation" if worker.conversational else "transcript",
        "episodes": episodes,
        "success": sum(e.success for e in eps) / episodes,
        "invalid": sum(bool(t.info.get("invalid_action")) for t in turns) / max(1, len(turns)),
        "turns": len(turns) / episodes,
        "wall_s": time.perf_counter() - start,
        "example": [(t.observation[-200:], t.action) for t in eps[0].turns[:3]],
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", nargs="+", default=list(ENVS))
    ap.add_argument("--episodes", type=int, default=16)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--out", default=None)
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    policy = Policy.from_config(load_config(["model=smollm2"]).model, device="cpu")
    rows: list[dict[str, Any]] = []
    if args.resume and args.out and os.path.exists(args.out):
        with open(args.out) as f:
            rows = json.load(f)
    done = {(r["env"], r["mode"]) for r in rows}
    for env in args.envs:
        for conversation in (False, True):
            if env == "toolcalls" and not conversation:
                continue  # a conversation by nature
            if (env, "conversation" if conversation else "transcript") in done:
                continue
            row = play(policy, env, conversation, args.episodes, args.seed)
            rows.append(row)
            print(
                f"{env:<18} {row['mode']:<12} success {row['success']:.2f}  invalid {row['invalid']:.2f}  "
                f"turns {row['turns']:.1f}  {row['wall_s']:.0f} s",
                flush=True,
            )
            if args.out:
                with open(args.out, "w") as f:
                    json.dump(rows, f, indent=1)
    return rows


if __name__ == "__main__":
    main()
