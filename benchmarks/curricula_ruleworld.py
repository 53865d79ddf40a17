"""XLand-style curricula on RuleWorld with a small policy: docs/curricula.md.

The policy is the tiny test model (``--hidden``, ``--layers``). One behaviour-cloning warm
start on a scripted player (mode ``bc``) is shared by every RL run (``init_from``); then
``--algorithm`` (PPO by default, or ``filtered_bc``) runs for ``--iterations`` iterations of
16 episodes, the curriculum choosing among RuleWorld's training worlds (``--train-worlds
small``: ``task_list``, 25 per depth 1-4, world seeds 0-24; ``large``: 1000 per depth).
Then every held-out world (world seeds 10000+, ``--held-out`` per depth, never trained
on) is played ``--eval-episodes`` times with sampling, and the per-world success rates
are summarised as XLand does: mean, participation (share of worlds with any success),
10th and 50th percentiles. Modes:

- ``random``: the scripted random player (the control policy), no model;
- ``bc``: the warm start only (no RL), the common starting point of ``uniform`` and ``xland``;
- ``bc2``: the same warm start from another initialisation (``model.init_seed=1000``), the
  fresh policy of generation 2;
- ``uniform``: RL on the training worlds drawn uniformly;
- ``xland``: RL with XLand's filtered task generation on the same worlds (control policy =
  the scripted ``random`` player): generation 1;
- ``gen2``: generation 2: ``bc2`` trained like ``xland`` plus the KL kickstarting loss toward
  generation 1 (the ``xland`` run of the same seed), annealed to zero over ``--kick-anneal``
  learner updates.

The policy acts under the ``ruleworld`` decoding constraint (``--constraint``: only
``touch A with B`` over the room's objects) with the ``ruleworld`` tokenizer (``--tokenizer``).
``--extra KEY=VALUE ...`` adds config overrides to every run.

The warm start plays fresh procedurally generated worlds (the env's own task sampler: a
random world seed per episode, so ``--warm-episodes`` distinct worlds, none of them the
training list or the held-out worlds); ``--warm-depths`` (their depths), ``--warm-policy``
(``mix`` or ``good``), ``--warm-epochs``, ``--warm-lr`` and ``--warm-batch`` set it. Every
model row also reports the greedy first action on ``--first-worlds`` held-out worlds per
depth: ``first_optimal`` (share that is a first step of a shortest plan) against
``first_chance`` (a uniform choice among the room's actions), overall and at depths 1 and 2.

Usage: one command runs the modes in order (``random bc bc2`` once, with the first seed;
the RL modes need the warm starts in ``--run-root``, ``gen2`` the same seed's ``xland``),
then ``--merge`` writes the table into docs/curricula.md and
docs/curricula_ruleworld.{json,png}. The docs' setting::

    C="--warm-episodes 30000 --warm-depths 1 --warm-policy good --warm-epochs 8 --warm-batch 64
       --warm-lr 1e-3 --held-out 25 --iterations 200 --algorithm filtered_bc --lr 1e-4
       --kick-anneal 100 --run-root runs/rwF"
    python benchmarks/curricula_ruleworld.py --modes random bc bc2 uniform xland gen2 \
        --seeds 0 1 2 $C --out runs/rwF/all.json
    python benchmarks/curricula_ruleworld.py --merge runs/rwF/all.json
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

START, END = "<!-- ruleworld:start -->", "<!-- ruleworld:end -->"


def tiny(hidden: int, layers: int, tokenizer: str = "word") -> list[str]:
    """A small model from the tiny test config (``--hidden``, ``--layers``, ``--tokenizer``)."""
    return [f"model.hidden_size={hidden}", f"model.num_layers={layers}",
            f"model.intermediate_size={2 * hidden}", f"model.num_heads={max(2, hidden // 32)}",
            f"model.tokenizer={tokenizer}"]  # fmt: skip


TASKS_FROM = "agentrl.envs.ruleworld:task_list"
LARGE_TASKS_FROM = "benchmarks.curricula_ruleworld:large_task_list"
MODES = ("random", "bc", "bc2", "uniform", "xland", "gen2")
DEPTHS = (1, 2, 3, 4)


def large_task_list() -> list[dict[str, Any]]:
    """1000 training worlds per depth 1-4 (world seeds 0-999; the held-out ones are 10000+)."""
    from agentrl.envs.ruleworld import task_list

    return task_list(DEPTHS, worlds=1000)


def held_out(per_depth: int) -> list[dict[str, Any]]:
    """Worlds never in the training list (its world seeds are 0-24)."""
    return [
        {"world_seed": 10_000 + s, "depth": d, "distractors": 2}
        for d in DEPTHS
        for s in range(per_depth)
    ]


def summarise(per_task: dict[str, float]) -> dict[str, float]:
    """XLand's percentile metrics of per-task success rates."""
    v = np.array(list(per_task.values()), dtype=float)
    return {
        "mean": float(v.mean()),
        "participation": float((v > 0).mean()),
        "p10": float(np.percentile(v, 10)),
        "p50": float(np.percentile(v, 50)),
    }


