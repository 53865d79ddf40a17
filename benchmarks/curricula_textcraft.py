"""Curricula on TextCraft with a tiny policy (the OMNI setting, small): docs/curricula.md.

Each run: the tiny model, a behaviour-cloning warm start on the scripted ``mix`` player,
then PPO for ``--iterations`` iterations with the curriculum choosing TextCraft tasks
(the 105 tasks; ``max_turns`` 12, so the deep and high-count tasks are out of reach as well
as the impossible ones). At the end every task is played ``--eval-episodes`` times with
sampling; a skill (achievement) counts as learned at threshold ``x`` when one of its
variants succeeds more often than ``x``. The same evaluation also runs on the warm-started
policy (iteration 0) and after every ``--curve-every`` iterations: the counts over training,
saved as ``curve`` in each run's result and drawn by ``--merge`` as learning curves
(``docs/curricula_textcraft_curves.png``). Curricula: uniform, learning_progress, omni with
the rule MoI (the oracle), omni with the LLM MoI (SmolLM2, answers cached in
``--moi-cache``). Usage::

    python benchmarks/curricula_textcraft.py --seeds 0 1 2 --curricula uniform omni_rule --out runs/a.json
    python benchmarks/curricula_textcraft.py --merge runs/a.json runs/b.json   # table into docs

``--privileged``: the privileged-action comparison instead. The 13 count-1 achievements the
scripted ``good`` player reaches within ``max_turns`` 12 are the tasks; after the same warm
start, PPO trains with no privileges (``none``: uniform over the tasks at privilege 0), always
at privilege 2 (``always``: hints and the ``next`` macro), or with the ``privileged``
curriculum (``curriculum``: from level 2 down one level when the success over the last
``--priv-window`` episodes at the current level reaches ``--priv-threshold``). Every task is
then played at privilege 0 ``--eval-episodes`` times sampled and once greedily::

    python benchmarks/curricula_textcraft.py --privileged --seeds 0 1 2 --out runs/p.json
    python benchmarks/curricula_textcraft.py --privileged --merge runs/p.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, str(ROOT))

from benchmarks._results import merge_results, splice_into_doc  # noqa: E402

START, END = "<!-- textcraft:start -->", "<!-- textcraft:end -->"
TINY = [
    "model.hidden_size=64",
    "model.num_layers=1",
    "model.intermediate_size=128",
    "model.num_heads=2",
]
CURRICULA = {
    "warm_start_only": ["curriculum=uniform", "iterations=0"],  # the common start, no RL
    "uniform": ["curriculum=uniform"],  # the env's own distribution: uniform over the 105 tasks
    "learning_progress": ["curriculum=learning_progress"],
    "omni_llm": ["curriculum=omni", "curriculum.moi=llm"],
    "omni_rule": ["curriculum=omni", "curriculum.moi=rule"],
    # XLand's generation 2: a fresh policy (another init seed, the same warm start) trained
    # with learning progress plus the KL kickstarting loss toward generation 1 = the
    # learning_progress run of the same seed (run that first), annealed over --kick-anneal updates
    "learning_progress_gen2": ["curriculum=learning_progress"],
}
THRESHOLDS = (0.1, 0.2, 0.4)
C_START, C_END = "<!-- textcraft-curve:start -->", "<!-- textcraft-curve:end -->"
P_START, P_END = "<!-- privileged:start -->", "<!-- privileged:end -->"
PRIVILEGED = ("none", "always", "curriculum")


def reachable_tasks(max_turns: int = 12) -> list[dict[str, Any]]:
    """Count-1 tasks the scripted ``good`` player solves within ``max_turns`` turns."""
    from agentrl.envs.scripted import make_scripted, run_scripted_episode
    from agentrl.envs.textcraft import task_list
    from agentrl.rollouts.worker import make_env

    env = make_env("agentrl/TextCraft-v0", {"max_turns": max_turns})
    good = make_scripted("agentrl/TextCraft-v0", "good")
    tasks = [t for t in task_list() if t["count"] == 1]
    return [t for t in tasks if run_scripted_episode(env, good, 0, task=dict(t)).success]


def _privileged_warm_start(base: Any, tasks: list[dict[str, Any]], levels: list[int]) -> Any:
    """A Trainer whose warm start plays ``tasks`` at the privilege ``levels`` in turn (the
    scripted player acts on the real task; the observations show the hints), so that the
    policy has seen hints before RL: the same warm start for every training mode."""

    class PrivilegedWarmStart(base):  # type: ignore[misc, valid-type]
        def _warm_start(self) -> dict[str, float]:
            from agentrl.envs.scripted import make_scripted, run_scripted_episode
            from agentrl.rollouts.worker import make_env

            ws, seed = self.cfg.warm_start, self.cfg.seed + 7919
            env = make_env(self.cfg.env.id, self.cfg.env.kwargs)
            player = make_scripted(self.cfg.env.id, ws.policy, epsilon=ws.epsilon)
            rng = np.random.default_rng(seed)
            eps = [
                run_scripted_episode(
                    env,
                    player,
                    seed + i,
                    task={**tasks[i % len(tasks)], "privilege": levels[i % len(levels)]},
                    rng=rng,
                )
                for i in range(ws.episodes)
            ]
            env.close()
            turns = [t for e in eps for t in e.turns]
            prompts = self.learner.format_prompts([t.observation for t in turns])
            rows = [
                {"prompt": p, "completion": t.action + "\n"}
                for p, t in zip(prompts, turns, strict=True)
            ]
            stats = self.learner.warm_start(rows, ws.epochs, ws.lr, ws.batch_size, self.cfg.seed)
            stats["warm_start/scripted_success"] = float(np.mean([e.success for e in eps]))
            return dict(stats)

    return PrivilegedWarmStart


def run_privileged(mode: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from agentrl.config import load_config
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
    from agentrl.trainer import Trainer

    tasks = reachable_tasks()
    spec = "[" + ",".join(f"{{achievement:{t['achievement']},count:1}}" for t in tasks) + "]"
    curriculum = {
        "none": ["curriculum=uniform"],
        "always": ["curriculum=privileged", "curriculum.threshold=1.0", "curriculum.window=1000000"],
        "curriculum": ["curriculum=privileged", f"curriculum.threshold={args.priv_threshold}",
                       f"curriculum.window={args.priv_window}"],
    }[mode]  # fmt: skip
    run_dir = Path(args.run_root) / f"priv_{mode}_s{seed}"
    overrides = [*TINY, "cluster=inline", "algorithm=ppo", f"run_dir={run_dir}", f"seed={seed}",
                 "logging.tensorboard=false", "logging.plot=false", "logging.progress=false",
                 "warm_start.enabled=true", f"warm_start.episodes={args.warm_episodes}", f"warm_start.epochs={args.warm_epochs}",
                 "env=textcraft", "++env.kwargs.max_turns=12", f"iterations={args.iterations}",
                 "rollout.episodes_per_iter=16", "rollout.envs_per_worker=16", "eval.episodes=16",
                 "eval.sample=false", "checkpoint.every=1000", *curriculum, f"curriculum.tasks={spec}"]  # fmt: skip
    t0 = time.perf_counter()
    levels = list(args.priv_warm_levels)
    trainer_cls = Trainer if levels == [0] else _privileged_warm_start(Trainer, tasks, levels)
    trainer = trainer_cls(load_config(overrides), console=False)
    trainer.run()
    worker = RolloutWorker(
        "agentrl/TextCraft-v0",
        {"max_turns": 12},
        16,
        SamplingConfig(max_new_tokens=trainer.cfg.env.max_new_tokens),
        policy=trainer.learner.policy,
    )
    at0 = [{**t, "privilege": 0} for t in tasks]
    sampled = worker.collect(
        [EpisodeJob(j, 10_000 + j, t) for j, t in enumerate(t for t in at0 for _ in range(args.eval_episodes))],
        rng_seed=seed,
    )  # fmt: skip
    greedy = worker.collect(
        [EpisodeJob(j, 10_000 + j, t) for j, t in enumerate(at0)], rng_seed=seed, greedy=True
    )
    per_task: dict[str, list[float]] = {}
    for e in sampled:
        per_task.setdefault(e.task["achievement"], []).append(float(e.success))
    state = trainer.curriculum.state_dict()
    history = state.get("history", [])
    out: dict[str, Any] = {
        "mode": mode,
        "seed": seed,
        "warm_levels": levels,
        "success0": float(np.mean([e.success for e in sampled])),
        "greedy0": float(np.mean([e.success for e in greedy])),
        "tasks0": int(sum(np.mean(v) > 0.5 for v in per_task.values())),
        "final_level": history[-1][1] if history else 0,
        "episodes_to_0": next((h[0] for h in history if h[1] == 0), None) if history else None,
        "history": history,
        "per_task": {k: float(np.mean(v)) for k, v in per_task.items()},
        "seconds": time.perf_counter() - t0,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "per_task"}), flush=True)
    return out


def privileged_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| warm start at privileges | training | seeds | success at privilege 0 (sampled) "
        "| greedy | tasks > 0.5 | final level | episodes until level 0 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:  # runs from before --priv-warm-levels had the plain warm start
        levels = ", ".join(str(x) for x in r.get("warm_levels", [0]))
        groups.setdefault((levels, r["mode"]), []).append(r)
    for (levels, m), rs in sorted(
        groups.items(), key=lambda g: (g[0][0], PRIVILEGED.index(g[0][1]))
    ):

        def cell(key: str, fmt: str = ".2f", rs: list[dict[str, Any]] = rs) -> str:
            v = np.array([r[key] for r in rs if r[key] is not None], dtype=float)
            return "-" if not len(v) else f"{v.mean():{fmt}} ± {v.std():{fmt}}"

        reached = [r["episodes_to_0"] for r in rs if r["episodes_to_0"] is not None]
        to0 = (
            "-"
            if m == "none"
            else f"{len(reached)}/{len(rs)} runs" + (f", {np.mean(reached):.0f}" if reached else "")
        )
        lines.append(
            f"| {levels} | {m} | {len(rs)} | {cell('success0')} | {cell('greedy0')} | {cell('tasks0', '.1f')} "
            f"| {cell('final_level', '.1f')} | {to0} |"
        )
    return "\n".join(lines) + "\n"


def task_counts(per_task: dict[str, float]) -> dict[str, int]:
    """Skills and tasks learned at each threshold from per-task success rates keyed
    ``"achievement/count"``: a task counts when its rate is above the threshold (strictly), a
    skill (achievement) when one of its variants does."""
    out: dict[str, int] = {}
    for th in THRESHOLDS:
        hit = [k for k, v in per_task.items() if v > th]
        out[f"skills@{th}"] = len({k.split("/")[0] for k in hit})
        out[f"tasks@{th}"] = len(hit)
    return out


class TaskEvaluator:
    """Every TextCraft task played ``episodes`` times with sampling, on the same episode seeds
    and sampling seed each time it is called, so that the points of a learning curve differ
    only by the policy. Its own worker and torch generator: evaluating does not touch the
    training run's RNG streams."""

    def __init__(self, policy: Any, max_new_tokens: int, episodes: int, seed: int):
        from agentrl.envs.textcraft import task_list
        from agentrl.policy import SamplingConfig
        from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

        self.seed = seed
        self.worker = RolloutWorker(
            "agentrl/TextCraft-v0",
            {"max_turns": 12},
            16,
            SamplingConfig(max_new_tokens=max_new_tokens),
            policy=policy,
        )
        self.jobs = [
            EpisodeJob(j, 10_000 + j, t)
            for j, t in enumerate(t for t in task_list() for _ in range(episodes))
        ]

    def __call__(self) -> dict[str, float]:
        """Per-task success rate, keyed ``"achievement/count"``."""
        rate: dict[str, list[float]] = {}
        for e in self.worker.collect(self.jobs, rng_seed=self.seed):
            key = f"{e.task['achievement']}/{e.task['count']}"
            rate.setdefault(key, []).append(float(e.success))
        return {k: sum(v) / len(v) for k, v in rate.items()}


