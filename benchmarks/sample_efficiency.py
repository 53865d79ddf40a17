"""Sample efficiency of ArCHer against its baselines on TwentyQuestions (10-word subset).

Each algorithm and seed runs ``agentrl train`` in-process (``cluster=inline``) from the same
BC warm start (same scripted data, SFT settings and seed, so iteration 0 is one policy per
seed) with the same trajectory budget. Algorithms may collect different numbers of
trajectories per iteration (``--per-iter``): an off-policy learner such as ArCHer can
update often on few new trajectories, an on-policy one wants larger batches; evaluation
happens every ``--eval-trajectories`` trajectories for all of them, on the same 64 eval seeds.

Outputs: a table (initial / final sampled and greedy eval return and success, medians over
seeds, with min-max), the trajectories each algorithm needed to reach PPO's final sampled
return (first eval point whose median is at least as good), and a plot of return vs
trajectories (median line, min-max band)::

    python benchmarks/sample_efficiency.py --seeds 0 1 2 --trajectories 640 --out docs/sample_efficiency.md
    python benchmarks/sample_efficiency.py --algorithms archer --algo-extra archer=algorithm.critic_lr=3e-4
    python benchmarks/sample_efficiency.py --seeds 0 --trajectories 16 --eval-trajectories 8 \\
        --per-iter archer=8 ppo=8 filtered_bc=8 chai=8 --extra eval.episodes=4   # smoke

A variant runs an algorithm under a label of its own, next to its default runs:
``--variant archer_lrdecay=archer --algo-extra archer_lrdecay=algorithm.actor_lr_decay_iters=37
--algorithms archer archer_lrdecay ppo`` (runs ``archer_lrdecay-seedN``; ``--per-iter`` and
``--algo-extra`` accept the label; the base algorithm's overrides do not apply to it).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from agentrl.config import load_config
from agentrl.metrics import read_metrics
from agentrl.trainer import Trainer

ALGORITHMS = ("archer", "ppo", "filtered_bc", "chai")
DEFAULT_PER_ITER = {"archer": 8, "ppo": 32, "filtered_bc": 32, "chai": 32}
KEYS = ("eval_sample/return", "eval_sample/success", "eval/return", "eval/success")


def run_one(
    algorithm: str,
    seed: int,
    budget: int,
    per_iter: int,
    eval_traj: int,
    root: Path,
    extra: list[str],
    reuse: bool = False,
    label: str | None = None,
) -> list[dict[str, Any]]:
    """One training run; returns its metrics rows (``episodes_total`` = trajectories so far).

    ``label`` names the run (``{label}-seed{seed}``; default the algorithm's name)."""
    label = label or algorithm
    if budget % per_iter or eval_traj % per_iter:
        raise SystemExit(
            f"{label}: --trajectories {budget} and --eval-trajectories {eval_traj} "
            f"must be multiples of its per-iteration count {per_iter}"
        )
    run_dir = root / f"{label}-seed{seed}"
    if reuse and (run_dir / "summary.json").exists():  # a finished run of an earlier invocation
        return _rows(run_dir)
    if run_dir.exists():  # the benchmark owns its root: a rerun starts fresh
        shutil.rmtree(run_dir)
    overrides = [
        f"algorithm={algorithm}",
        "cluster=inline",
        f"seed={seed}",
        f"iterations={budget // per_iter}",
        f"rollout.episodes_per_iter={per_iter}",
        f"rollout.envs_per_worker={min(per_iter, 8)}",
        f"eval.every={eval_traj // per_iter}",
        f"run_dir={run_dir}",
        "logging.tensorboard=false",
        "logging.plot=false",
        "logging.progress=false",
        f"checkpoint.every={budget // per_iter}",
        *extra,
    ]
    start = time.perf_counter()
    Trainer(load_config(overrides), console=False).run()
    print(f"[{label} seed {seed}] {time.perf_counter() - start:.0f} s", flush=True)
    return _rows(run_dir)


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    rows = read_metrics(run_dir / "metrics.jsonl")
    for r in rows:
        r.setdefault("episodes_total", 0)
    return rows


def final_eval(run_dir: Path, episodes: int, seed: int) -> dict[str, float]:
    """Sampled eval of a run's final checkpoint on ``episodes`` fresh seeds (``seed + j``).

    The learning curves use the runs' own eval (``eval.episodes`` seeds, 64 by default, return
    std ~6: a standard error ~0.75); this re-evaluates each final policy on more, disjoint seeds
    to narrow that. Same acting rule as the runs' sampled eval (temperature 1; CHAI's best of k
    by its critic, restored with the full algorithm state). Cached in the run folder.
    """
    from agentrl.checkpoint import resolve_checkpoint, verify_checkpoint
    from agentrl.config import to_train_config
    from agentrl.evaluate import checkpoint_config
    from agentrl.learner import Learner
    from agentrl.play import episode_stats
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.group import InlineWorkerGroup
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
    from agentrl.validate import algorithm_section

    cache = run_dir / f"final_eval_{episodes}_{seed}.json"
    if cache.exists():
        return dict(json.loads(cache.read_text()))
    ckpt = resolve_checkpoint(str(run_dir))
    cfg = to_train_config(checkpoint_config(verify_checkpoint(ckpt)))
    learner = Learner(
        cfg.model,
        algorithm_section(cfg),
        seed=cfg.seed,
        sampling_temperature=cfg.rollout.sampling.temperature,
    )
    learner.load(str(ckpt))
    sampling = SamplingConfig(
        temperature=cfg.rollout.sampling.temperature,
        top_k=cfg.rollout.sampling.top_k,
        max_new_tokens=cfg.env.max_new_tokens,
    )
    worker = RolloutWorker(
        cfg.env.id, cfg.env.kwargs, cfg.rollout.envs_per_worker, sampling, policy=learner.policy
    )
    algorithm = learner.algorithm
    act = (lambda obs, ids: algorithm.act(obs, ids, sampling)) if algorithm.has_acting_rule else None
    jobs = [EpisodeJob(j, seed + j) for j in range(episodes)]
    eps = InlineWorkerGroup(worker, cfg.rollout.num_workers).collect(
        jobs, rng_seed=seed + 1, greedy=False, act=act
    )
    out = {k: float(v) for k, v in episode_stats("final", eps).items()}
    out["final/return_std"] = statistics.pstdev(float(e.env_reward) for e in eps)
    cache.write_text(json.dumps(out))
    return out


def curve(
    by_seed: dict[int, list[dict[str, Any]]], key: str
) -> list[tuple[int, float, float, float]]:
    """``(trajectories, median, min, max)`` over seeds at each eval point."""
    points: dict[int, list[float]] = {}
    for rows in by_seed.values():
        for r in rows:
            if key in r:
                points.setdefault(int(r["episodes_total"]), []).append(float(r[key]))
    return [(t, statistics.median(v), min(v), max(v)) for t, v in sorted(points.items())]


def trajectories_to_reach(
    points: list[tuple[int, float, float, float]], target: float
) -> int | None:
    """First eval point whose median return is >= ``target`` (None if never)."""
    return next((t for t, med, _, _ in points if med >= target - 1e-9), None)


def summarize(results: dict[str, dict[int, list[dict[str, Any]]]]) -> dict[str, Any]:
    table = []
    for algo, by_seed in results.items():
        for key in KEYS:
            pts = curve(by_seed, key)
            if not pts:  # e.g. greedy eval off (eval.greedy=false)
                continue
            last = [[r for r in rows if key in r][-1][key] for rows in by_seed.values()]
            table.append(
                {
                    "algorithm": algo,
                    "metric": key,
                    "initial": pts[0][1],
                    "final": statistics.median(last),
                    "final_min": min(last),
                    "final_max": max(last),
                    "seeds": len(last),
                    "trajectories": pts[-1][0],
                }
            )
    targets: dict[str, dict[str, Any]] = {}
    if "ppo" in results:
        ppo = curve(results["ppo"], "eval_sample/return")
        # PPO's last point, and its best point (the last one is noisy with few seeds)
        for name, (t, value) in (
            ("final", (ppo[-1][0], ppo[-1][1])),
            ("best", max(((p[0], p[1]) for p in ppo[1:]), key=lambda x: x[1])),
        ):
            reach = {
                a: trajectories_to_reach(curve(s, "eval_sample/return")[1:], value)
                for a, s in results.items()
            }
            targets[name] = {"value": value, "ppo_trajectories": t, "reach": reach}
    return {"table": table, "targets": targets}


def plot(results: dict[str, dict[int, list[dict[str, Any]]]], out_png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = {algo: f"C{i}" for i, algo in enumerate(results)}  # the same in both panels
    for ax, key, title in (
        (axes[0], "eval_sample/return", "sampled eval return"),
        (axes[1], "eval/return", "greedy eval return"),
    ):
        for algo, by_seed in results.items():
            pts = curve(by_seed, key)
            if not pts:
                continue
            xs = [p[0] for p in pts]
            color = colors[algo]
            ax.plot(xs, [p[1] for p in pts], "o-", label=algo, markersize=3, color=color)
            ax.fill_between(xs, [p[2] for p in pts], [p[3] for p in pts], alpha=0.15, color=color)
        ax.set_xlabel("trajectories collected")
        ax.set_ylabel("return (median over seeds, min-max band)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def render(summary: dict[str, Any], per_iter: dict[str, int]) -> str:
    lines = [
        "| algorithm | trajectories / iteration | metric | initial (BC) | final (median) | final min..max "
        "| seeds | trajectories |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary["table"]:
        lines.append(
            f"| {row['algorithm']} | {per_iter[row['algorithm']]} | {row['metric']} | {row['initial']:.3f} "
            f"| {row['final']:.3f} | {row['final_min']:.2f}..{row['final_max']:.2f} | {row['seeds']} "
            f"| {row['trajectories']} |"
        )
    for name, tgt in summary["targets"].items():
        lines += [
            "",
            f"Trajectories to reach PPO's {name} median sampled eval return ({tgt['value']:.3f}, which "
            f"PPO reached at {tgt['ppo_trajectories']} trajectories); eval points after the start only:",
            "",
            "| algorithm | trajectories | vs PPO |",
            "|---|---|---|",
        ]
        for algo, n in tgt["reach"].items():
            ratio = f"{tgt['ppo_trajectories'] / n:.2f}x fewer" if n else "-"
            lines.append(f"| {algo} | {n if n is not None else 'not reached'} | {ratio} |")
    return "\n".join(lines)


def render_final(finals: dict[str, dict[int, dict[str, float]]], episodes: int, seed: int) -> str:
    """Markdown table of the final checkpoints' re-evaluation (median and per seed)."""
    seeds = sorted({s for by_seed in finals.values() for s in by_seed})
    lines = [
        f"Final policies re-evaluated on {episodes} fresh seeds ({seed}..{seed + episodes - 1}, "
        "sampled, disjoint from the curves' eval seeds):",
        "",
        "| algorithm | return (median) | success (median) | "
        + " | ".join(f"return seed {s}" for s in seeds)
        + " |",
        "|---|---|---|" + "---|" * len(seeds),
    ]
    for algo, by_seed in finals.items():
        ret = [by_seed[s]["final/return"] for s in seeds if s in by_seed]
        suc = [by_seed[s]["final/success"] for s in seeds if s in by_seed]
        cells = [f"{by_seed[s]['final/return']:.2f}" if s in by_seed else "" for s in seeds]
        lines.append(
            f"| {algo} | {statistics.median(ret):.3f} | {statistics.median(suc):.3f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def per_seed(
    results: dict[str, dict[int, list[dict[str, Any]]]], key: str = "eval_sample/return"
) -> str:
    """A markdown table of ``key`` at every eval point, one row per run."""
    points = sorted(
        {
            int(r["episodes_total"])
            for s in results.values()
            for rs in s.values()
            for r in rs
            if key in r
        }
    )
    lines = [
        "| run | " + " | ".join(str(t) for t in points) + " |",
        "|---|" + "---|" * len(points),
    ]
    for algo, by_seed in results.items():
        for seed, rows in by_seed.items():
            at = {int(r["episodes_total"]): float(r[key]) for r in rows if key in r}
            cells = [f"{at[t]:.2f}" if t in at else "" for t in points]
            lines.append(f"| {algo} seed {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--trajectories", type=int, default=640, help="budget per run")
    p.add_argument(
        "--eval-trajectories", type=int, default=64, help="evaluate every this many trajectories"
    )
    p.add_argument(
        "--per-iter",
        nargs="*",
        default=[],
        metavar="ALGO=N",
        help=f"trajectories per iteration (default {DEFAULT_PER_ITER})",
    )
    p.add_argument(
        "--extra", nargs="*", default=[], help="overrides for every run, e.g. eval.episodes=16"
    )
    p.add_argument(
        "--algo-extra",
        nargs="*",
        default=[],
        metavar="ALGO=KEY=VALUE",
        help="an override for one algorithm's runs only, e.g. archer=algorithm.critic_lr=3e-4",
    )
    p.add_argument(
        "--final-episodes",
        type=int,
        default=0,
        help="re-evaluate each final checkpoint on this many fresh seeds (sampled; 0: off)",
    )
    p.add_argument("--final-seed", type=int, default=2_000_000, help="first seed of that eval")
    p.add_argument("--root", type=Path, default=Path("runs/sample_efficiency"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--reuse", action="store_true", help="keep finished runs found under --root")
    p.add_argument(
        "--variant",
        nargs="*",
        default=[],
        metavar="LABEL=ALGO",
        help="run ALGO under LABEL too (give it overrides with --algo-extra LABEL=KEY=VALUE)",
    )
    args = p.parse_args(argv)
    base_of = {a: a for a in ALGORITHMS}  # label -> registry name
    for item in args.variant:
        label, _, algo = item.partition("=")
        if not label.isidentifier() or algo not in ALGORITHMS or label in ALGORITHMS:
            p.error(
                f"--variant {item!r}: expected LABEL=ALGO with a new identifier LABEL and ALGO one "
                f"of {', '.join(ALGORITHMS)}"
            )
        base_of[label] = algo
    names = ", ".join(base_of)
    per_iter = {label: DEFAULT_PER_ITER[algo] for label, algo in base_of.items()}
    for item in args.per_iter:
        name, _, n = item.partition("=")
        if name not in base_of or not n.isdigit():
            p.error(f"--per-iter {item!r}: expected ALGO=N with ALGO one of {names}")
        per_iter[name] = int(n)
    algo_extra: dict[str, list[str]] = {a: [] for a in base_of}
    for item in args.algo_extra:
        name, _, override = item.partition("=")
        if name not in base_of or "=" not in override:
            p.error(f"--algo-extra {item!r}: expected ALGO=KEY=VALUE with ALGO one of {names}")
        algo_extra[name].append(override)
    for algo in args.algorithms:
        if algo not in base_of:
            p.error(f"unknown algorithm {algo!r}: choose from {names}")
    results: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for algo in args.algorithms:
        for seed in args.seeds:
            results.setdefault(algo, {})[seed] = run_one(
                base_of[algo],
                seed,
                args.trajectories,
                per_iter[algo],
                args.eval_trajectories,
                args.root,
                [*args.extra, *algo_extra[algo]],
                reuse=args.reuse,
                label=algo,
            )
    summary = summarize(results)
    text = render(summary, per_iter)
    if args.final_episodes:
        finals = {
            algo: {
                seed: final_eval(
                    args.root / f"{algo}-seed{seed}", args.final_episodes, args.final_seed
                )
                for seed in by_seed
            }
            for algo, by_seed in results.items()
        }
        summary["final_eval"] = finals
        text += "\n\n" + render_final(finals, args.final_episodes, args.final_seed)
    text += (
        "\n\nPer-seed sampled eval return at each eval point (columns: trajectories collected):"
        "\n\n" + per_seed(results)
    )
    print(text)
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "results.json").write_text(
        json.dumps({"summary": summary, "runs": results}, indent=1)
    )
    if args.out:
        png = args.out.with_suffix(".png")
        plot(results, png)
        cmd = " ".join(
            ["python benchmarks/sample_efficiency.py", *(argv if argv is not None else [])]
        )
        args.out.write_text(
            f"# Sample efficiency: ArCHer vs baselines on TwentyQuestions\n\nProduced by `{cmd}`.\n\n"
            + text
            + f"\n\n![curves]({png.name})\n"
        )
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
