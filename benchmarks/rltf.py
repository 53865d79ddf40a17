"""Zero-shot vs supervised vs RLTF planners on held-out ToolChain test tasks (docs/rltf.md).

Setting (defaults; every knob is a flag): ToolChain tasks over 6 modules (reverse, sort,
double, inc, sum, max) with chains of 1-2 modules, 2 examples shown per task, the plan
written one module per turn (``multi_turn``, intermediate results shown back), decoded
under a constraint over those 6 names; the train/test split holds out 20% of the
two-module combinations (``split_seed`` = the seed). The policy is a tiny Llama
(hidden 64, 2 layers) trained from scratch, with a 512-piece BPE fitted to train-split
ToolChain text (so words are tokens, as for a pretrained tokenizer). For each seed:

1. **zero-shot**: the untrained policy (the "base" planner);
2. **supervised**: fine-tuned with TRL's SFTTrainer on the ``good`` scripted planner's
   plans for a few solved train tasks (``--sft-tasks`` 8, 60 epochs), as the paper's
   fine-tuned planner;
3. **RLTF**: the supervised policy trained further with RLTF on freshly sampled train
   tasks (task feedback only, no plans shown): ``--iterations`` 100 updates of 32 tasks,
   ``k`` = 4 candidates per turn, epsilon 0.2 x 0.9 per update with a 0.1 floor, lr 3e-4.

All three decode greedily under the constraint and are scored on the same ``--test-tasks``
(128) tasks of the held-out test split. Score = mean task reward (share of examples
solved; -1 for an invalid plan, which the constraint rules out).

    python benchmarks/rltf.py                      # 3 seeds, ~5-10 min on 2 busy cores
    python benchmarks/rltf.py --seeds 0 --iterations 20 --out runs/rltf   # a quick look
    python benchmarks/rltf.py --single-turn       # whole plans in one turn (see docs/rltf.md)

With ``--model smollm2`` the policy is SmolLM2-135M-Instruct with LoRA (``configs/model/smollm2.yaml``,
no system prompt) playing the env as a conversation in its own chat template: the env's first
message states the rules and lists the modules (docs/conversations.md), so the zero-shot
planner is the prompted pretrained model. The settings of the pretrained-model section of
docs/rltf.md::

    python benchmarks/rltf.py --model smollm2 --single-turn --test-tasks 64 --sft-epochs 20 \
        --sft-lr 1e-3 --iterations 30 --episodes 16 --lr 1e-3 --eval-every 10 --out docs/rltf_smollm2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: the benchmarks package lives in the repo root
    sys.path.insert(0, str(ROOT))

ENV_ID = "agentrl/ToolChain-v0"
CONSTRAINT = "toolchain"
"""The decoding constraint (``main`` registers one over ``--modules`` only)."""
CONVERSATION = False
"""Play the env as a conversation in the model's chat template (``--model smollm2``)."""


def register_subset_constraint(modules: list[str], multi_turn: bool) -> None:
    """Plans over ``modules`` only (the policy cannot name a module the tasks never use);
    one module per turn in multi-turn mode."""
    global CONSTRAINT
    from agentrl.envs.toolchain import MODULE_NAMES
    from agentrl.policy.constraints import CONSTRAINTS, PlanGrammar

    CONSTRAINT = "toolchain_step" if multi_turn else "toolchain"
    if sorted(modules) == sorted(MODULE_NAMES):
        return
    names = tuple(m for m in MODULE_NAMES if m in modules)
    items = 1 if multi_turn else 4
    CONSTRAINTS["toolchain_subset"] = lambda: PlanGrammar(
        names=names, separator=" ", max_items=items
    )
    CONSTRAINT = "toolchain_subset"