def curve_callback(every: int, iterations: int, record: Any) -> Any:
    """A Trainer callback that calls ``record(iteration)`` at iteration 0 (the warm-started
    policy) and after every ``every``-th iteration but the last (``run_one`` evaluates the
    final policy itself)."""

    def on_iteration(trainer: Any, it: int, row: dict[str, Any]) -> None:
        if it % every == 0 and it < iterations:
            record(it)

    return on_iteration


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from agentrl.config import load_config
    from agentrl.curricula.omni import OmniCurriculum
    from agentrl.trainer import Trainer

    extra = list(CURRICULA[name])
    if name == "omni_llm":
        extra.append(f"curriculum.cache_path={args.moi_cache}")
    if name.endswith("_gen2"):
        teacher = Path(args.run_root) / f"{name.removesuffix('_gen2')}_s{seed}"
        if not (teacher / "checkpoints" / "latest").exists():
            raise SystemExit(f"{name} needs generation 1 first: no checkpoint in {teacher}")
        extra += [f"model.init_seed={1000 + seed}",
                  f"lifelong=[{{name:'agentrl.curricula.kickstart:Kickstart',teacher:'{teacher}',"
                  f"beta:1.0,anneal_updates:{args.kick_anneal}}}]"]  # fmt: skip
    run_dir = Path(args.run_root) / f"{name}_s{seed}"
    overrides = [*TINY, "cluster=inline", "algorithm=ppo", f"run_dir={run_dir}", f"seed={seed}",
                 "logging.tensorboard=false", "logging.plot=false", "logging.progress=false",
                 "warm_start.enabled=true", f"warm_start.episodes={args.warm_episodes}", f"warm_start.epochs={args.warm_epochs}",
                 "env=textcraft", "++env.kwargs.max_turns=12", f"iterations={args.iterations}",
                 "rollout.episodes_per_iter=16", "rollout.envs_per_worker=16", "eval.episodes=16",
                 "eval.sample=false", "checkpoint.every=1000", *extra]  # fmt: skip
    t0 = time.perf_counter()
    curve: list[dict[str, Any]] = []
    box: dict[str, TaskEvaluator] = {}

    def evaluate() -> dict[str, float]:
        if "e" not in box:
            box["e"] = TaskEvaluator(
                trainer.learner.policy, trainer.cfg.env.max_new_tokens, args.eval_episodes, seed
            )
        return box["e"]()

    def record(it: int) -> None:
        curve.append({"iteration": it, **task_counts(evaluate())})
        print(json.dumps({"curriculum": name, "seed": seed, **curve[-1]}), flush=True)

    every = int(args.curve_every)
    cfg = load_config(overrides)
    callbacks = [curve_callback(every, cfg.iterations, record)] if every > 0 else []
    trainer = Trainer(cfg, console=False, callbacks=callbacks)
    trainer.run()
    per_task = evaluate()
    out: dict[str, Any] = {"curriculum": name, "seed": seed, "seconds": time.perf_counter() - t0}
    out.update(task_counts(per_task))
    if every > 0:
        curve.append({"iteration": int(trainer.cfg.iterations), **task_counts(per_task)})
        out["curve"] = curve
    out["per_task"] = per_task
    out["curriculum_stats"] = trainer.curriculum.stats()
    if isinstance(trainer.curriculum, OmniCurriculum):  # the MoI's final labels
        out["labels"] = {
            f"{t['achievement']}/{t['count']}": lab
            for t, lab in zip(trainer.curriculum.tasks, trainer.curriculum.labels, strict=True)
            if lab
        }
    print(json.dumps({k: v for k, v in out.items() if k not in ("per_task", "curve")}), flush=True)
    return out


