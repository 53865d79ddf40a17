"""Rollout throughput: agentrl's rollout paths vs raw generation, a naive loop and TRL GRPO.

One run, one model, one env, one workload (``--envs`` episodes of exactly ``--turns`` turns,
up to ``--new-tokens`` sampled tokens a turn, stop strings off so every method samples the
same amount). Rows:

- ``raw_generate``: :meth:`Policy.generate` on the prompts the rollout saw, batched, no env.
- ``raw_generate_full``: the same with ``policy.lean_decode = False`` (every decode step runs
  the full HF forward, ``lm_head`` as ``h @ W^T``, instead of the body and ``W @ h^T``).
- ``hf_generate``: HF ``model.generate(do_sample=True)`` on the same prompts (reference).
- ``inline``: :meth:`RolloutWorker.collect` (log-probs captured while sampling).
- ``rescore``: the same lock-step loop, re-scoring log-probs with
  :meth:`Policy.action_logprobs` after every turn (the cost agentrl avoids).
- ``naive``: one env at a time, batch-size-1 generation per turn.
- ``ray_1xE`` / ``ray_2xE2``: :class:`RayWorkerGroup` with 1 worker x E envs and 2 workers
  x E/2 envs, steady state after a warm-up collect; start-up reported separately.
- ``agentrl_train``: whole train iterations, inline rollout + :meth:`PPO.update`.
- ``trl_grpo``: TRL's ``GRPOTrainer`` whose ``rollout_func`` plays the same multi-turn
  episodes (HF ``generate`` per turn, env feedback masked with ``env_mask``), whole train
  steps (rollout + update).

Each row: one warm-up, then ``--repeats`` timed runs; the table reports medians and ratios
to raw generation and to the naive loop (ratios from the same run, because idle speed
drifts on shared machines). Usage::

    python benchmarks/rollout_throughput.py --out docs/benchmarks.md
    python benchmarks/rollout_throughput.py --quick --model tiny --skip-ray --skip-trl
"""

# ruff: noqa: E402  (environment variables must be set before torch is imported)
from __future__ import annotations

import os

# Before torch is imported: OpenMP threads that spin-wait make a shared 2-core box 5x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import argparse
import contextlib
import copy
import datetime as _dt
import gc
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from agentrl.envs.base import PRINTABLE, TextEnv
from agentrl.policy import (
    ModelConfig,
    Policy,
    SamplingConfig,
    build_char_tokenizer,
    build_word_tokenizer,
)
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker, make_env
from agentrl.types import Episode, Generation

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "agentrl-bench/Fixed-v0"
MODULE = "benchmarks.rollout_throughput"  # what Ray actors import to register the env

# ----------------------------------------------------------------------------- the env


class FixedTurnEnv(TextEnv):
    """A text env that always lasts exactly ``max_turns`` turns (never terminates early).

    The observation is append-only: a header line, then one line per past turn echoing
    (at most 20 characters of) the action, so prompts grow a little every turn as in a real
    conversation. The reward per turn is a seeded random number in [0, 1) so that
    policy-gradient advantages are not all zero.
    """

    def __init__(self, max_turns: int = 10, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.max_turns = int(max_turns)
        self._lines: list[str] = []

    def sample_task(self) -> dict[str, Any]:
        return {"episode": int(self.np_random.integers(1_000_000))}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._lines = [
            f"Benchmark episode {task.get('episode', 0)}: reply on each of {self.max_turns} turns."
        ]
        return "\n".join(self._lines), {}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        echo = " ".join("".join(c for c in action if c in PRINTABLE).split())[:20]
        self._lines.append(f"Turn {self._turn}: '{echo}' noted.")
        reward = round(float(self.np_random.random()), 3)
        return "\n".join(self._lines), reward, False, {"success": False}


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point=FixedTurnEnv)

# ----------------------------------------------------------------------------- results


@dataclass
class Run:
    seconds: float
    tokens: int
    episodes: float


@dataclass
class Row:
    """One line of the table. ``status`` is ``ok``, ``failed`` or ``skipped``."""

    key: str
    label: str
    status: str = "ok"
    reason: str = ""
    runs: list[Run] = field(default_factory=list)
    startup_s: float | None = None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.runs)

    @property
    def seconds(self) -> float:
        return statistics.median(r.seconds for r in self.runs) if self.runs else float("nan")

    @property
    def tokens(self) -> float:
        return statistics.median(r.tokens for r in self.runs) if self.runs else float("nan")

    @property
    def episodes(self) -> float:
        return statistics.median(r.episodes for r in self.runs) if self.runs else float("nan")

    @property
    def tok_s(self) -> float:
        return (
            statistics.median(r.tokens / r.seconds for r in self.runs) if self.ok else float("nan")
        )

    @property
    def eps_s(self) -> float:
        return (
            statistics.median(r.episodes / r.seconds for r in self.runs)
            if self.ok
            else float("nan")
        )


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(fn: Callable[[], tuple[int, float]], repeats: int, warmup: int = 1) -> list[Run]:
    """``warmup`` untimed calls, then ``repeats`` timed ones; ``fn`` returns (tokens, episodes)."""
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        tokens, episodes = fn()
        runs.append(Run(time.perf_counter() - start, int(tokens), float(episodes)))
    return runs


def episode_tokens(episodes: Sequence[Episode]) -> int:
    return sum(e.num_action_tokens for e in episodes)


# ----------------------------------------------------------------------------- the model