def toolchain_tokenizer(env_kwargs: dict[str, Any], n_tasks: int = 2000) -> Any:
    """A 512-piece BPE (the ``word`` tokenizer's recipe) trained on train-split ToolChain text:
    the words of task sentences and module names become single tokens, as they would be for
    a pretrained model's tokenizer. Only observations and plans of the train split are used."""
    from agentrl.envs.scripted import make_scripted
    from agentrl.envs.toolchain import ToolChainEnv
    from agentrl.policy.tokenizer import _wrap, train_word_tokenizer

    env = ToolChainEnv(**{**env_kwargs, "split": "train"})
    good = make_scripted(ENV_ID, "good")
    texts = []
    for task in env.task_list(n_tasks):
        obs, _ = env.reset(seed=0, options={"task": task})
        texts.append(obs + "\nAction: " + good.act(obs) + "\n")
    return _wrap(train_word_tokenizer(texts))


def make_pretrained(seed: int) -> Any:
    """SmolLM2-135M-Instruct with LoRA (``configs/model/smollm2.yaml``, no system prompt: the
    env's first message says what to do); LoRA is initialised from ``seed``."""
    import yaml

    from agentrl.config import make_dataclass_config
    from agentrl.learner import seed_everything
    from agentrl.policy import ModelConfig, Policy

    seed_everything(seed)
    section = yaml.safe_load((Path(__file__).parents[1] / "configs/model/smollm2.yaml").read_text())
    section["system_prompt"] = None
    policy = Policy.from_config(make_dataclass_config(ModelConfig, section, where="model"))
    policy.default_constraint = CONSTRAINT
    return policy


def make_policy(seed: int, model: dict[str, Any], tokenizer: Any = None) -> Any:
    """A tiny Llama from scratch (the ``tiny`` recipe) on ``tokenizer`` (default: the word one)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from agentrl.learner import seed_everything
    from agentrl.policy import Policy, build_word_tokenizer

    seed_everything(seed)
    tok = tokenizer if tokenizer is not None else build_word_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=model["hidden_size"],
        num_hidden_layers=model["num_layers"],
        num_attention_heads=model["num_heads"],
        num_key_value_heads=model["num_heads"],
        intermediate_size=model["intermediate_size"],
        max_position_embeddings=512,
        tie_word_embeddings=True,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    policy = Policy(LlamaForCausalLM(config).eval(), tok)
    policy.default_constraint = CONSTRAINT
    return policy


def evaluate(
    policy: Any, env_kwargs: dict[str, Any], tasks: list[dict[str, Any]], greedy: bool = True
) -> dict[str, float]:
    """Mean reward (task score) and success on ``tasks``, constrained decoding."""
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

    sampling = SamplingConfig(max_new_tokens=48, constraint=CONSTRAINT)
    worker = RolloutWorker(ENV_ID, env_kwargs, 32, sampling, policy=policy, conversation=CONVERSATION)
    jobs = [EpisodeJob(i, 10_000 + i, t) for i, t in enumerate(tasks)]
    eps = worker.collect(jobs, rng_seed=123, greedy=greedy)
    return {
        "score": float(np.mean([e.env_reward for e in eps])),
        "success": float(np.mean([e.success for e in eps])),
        "invalid": float(np.mean([bool(e.turns[-1].info.get("invalid_action")) for e in eps])),
    }


def supervised(
    policy: Any, env_kwargs: dict[str, Any], n_tasks: int, seed: int, epochs: float, lr: float
) -> dict[str, float]:
    """SFT on the good planner's plans for ``n_tasks`` train tasks (TRL SFTTrainer)."""
    from agentrl.envs.scripted import make_scripted, run_scripted_episode
    from agentrl.rollouts.worker import make_env
    from agentrl.warmstart import sft_rows, sft_warm_start

    env = make_env(ENV_ID, env_kwargs, CONVERSATION)
    good = make_scripted(ENV_ID, "good")
    rng = np.random.default_rng(seed)
    episodes = [
        run_scripted_episode(env, good, seed=seed * 100_000 + i, rng=rng) for i in range(n_tasks)
    ]
    env.close()
    return sft_warm_start(policy, sft_rows(policy, episodes), epochs, lr, batch_size=16, seed=seed)


