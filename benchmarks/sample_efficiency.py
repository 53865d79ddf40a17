"""Sample efficiency of ArCHer against its baselines, tuned alike (docs/tuning.md).

Algorithms (``--algorithms``; trajectories per iteration by default, ``--per-iter``):

| label | ``algorithm=`` | per iteration |
|---|---|---|
| archer | archer | 8 |
| ppo | ppo (value head on the policy's body, GAE) | 32 |
| filtered_bc | filtered_bc | 32 |
| chai | chai | 32 |
| ppo_critic_free | ppo_critic_free (no value function, one epoch) | 32 |
| grpo | grpo (4 tasks x group_size 8) | 32 |
| rloo | rloo (4 tasks x group_size 8) | 32 |

Envs (``--env``): ``twenty_questions`` (the default, 10-word subset) and ``guess_my_city``,
where credit over turns matters (questions pay off only when the city is named, turns
later). GuessMyCity rather than Wordle because of the starting policy: with the same BC
warm start (the scripted ``mix`` player, epsilon 0.5, 200 games, 6 epochs) the tiny model
played GuessMyCity at sampled success 0.06 (greedy 0.02; seed 0, 64 eval episodes), neither
0 nor 1, and Wordle at 0.00 with 97-100% invalid guesses, leaving nothing to compare. Each
env's warm-start settings and default return thresholds are in one place,
``benchmarks/fair/setup.py`` (``ENVS``).

Each algorithm and seed runs ``agentrl train`` in-process (``cluster=inline``) from the same
BC warm start (same scripted data, SFT settings and seed, so iteration 0 is one policy per
seed) with the same trajectory budget. Evaluation happens every ``--eval-trajectories``
trajectories for all of them, on the same eval seeds (``eval.seed``, 1000000 onwards).

Modes:

- **tuning** (``--tune GRID.json``): every algorithm's grid (``benchmarks/tuning_grid.json``:
  the same number of configurations for each, ArCHer included) on ``--tune-seeds`` (default
  100 101), which must be disjoint from the report seeds ``--seeds`` (default 0..4 in this
  mode), evaluated on eval seeds from 3000000; the configuration with the best mean sampled
  return over the last two eval points (mean over tuning seeds) is written to ``--tuned``
  (default ``ROOT/tuned.json``; other envs and algorithms already in it are kept).
- **report** (the default): the runs on ``--seeds``; with ``--tuned FILE`` each algorithm runs
  with exactly the chosen overrides (an ``--extra``/``--algo-extra`` that changes a tuned key
  is refused, as are report seeds or eval seeds that the tuning used). Outputs: the original
  median tables, then the mean final return and success (sampled and greedy) with 95%
  bootstrap intervals over seeds, the trajectories to reach each ``--thresholds`` return,
  ArCHer's trajectories to reach the best baseline's final return against that baseline's,
  and each run's wall time (also in ``ROOT/results.json``).
- ``--dry-run`` (either mode): check every configuration, print the planned runs and an
  estimated total from the measured costs in ``--costs``; ``--write-costs FILE`` records
  the finished runs' costs there.

Commands::

    python benchmarks/sample_efficiency.py --tune benchmarks/tuning_grid.json --env twenty_questions \\
        --trajectories 640 --eval-trajectories 32 --root runs/fair --dry-run
    python benchmarks/sample_efficiency.py --tune benchmarks/tuning_grid.json --trajectories 640 \\
        --eval-trajectories 32 --root runs/fair                   # writes runs/fair/tuned.json
    python benchmarks/sample_efficiency.py --tuned runs/fair/tuned.json --seeds 0 1 2 3 4 \\
        --trajectories 640 --eval-trajectories 32 --extra eval.episodes=256 --root runs/fair
    python benchmarks/sample_efficiency.py --algorithms archer --algo-extra archer=algorithm.critic_lr=3e-4
    python benchmarks/sample_efficiency.py --seeds 0 --trajectories 16 --eval-trajectories 8 \\
        --per-iter archer=8 ppo=8 filtered_bc=8 chai=8 ppo_critic_free=8 grpo=8 rloo=8 \\
        --extra eval.episodes=4                                   # smoke, all seven

A variant runs an algorithm under a label of its own, next to its default runs:
``--variant archer_lrdecay=archer --algo-extra archer_lrdecay=algorithm.actor_lr_decay_iters=37
--algorithms archer archer_lrdecay ppo`` (runs ``archer_lrdecay-seedN``; ``--per-iter`` and
``--algo-extra`` accept the label; the base algorithm's overrides do not apply to it; with
``--tuned`` it starts from its own tuned values if the file has them, else its base's).

Runs on ``twenty_questions`` live in ``ROOT/{label}-seed{N}`` (as before), on another env in
``ROOT/{env}/...``; tuning runs in ``.../tune/{label}-c{K}-seed{N}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentrl.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python benchmarks/sample_efficiency.py
    sys.path.insert(0, str(ROOT))

from benchmarks.fair.cost import measured_costs, read_costs, render_plan, write_costs  # noqa: E402
from benchmarks.fair.grid import (  # noqa: E402
    GridError,
    SeedOverlapError,
    check_eval_disjoint,
    check_seeds_disjoint,
    load_grid,
)
from benchmarks.fair.median_tables import (  # noqa: E402
    KEYS,
    curve,
    final_eval,
    per_seed,
    plot,
    render,
    render_final,
    summarize,
    trajectories_to_reach,
)
from benchmarks.fair.plan import Options, execute, report_runs, validate  # noqa: E402
from benchmarks.fair.report import (  # noqa: E402
    SAMPLED_RETURN,
    best_baseline_ratio,
    final_stats,
    render_report,
    threshold_stats,
)
from benchmarks.fair.runs import Rows, read_rows, run_one, run_times  # noqa: E402
from benchmarks.fair.setup import (  # noqa: E402
    ALGORITHM_SETTINGS,
    DEFAULT_ENV,
    DEFAULT_PER_ITER,
    ENVS,
    FINAL_EVAL_SEED,
    REFERENCE,
    REPORT_SEEDS,
    TUNING_SEEDS,
)
from benchmarks.fair.tuned import TunedError, check_no_override_of_tuned, read_tuned  # noqa: E402
from benchmarks.fair.tuning import tune  # noqa: E402

ALGORITHMS = tuple(a.label for a in ALGORITHM_SETTINGS)
COSTS = Path(__file__).resolve().parent / "sample_efficiency_costs.json"

__all__ = [
    "ALGORITHMS",
    "DEFAULT_PER_ITER",
    "KEYS",
    "curve",
    "final_eval",
    "main",
    "per_seed",
    "plot",
    "parser",
    "read_metrics",
    "read_rows",
    "render",
    "render_final",
    "run_one",
    "summarize",
    "trajectories_to_reach",
]


def parser() -> argparse.ArgumentParser:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    p.add_argument("--env", default=DEFAULT_ENV, choices=list(ENVS), help="the env of every run")
    p.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="report seeds (report default: 0; in tuning mode the seeds tuning must avoid, default 0..4)",
    )
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
    p.add_argument(
        "--final-seed", type=int, default=FINAL_EVAL_SEED, help="first seed of that eval"
    )
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
    p.add_argument(
        "--tune", type=Path, default=None, metavar="GRID.json", help="tuning mode: run this grid"
    )
    p.add_argument(
        "--tune-seeds",
        nargs="+",
        type=int,
        default=list(TUNING_SEEDS),
        help=f"seeds of the tuning runs (default {' '.join(map(str, TUNING_SEEDS))})",
    )
    p.add_argument(
        "--tuned",
        type=Path,
        default=None,
        metavar="FILE",
        help="tuned values: written by --tune (default ROOT/tuned.json), read by a report",
    )
    p.add_argument(
        "--thresholds",
        nargs="+",
        type=float,
        default=None,
        help="sampled-return thresholds for 'trajectories to reach' (default: the env's)",
    )
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="check and print the planned runs with a cost estimate",
    )
    p.add_argument("--costs", type=Path, default=COSTS, help="measured costs the estimate uses")
    p.add_argument(
        "--write-costs",
        type=Path,
        default=None,
        help="merge the finished runs' costs into this file",
    )
    return p


def options(p: argparse.ArgumentParser, args: argparse.Namespace) -> Options:
    """Labels, per-iteration counts and overrides from the command line (errors via ``p``)."""
    base_of = {a: a for a in ALGORITHMS}  # label -> algorithm label
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
    root = args.root if args.env == DEFAULT_ENV else args.root / args.env
    return Options(
        args.env,
        tuple(args.algorithms),
        base_of,
        per_iter,
        {k: tuple(v) for k, v in algo_extra.items()},
        tuple(args.extra),
        args.trajectories,
        args.eval_trajectories,
        root,
    )


def tuned_overrides(
    opts: Options, path: Path, seeds: Sequence[int]
) -> tuple[dict[str, list[str]], list[range]]:
    """Each label's tuned overrides from ``path`` and the eval-seed ranges of their tuning;
    refuses report seeds the tuning used and user overrides of tuned keys (a ``--variant``
    takes its own entry if the file has one, else its base algorithm's)."""
    tuned = read_tuned(path)
    out: dict[str, list[str]] = {}
    tuning_seeds: set[int] = set()
    eval_ranges: set[range] = set()
    for label in opts.labels:
        variant = opts.base_of[label] != label
        own = tuned.entries.get(opts.env, {})
        entry = tuned.entry(
            opts.env, label if label in own or not variant else opts.base_of[label], path
        )
        out[label] = list(entry.overrides)
        if not variant:
            check_no_override_of_tuned(out[label], [*opts.extra, *opts.algo_extra[label]], label)
        tuning_seeds.update(entry.tuning_seeds)
        eval_ranges.update(entry.eval_ranges)
        budget = (
            entry.settings["trajectories"],
            entry.settings["eval_trajectories"],
            entry.settings["per_iter"],
        )
        if budget != (opts.trajectories, opts.eval_trajectories, opts.per_iter[label]):
            print(
                f"note: {label} was tuned with {budget[0]} trajectories, eval every {budget[1]}, "
                f"{budget[2]} per iteration; this report runs {opts.trajectories}, "
                f"{opts.eval_trajectories}, {opts.per_iter[label]}",
                flush=True,
            )
    check_seeds_disjoint(sorted(tuning_seeds), seeds)
    return out, sorted(eval_ranges, key=lambda r: (r.start, r.stop))


def report(args: argparse.Namespace, opts: Options, argv: Sequence[str]) -> int:
    """Report mode: plan, check, run, and write the tables, ``results.json`` and ``--out``."""
    seeds = args.seeds if args.seeds is not None else [0]
    tuned: dict[str, list[str]] = {}
    tuning_eval: list[range] = []
    if args.tuned is not None:
        tuned, tuning_eval = tuned_overrides(opts, args.tuned, seeds)
    runs = report_runs(opts, seeds, tuned)
    specs = validate(runs)
    report_eval = sorted({s.seeds for s in specs.values()}, key=lambda r: (r.start, r.stop))
    if args.final_episodes:
        report_eval.append(range(args.final_seed, args.final_seed + args.final_episodes))
    check_eval_disjoint(tuning_eval, report_eval)
    if args.dry_run:
        print(render_plan(runs, specs, read_costs(args.costs), args.costs, args.final_episodes))
        return 0
    rows = execute(runs, args.reuse)
    results: dict[str, dict[int, Rows]] = {}
    for run in runs:
        results.setdefault(run.label, {})[run.seed] = rows[run]
    wall: dict[str, dict[int, float | None]] = {}
    warm: dict[str, dict[int, float | None]] = {}
    for run in runs:
        times = run_times(run.run_dir)
        wall.setdefault(run.label, {})[run.seed] = times.wall_s if times else None
        warm.setdefault(run.label, {})[run.seed] = times.warm_start_s if times else None
    summary = summarize(results)
    text = render(summary, dict(opts.per_iter))
    thresholds = args.thresholds if args.thresholds is not None else list(ENVS[opts.env].thresholds)
    baselines = [label for label in results if opts.base_of[label] != REFERENCE]
    stats: dict[str, Any] = {
        "final": final_stats(results),
        "thresholds": threshold_stats(results, thresholds),
        "ratio": best_baseline_ratio(results, REFERENCE, baselines, SAMPLED_RETURN),
    }
    text += "\n\n" + render_report(
        stats["final"], stats["thresholds"], stats["ratio"], opts.per_iter, wall
    )
    if args.final_episodes:
        finals = {
            label: {
                seed: final_eval(
                    opts.root / f"{label}-seed{seed}", args.final_episodes, args.final_seed
                )
                for seed in by
            }
            for label, by in results.items()
        }
        summary["final_eval"] = finals
        text += "\n\n" + render_final(finals, args.final_episodes, args.final_seed)
    text += (
        "\n\nPer-seed sampled eval return at each eval point (columns: trajectories collected):"
        "\n\n" + per_seed(results)
    )
    print(text)
    opts.root.mkdir(parents=True, exist_ok=True)
    record = {
        "env": opts.env,
        "tuned": str(args.tuned) if args.tuned else None,
        "overrides": {
            label: list(next(r.extra for r in runs if r.label == label)) for label in results
        },
        "summary": summary,
        "report": stats,
        "wall_s": wall,
        "warm_start_s": warm,
        "runs": results,
    }
    (opts.root / "results.json").write_text(json.dumps(record, indent=1))
    if args.write_costs:
        note = (
            f"{datetime.date.today()}: {len(runs)} report runs on {opts.env} "
            f"({', '.join(opts.labels)}), {opts.trajectories} trajectories each"
        )
        write_costs(args.write_costs, measured_costs(runs, specs, rows), note)
    if args.out:
        png = args.out.with_suffix(".png")
        plot(results, png)
        cmd = " ".join(["python benchmarks/sample_efficiency.py", *argv])
        args.out.write_text(
            f"# Sample efficiency: ArCHer vs baselines on {opts.env}\n\nProduced by `{cmd}`.\n\n"
            + text
            + f"\n\n![curves]({png.name})\n"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (tuning with ``--tune``, else the report)."""
    p = parser()
    args = p.parse_args(argv)
    opts = options(p, args)
    try:
        if args.tune is not None:
            grids = load_grid(args.tune, opts.base_of)
            report_seeds = args.seeds if args.seeds is not None else list(REPORT_SEEDS)
            tuned_path = args.tuned or args.root / "tuned.json"  # one file for every env
            return tune(
                opts,
                grids,
                args.tune_seeds,
                report_seeds,
                tuned_path,
                args.reuse,
                args.dry_run,
                args.costs,
                args.write_costs,
            )
        return report(args, opts, argv if argv is not None else sys.argv[1:])
    except (GridError, SeedOverlapError, TunedError) as e:
        p.error(str(e))
    return 2  # unreachable: p.error exits


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