MODELS = {
    "bench49k": "Llama 2 layers, hidden 256, 4 heads, MLP 512, vocab 49,152 (untied), word tokenizer",
    "tiny": "agentrl ModelConfig() 'tiny' Llama (2 layers, hidden 128, vocab = word tokenizer)",
}


def build_policy(name: str, seed: int, tokenizer: str = "word") -> Policy:
    """The benchmark policy; same weights for the same ``(name, seed, tokenizer)``."""
    if name == "tiny":
        return Policy.from_config(ModelConfig(name="tiny", init_seed=seed, tokenizer=tokenizer))
    if name != "bench49k":
        raise ValueError(f"unknown --model {name!r}; choose from {sorted(MODELS)}")
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_char_tokenizer() if tokenizer == "char" else build_word_tokenizer()
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=512,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return Policy(model, tok)


def ray_model_config(
    name: str, seed: int, tokenizer: str, policy: Policy, tmp: Path
) -> ModelConfig:
    """A ModelConfig from which Ray actors rebuild exactly ``policy`` (saved as an HF folder)."""
    if name == "tiny":
        return ModelConfig(name="tiny", init_seed=seed, tokenizer=tokenizer)
    from transformers.utils import logging as hf_logging

    path = tmp / "policy"
    hf_logging.disable_progress_bar()
    policy.model.save_pretrained(path, safe_serialization=True)
    policy.tokenizer.save_pretrained(path)
    return ModelConfig(name=str(path))


# ----------------------------------------------------------------------------- the rows


@dataclass
class Setup:
    args: argparse.Namespace
    policy: Policy
    sampling: SamplingConfig
    env_kwargs: dict[str, Any]
    jobs: list[EpisodeJob]
    worker: RolloutWorker
    prompt_rounds: list[list[list[int]]]  # [turn][env] prompt ids seen by the inline rollout


def make_jobs(n: int, seed: int) -> list[EpisodeJob]:
    return [EpisodeJob(job_id=i, seed=seed * 10_000 + i) for i in range(n)]


def row_raw_generate(s: Setup, lean: bool = True) -> Row:
    gen = torch.Generator()

    def fn() -> tuple[int, float]:
        gen.manual_seed(s.args.seed)
        n = 0
        s.policy.lean_decode = lean
        try:
            for prompts in s.prompt_rounds:
                gens = s.policy.generate(prompts, s.sampling, generator=gen)
                n += sum(len(g.token_ids) for g in gens)
        finally:
            s.policy.lean_decode = True
        return n, len(s.prompt_rounds[0])

    shape = f"{len(s.prompt_rounds[0])} prompts x {len(s.prompt_rounds)} rounds"
    if lean:
        row = Row("raw_generate", f"raw Policy.generate ({shape})")
        row.notes = "same prompts as the inline rollout, no env; log-probs from sampling"
    else:
        row = Row("raw_generate_full", f"raw Policy.generate, lean_decode off ({shape})")
        row.notes = "every decode step through the full HF forward (lm_head as h @ W^T)"
    row.runs = measure(fn, s.args.repeats)
    return row


def row_hf_generate(s: Setup) -> Row:
    model, tok = s.policy.model, s.policy.tokenizer
    eos = tok.eos_token_id
    pad = tok.pad_token_id

    def fn() -> tuple[int, float]:
        torch.manual_seed(s.args.seed)
        n = 0
        for prompts in s.prompt_rounds:
            ids, attn = left_pad(prompts, pad)
            with torch.inference_mode():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=attn,
                    do_sample=True,
                    max_new_tokens=s.args.new_tokens,
                    temperature=1.0,
                    top_k=0,
                    top_p=1.0,
                    pad_token_id=pad,
                    eos_token_id=eos,
                )
            n += sum(len(cut_at_eos(r, eos)) for r in out[:, ids.shape[1] :].tolist())
        return n, len(s.prompt_rounds[0])

    row = Row("hf_generate", "HF model.generate(do_sample) (same prompts)")
    row.runs = measure(fn, s.args.repeats)
    row.notes = "reference: torch.multinomial sampling, no log-probs returned"
    return row


def row_inline(s: Setup) -> tuple[Row, list[Episode]]:
    calls = {"rescore": 0}
    original = s.policy.action_logprobs

    def counting(*a: Any, **k: Any) -> Any:
        calls["rescore"] += 1
        return original(*a, **k)

    last: list[Episode] = []

    def fn() -> tuple[int, float]:
        eps = s.worker.collect(s.jobs, rng_seed=s.args.seed)
        last[:] = eps
        return episode_tokens(eps), len(eps)

    s.policy.action_logprobs = counting  # type: ignore[method-assign]
    try:
        runs = measure(fn, s.args.repeats)
    finally:
        del s.policy.action_logprobs
    row = Row("inline", f"agentrl inline rollout (RolloutWorker, {s.args.envs} envs)", runs=runs)
    have = all(len(t.action_logprobs) == len(t.action_ids) for e in last for t in e.turns)
    row.notes = (
        f"log-probs in episodes: {'yes' if have else 'NO'}; re-scoring calls: {calls['rescore']}"
    )
    row.extra["captured_logprobs"] = have and calls["rescore"] == 0
    return row, last