def supervised_shared(
    policy: Any, env_kwargs: dict[str, Any], n_tasks: int, seed: int, epochs: float, lr: float
) -> dict[str, float]:
    """The supervised planner of ``--model smollm2``: the same data and objective as
    :func:`supervised` (the good planner's plans for ``n_tasks`` train tasks, completion-only
    negative log-likelihood, Adam, a constant ``lr``, all rows in one batch per epoch), but
    the loss comes from the policy's own scoring, :meth:`Policy.action_logprobs`, which runs
    the rules every task shares through the model once per batch (``Policy.min_shared_prefix``).

    Why not TRL's SFTTrainer here: it encodes every row whole; with ~420 of each row's ~470
    ids shared, its 20-epoch run had not finished after ~13 minutes of one seed here (on a
    machine shared with other jobs, so not a clean timing), which would not fit three seeds
    in the budget; scoring with the rules encoded once is 4.4x faster in
    ``benchmarks/shared_prefix.py``. Tokens are exactly the rollout's (the plan and
    the end-of-turn id after the rollout's prompt ids)."""
    from agentrl.envs.scripted import make_scripted, run_scripted_episode
    from agentrl.rollouts.worker import make_env

    env = make_env(ENV_ID, env_kwargs, CONVERSATION)
    good = make_scripted(ENV_ID, "good")
    rng = np.random.default_rng(seed)
    episodes = [
        run_scripted_episode(env, good, seed=seed * 100_000 + i, rng=rng) for i in range(n_tasks)
    ]
    env.close()
    fmt = policy.chat_format()
    prompts, actions = [], []
    for ep in episodes:
        turn = ep.turns[0]
        prompts.append(list(fmt.start([{"role": "user", "content": turn.observation}])))
        plan = policy.tokenizer(turn.action, add_special_tokens=False)["input_ids"]
        actions.append(list(plan) + list(fmt.end_of_turn_ids))
    params = list(policy.trainable_parameters())
    opt = torch.optim.Adam(params, lr=lr)
    policy.model.train()
    losses = []
    for _ in range(int(epochs)):
        opt.zero_grad(set_to_none=True)
        _, per_token, mask = policy.action_logprobs(prompts, actions, constraint=None)
        loss = -(per_token * mask).sum() / mask.sum()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    policy.model.eval()
    return {"warm_start/loss": float(np.mean(losses)), "warm_start/final_loss": losses[-1]}


def rltf(
    policy: Any,
    env_kwargs: dict[str, Any],
    seed: int,
    iterations: int,
    episodes: int,
    algo: dict[str, Any],
    log: list[dict[str, float]],
    eval_fn: Any = None,
    eval_every: int = 0,
) -> None:
    """RLTF updates on freshly sampled train tasks (``episodes`` per update)."""
    from agentrl.algorithm import build_algorithm
    from agentrl.collect import iteration_rng_seed, iteration_seeds
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

    algorithm: Any = build_algorithm("rltf", {"name": "rltf", **algo}, policy, seed=seed)
    sampling = SamplingConfig(max_new_tokens=48, constraint=CONSTRAINT)
    worker = RolloutWorker(
        ENV_ID, env_kwargs, episodes, sampling, policy=policy, conversation=CONVERSATION
    )
    for it in range(1, iterations + 1):
        jobs = [EpisodeJob(j, s) for j, s in enumerate(iteration_seeds(seed, it, episodes))]
        eps = worker.collect(
            jobs, rng_seed=iteration_rng_seed(seed, it), act=lambda o, p: algorithm.act(o, p, sampling)
        )
        stats = algorithm.update(eps)
        row = {
            "iteration": it,
            "train_reward": stats["rltf/reward"],
            "epsilon": stats["rltf/epsilon"],
        }
        if eval_fn is not None and eval_every and it % eval_every == 0:
            row["test_score"] = eval_fn()["score"]
            print(json.dumps(row), flush=True)
        log.append(row)


