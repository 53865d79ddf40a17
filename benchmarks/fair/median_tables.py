"""The original tables of ``benchmarks/sample_efficiency.py`` (medians over seeds with
min-max, trajectories to reach PPO's final and best median return, per-seed curves, the
re-evaluation of final policies on fresh seeds) and its plot. The mean-and-interval report
of the tuned comparison is :mod:`benchmarks.fair.report`."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

KEYS = ("eval_sample/return", "eval_sample/success", "eval/return", "eval/success")


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
    act = (
        (lambda obs, ids: algorithm.act(obs, ids, sampling)) if algorithm.has_acting_rule else None
    )
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
    """Initial and final medians (with min-max) per algorithm and metric, and the
    trajectories every algorithm needed to reach PPO's final and best median sampled return
    (when ``ppo`` ran)."""
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
    """Sampled and greedy eval return vs trajectories (median line, min-max band) to ``out_png``."""
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
    """Markdown of :func:`summarize`'s table and targets."""
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