def logprob_agreement(policy: Policy, episodes: Sequence[Episode], max_turns: int = 32) -> float:
    """Max |sampling log-prob - re-scored log-prob| over some turns (a correctness check)."""
    turns = [t for e in episodes for t in e.turns if t.action_ids][:max_turns]
    if not turns:
        return 0.0
    with torch.inference_mode():
        _, per_tok, mask = policy.action_logprobs(
            [t.prompt_ids for t in turns], [t.action_ids for t in turns]
        )
    worst = 0.0
    for t, row, m in zip(turns, per_tok, mask, strict=True):
        ref = row[m].tolist()
        worst = max(worst, max(abs(a - b) for a, b in zip(t.action_logprobs, ref, strict=True)))
    return worst


def row_rescore(s: Setup) -> Row:
    policy = s.policy
    gen = torch.Generator()

    def act(states: list[str], prompts: list[list[int]]) -> list[Generation]:
        gens = policy.generate(prompts, s.sampling, generator=gen)
        with torch.inference_mode():
            _, per_tok, mask = policy.action_logprobs(
                [g.prompt_ids for g in gens], [g.token_ids for g in gens]
            )
        for g, row, m in zip(gens, per_tok, mask, strict=True):
            g.logprobs = row[m].tolist()
        return gens

    def fn() -> tuple[int, float]:
        gen.manual_seed(s.args.seed)
        eps = s.worker.collect(s.jobs, rng_seed=s.args.seed, act=act)
        return episode_tokens(eps), len(eps)

    row = Row("rescore", "lock-step loop + re-scoring log-probs each turn")
    row.runs = measure(fn, s.args.repeats)
    row.notes = "RolloutWorker loop, then Policy.action_logprobs on every turn's actions"
    return row


def row_naive(s: Setup) -> Row:
    policy = s.policy
    env = make_env(ENV_ID, s.env_kwargs)
    jobs = s.jobs[: s.args.naive_episodes]
    gen = torch.Generator()

    def fn() -> tuple[int, float]:
        gen.manual_seed(s.args.seed)
        tokens = 0
        for job in jobs:
            obs, _ = env.reset(seed=job.seed)
            done = False
            while not done:
                g = policy.generate_text([obs], s.sampling, generator=gen)[0]
                obs, _r, term, trunc, _ = env.step(g.text)
                tokens += len(g.token_ids)
                done = term or trunc
        return tokens, len(jobs)

    row = Row("naive", "naive loop: one env at a time, batch 1")
    row.runs = measure(fn, s.args.repeats)
    row.notes = f"{len(jobs)} episodes per run (serial, so rates do not depend on the count)"
    return row