def run_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from agentrl.envs.toolchain import ToolChainEnv

    base = {
        "split_seed": seed,
        "max_chain": args.max_chain,
        "num_examples": args.examples,
        "modules": args.modules,
        "multi_turn": args.multi_turn,
    }
    train_kwargs = {**base, "split": "train"}
    test_kwargs = {**base, "split": "test"}
    test_tasks = ToolChainEnv(**test_kwargs).task_list(args.test_tasks)
    model = {
        "hidden_size": args.hidden,
        "num_layers": args.layers,
        "num_heads": 4,
        "intermediate_size": 2 * args.hidden,
    }
    if args.model == "smollm2":
        policy = make_pretrained(seed)
    else:
        policy = make_policy(
            seed, model, toolchain_tokenizer(base) if args.tokenizer == "toolchain" else None
        )
    out: dict[str, Any] = {"seed": seed}
    t0 = time.perf_counter()
    out["zero_shot"] = evaluate(policy, test_kwargs, test_tasks)
    if args.model == "tiny":
        out["zero_shot_train"] = evaluate(
            policy, train_kwargs, ToolChainEnv(**train_kwargs).task_list(args.test_tasks)
        )
    print(json.dumps({"seed": seed, "zero_shot": out["zero_shot"], "s": time.perf_counter() - t0}), flush=True)
    fit = supervised_shared if args.model == "smollm2" else supervised
    sft = fit(policy, train_kwargs, args.sft_tasks, seed, args.sft_epochs, args.sft_lr)
    out["sft_loss"] = sft["warm_start/loss"]
    out["supervised"] = evaluate(policy, test_kwargs, test_tasks)
    print(json.dumps({"seed": seed, "supervised": out["supervised"], "s": time.perf_counter() - t0}), flush=True)
    log: list[dict[str, float]] = []
    algo = {
        "lr": args.lr,
        "num_candidates": args.k,
        "epsilon": args.epsilon,
        "epsilon_decay": args.epsilon_decay,
        "min_epsilon": args.min_epsilon,
        "choice": args.choice,
        "normalize_advantage": args.normalize,
    }
    rltf(
        policy,
        train_kwargs,
        seed,
        args.iterations,
        args.episodes,
        algo,
        log,
        eval_fn=lambda: evaluate(policy, test_kwargs, test_tasks),
        eval_every=args.eval_every,
    )
    out["rltf"] = evaluate(policy, test_kwargs, test_tasks)
    out["curve"] = log
    out["seconds"] = time.perf_counter() - t0
    print(json.dumps({k: v for k, v in out.items() if k != "curve"}), flush=True)
    return out


