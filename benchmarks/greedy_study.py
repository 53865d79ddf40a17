"""Why greedy eval falls on TwentyQuestions with the tiny model (issue 18).

Trains one run as ``benchmarks/sample_efficiency.py`` did for docs/sample_efficiency.md
(same BC warm start, overrides and trajectories per iteration; the run's own evaluations off),
then plays its warm-start checkpoint (step 0) and its final checkpoint greedily and sampled on
the sample-efficiency eval seeds (1000000 onwards, the same tasks in both modes) and characterises the episodes:
success, turns, invalid questions, repeated questions, success with and without a repeat,
the greedy episodes per word, and the policy's probability of the actions it took. It also
checks the first 32 greedy episodes token by token against the argmax of a full forward, and
reports the repeat rate of the warm start's demonstrations. ``--init-from`` starts RL from an
existing warm-start checkpoint (no new warm start)::

    python benchmarks/greedy_study.py --seed 0 --trajectories 0 --episodes 16   # a BC start
    python benchmarks/greedy_study.py --trajectories 0 --init-from BC/checkpoints/step_000000 \
        --out runs/greedy_study/bc-seed0.json                  # study a BC start (256 episodes)
    python benchmarks/greedy_study.py --algorithm ppo --seed 0 --trajectories 128 \
        --init-from BC/checkpoints/step_000000 --skip-start --out runs/greedy_study/ppo-seed0.json

The run folder is ``{--root}/{algorithm}-seed{seed}``; ``--reuse`` keeps a finished one;
``--episodes 0`` trains only.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from agentrl.envs import twenty_questions as tq
from agentrl.play import MODES, Mode, action_key, episode_jobs, episode_stats, play, repeated_turns
from agentrl.policy import Policy
from agentrl.types import Episode

EVAL_SEED = 1_000_000
ARGMAX_CHECKED = 32  # greedy episodes whose every token is checked against a full forward


def train(
    algorithm: str,
    seed: int,
    trajectories: int,
    per_iter: int,
    root: Path,
    reuse: bool,
    init_from: Path | None = None,
) -> Path:
    """One run with the overrides of ``sample_efficiency.py``'s runs (2026-11-29) and no
    evaluations; returns its folder. The warm start is saved as checkpoint step 0 and the end
    as the last step. ``init_from``: start from that checkpoint's weights instead of a new BC
    warm start. ``trajectories`` 0 runs one iteration (its step 0 is the BC policy)."""
    from agentrl.config import load_config
    from agentrl.trainer import Trainer

    iterations = max(trajectories // per_iter, 1)
    run_dir = root / f"{algorithm}-seed{seed}"
    if reuse and (run_dir / "summary.json").exists():
        return run_dir
    if run_dir.exists():  # the study owns its root: a rerun starts fresh
        shutil.rmtree(run_dir)
    overrides = [
        f"algorithm={algorithm}",
        "cluster=inline",
        f"seed={seed}",
        f"iterations={iterations}",
        f"rollout.episodes_per_iter={per_iter}",
        f"rollout.envs_per_worker={min(per_iter, 8)}",
        f"run_dir={run_dir}",
        "logging.tensorboard=false",
        "logging.plot=false",
        "logging.progress=false",
        f"checkpoint.every={iterations}",
        "eval.greedy=false",
        "eval.sample=false",
    ]
    if init_from is not None:
        overrides += [f"init_from={init_from}", "warm_start.enabled=false"]
    start = time.perf_counter()
    Trainer(load_config(overrides), console=False).run()
    print(f"[{run_dir.name}] trained in {time.perf_counter() - start:.0f} s", flush=True)
    return run_dir


def play_checkpoint(
    ckpt: Path, episodes: int, seed: int
) -> tuple[Policy, dict[Mode, list[Episode]]]:
    """Both modes of a checkpoint on ``episodes`` eval seeds from ``seed``, as a run's
    evaluation plays them (its worker settings and its split of the jobs); and its policy."""
    from agentrl.checkpoint import verify_checkpoint
    from agentrl.config import to_train_config
    from agentrl.evaluate import checkpoint_config
    from agentrl.learner import Learner
    from agentrl.rollouts.backend import sampling_config, worker_options
    from agentrl.rollouts.group import InlineWorkerGroup
    from agentrl.rollouts.worker import RolloutWorker
    from agentrl.validate import algorithm_section

    cfg = to_train_config(checkpoint_config(verify_checkpoint(ckpt)))
    learner = Learner(
        cfg.model, algorithm_section(cfg), seed=cfg.seed,
        sampling_temperature=cfg.rollout.sampling.temperature,
    )  # fmt: skip
    learner.load(str(ckpt), weights_only=True)
    worker = RolloutWorker(
        cfg.env.id, cfg.env.kwargs, cfg.rollout.envs_per_worker, sampling_config(cfg),
        policy=learner.policy, **worker_options(cfg),
    )  # fmt: skip
    group = InlineWorkerGroup(worker, cfg.rollout.num_workers)
    return learner.policy, play(group, episode_jobs(episodes, seed), seed, MODES)


def steps_not_argmax(
    policy: Policy, episodes: Sequence[Episode], tol: float = 1e-4
) -> tuple[int, int]:
    """``(tokens checked, tokens that are not the argmax)`` of ``episodes``' actions under a
    full, unbatched, uncached forward over each turn's whole context and the action so far."""
    checked = bad = 0
    with torch.no_grad():
        for ep in episodes:
            for context, turn in zip(ep.contexts(), ep.turns, strict=True):
                ids = torch.tensor([context + turn.action_ids[:-1]], device=policy.device)
                logits = policy.model(input_ids=ids).logits[0, len(context) - 1 :]
                for k, token in enumerate(turn.action_ids):
                    checked += 1
                    bad += int(logits[k, token] < logits[k].max() - tol)
    return checked, bad