def row_agentrl_train(s: Setup, epochs: int | None = None) -> Row:
    from agentrl.algorithms.ppo import PPO, PPOConfig

    cfg = PPOConfig() if epochs is None else PPOConfig(epochs=epochs)
    policy = Policy(copy.deepcopy(s.policy.model), s.policy.tokenizer)
    worker = RolloutWorker(ENV_ID, s.env_kwargs, s.args.envs, s.sampling, policy=policy)
    ppo = PPO(cfg, policy, seed=s.args.seed)
    split = {"collect": [], "update": []}

    def fn() -> tuple[int, float]:
        t0 = time.perf_counter()
        eps = worker.collect(s.jobs, rng_seed=s.args.seed)
        t1 = time.perf_counter()
        ppo.update(eps)
        split["collect"].append(t1 - t0)
        split["update"].append(time.perf_counter() - t1)
        return episode_tokens(eps), len(eps)

    if epochs is None:
        row = Row("agentrl_train", "agentrl train iteration (inline rollout + PPO.update)")
    else:
        row = Row(f"agentrl_train_{epochs}ep", f"agentrl train iteration, PPO epochs={epochs}")
    row.runs = measure(fn, s.args.repeats)
    c = statistics.median(split["collect"][1:] or split["collect"])
    u = statistics.median(split["update"][1:] or split["update"])
    row.extra.update(rollout_s=c, update_s=u)
    turns = s.args.envs * s.args.turns
    steps = cfg.epochs * -(-turns // cfg.minibatch_size)
    row.notes = (
        f"median rollout {c:.2f} s + update {u:.2f} s; PPO {'defaults' if epochs is None else 'config'}: "
        f"{cfg.epochs} epoch(s), minibatch {cfg.minibatch_size} turns = {steps} optimizer steps on {turns} turns"
    )
    return row


def row_ray(
    s: Setup, workers: int, envs_per_worker: int, model_cfg: ModelConfig, ray_init_s: float
) -> Row:
    from agentrl.rollouts.ray_actors import RayWorkerGroup

    row = Row(
        f"ray_{workers}x{envs_per_worker}",
        f"agentrl Ray rollout, {workers} worker(s) x {envs_per_worker} envs",
    )
    t0 = time.perf_counter()
    group = RayWorkerGroup(
        num_workers=workers,
        env_id=ENV_ID,
        env_kwargs=s.env_kwargs,
        num_envs=envs_per_worker,
        sampling=s.sampling,
        model=model_cfg,
        num_cpus=1.0,
        imports=[MODULE],
    )
    actors_s = time.perf_counter() - t0
    try:
        t1 = time.perf_counter()
        group.collect(s.jobs, rng_seed=s.args.seed)  # first collect: lazy init inside actors
        first_s = time.perf_counter() - t1

        def fn() -> tuple[int, float]:
            eps = group.collect(s.jobs, rng_seed=s.args.seed)
            return episode_tokens(eps), len(eps)

        row.runs = measure(fn, s.args.repeats, warmup=0)  # the first collect was the warm-up
    finally:
        group.shutdown()
    row.startup_s = ray_init_s + actors_s
    row.notes = (
        f"start-up = ray.init {ray_init_s:.1f} s (once per run) + actors {actors_s:.1f} s; "
        f"warm-up collect {first_s:.1f} s; actors run torch with 1 thread each"
    )
    return row


# ----------------------------------------------------------------------------- TRL GRPO


def left_pad(prompts: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    attn = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.as_tensor(list(p))
        attn[i, width - len(p) :] = 1
    return ids, attn


def cut_at_eos(tokens: list[int], eos: int | None) -> list[int]:
    """Tokens up to and including the first eos (HF pads finished rows after it)."""
    if eos is not None and eos in tokens:
        return tokens[: tokens.index(eos) + 1]
    return tokens


def make_trl_rollout_func(
    policy: Policy,
    env_kwargs: dict[str, Any],
    seeds: Sequence[int],
    turns: int,
    new_tokens: int,
    counter: dict[str, int],
) -> Callable[[list[Any], Any], dict[str, list[Any]]]:
    """A TRL ``rollout_func`` that plays whole episodes of the benchmark env.

    One training sample per episode: ``prompt_ids`` = the first prompt, ``completion_ids`` =
    action 1, env feedback 1, action 2, ... (``env_mask`` 1 on actions, 0 on feedback),
    ``logprobs`` from HF ``generate``'s scores (0 on feedback), and ``env_return`` for the
    reward function. Every turn is one batched HF ``generate`` over all episodes, on the
    whole context so far (the way a TRL user writes a multi-turn rollout without vLLM).
    """
    tok = policy.tokenizer
    eos, pad = tok.eos_token_id, tok.pad_token_id
    envs: list[gym.Env] = []

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, list[Any]]:
        start = time.perf_counter()
        model = trainer.accelerator.unwrap_model(trainer.model)
        n = len(prompts)
        while len(envs) < n:
            envs.append(make_env(ENV_ID, env_kwargs))
        # The same reset seeds as the agentrl rows' jobs (so a GRPO group holds different episodes
        # and its rewards differ); the prompt text only names the group.
        obs = [envs[i].reset(seed=seeds[i % len(seeds)])[0] for i in range(n)]
        ctx = policy.encode_prompts(obs)
        prompt_ids = [list(c) for c in ctx]
        comp: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        mask: list[list[int]] = [[] for _ in range(n)]
        returns = [0.0] * n
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                for t in range(turns):
                    ids, attn = left_pad(ctx, pad)
                    out = model.generate(
                        input_ids=ids,
                        attention_mask=attn,
                        do_sample=True,
                        max_new_tokens=new_tokens,
                        temperature=1.0,
                        top_k=0,
                        top_p=1.0,
                        pad_token_id=pad,
                        eos_token_id=eos,
                        output_scores=True,
                        return_dict_in_generate=True,
                    )
                    new = out.sequences[:, ids.shape[1] :]
                    lp = (
                        torch.stack(out.scores, dim=1)
                        .float()
                        .log_softmax(-1)
                        .gather(-1, new.unsqueeze(-1))
                        .squeeze(-1)
                    )
                    for i in range(n):
                        toks = cut_at_eos(new[i].tolist(), eos)
                        counter["tokens"] += len(toks)
                        text = tok.decode(toks, skip_special_tokens=True)
                        before = obs[i]
                        obs[i], reward, _term, _trunc, _ = envs[i].step(text)
                        returns[i] += float(reward)
                        comp[i] += toks
                        logps[i] += lp[i, : len(toks)].tolist()
                        mask[i] += [1] * len(toks)
                        if t < turns - 1:
                            feedback = obs[i][len(before) :] + "\nAction: "
                            fb = tok(feedback, add_special_tokens=False)["input_ids"]
                            comp[i] += fb
                            logps[i] += [0.0] * len(fb)
                            mask[i] += [0] * len(fb)
                            ctx[i] = ctx[i] + toks + fb
        finally:
            model.train(was_training)
        counter["episodes"] += n
        counter["rollout_s"] += time.perf_counter() - start
        counter["threads"] = torch.get_num_threads()
        return {
            "prompt_ids": prompt_ids,
            "completion_ids": comp,
            "logprobs": logps,
            "env_mask": mask,
            "env_return": returns,
        }

    return rollout_func


def row_trl(s: Setup) -> Row:
    row = Row("trl_grpo", "TRL 1.16 GRPOTrainer + rollout_func (rollout + update)")
    try:
        import transformers
        import trl
        from datasets import Dataset
        from transformers import TrainerCallback
        from trl import GRPOConfig, GRPOTrainer
    except Exception as e:  # pragma: no cover - depends on the environment
        row.status, row.reason = "failed", f"cannot import TRL: {type(e).__name__}: {e}"
        return row

    args = s.args
    steps = args.repeats + 1
    group = 4 if args.envs % 4 == 0 and args.envs >= 8 else (2 if args.envs % 2 == 0 else 1)
    if group < 2:
        row.status, row.reason = (
            "skipped",
            "GRPO needs >= 2 generations per prompt (use an even --envs)",
        )
        return row
    n_prompts = (args.envs // group) * (steps + 1)
    data = Dataset.from_dict({"prompt": [f"benchmark group {i}" for i in range(n_prompts)]})
    model = copy.deepcopy(s.policy.model)
    counter: dict[str, Any] = {"tokens": 0, "episodes": 0, "rollout_s": 0.0}
    rollout_func = make_trl_rollout_func(
        s.policy, s.env_kwargs, [j.seed for j in s.jobs], args.turns, args.new_tokens, counter
    )

    def env_return(
        prompts: list[Any], completions: list[Any], env_return: list[float], **_: Any
    ) -> list[float]:
        return [float(r) for r in env_return]

    marks: list[tuple[float, int, float, float]] = []

    def mark() -> None:
        marks.append(
            (time.perf_counter(), counter["tokens"], counter["episodes"], counter["rollout_s"])
        )

    class StepTimer(TrainerCallback):
        def on_step_begin(self, a: Any, state: Any, control: Any, **k: Any) -> None:
            mark()

        def on_step_end(self, a: Any, state: Any, control: Any, **k: Any) -> None:
            mark()

    tmp = tempfile.mkdtemp(prefix="bench-trl-")
    config = GRPOConfig(
        output_dir=tmp,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to=[],
        save_strategy="no",
        per_device_train_batch_size=args.envs,
        num_generations=group,
        max_steps=steps,
        gradient_accumulation_steps=1,
        learning_rate=1e-4,
        logging_steps=10_000,
        disable_tqdm=True,
        seed=args.seed,
        dataloader_num_workers=0,
        max_completion_length=args.turns * (args.new_tokens + 64),
    )
    threads = torch.get_num_threads()
    t0 = time.perf_counter()
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[env_return],
        args=config,
        train_dataset=data,
        processing_class=s.policy.tokenizer,
        rollout_func=rollout_func,
        callbacks=[StepTimer()],
    )
    row.startup_s = time.perf_counter() - t0
    torch.set_num_threads(threads)  # accelerate must not change the thread count between rows
    with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its log dict
        trainer.train()
    torch.set_num_threads(threads)
    steps_done = [(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]
    runs = [Run(b[0] - a[0], b[1] - a[1], b[2] - a[2]) for a, b in steps_done]
    if len(runs) < 2 or any(r.episodes <= 0 for r in runs):
        row.status, row.reason = (
            "failed",
            f"could not time TRL steps (marks: {len(marks)}, runs: {runs})",
        )
        return row
    row.runs = runs[1:]  # the first step is the warm-up
    rollout_s = statistics.median(b[3] - a[3] for a, b in steps_done[1:])
    rest_s = statistics.median((b[0] - a[0]) - (b[3] - a[3]) for a, b in steps_done[1:])
    row.notes = (
        f"median rollout_func {rollout_s:.2f} s + rest of the step (log-probs, loss, update) {rest_s:.2f} s; "
        f"{args.envs} episodes per step ({args.envs // group} prompts x {group} generations), one sequence per "
        f"episode (feedback tokens masked by env_mask), 1 optimizer step per train step; "
        f"trainer init {row.startup_s:.2f} s; torch threads in steps: {counter.get('threads', '?')}; "
        f"trl {trl.__version__}, transformers {transformers.__version__}"
    )
    return row


# ----------------------------------------------------------------------------- reporting


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or x != x:  # None or NaN
        return "-"
    return f"{x:,.{digits}f}"


def table_rows(rows: Sequence[Row]) -> tuple[list[str], list[list[str]]]:
    by_key = {r.key: r for r in rows}
    raw = by_key.get("raw_generate")
    naive = by_key.get("naive")
    header = [
        "row",
        "tokens/s",
        "episodes/s",
        "vs raw generate",
        "vs naive",
        "median s",
        "tokens",
        "episodes",
        "start-up s",
        "runs (s)",
        "notes",
    ]
    out = []
    for r in rows:
        if not r.ok:
            out.append(
                [
                    r.label,
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    fmt(r.startup_s, 2),
                    "-",
                    f"{r.status.upper()}: {r.reason}",
                ]
            )
            continue
        vs_raw = r.tok_s / raw.tok_s if raw is not None and raw.ok else float("nan")
        vs_naive = r.tok_s / naive.tok_s if naive is not None and naive.ok else float("nan")
        out.append(
            [
                r.label,
                fmt(r.tok_s),
                fmt(r.eps_s, 3),
                fmt(vs_raw, 2) + "x" if vs_raw == vs_raw else "-",
                fmt(vs_naive, 2) + "x" if vs_naive == vs_naive else "-",
                fmt(r.seconds, 2),
                fmt(r.tokens, 0),
                fmt(r.episodes, 0),
                fmt(r.startup_s, 2),
                " / ".join(f"{x.seconds:.2f}" for x in r.runs),
                r.notes,
            ]
        )
    return header, out


@dataclass
class Target:
    name: str
    status: str  # PASS / FAIL / N/A
    detail: str


def evaluate_targets(rows: Sequence[Row]) -> list[Target]:
    by = {r.key: r for r in rows}

    def target(name: str, a: str, b: str, check) -> Target:
        """``check(row_a, row_b) -> (passed, detail)`` when both rows ran, else N/A."""
        missing = [k for k in (a, b) if k not in by or not by[k].ok]
        if missing:
            k = missing[0]
            why = f"{k} row " + (f"{by[k].status}: {by[k].reason}" if k in by else "not run")
            return Target(name, "N/A", why)
        passed, detail = check(by[a], by[b])
        return Target(name, "PASS" if passed else "FAIL", detail)

    def vs_raw(inline: Row, raw: Row):
        ratio = inline.tok_s / raw.tok_s
        captured = bool(inline.extra.get("captured_logprobs", False))
        return ratio >= 0.95 and captured, (
            f"inline {ratio:.2f}x raw Policy.generate; log-probs from sampling: {'yes' if captured else 'no'}"
        )

    def vs_naive(inline: Row, naive: Row):
        ratio = inline.tok_s / naive.tok_s
        return ratio >= 2.5, f"inline {ratio:.2f}x naive (tokens/s)"

    def vs_trl(ours: Row, trl: Row):
        ratio = ours.eps_s / trl.eps_s
        return ratio >= 2.0, f"agentrl {ours.eps_s:.3f} vs TRL {trl.eps_s:.3f} episodes/s = {ratio:.2f}x"

    return [
        target("rollout >= 0.95x raw generate, log-probs captured during sampling", "inline", "raw_generate", vs_raw),
        target("rollout >= 2.5x the naive loop", "inline", "naive", vs_naive),
        target("train iterations (rollout + PPO update) >= 2x TRL GRPO episodes/s", "agentrl_train", "trl_grpo", vs_trl),
    ]


def render_text(header: list[str], body: list[list[str]], targets: Sequence[Target]) -> str:
    cols = header[:10]  # notes go below the table to keep it readable
    cells = [[c for c in r[:10]] for r in body]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(cols)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(cols, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    lines.append("")
    lines.append("notes:")
    for r in body:
        lines.append(f"  {r[0]}: {r[10]}")
    lines.append("")
    lines.append("targets:")
    for t in targets:
        lines.append(f"  [{t.status}] {t.name}: {t.detail}")
    return "\n".join(lines)


def render_markdown(
    header: list[str],
    body: list[list[str]],
    targets: Sequence[Target],
    meta: dict[str, str],
    interpretation: list[str],
) -> str:
    def esc(x: str) -> str:
        return x.replace("|", "\\|")

    md = [
        "# Rollout throughput",
        "",
        "Produced by `benchmarks/rollout_throughput.py`; do not edit the numbers by hand, re-run the script.",
        "",
    ]
    md.append("## Setup")
    md.append("")
    for k, v in meta.items():
        md.append(f"- **{k}**: {v}")
    md += ["", "## Results", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in body:
        md.append("| " + " | ".join(esc(c) for c in r) + " |")
    md += [
        "",
        "Rates are medians over the timed runs (one warm-up run first). Ratios are tokens/s "
        "against rows measured in the same run.",
        "",
        "## Targets",
        "",
    ]
    for t in targets:
        md.append(f"- **{t.status}** — {t.name}: {t.detail}")
    md += ["", "## Interpretation", ""]
    md += [f"- {x}" for x in interpretation]
    md.append("")
    return "\n".join(md)


def interpret(rows: Sequence[Row], args: argparse.Namespace) -> list[str]:
    """Plain-language reading of the numbers of this run (every claim is computed from them)."""
    by = {r.key: r for r in rows if r.ok}
    out = []
    if "raw_generate" in by and "hf_generate" in by:
        ratio = by["raw_generate"].tok_s / by["hf_generate"].tok_s
        out.append(
            f"agentrl's decode loop (inverse-CDF sampling, log-probs returned) runs at {ratio:.2f}x HF "
            f"`generate(do_sample=True)` on the same prompts, although HF returns no log-probs; HF draws with "
            f"`torch.multinomial` over the full vocabulary every step (see agentrl/policy/sampling.py)."
        )
    if "inline" in by and "raw_generate" in by:
        ratio = by["inline"].tok_s / by["raw_generate"].tok_s
        out.append(
            f"The inline rollout runs at {ratio:.2f}x raw batched generation of the same prompts: env steps, prompt "
            f"formatting, tokenisation and episode bookkeeping are "
            + ("within the noise" if ratio >= 0.95 else f"{100 * (1 / ratio - 1):.0f}% extra")
            + "; its log-probs come from sampling (no second pass)."
        )
    if "rescore" in by and "inline" in by:
        extra = by["inline"].tok_s / by["rescore"].tok_s - 1
        out.append(
            f"Re-scoring log-probs after every turn (a second forward pass) costs {100 * extra:.0f}% more rollout time."
        )
    if "naive" in by and "inline" in by:
        out.append(
            f"Stepping {args.envs} envs in lock-step around one batched generate is "
            f"{by['inline'].tok_s / by['naive'].tok_s:.1f}x a one-env-at-a-time loop (batch 1)."
        )
    ray_rows = [r for r in rows if r.key.startswith("ray_") and r.ok]
    if ray_rows and "inline" in by:
        parts = ", ".join(
            f"{r.label.split(', ')[1]}: {r.tok_s / by['inline'].tok_s:.2f}x" for r in ray_rows
        )
        startup = min(r.startup_s or 0.0 for r in ray_rows)
        line = (
            f"Ray rollout, steady state vs the inline row ({parts}), after {startup:.0f}+ s of start-up (ray.init + "
            f"actors building their model). Each actor runs torch with 1 thread."
        )
        one = next((r for r in ray_rows if r.key.startswith("ray_1x")), None)
        two = next((r for r in ray_rows if r.key.startswith("ray_2x")), None)
        if one is not None and two is not None:
            ratio = two.tok_s / one.tok_s
            line += (
                f" Two actors with half the envs each ran at {ratio:.2f}x one actor with all of them"
                + (": on this machine Ray buys isolation, not speed." if ratio < 1.2 else ".")
            )
        out.append(line)
        if one is not None and one.tok_s > by["inline"].tok_s:
            out.append(
                f"The 1-thread Ray actor was faster than the {args.threads}-thread inline row "
                f"({one.tok_s:.0f} vs {by['inline'].tok_s:.0f} tokens/s): for a model this small, on this machine, "
                f"a second OpenMP thread did not pay for its synchronisation."
            )
    if "agentrl_train" in by:
        c, u = (
            by["agentrl_train"].extra.get("rollout_s", 0.0),
            by["agentrl_train"].extra.get("update_s", 0.0),
        )
        if u > c > 0:
            out.append(
                f"The PPO update is {100 * u / (c + u):.0f}% of an agentrl train iteration (rollout {c:.1f} s, update "
                f"{u:.1f} s): every turn is re-encoded with its whole prompt (the conversation so far), for every "
                f"epoch, and the loss needs full-vocabulary logits at every action token."
            )
    if "agentrl_train" in by and "trl_grpo" in by:
        ratio = by["agentrl_train"].eps_s / by["trl_grpo"].eps_s
        line = (
            f"Whole train iterations: agentrl {by['agentrl_train'].eps_s:.3f} episodes/s vs TRL GRPO "
            f"{by['trl_grpo'].eps_s:.3f} ({ratio:.2f}x; TRL: {by['trl_grpo'].notes.split(';')[0].replace('median ', '')}). "
            f"TRL's `rollout_func` here calls HF `generate` each turn (TRL has no multi-turn sampler without vLLM); its "
            f"update is one optimizer step over one packed sequence per episode, while agentrl's default PPO makes "
            f"several minibatch passes over turns."
        )
        if "agentrl_train_1ep" in by:
            line += (
                f" With one PPO epoch (one pass over the data, as in the TRL step) agentrl makes "
                f"{by['agentrl_train_1ep'].eps_s:.3f} episodes/s = "
                f"{by['agentrl_train_1ep'].eps_s / by['trl_grpo'].eps_s:.2f}x TRL."
            )
        out.append(line)
    for r in rows:
        if r.status == "failed":
            out.append(f"{r.label} failed: {r.reason}")
    return out


# ----------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", choices=sorted(MODELS), default="bench49k", help="bench49k (default) or tiny"
    )
    p.add_argument("--tokenizer", choices=["word", "char"], default="word")
    p.add_argument(
        "--envs", type=int, default=16, help="episodes per collect = envs stepped in lock-step"
    )
    p.add_argument(
        "--turns", type=int, default=10, help="turns per episode (the env never ends early)"
    )
    p.add_argument(
        "--new-tokens", type=int, default=24, help="max new tokens per turn (stop strings off)"
    )
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row (after one warm-up)")
    p.add_argument("--naive-episodes", type=int, default=4, help="episodes per naive-loop run")
    p.add_argument("--threads", type=int, default=2, help="torch threads for in-process rows")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny workload for smoke tests (2 envs, 2 turns, 4 tokens, 1 repeat)",
    )
    p.add_argument("--skip-ray", action="store_true")
    p.add_argument("--skip-trl", action="store_true")
    p.add_argument("--skip-hf", action="store_true", help="skip the HF generate reference row")
    p.add_argument(
        "--skip-1epoch",
        action="store_true",
        help="skip the extra train row with PPO epochs=1 (one pass over the data, like TRL's GRPO step)",
    )
    p.add_argument("--out", type=Path, default=None, help="write the results as markdown here")
    p.add_argument(
        "--note",
        action="append",
        default=[],
        help="extra line for the markdown (e.g. machine was shared)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.envs, args.turns, args.new_tokens, args.repeats, args.naive_episodes = 2, 2, 4, 1, 1
    args.naive_episodes = max(1, min(args.naive_episodes, args.envs))
    if args.envs < 1 or args.turns < 1 or args.new_tokens < 1 or args.repeats < 1:
        p.error("--envs, --turns, --new-tokens and --repeats must be >= 1")
    return args


def _guard(rows: list[Row], key: str, label: str, fn: Callable[[], Row]) -> Row | None:
    """Run one row; a crash becomes a ``failed`` row with the reason instead of aborting."""
    log(f"row {key} ...")
    t0 = time.perf_counter()
    try:
        row = fn()
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        row = Row(
            key,
            label,
            status="failed",
            reason=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300],
        )
    rows.append(row)
    log(
        f"row {key}: {row.status} {fmt(row.tok_s)} tok/s, {fmt(row.eps_s, 3)} ep/s ({time.perf_counter() - t0:.1f} s)"
    )
    return row


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; returns ``{"rows": [Row], "targets": [Target], "text": str, "markdown": str}``."""
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    warnings.filterwarnings(
        "ignore", category=FutureWarning
    )  # transformers 5 renames (gradient_checkpointing)
    policy = build_policy(args.model, args.seed, args.tokenizer)
    n_params = sum(p.numel() for p in policy.model.parameters())
    sampling = SamplingConfig(temperature=1.0, top_k=0, max_new_tokens=args.new_tokens, stop=())
    env_kwargs = {"max_turns": args.turns}
    jobs = make_jobs(args.envs, args.seed)
    worker = RolloutWorker(ENV_ID, env_kwargs, args.envs, sampling, policy=policy)
    log(
        f"model {args.model} ({n_params / 1e6:.1f}M params), {args.envs} envs x {args.turns} turns x "
        f"{args.new_tokens} tokens, {args.repeats} repeats, torch threads {torch.get_num_threads()}"
    )
    eps = worker.collect(jobs, rng_seed=args.seed)  # global warm-up; records the prompts
    prompt_rounds = [[e.turns[t].prompt_ids for e in eps] for t in range(args.turns)]
    s = Setup(args, policy, sampling, env_kwargs, jobs, worker, prompt_rounds)

    rows: list[Row] = []
    _guard(rows, "raw_generate", "raw Policy.generate", lambda: row_raw_generate(s))
    _guard(
        rows,
        "raw_generate_full",
        "raw Policy.generate, full forward",
        lambda: row_raw_generate(s, lean=False),
    )
    if not args.skip_hf:
        _guard(rows, "hf_generate", "HF model.generate", lambda: row_hf_generate(s))
    inline_eps: list[Episode] = []

    def inline() -> Row:
        row, got = row_inline(s)
        inline_eps.extend(got)
        return row

    _guard(rows, "inline", "agentrl inline rollout", inline)
    agreement = logprob_agreement(policy, inline_eps) if inline_eps else float("nan")
    _guard(rows, "rescore", "lock-step loop + re-scoring", lambda: row_rescore(s))
    _guard(rows, "naive", "naive loop", lambda: row_naive(s))
    _guard(rows, "agentrl_train", "agentrl train iteration", lambda: row_agentrl_train(s))
    if not args.skip_1epoch:
        _guard(
            rows,
            "agentrl_train_1ep",
            "agentrl train iteration, PPO epochs=1",
            lambda: row_agentrl_train(s, 1),
        )

    if args.skip_ray:
        rows.append(Row("ray", "agentrl Ray rollout", status="skipped", reason="--skip-ray"))
    else:
        ray_rows(rows, s)
    if args.skip_trl:
        rows.append(
            Row("trl_grpo", "TRL GRPOTrainer + rollout_func", status="skipped", reason="--skip-trl")
        )
    else:
        _guard(rows, "trl_grpo", "TRL GRPOTrainer + rollout_func", lambda: row_trl(s))

    targets = evaluate_targets(rows)
    header, body = table_rows(rows)
    text = render_text(header, body, targets)
    print(text, flush=True)
    load_after = os.getloadavg()
    total = time.perf_counter() - started
    meta = machine_meta(args, n_params, load_before, load_after, total, agreement, argv)
    markdown = render_markdown(header, body, targets, meta, interpret(rows, args))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown)
        log(f"wrote {args.out}")
    log(f"total {total:.0f} s")
    return {"rows": rows, "targets": targets, "text": text, "markdown": markdown}


def ray_rows(rows: list[Row], s: Setup) -> None:
    args = s.args
    try:
        import ray
    except Exception as e:  # pragma: no cover
        rows.append(
            Row("ray", "agentrl Ray rollout", status="failed", reason=f"cannot import ray: {e}")
        )
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    started_here = False
    try:
        model_cfg = ray_model_config(args.model, args.seed, args.tokenizer, s.policy, tmp)
        t0 = time.perf_counter()
        if not ray.is_initialized():
            pythonpath = os.pathsep.join(
                x for x in [str(ROOT), os.environ.get("PYTHONPATH", "")] if x
            )
            ray.init(
                num_cpus=2,
                include_dashboard=False,
                configure_logging=False,
                log_to_driver=False,
                runtime_env={
                    "env_vars": {
                        "PYTHONPATH": pythonpath,
                        "OMP_WAIT_POLICY": "PASSIVE",
                        "TOKENIZERS_PARALLELISM": "false",
                    }
                },
            )
            started_here = True
        ray_init_s = time.perf_counter() - t0
        layouts = [(1, args.envs)]
        if args.envs >= 2:
            layouts.append((2, args.envs // 2))
        for w, e in layouts:
            _guard(
                rows,
                f"ray_{w}x{e}",
                f"agentrl Ray rollout, {w} worker(s) x {e} envs",
                lambda w=w, e=e: row_ray(s, w, e, model_cfg, ray_init_s),
            )
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        rows.append(
            Row(
                "ray",
                "agentrl Ray rollout",
                status="failed",
                reason=f"{type(e).__name__}: {e}"[:300],
            )
        )
    finally:
        if started_here:
            ray.shutdown()
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


def machine_meta(
    args: argparse.Namespace,
    n_params: int,
    load_before: tuple[float, ...],
    load_after: tuple[float, ...],
    total: float,
    agreement: float,
    argv: Sequence[str] | None,
) -> dict[str, str]:
    import transformers

    versions = [f"torch {torch.__version__}", f"transformers {transformers.__version__}"]
    for mod in ("trl", "ray"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:
            pass
    cmd_args = list(sys.argv[1:]) if argv is None else list(argv)
    meta = {
        "command": "`python benchmarks/rollout_throughput.py "
        + " ".join(shlex.quote(a) for a in cmd_args)
        + "`",
        "date": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} CPUs, torch threads {args.threads} (Ray actors 1 each), "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}",
        "load average (1 min) before / after": f"{load_before[0]:.2f} / {load_after[0]:.2f}",
        "versions": ", ".join(versions) + f", Python {platform.python_version()}",
        "model": f"{MODELS[args.model]}, {n_params / 1e6:.1f}M parameters, fp32, random init (seed {args.seed})",
        "workload": f"{args.envs} episodes x {args.turns} turns x up to {args.new_tokens} new tokens "
        f"(`{ENV_ID}`: never ends early; stop strings off, only eos can end a turn early), "
        f"temperature 1, no top-k",
        "repeats": f"1 warm-up + {args.repeats} timed runs per row; total benchmark time {total:.0f} s",
        "log-prob check": f"max |sampling log-prob - re-scored log-prob| over inline-rollout turns: {agreement:.2e}",
    }
    for i, note in enumerate(args.note):
        meta[f"note {i + 1}" if len(args.note) > 1 else "note"] = note
    return meta


if __name__ == "__main__":
    main()