def overrides_for(mode: str, seed: int, args: argparse.Namespace) -> list[str]:
    run_dir = Path(args.run_root) / f"{mode}_s{seed}"
    base = [*tiny(args.hidden, args.layers, args.tokenizer), "cluster=inline", f"algorithm={args.algorithm}", f"run_dir={run_dir}", f"seed={seed}",
            "logging.tensorboard=false", "logging.plot=false", "logging.progress=false",
            f"warm_start.epsilon={args.warm_epsilon}", f"warm_start.episodes={args.warm_episodes}",
            f"warm_start.epochs={args.warm_epochs}", f"warm_start.policy={args.warm_policy}",
            f"warm_start.lr={args.warm_lr}", f"warm_start.batch_size={args.warm_batch}", "env=ruleworld",
            "env.kwargs.depth=" + str(list(args.warm_depths) if mode in ("bc", "bc2") else list(DEPTHS)).replace(" ", ""),
            f"iterations={0 if mode in ('bc', 'bc2') else args.iterations}",
            "rollout.episodes_per_iter=16", "rollout.envs_per_worker=16", "eval.episodes=16",
            "eval.sample=false", "checkpoint.every=1000"]  # fmt: skip
    base.append(f"algorithm.lr={args.lr}")
    if args.algorithm == "ppo":
        base.append(f"algorithm.epochs={args.ppo_epochs}")
    base += list(args.extra)
    if args.constraint != "none":  # only `touch A with B` over the room's objects
        base.append(f"rollout.sampling.constraint={args.constraint}")
    tasks_from = LARGE_TASKS_FROM if args.train_worlds == "large" else TASKS_FROM
    xland = ["curriculum=xland", f"curriculum.tasks_from={tasks_from}",
             "curriculum.control_env=ruleworld"]  # fmt: skip
    bc = Path(args.run_root) / ("bc2_s0" if mode == "gen2" else "bc_s0")
    if mode in ("bc", "bc2"):  # the warm starts, shared by every RL run (bc2: gen2's fresh init)
        return [
            *base,
            "warm_start.enabled=true",
            *(["model.init_seed=1000"] if mode == "bc2" else []),
        ]
    if not (bc / "checkpoints" / "latest").exists():
        raise SystemExit(
            f"{mode} starts from the warm start: run --modes bc bc2 --seeds 0 first ({bc})"
        )
    base += ["warm_start.enabled=false", f"init_from={bc}"]
    if mode == "uniform":
        return [*base, "curriculum=uniform", f"curriculum.tasks_from={tasks_from}"]
    if mode == "xland":
        return [*base, *xland]
    if mode == "gen2":
        teacher = Path(args.run_root) / f"xland_s{seed}"
        if not (teacher / "checkpoints" / "latest").exists():
            raise SystemExit(f"gen2 needs generation 1 first: no checkpoint in {teacher}")
        kick = (f"lifelong=[{{name:'agentrl.curricula.kickstart:Kickstart',teacher:'{teacher}',"
                f"beta:{args.kick_beta},anneal_updates:{args.kick_anneal}}}]")  # fmt: skip
        return [*base, *xland, kick]
    raise SystemExit(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")


def run_one(mode: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from agentrl.config import load_config
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
    from agentrl.trainer import Trainer

    t0 = time.perf_counter()
    trainer = Trainer(load_config(overrides_for(mode, seed, args)), console=False)
    summary = trainer.run()
    worker = RolloutWorker(
        "agentrl/RuleWorld-v0",
        {"depth": list(DEPTHS)},
        16,
        SamplingConfig(
            max_new_tokens=trainer.cfg.env.max_new_tokens,
            constraint=None if args.constraint == "none" else args.constraint,
        ),
        policy=trainer.learner.policy,
    )
    tasks = held_out(args.held_out)
    jobs = [
        EpisodeJob(j, 20_000 + j, t)
        for j, t in enumerate(t for t in tasks for _ in range(args.eval_episodes))
    ]
    rate: dict[str, list[float]] = {}
    turns = invalid = 0
    for e in worker.collect(jobs, rng_seed=seed):
        rate.setdefault(f"{e.task['depth']}/{e.task['world_seed']}", []).append(float(e.success))
        turns += len(e.turns)
        invalid += sum(bool(t.info.get("invalid_action")) for t in e.turns)
    per_task = {k: sum(v) / len(v) for k, v in rate.items()}
    out: dict[str, Any] = {"mode": mode, "seed": seed, **summarise(per_task)}
    for d in DEPTHS:
        out[f"depth{d}"] = float(np.mean([v for k, v in per_task.items() if k.startswith(f"{d}/")]))
    out["invalid_share"] = invalid / max(turns, 1)
    out.update(first_action(worker, args.first_worlds, seed))
    out["seconds"] = time.perf_counter() - t0
    out["final_eval_success"] = summary.get("final_eval_success")
    out["curriculum_stats"] = (
        trainer.curriculum.stats() if hasattr(trainer.curriculum, "stats") else {}
    )
    out["per_task"] = per_task
    print(json.dumps({k: v for k, v in out.items() if k != "per_task"}), flush=True)
    return out


def optimal_first(task: dict[str, Any]) -> tuple[set[tuple[str, str]], int]:
    """The first touches ``(a, b)`` (both orders) of some shortest plan of a world, and the
    number of valid actions in its first room (a touch that leaves the goal unreachable is
    not a first step: ``plan`` is empty then)."""
    from agentrl.envs.ruleworld import apply_rule, generate_world, plan, room_actions

    objects, rules, goal = generate_world(task["world_seed"], task["depth"], task["distractors"])
    best = len(plan(objects, rules, goal))
    good: set[tuple[str, str]] = set()
    for action in room_actions(objects):
        a, b = action[len("touch ") :].split(" with ")
        out = apply_rule(objects, rules, a, b)
        if out is None:
            continue
        room = list(objects)
        room.remove(a)
        room.remove(b)
        room.append(out)
        if out == goal or (best > 1 and len(plan(room, rules, goal)) == best - 1):
            good.add((a, b))
    return good, len(room_actions(objects))


def first_action(worker: Any, per_depth: int, seed: int) -> dict[str, float]:
    """Greedy first action on ``per_depth`` held-out worlds per depth: the share that is a
    first step of a shortest plan (``first_optimal``) against a uniform choice among the
    room's actions (``first_chance``), overall and at depth 1 and 2."""
    from agentrl.envs.ruleworld import parse_touch
    from agentrl.rollouts.worker import EpisodeJob

    tasks = held_out(per_depth)
    eps = worker.collect(
        [EpisodeJob(j, 30_000 + j, t) for j, t in enumerate(tasks)], rng_seed=seed, greedy=True
    )
    hit, chance = [], []
    for e, t in zip(eps, tasks, strict=True):
        good, n = optimal_first(t)
        hit.append(float(parse_touch(e.turns[0].action) in good))
        chance.append(len(good) / n)
    depth = np.array([t["depth"] for t in tasks])
    h, c = np.array(hit), np.array(chance)
    out = {"first_optimal": float(h.mean()), "first_chance": float(c.mean())}
    out["greedy_success"] = float(np.mean([e.success for e in eps]))
    for d in (1, 2):
        out[f"first_optimal_d{d}"] = float(h[depth == d].mean())
        out[f"first_chance_d{d}"] = float(c[depth == d].mean())
    return out


def random_baseline(args: argparse.Namespace) -> dict[str, Any]:
    """The scripted ``random`` player (the xland control policy) on the held-out worlds."""
    from agentrl.envs.scripted import make_scripted, run_scripted_episode
    from agentrl.rollouts.worker import make_env

    env = make_env("agentrl/RuleWorld-v0", {"depth": list(DEPTHS)})
    player = make_scripted("agentrl/RuleWorld-v0", "random")
    rng = np.random.default_rng(0)
    per_task = {
        f"{t['depth']}/{t['world_seed']}": float(
            np.mean(
                [
                    run_scripted_episode(env, player, 20_000 + i, task=dict(t), rng=rng).success
                    for i in range(args.eval_episodes)
                ]
            )
        )
        for t in held_out(args.held_out)
    }
    out: dict[str, Any] = {"mode": "random", "seed": 0, **summarise(per_task)}
    for d in DEPTHS:
        out[f"depth{d}"] = float(np.mean([v for k, v in per_task.items() if k.startswith(f"{d}/")]))
    return out


def plot(results: list[dict[str, Any]], path: str | Path) -> None:
    """Bars (mean ± std over seeds) of the four held-out metrics and the per-depth success."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = [m for m in MODES if any(r["mode"] == m for r in results)]
    panels = [
        (
            ["mean", "participation", "p10", "p50"],
            ["mean", "participation", "10th pct", "50th pct"],
        ),
        ([f"depth{d}" for d in DEPTHS], [f"depth {d}" for d in DEPTHS]),
    ]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    width = 0.8 / max(len(modes), 1)
    for ax, (keys, labels) in zip(axes, panels, strict=True):
        x = np.arange(len(keys))
        for j, m in enumerate(modes):
            rs = [r for r in results if r["mode"] == m]
            v = np.array([[r[k] for k in keys] for r in rs], dtype=float)
            ax.bar(
                x + j * width, v.mean(0), width, yerr=v.std(0), label=f"{m} ({len(rs)})", capsize=2
            )
        ax.set_xticks(x + width * (len(modes) - 1) / 2, labels)
        ax.set_ylim(0, 1)
        ax.set_ylabel("held-out success")
    axes[0].set_title("RuleWorld held-out worlds: XLand metrics")
    axes[1].set_title("mean success by rule-chain depth")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def table(results: list[dict[str, Any]]) -> str:
    keys = ["mean", "participation", "p10", "p50", *[f"depth{d}" for d in DEPTHS],
            "first_optimal_d1", "invalid_share"]  # fmt: skip
    heads = (
        ["held-out mean", "participation", "10th pct", "50th pct"]
        + [f"depth {d}" for d in DEPTHS]
        + ["greedy first step optimal, depth 1", "invalid actions"]
    )
    lines = [
        "| training | seeds | " + " | ".join(heads) + " |",
        "|---|---|" + "---|" * len(heads),
    ]
    for m in [m for m in MODES if any(r["mode"] == m for r in results)]:
        rs = [r for r in results if r["mode"] == m]
        cells = []
        for k in keys:
            if any(k not in r for r in rs):
                cells.append("-")
                continue
            v = np.array([r[k] for r in rs], dtype=float)
            cells.append(f"{v.mean():.2f} ± {v.std():.2f}")
        lines.append(f"| {m} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's command-line options (module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--eval-episodes", type=int, default=4)
    ap.add_argument("--held-out", type=int, default=10, help="held-out worlds per depth")
    ap.add_argument("--warm-episodes", type=int, default=600)
    ap.add_argument("--warm-epochs", type=float, default=4.0)
    ap.add_argument("--warm-epsilon", type=float, default=0.1)
    ap.add_argument(
        "--warm-policy", default="mix", help="scripted player of the warm start (mix, good)"
    )
    ap.add_argument(
        "--warm-depths",
        type=int,
        nargs="+",
        default=list(DEPTHS),
        help="rule-chain depths of the warm-start worlds (fresh worlds: random world seeds)",
    )
    ap.add_argument("--warm-lr", type=float, default=1e-3, help="warm-start (SFT) learning rate")
    ap.add_argument("--warm-batch", type=int, default=16, help="warm-start (SFT) batch size")
    ap.add_argument(
        "--first-worlds",
        type=int,
        default=25,
        help="held-out worlds per depth of the greedy first-action check (seeds 10000+)",
    )
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument(
        "--tokenizer", default="ruleworld", help="model.tokenizer of the tiny model (word, char)"
    )
    ap.add_argument(
        "--algorithm", default="ppo", help="the RL algorithm of the curriculum runs (ppo, filtered_bc)"
    )
    ap.add_argument("--lr", type=float, default=5e-4, help="RL learning rate (algorithm.lr)")
    ap.add_argument(
        "--train-worlds",
        default="small",
        choices=["small", "large"],
        help="training worlds: small = task_list (25 per depth), large = 1000 per depth",
    )
    ap.add_argument(
        "--extra", nargs="*", default=[], help="more config overrides for every run (KEY=VALUE)"
    )
    ap.add_argument("--ppo-epochs", type=int, default=2, help="PPO epochs per batch")
    ap.add_argument("--kick-beta", type=float, default=1.0)
    ap.add_argument("--kick-anneal", type=int, default=30)
    ap.add_argument(
        "--constraint",
        default="ruleworld",
        help="decoding constraint of training and evaluation (none: free text)",
    )
    ap.add_argument("--run-root", default="runs/curricula_ruleworld")
    ap.add_argument("--out", default="")
    ap.add_argument("--merge", nargs="+", default=[])
    ap.add_argument("--doc", default=str(ROOT / "docs" / "curricula.md"))
    return ap


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.merge:
        results = merge_results(args.merge)
        text = table(results)
        print(text)
        Path(ROOT / "docs" / "curricula_ruleworld.json").write_text(json.dumps(results, indent=1))
        plot(results, ROOT / "docs" / "curricula_ruleworld.png")
        splice_into_doc(args.doc, START, END, text)
        return
    results = []
    for s in args.seeds:
        for m in args.modes:
            if m in ("random", "bc", "bc2") and s != args.seeds[0]:
                continue  # scripted / the shared warm starts: one row is enough
            results.append(random_baseline(args) if m == "random" else run_one(m, s, args))
            if args.out:  # after every run: a stopped benchmark keeps what it measured
                Path(args.out).write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