def checkpoint_seed(ckpt: Path) -> int:
    """The ``seed`` of the run that saved ``ckpt`` (its warm start drew its data with it)."""
    from agentrl.checkpoint import verify_checkpoint

    return int(verify_checkpoint(ckpt)["config"]["seed"])


def data_stats(seed: int) -> dict[str, float]:
    """:func:`episode_stats` of the BC warm start's demonstrations (the run's scripted
    episodes: config ``warm_start``, seed ``seed + 7919`` as the warm start draws them)."""
    from agentrl.config import load_config
    from agentrl.warmstart import scripted_episodes

    cfg = load_config([f"seed={seed}"])
    ws = cfg.warm_start
    eps = scripted_episodes(
        cfg.env.id, cfg.env.kwargs, ws.policy, ws.episodes, seed=seed + 7919, epsilon=ws.epsilon
    )
    return {k.split("/", 1)[1]: v for k, v in episode_stats("m", eps).items()}


def is_guess(action: str) -> bool:
    q = tq.parse_question(action)
    return q is not None and q.kind == "guess"


def action_prob(turn_logprobs: Sequence[float]) -> float:
    """The policy's probability of an action's tokens (greedy reports temperature-1 log-probs)."""
    return math.exp(sum(turn_logprobs))


def describe(episodes: Sequence[Episode]) -> dict[str, Any]:
    """The diagnostics of one mode's episodes (see the module docstring)."""
    n = len(episodes)
    rep = [repeated_turns(e) for e in episodes]
    looped = [any(r) for r in rep]
    truncated = [not e.success and e.num_turns > 0 and e.turns[-1].truncated for e in episodes]
    no_rep = [e for e, loop in zip(episodes, looped, strict=True) if not loop]
    with_rep = [e for e, loop in zip(episodes, looped, strict=True) if loop]
    guessed = [any(is_guess(t.action) for t in e.turns) for e in episodes]
    first_repeat = [r.index(True) + 1 for r in rep if any(r)]
    # after the first repeat: the share of the remaining turns that repeat too
    after = [sum(r[r.index(True) :]) / len(r[r.index(True) :]) for r in rep if any(r)]
    probs_rep = [
        action_prob(t.action_logprobs)
        for e, r in zip(episodes, rep, strict=True)
        for t, x in zip(e.turns, r, strict=True)
        if x
    ]
    probs_new = [
        action_prob(t.action_logprobs)
        for e, r in zip(episodes, rep, strict=True)
        for t, x in zip(e.turns, r, strict=True)
        if not x
    ]
    out: dict[str, Any] = {k.split("/", 1)[1]: v for k, v in episode_stats("m", episodes).items()}
    out.update(
        episodes=n,
        episodes_with_repeat=sum(looped) / n,
        success_without_repeat=_mean([e.success for e in no_rep]),
        success_with_repeat=_mean([e.success for e in with_rep]),
        n_without_repeat=len(no_rep),
        truncated=sum(truncated) / n,
        truncated_with_repeat=_mean([lp for lp, t in zip(looped, truncated, strict=True) if t]),
        never_guessed=1 - sum(guessed) / n,
        first_repeat_turn_median=statistics.median(first_repeat) if first_repeat else None,
        repeat_share_after_first_repeat=_mean(after),
        action_prob_repeat_median=statistics.median(probs_rep) if probs_rep else None,
        action_prob_new_median=statistics.median(probs_new) if probs_new else None,
        turns_histogram=dict(sorted(Counter(e.num_turns for e in episodes).items())),
        top_repeated=Counter(
            action_key(t.action)
            for e, r in zip(episodes, rep, strict=True)
            for t, x in zip(e.turns, r, strict=True)
            if x
        ).most_common(5),
    )
    by_word: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_word[str(e.task.get("word"))].append(e)
    out["by_word"] = {
        w: {
            "episodes": len(es),
            "success": _mean([e.success for e in es]),
            "distinct_trajectories": len(
                {tuple(action_key(t.action) for t in e.turns) for e in es}
            ),
            "example": [t.action for t in es[0].turns][:8],
        }
        for w, es in sorted(by_word.items())
    }
    return out