def warm_start_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``warm_start_only`` rows read off the curves' iteration 0 (the warm-started policy, the
    same for every curriculum of a seed: one row per seed), when no such run was merged."""
    if any(r["curriculum"] == "warm_start_only" for r in results):
        return []
    rows: dict[int, dict[str, Any]] = {}
    for r in results:
        first = (r.get("curve") or [{}])[0]
        if first.get("iteration") == 0 and r["seed"] not in rows:
            counts = {k: v for k, v in first.items() if k != "iteration"}
            rows[r["seed"]] = {"curriculum": "warm_start_only", "seed": r["seed"], **counts}
    return list(rows.values())


def table(results: list[dict[str, Any]]) -> str:
    names = [n for n in CURRICULA if any(r["curriculum"] == n for r in results)]
    lines = [
        "| curriculum | seeds | "
        + " | ".join(f"skills > {t}" for t in THRESHOLDS)
        + " | tasks > 0.4 |",
        "|---|---|" + "---|" * (len(THRESHOLDS) + 1),
    ]
    for n in names:
        rs = [r for r in results if r["curriculum"] == n]

        def cell(key: str, rs: list[dict[str, Any]] = rs) -> str:
            v = np.array([r[key] for r in rs], dtype=float)
            return f"{v.mean():.1f} ± {v.std():.1f}"

        cells = [cell(f"skills@{t}") for t in THRESHOLDS] + [cell("tasks@0.4")]
        lines.append(f"| {n} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def curves(results: list[dict[str, Any]], key: str) -> dict[str, tuple[list[int], np.ndarray]]:
    """Per curriculum: the iterations every one of its runs recorded and the counts ``key``
    there (one row per run). Runs without a ``curve`` (result files from before it was
    recorded) are left out; a curriculum with none is absent."""
    out: dict[str, tuple[list[int], np.ndarray]] = {}
    for n in CURRICULA:
        rs = [r for r in results if r["curriculum"] == n and r.get("curve")]
        if not rs:
            continue
        common = set.intersection(*({p["iteration"] for p in r["curve"]} for r in rs))
        its = sorted(common)
        rows = [[{p["iteration"]: p[key] for p in r["curve"]}[i] for i in its] for r in rs]
        out[n] = (its, np.array(rows, dtype=float))
    return out


def curve_table(results: list[dict[str, Any]]) -> str:
    """Skills learned at each threshold per recorded iteration and curriculum: the mean over
    seeds (min-max), and the mean over the points after the warm start (iteration > 0) per
    run, mean ± std over the runs. Thresholds with the same numbers share one table (with 4
    evaluation episodes per task, a rate above 0.1 is one of 1/4 ... 1, so > 0.1 and > 0.2
    count the same tasks)."""
    groups: list[tuple[list[float], list[str]]] = []  # (thresholds, rows)
    header: list[str] = []
    for th in THRESHOLDS:
        cs = curves(results, f"skills@{th}")
        if not cs:
            continue
        its = sorted(set.intersection(*(set(i) for i, _ in cs.values())))
        header = [
            "| curriculum | seeds | " + " | ".join(str(i) for i in its) + " | mean after 0 |",
            "|---|---|" + "---|" * (len(its) + 1),
        ]
        rows = []
        for n, (ci, v) in cs.items():
            cols = [v[:, ci.index(i)] for i in its]
            cells = [f"{c.mean():.1f} ({c.min():.0f}-{c.max():.0f})" for c in cols]
            after = np.array([v[:, ci.index(i)] for i in its if i > 0]).T.mean(axis=1)
            cells.append(f"{after.mean():.2f} ± {after.std():.2f}" if after.size else "-")
            rows.append(f"| {n} | {len(v)} | " + " | ".join(cells) + " |")
        if groups and groups[-1][1] == header + rows:
            groups[-1][0].append(th)
        else:
            groups.append(([th], header + rows))
    lines: list[str] = []
    for ths, rows in groups:
        at = " and ".join(f"> {t}" for t in ths)
        lines += [
            f"Skills (interesting tasks) learned at success {at}, by iteration: mean over seeds "
            "(min-max); last column: each run's mean over the iterations after 0, mean ± std "
            "over runs.",
            "",
            *rows,
            "",
        ]
    return "\n".join(lines)


def plot_curves(results: list[dict[str, Any]], path: str | Path) -> bool:
    """Learning curves: skills (top) and tasks (bottom) learned at each threshold against the
    iteration, median over seeds with the min-max band, per curriculum. False (and nothing
    written) when no run recorded a curve."""
    if not any(r.get("curve") for r in results):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(THRESHOLDS), figsize=(13, 6.4), sharex=True)
    for row, what in enumerate(("skills", "tasks")):
        for col, th in enumerate(THRESHOLDS):
            ax = axes[row, col]
            for i, n in enumerate(CURRICULA):
                cs = curves(results, f"{what}@{th}")
                if n not in cs:
                    continue
                its, v = cs[n]
                color = f"C{i % 10}"
                label = f"{n} ({len(v)} seeds)" if row == 0 and col == 0 else None
                ax.plot(its, np.median(v, axis=0), color=color, lw=1.8, label=label, marker=".")
                ax.fill_between(its, v.min(axis=0), v.max(axis=0), color=color, alpha=0.15)
            what_label = (
                "skills (interesting tasks)" if what == "skills" else "tasks (all variants)"
            )
            ax.set_title(f"{what_label} with success > {th}", fontsize=9)
            ax.grid(alpha=0.3)
            if row == 1:
                ax.set_xlabel("PPO iteration (16 episodes each; 0 = warm start)")
            if col == 0:
                ax.set_ylabel(f"{what} learned")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle("TextCraft: learned over training (median over seeds, min-max band)", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _dots(ax: Any, x: float, values: list[float], color: str, label: str | None) -> None:
    """Median bar, min-max line and one dot per seed at ``x``."""
    v = np.array(values, dtype=float)
    ax.bar(x, np.median(v), width=0.8, color=color, alpha=0.45, label=label)
    ax.vlines(x, v.min(), v.max(), color="black", lw=1)
    ax.scatter(np.full(len(v), x), v, color="black", s=9, zorder=3)


def plot(results: list[dict[str, Any]], path: str | Path) -> None:
    """Skills and tasks learned at each threshold per curriculum (median, min-max, seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in CURRICULA if any(r["curriculum"] == n for r in results)]
    colors = [f"C{i}" for i in range(10)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, what in zip(axes, ("skills", "tasks"), strict=True):
        width = len(names) + 1
        for i, n in enumerate(names):
            rs = [r for r in results if r["curriculum"] == n]
            for j, th in enumerate(THRESHOLDS):
                vals = [r[f"{what}@{th}"] for r in rs]
                _dots(ax, j * width + i, vals, colors[i % 10], n if j == 0 else None)
        ax.set_xticks([j * width + (len(names) - 1) / 2 for j in range(len(THRESHOLDS))])
        ax.set_xticklabels([f"success > {th}" for th in THRESHOLDS])
        ax.set_ylabel(f"{what} learned (final, per seed)")
        ax.set_title(f"TextCraft: {what} learned after RL ({len(rs)} seeds)")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def privileged_plot(results: list[dict[str, Any]], path: str | Path) -> None:
    """Success at privilege 0 (sampled and greedy) per training mode and warm start."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for r in results:
        levels = ", ".join(str(x) for x in r.get("warm_levels", [0]))
        groups.setdefault(levels, {}).setdefault(r["mode"], []).append(r)
    colors = [f"C{i}" for i in range(10)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, key, title in zip(axes, ("success0", "greedy0"), ("sampled", "greedy"), strict=True):
        ticks, labels = [], []
        for g, (levels, modes) in enumerate(sorted(groups.items())):
            for i, m in enumerate(PRIVILEGED):
                if m not in modes:
                    continue
                x = g * (len(PRIVILEGED) + 1) + i
                _dots(ax, x, [r[key] for r in modes[m]], colors[i], m if g == 0 else None)
            ticks.append(g * (len(PRIVILEGED) + 1) + 1)
            labels.append(f"warm start at {levels}")
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels)
        ax.set_title(f"success at privilege 0 ({title})")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("success rate over the 13 tasks")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--curricula", nargs="+", default=list(CURRICULA), choices=list(CURRICULA))
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--eval-episodes", type=int, default=4)
    ap.add_argument(
        "--curve-every", type=int, default=10,
        help="record the counts (every task played --eval-episodes times) at iteration 0 and "
        "every this many iterations; 0 = only the final counts",
    )  # fmt: skip
    ap.add_argument("--warm-episodes", type=int, default=200)
    ap.add_argument("--warm-epochs", type=float, default=6.0)
    ap.add_argument("--run-root", default="runs/curricula_textcraft")
    ap.add_argument("--moi-cache", default="runs/curricula_textcraft/moi_cache.json")
    ap.add_argument("--out", default="")
    ap.add_argument("--merge", nargs="+", default=[])
    ap.add_argument("--doc", default=str(ROOT / "docs" / "curricula.md"))
    ap.add_argument("--kick-anneal", type=int, default=30, help="gen2: updates until the KL is 0")
    ap.add_argument("--privileged", action="store_true", help="the privileged comparison")
    ap.add_argument("--priv-modes", nargs="+", default=list(PRIVILEGED), choices=PRIVILEGED)
    ap.add_argument("--priv-threshold", type=float, default=0.6)
    ap.add_argument("--priv-window", type=int, default=32)
    ap.add_argument(
        "--priv-warm-levels", type=int, nargs="+", default=[0, 1, 2],
        help="privilege levels the warm-start demonstrations are played at, in turn (0 = the plain warm start)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    if args.privileged:
        main_privileged(args)
        return
    if args.merge:
        results = merge_results(args.merge)
        text = table(results + warm_start_rows(results))
        print(text)
        Path(ROOT / "docs" / "curricula_textcraft.json").write_text(json.dumps(results, indent=1))
        splice_into_doc(args.doc, START, END, text)
        plot(results, ROOT / "docs" / "curricula_textcraft.png")
        over = curve_table(results)
        if over:
            print(over)
            splice_into_doc(args.doc, C_START, C_END, over)
            plot_curves(results, ROOT / "docs" / "curricula_textcraft_curves.png")
        return
    results = []
    for s in args.seeds:
        for n in args.curricula:
            results.append(run_one(n, s, args))
            if args.out:  # after every run: a stopped benchmark keeps what it measured
                Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


def main_privileged(args: argparse.Namespace) -> None:
    if args.merge:
        results = merge_results(args.merge)
        text = privileged_table(results)
        print(text)
        Path(ROOT / "docs" / "curricula_privileged.json").write_text(json.dumps(results, indent=1))
        splice_into_doc(args.doc, P_START, P_END, text)
        privileged_plot(results, ROOT / "docs" / "curricula_privileged.png")
        return
    results = []
    for s in args.seeds:
        for m in args.priv_modes:
            results.append(run_privileged(m, s, args))
            if args.out:
                Path(args.out).write_text(json.dumps(results, indent=1))
    print(privileged_table(results))


if __name__ == "__main__":
    main()