def write_report(results: list[dict[str, Any]], args: argparse.Namespace, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = ["zero_shot", "supervised", "rltf"]
    labels = {
        "zero_shot": "zero-shot (prompted SmolLM2)" if args.model == "smollm2" else "zero-shot (untrained)",
        "supervised": f"supervised ({args.sft_tasks} tasks, SFT)",
        "rltf": f"RLTF ({args.iterations} updates)",
    }
    lines = [
        "| planner | "
        + " | ".join(f"seed {r['seed']}" for r in results)
        + " | mean ± std | success (mean) |",
        "|---|" + "---|" * (len(results) + 2),
    ]
    for arm in arms:
        scores = [r[arm]["score"] for r in results]
        succ = [r[arm]["success"] for r in results]
        lines.append(
            f"| {labels[arm]} | "
            + " | ".join(f"{s:.3f}" for s in scores)
            + f" | {np.mean(scores):.3f} ± {np.std(scores):.3f} | {np.mean(succ):.3f} |"
        )
    from benchmarks.smollm2_learning import bootstrap_interval

    lines += ["", "| paired difference (per seed) | values | mean [95% bootstrap interval over seeds] |", "|---|---|---|"]
    for hi, lo in (("rltf", "supervised"), ("supervised", "zero_shot"), ("rltf", "zero_shot")):
        diffs = [r[hi]["score"] - r[lo]["score"] for r in results]
        a, b = bootstrap_interval(diffs)
        lines.append(
            f"| {labels[hi]} - {labels[lo]} | {', '.join(f'{d:+.3f}' for d in diffs)} | "
            f"{np.mean(diffs):+.3f} [{a:+.3f}, {b:+.3f}] |"
        )
    table = "\n".join(lines)
    print(table)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    means = [np.mean([r[a]["score"] for r in results]) for a in arms]
    stds = [np.std([r[a]["score"] for r in results]) for a in arms]
    ax1.bar([labels[a] for a in arms], means, yerr=stds, capsize=4, color=["#999", "#69c", "#c63"])
    for i, a in enumerate(arms):
        ax1.scatter([i] * len(results), [r[a]["score"] for r in results], color="k", s=10, zorder=3)
    ax1.set_ylabel("test task score (held-out combinations)")
    ax1.tick_params(axis="x", labelsize=8)
    for r in results:
        its = [row["iteration"] for row in r["curve"] if "test_score" in row]
        ax2.plot(
            [0, *its],
            [r["supervised"]["score"]]
            + [row["test_score"] for row in r["curve"] if "test_score" in row],
            label=f"seed {r['seed']} test",
        )
        ax2.plot(
            [row["iteration"] for row in r["curve"]],
            [row["train_reward"] for row in r["curve"]],
            alpha=0.3,
            linestyle=":",
            label=f"seed {r['seed']} train (acting)",
        )
    ax2.set_xlabel("RLTF update")
    ax2.set_ylabel("score")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / "rltf.png", dpi=110)
    print(f"wrote {out_dir / 'rltf.png'}, {out_dir / 'rltf_results.json'}", flush=True)
    (out_dir / "rltf_results.json").write_text(
        json.dumps({"args": vars(args), "results": results}, indent=1)
    )
    (out_dir / "rltf_table.md").write_text(table + "\n")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument(
        "--model", choices=["tiny", "smollm2"], default="tiny",
        help="tiny: a from-scratch Llama (--hidden/--layers); smollm2: SmolLM2-135M-Instruct + LoRA",
    )
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--max-chain", type=int, default=2)
    p.add_argument(
        "--modules", type=lambda t: t.split(","), default="reverse,sort,double,inc,sum,max"
    )
    p.add_argument("--examples", type=int, default=2)
    p.add_argument("--normalize", action="store_true")
    p.add_argument("--single-turn", dest="multi_turn", action="store_false")
    p.add_argument("--tokenizer", choices=["toolchain", "word"], default="toolchain")
    p.add_argument("--test-tasks", type=int, default=128)
    p.add_argument("--sft-tasks", type=int, default=8)
    p.add_argument("--sft-epochs", type=float, default=60.0)
    p.add_argument("--sft-lr", type=float, default=2e-3)
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--epsilon", type=float, default=0.2)
    p.add_argument("--epsilon-decay", type=float, default=0.9)
    p.add_argument("--min-epsilon", type=float, default=0.1)
    p.add_argument("--choice", default="best")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--eval-every", type=int, default=20)
    p.add_argument("--out", default="docs")
    p.add_argument(
        "--report-from", type=Path, default=None,
        help="rewrite the table and plot from a results JSON of an earlier run (no training)",
    )
    args = p.parse_args()
    if args.report_from is not None:
        saved = json.loads(args.report_from.read_text())
        write_report(saved["results"], argparse.Namespace(**saved["args"]), Path(args.out))
        return
    global CONVERSATION
    CONVERSATION = args.model == "smollm2"
    register_subset_constraint(args.modules, args.multi_turn)
    torch.set_num_threads(args.threads)
    results = [run_seed(s, args) for s in args.seeds]
    write_report(results, args, Path(args.out))


if __name__ == "__main__":
    main()