def _mean(xs: Sequence[float | bool]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def study(ckpt: Path, episodes: int, seed: int) -> dict[str, Any]:
    start = time.perf_counter()
    policy, played = play_checkpoint(ckpt, episodes, seed)
    words = [[e.task.get("word") for e in played[m]] for m in MODES]
    out: dict[str, Any] = {m: describe(played[m]) for m in MODES}
    out["same_tasks_in_both_modes"] = words[0] == words[1]
    checked, bad = steps_not_argmax(policy, played["greedy"][:ARGMAX_CHECKED])
    out["greedy_argmax_check"] = {"episodes": ARGMAX_CHECKED, "tokens": checked, "not_argmax": bad}
    out["seconds"] = round(time.perf_counter() - start, 1)
    return out


def headline(name: str, result: dict[str, Any]) -> str:
    check = result["greedy_argmax_check"]
    lines = [
        f"{name}: same tasks in both modes: {result['same_tasks_in_both_modes']}; greedy tokens "
        f"that are not the full-forward argmax: {check['not_argmax']} of {check['tokens']} "
        f"(first {check['episodes']} episodes)"
    ]
    for m in MODES:
        r = result[m]
        lines.append(
            f"  {m:<8} success {r['success']:.3f} return {r['return']:.2f} turns {r['turns']:.2f} "
            f"invalid {r['invalid_actions']:.3f} repeat_rate {r['repeat_rate']:.3f} "
            f"episodes with a repeat {r['episodes_with_repeat']:.3f} | success without repeat "
            f"{_fmt(r['success_without_repeat'])} (n={r['n_without_repeat']}), with "
            f"{_fmt(r['success_with_repeat'])} | never guessed {r['never_guessed']:.3f} | "
            f"p(action) repeat {_fmt(r['action_prob_repeat_median'])} new {_fmt(r['action_prob_new_median'])}"
        )
    g = result["greedy"]["by_word"]
    lines.append(
        "  greedy by word: "
        + ", ".join(f"{w} {v['success']:.2f}/{v['distinct_trajectories']}" for w, v in g.items())
    )
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithm", default="ppo", help="ppo, filtered_bc, archer or chai")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--trajectories", type=int, default=320, help="training budget (0: BC start only)"
    )
    p.add_argument("--per-iter", type=int, default=32, help="trajectories per iteration")
    p.add_argument(
        "--episodes", type=int, default=256, help="eval episodes per mode (0: train only)"
    )
    p.add_argument("--root", type=Path, default=Path("runs/greedy_study"))
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    p.add_argument("--reuse", action="store_true", help="keep a finished run found under --root")
    p.add_argument(
        "--init-from", type=Path, default=None,
        help="a BC warm-start checkpoint to start from (no new warm start); with "
        "--trajectories 0 only that checkpoint is studied",
    )  # fmt: skip
    p.add_argument("--skip-start", action="store_true", help="study the final checkpoint only")
    args = p.parse_args(argv)
    if args.init_from is not None and args.trajectories == 0:
        run = args.init_from  # nothing to train: study that checkpoint
        checkpoints = {"step_000000": args.init_from}
    else:
        run = train(
            args.algorithm, args.seed, args.trajectories, args.per_iter, args.root, args.reuse,
            args.init_from,
        )  # fmt: skip
        final = f"step_{args.trajectories // args.per_iter:06d}"
        checkpoints = {
            "step_000000": args.init_from or run / "checkpoints" / "step_000000",
            **({final: run / "checkpoints" / final} if args.trajectories else {}),
        }
        if args.skip_start:
            checkpoints.pop("step_000000")
    bc_seed = args.seed if args.init_from is None else checkpoint_seed(args.init_from)
    results: dict[str, Any] = {"bc_data": data_stats(bc_seed)}
    print(
        f"BC demonstrations (warm start of seed {bc_seed}): "
        + ", ".join(f"{k} {v:.3f}" for k, v in results["bc_data"].items())
    )
    if args.episodes == 0:  # train only; study later with --reuse
        checkpoints = {}
    for name, ckpt in checkpoints.items():
        results[name] = study(ckpt, args.episodes, EVAL_SEED)
        print(headline(f"{run.name} {name}", results[name]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
