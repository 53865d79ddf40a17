"""ARMAP on Game of 24 and Guess the Number: reward-model accuracy and Best-of-N planning.

For each env: collect exploration trajectories with a weak scripted policy, synthesize
(intent, positive, negative) triplets with the env's own tools, train a tiny reward model
from scratch (word tokenizer, no downloads) with TRL's RewardTrainer + the Bradley-Terry
loss, report held-out pairwise accuracy (held-out *tasks*), then plan on unseen tasks with a
weak proposer: Best-of-N for N in {1, 10, 100} (avg / max / sel), Reflexion and MCTS.

    python benchmarks/armap.py                 # both envs, ~5 min on 2 cores
    python benchmarks/armap.py --rl            # also: PPO on Game24 with reward=learned_rm

Writes ``docs/rewards_results.md`` and ``docs/rewards_bon.png`` (work files in ``--work``).

Several seeds, response formats and reward-model backbones (Game of 24; Best-of-N only,
see ``benchmarks/armap_seeds.py``)::

    python benchmarks/armap.py --seeds 0 1 2 --formats full hidden \
        --backbones tiny tiny_encoder smollm2 --work runs/armap_seeds
    python benchmarks/armap.py --report-from docs/armap_seeds.json   # re-render, no rerun
    python benchmarks/armap.py --report-from A.json B.json   # two studies as one report

Its JSON goes to ``--seeds-json`` (``docs/armap_seeds.json``), its plot to ``--seeds-png``
(``docs/armap_seeds.png``) and its tables between the
``<!-- armap-seeds:start/end -->`` markers of ``docs/rewards_results.md`` (kept when the
default invocation rewrites that page).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agentrl.rewards.armap import (
    CollectConfig,
    SynthesizeConfig,
    TrainRMConfig,
    collect,
    synthesize,
)
from agentrl.rewards.armap.plan import PlanConfig, run_plan
from agentrl.rewards.model import RMBackboneConfig

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python benchmarks/armap.py
    sys.path.insert(0, str(ROOT))

from benchmarks.armap_seeds import (  # noqa: E402
    BACKBONES,
    END,
    FORMATS,
    START,
    StudyConfig,
    merge_results,
    run_study,
    train_or_resume,
    write_report,
)
from benchmarks.armap_seeds import plot as plot_study  # noqa: E402

ENVS: dict[str, dict[str, Any]] = {
    "game24": {
        "collect": {"episodes": 1500, "policy": "mix", "epsilon": 0.8, "repeats": 1},
        "backbone": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128},
        "epochs": 4.0,
        "proposer": {"proposer": "mix", "epsilon": 0.7},
        "tasks": 100,
        "exclude_seen": True,  # plan on puzzles absent from the RM's training data
    },
    "guess_the_number": {
        "collect": {
            "episodes": 1200,
            "policy": "random",
            "repeats": 8,
            "env_kwargs": {"low": 1, "high": 32},
        },
        "backbone": {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128},
        "epochs": 3.0,
        "proposer": {"proposer": "random", "env_kwargs": {"low": 1, "high": 32}},
        "tasks": 100,
        "exclude_seen": False,  # all 32 targets were explored; the trajectories planned are new
    },
}


def run_env(name: str, spec: dict[str, Any], work: Path, seed: int) -> dict[str, Any]:
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    col = collect(CollectConfig(env=name, out=str(d / "traj.jsonl"), seed=seed, **spec["collect"]))
    syn = synthesize(
        SynthesizeConfig(
            trajectories=str(d / "traj.jsonl"), out=str(d / "triplets.jsonl"), seed=seed
        )
    )
    out: dict[str, Any] = {"collect": col, "synthesize": syn, "rm": {}}
    for backbone in ("tiny", "tiny_encoder"):
        res, _ = train_or_resume(
            TrainRMConfig(
                data=str(d / "triplets.jsonl"),
                out=str(d / f"rm_{backbone}"),
                epochs=spec["epochs"],
                lr=1e-3,
                seed=seed,
                backbone=RMBackboneConfig(name=backbone, **spec["backbone"]),
            )
        )
        out["rm"][backbone] = res
        print(
            f"[{name}] RM {backbone}: held-out pairwise accuracy {res['heldout_accuracy']:.3f} "
            f"({res['heldout_pairs']} pairs), train {res['train_accuracy']:.3f}",
            flush=True,
        )
    rm_path = str(d / "rm_tiny")
    env_kwargs = dict(spec["proposer"].get("env_kwargs", {}))
    prop = {k: v for k, v in spec["proposer"].items() if k != "env_kwargs"}
    common = dict(
        env=name,
        env_kwargs=env_kwargs,
        tasks=spec["tasks"],
        seed=100_000 + seed,
        exclude=str(d / "triplets.jsonl") if spec["exclude_seen"] else None,
        **prop,
    )
    out["bon"] = run_plan(
        PlanConfig(
            planner="best_of_n",
            reward={"name": "learned_rm", "path": rm_path},
            ns=[1, 10, 100],
            out=str(d / "bon.jsonl"),
            **common,
        )
    )
    out["reflexion"] = run_plan(
        PlanConfig(
            planner="reflexion",
            reward={"name": "learned_rm", "path": rm_path},
            attempts=10,
            threshold=0.5,
            out=str(d / "reflexion.jsonl"),
            **common,
        )
    )
    out["mcts"] = run_plan(
        PlanConfig(
            planner="mcts",
            reward={"name": "learned_rm", "path": rm_path},
            simulations=30,
            expansions=3,
            out=str(d / "mcts.jsonl"),
            **common,
        )
    )
    out["seconds"] = time.time() - t0
    b = out["bon"]
    print(
        f"[{name}] Best-of-N "
        + "  ".join(
            f"N={n}: avg {b[f'N={n}/avg']:.2f} max {b[f'N={n}/max']:.2f} sel {b[f'N={n}/sel']:.2f}"
            for n in (1, 10, 100)
        ),
        flush=True,
    )
    return out


RL_ENV = {
    "high": 6,
    "letters": True,
}  # Game24 on 1..6 with letter actions ("a * b"): tiny-model sized


def run_rl(work: Path, iterations: int, seed: int, reward: str = "learned_rm") -> dict[str, Any]:
    """PPO on Game24 trained only on the learned RM's score (``reward=env``: the control).

    The RM is the Game24 one from :func:`run_env`; the env reward is never used by the
    learner with ``reward=learned_rm`` but is logged (``train/success``, ``eval_sample/*``).
    """
    from agentrl.config import load_config
    from agentrl.trainer import train

    run_dir = work / f"rl_game24_{reward}"
    overrides = [
        "env=game24",
        f"env.kwargs.high={RL_ENV['high']}",
        f"env.kwargs.letters={str(RL_ENV['letters']).lower()}",
        f"reward={reward}",
        *([f"reward.path={work / 'game24' / 'rm_tiny'}"] if reward == "learned_rm" else []),
        "algorithm=ppo",
        "algorithm.lr=1e-3",
        "cluster=inline",
        f"iterations={iterations}",
        f"run_dir={run_dir}",
        f"seed={seed}",
        "logging.tensorboard=false",
        "logging.plot=true",
        "logging.progress=false",
        "rollout.num_workers=1",
        "rollout.envs_per_worker=16",
        "rollout.episodes_per_iter=64",
        "eval.every=5",
        "eval.episodes=128",
        "eval.greedy=false",
        "warm_start.policy=good",
        "warm_start.episodes=400",
        "warm_start.epochs=4",
        "checkpoint.every=0",
    ]
    done = run_dir / "summary.json"
    summary = (
        json.loads(done.read_text())
        if done.is_file()
        else train(load_config(overrides), console=False)
    )
    rows = [json.loads(line) for line in open(Path(summary["run_dir"]) / "metrics.jsonl")]
    summary["command"] = "agentrl train " + " ".join(overrides)
    summary["curve"] = [
        {
            k: r.get(k)
            for k in (
                "iteration",
                "train/return",
                "train/success",
                "train/relabelled_return",
                "eval_sample/success",
                "eval_sample/invalid_actions",
            )
        }
        for r in rows
    ]
    return summary


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6))
    for ax, (name, res) in zip(axes if len(results) > 1 else [axes], results.items(), strict=True):
        ns = [1, 10, 100]
        for key, style in (("avg", "o--"), ("sel", "s-"), ("max", "^:")):
            ax.plot(ns, [res["bon"][f"N={n}/{key}"] for n in ns], style, label=key)
        ax.set_xscale("log")
        ax.set_xlabel("N (candidates)")
        ax.set_ylabel("success")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"Best-of-N on {name}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(
    results: dict[str, Any], rl: dict[str, dict[str, Any]] | None, args: argparse.Namespace
) -> str:
    lines = [
        "# ARMAP results (generated by `benchmarks/armap.py`)",
        "",
        f"Command: `python benchmarks/armap.py{(' --rl' + (' --rl-control' if len(rl) > 1 else '')) if rl else ''}"
        + "".join(
            f" --{k} {v}"
            for k, v in (
                ("episodes", args.episodes),
                ("tasks", args.tasks),
                ("epochs", args.epochs),
            )
            if v is not None
        )
        + f"` (seed {args.seed}); "
        "tiny reward models trained from scratch on CPU with the word tokenizer.",
        "",
        "## Reward-model pairwise accuracy on held-out tasks",
        "",
        "| env | trajectories (policy) | triplets | backbone | held-out pairs | held-out acc | train acc |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        spec = ENVS[name]["collect"]
        for backbone, rm in res["rm"].items():
            lines.append(
                f"| {name} | {res['collect']['episodes']} ({spec['policy']}) | {res['synthesize']['written']} | "
                f"{backbone} | {rm['heldout_pairs']} | {rm['heldout_accuracy']:.3f} | {rm['train_accuracy']:.3f} |"
            )
    lines += ["", "Held-out accuracy by kind of negative (causal `tiny` backbone):", ""]
    for name, res in results.items():
        kinds = res["rm"]["tiny"].get("heldout_accuracy_by_kind", {})
        lines.append(f"- {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in kinds.items()))
    lines += [
        "",
        "## Best-of-N with a weak proposer (unseen tasks)",
        "",
        "avg = mean success of one sample, max = oracle (any sample succeeds), sel = the reward model's pick.",
        "",
        "| env | proposer | tasks | N | avg | sel | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        p = ENVS[name]["proposer"]
        pdesc = p["proposer"] + (f" (epsilon {p['epsilon']})" if "epsilon" in p else "")
        for n in (1, 10, 100):
            b = res["bon"]
            lines.append(
                f"| {name} | {pdesc} | {b['tasks']} | {n} | {b[f'N={n}/avg']:.3f} | "
                f"**{b[f'N={n}/sel']:.3f}** | {b[f'N={n}/max']:.3f} |"
            )
    lines += [
        "",
        "## Reflexion and MCTS guided by the same reward model",
        "",
        "| env | planner | budget | first-try success | success | mean candidates |",
        "|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for planner, budget in (
            ("reflexion", "10 attempts, stop at sigmoid(r) >= 0.5"),
            ("mcts", "30 simulations"),
        ):
            r = res[planner]
            lines.append(
                f"| {name} | {planner} | {budget} | {r['first_try_success']:.3f} | {r['success']:.3f} | "
                f"{r['mean_candidates']:.1f} |"
            )
    if rl is not None:
        lines += [
            "",
            "## RL on the learned reward (`reward=learned_rm`)",
            "",
            f"PPO on Game24 with numbers 1..{RL_ENV['high']} and letter actions (`env.kwargs.letters=true`: "
            '`"a * b"`, the env computes the result), from a BC warm start on the `good` player (400 '
            "episodes, 4 epochs; the tiny policy imitates it poorly), trained **only on the Game24 reward "
            "model's score** (sigmoid; the RM above, trained on puzzles 1..13 in the written form). The true "
            "env success is logged beside it: `train/success` on the training episodes and the success on 128 "
            "fixed evaluation puzzles (sampled with a fixed seed).",
            "",
        ]
        for name, run in rl.items():
            lines += [
                f"`reward={name}`:",
                "",
                "| iteration | train true success | train reward (learner's) | eval true success | "
                "eval invalid actions |",
                "|---|---|---|---|---|",
            ]
            for r in run["curve"]:
                if r.get("eval_sample/success") is not None:
                    tr, rr = r.get("train/success"), r.get("train/relabelled_return")
                    lines.append(
                        f"| {r['iteration']} | {'-' if tr is None else f'{tr:.3f}'} | "
                        f"{'-' if rr is None else f'{rr:.3f}'} | {r['eval_sample/success']:.3f} | "
                        f"{r.get('eval_sample/invalid_actions') or 0:.3f} |"
                    )
            lines += ["", f"Command: `{run['command']}`", ""]
    lines += [
        "",
        "Wall time of the last invocation (finished stages are resumed, not redone): "
        + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in results.items()),
        "",
    ]
    return "\n".join(lines)


def keep_seeds_block(old: str, new: str) -> str:
    """``new`` with the seeds-study block of ``old`` (between the markers) and everything
    after it (the hand-written verdicts on it) appended, so the default invocation's
    rewrite of the page keeps the ``--seeds`` tables and what was said about them."""
    if START not in old or START in new:
        return new
    block = old[old.index(START) :]
    block = block if END in block else block + END
    return new.rstrip("\n") + "\n\n" + block.rstrip("\n") + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--work", default="runs/armap_bench")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--envs",
        nargs="+",
        default=None,
        help="envs to run (space or comma separated; default: game24 and guess_the_number, "
        "or game24 alone with --seeds)",
    )
    ap.add_argument("--rl", action="store_true")
    ap.add_argument("--rl-iterations", type=int, default=40)
    ap.add_argument(
        "--rl-control", action="store_true", help="also the same RL run on the env reward"
    )
    ap.add_argument(
        "--rl-only", action="store_true", help="only the RL part (planning results from --work)"
    )
    ap.add_argument("--docs", default="docs")
    ap.add_argument("--episodes", type=int, default=None, help="collect episodes (smaller runs)")
    ap.add_argument("--tasks", type=int, default=None, help="planning tasks (smaller runs)")
    ap.add_argument("--epochs", type=float, default=None, help="reward-model epochs (smaller runs)")
    study = ap.add_argument_group("several seeds, formats and backbones (Best-of-N only)")
    study.add_argument("--seeds", type=int, nargs="+", default=None, help="e.g. 0 1 2")
    study.add_argument(
        "--formats", nargs="+", default=None, choices=list(FORMATS), help="default: full"
    )
    study.add_argument(
        "--backbones",
        nargs="+",
        default=None,
        choices=list(BACKBONES),
        help="default: tiny tiny_encoder; smollm2 = SmolLM2-135M-Instruct with LoRA",
    )
    study.add_argument(
        "--smollm2-lr", type=float, default=3e-4, help="the SmolLM2 + LoRA RM's lr (untuned)"
    )
    study.add_argument(
        "--smollm2-epochs", type=float, default=None, help="default: the tiny models' epochs"
    )
    study.add_argument("--smollm2-batch-size", type=int, default=16)
    study.add_argument("--seeds-json", default="docs/armap_seeds.json")
    study.add_argument(
        "--seeds-doc", default=None, help="page with the markers (default: DOCS/rewards_results.md)"
    )
    study.add_argument(
        "--report-from",
        nargs="+",
        default=None,
        metavar="JSON",
        help="re-render one or more studies' JSONs as one report (their cells side by side); no runs",
    )
    study.add_argument(
        "--seeds-png",
        default=None,
        help="the study's plot (default: DOCS/armap_seeds.png; 'none': no plot)",
    )
    return ap.parse_args(argv)


def _envs(args: argparse.Namespace, default: list[str]) -> list[str]:
    names = [n for a in (args.envs or []) for n in a.split(",") if n] or default
    bad = [n for n in names if n not in ENVS]
    if bad:
        raise SystemExit(f"unknown env {bad}; valid envs: {', '.join(ENVS)}")
    return names


def sized_specs(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """:data:`ENVS` with ``--episodes`` / ``--tasks`` / ``--epochs`` applied (copies)."""
    specs: dict[str, dict[str, Any]] = json.loads(json.dumps(ENVS))
    for spec in specs.values():
        if args.episodes is not None:
            spec["collect"]["episodes"] = args.episodes
        if args.tasks is not None:
            spec["tasks"] = args.tasks
        if args.epochs is not None:
            spec["epochs"] = args.epochs
    return specs


def main_study(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """``--seeds`` / ``--formats`` / ``--backbones`` / ``--report-from``: see armap_seeds."""
    doc = Path(args.seeds_doc or Path(args.docs) / "rewards_results.md")
    png = (
        None
        if args.seeds_png == "none"
        else Path(args.seeds_png or Path(args.docs) / "armap_seeds.png")
    )
    if args.report_from:
        parts = [json.loads(Path(f).read_text()) for f in args.report_from]
        try:
            results = merge_results(parts)
        except ValueError as e:
            raise SystemExit(f"--report-from {' '.join(args.report_from)}: {e}") from e
        print(write_report(results, None, doc))
        if png is not None:
            plot_study(results, png)
            print(f"plot: {png}")
        return dict(results)
    if args.rl or args.rl_only:
        raise SystemExit("--rl runs with the default single-seed invocation only (no --seeds)")
    try:
        study = StudyConfig(
            seeds=list(args.seeds if args.seeds is not None else [args.seed]),
            formats=list(args.formats or ["full"]),
            backbones=list(args.backbones or ["tiny", "tiny_encoder"]),
            envs=_envs(args, ["game24"]),
            work=Path(args.work),
            smollm2_lr=args.smollm2_lr,
            smollm2_epochs=args.smollm2_epochs,
            smollm2_batch_size=args.smollm2_batch_size,
            specs=sized_specs(args),
        )
    except ValueError as e:
        raise SystemExit(str(e)) from e
    results = run_study(study, "python benchmarks/armap.py " + " ".join(argv))
    print(write_report(results, Path(args.seeds_json), doc))
    if png is not None:
        plot_study(results, png)
    return results


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if any(v is not None for v in (args.seeds, args.formats, args.backbones, args.report_from)):
        main_study(args, argv)
        return
    work = Path(args.work)
    if args.rl_only:
        results = json.loads((work / "results.json").read_text())["envs"]
    else:
        specs = sized_specs(args)
        results = {
            name: run_env(name, specs[name], work, args.seed)
            for name in _envs(args, ["game24", "guess_the_number"])
        }
    rl = None
    if args.rl:
        rewards = ["learned_rm", "env"] if args.rl_control else ["learned_rm"]
        rl = {r: run_rl(work, args.rl_iterations, args.seed, r) for r in rewards}
        for r, run in rl.items():
            print(
                f"[rl reward={r}] sampled eval success (true env) {run['initial_eval_sample_success']} -> "
                f"{run['final_eval_sample_success']}",
                flush=True,
            )
    docs = Path(args.docs)
    docs.mkdir(exist_ok=True)
    plot(results, docs / "rewards_bon.png")
    text = report(results, rl, args)
    page = docs / "rewards_results.md"
    old = page.read_text() if page.is_file() else ""
    page.write_text(keep_seeds_block(old, text))
    (work / "results.json").write_text(
        json.dumps({"envs": results, "rl": rl}, indent=2, default=str)
    )
    print(text)


if __name__ == "__main__":
    main()
