"""Tuning mode of ``benchmarks/sample_efficiency.py`` (``--tune GRID.json``): every algorithm's
grid on the tuning seeds, the choice by :data:`benchmarks.fair.tuned.CRITERION`, and the
tuned-values file the report reads (docs/tuning.md)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.fair.cost import measured_costs, read_costs, render_plan, write_costs
from benchmarks.fair.grid import AlgorithmGrid, check_eval_disjoint, check_seeds_disjoint
from benchmarks.fair.plan import Options, execute, tuning_runs, validate
from benchmarks.fair.runs import Rows, wall_seconds
from benchmarks.fair.setup import ENVS, REPORT_EVAL_SEED, TUNING_EVAL_SEED
from benchmarks.fair.tuned import Choice, select, write_tuned

# The eval seeds the report may use: its curves from REPORT_EVAL_SEED and its re-evaluation
# of final policies from FINAL_EVAL_SEED, both below TUNING_EVAL_SEED.
REPORT_EVAL_BAND = range(REPORT_EVAL_SEED, TUNING_EVAL_SEED)


def render_scores(choices: Mapping[str, Choice]) -> str:
    """Markdown: every configuration's score per algorithm, the chosen one in bold."""
    lines = [
        "| algorithm | configuration | score (mean over tuning seeds) | per seed |",
        "|---|---|---|---|",
    ]
    for label, c in choices.items():
        for s in c.scores:
            point = ", ".join(f"{k.removeprefix('algorithm.')}={v}" for k, v in s["point"].items())
            mark = "**" if s["index"] == c.index else ""
            seeds = ", ".join(f"{v:.2f}" for v in s["per_seed"].values())
            lines.append(
                f"| {label} | {mark}c{s['index']}: {point}{mark} | {s['score']:.3f} | {seeds} |"
            )
    return "\n".join(lines)


def tune(
    opts: Options,
    grids: Mapping[str, AlgorithmGrid],
    tune_seeds: Sequence[int],
    report_seeds: Sequence[int],
    tuned_path: Path,
    reuse: bool = False,
    dry_run: bool = False,
    costs_path: Path | None = None,
    write_costs_to: Path | None = None,
) -> int:
    """Plan, check, run and choose; writes ``tuned_path`` (merged per env) and
    ``opts.root/tune/results.json``. With ``dry_run`` only prints the plan and its estimate."""
    missing = [label for label in opts.labels if label not in grids]
    if missing:
        raise SystemExit(
            f"the tuning grid has no entry for {', '.join(missing)} (it has: {', '.join(grids)})"
        )
    check_seeds_disjoint(tune_seeds, report_seeds)
    runs = tuning_runs(opts, grids, tune_seeds)
    specs = validate(runs)
    check_eval_disjoint(
        sorted({s.seeds for s in specs.values()}, key=lambda r: (r.start, r.stop)),
        [REPORT_EVAL_BAND],
    )
    if dry_run:
        print(
            render_plan(
                runs, specs, read_costs(costs_path) if costs_path else {}, costs_path or Path("-")
            )
        )
        return 0
    rows = execute(runs, reuse)
    choices = {}
    for label in opts.labels:
        by_config: dict[int, dict[int, Rows]] = {}
        for run in runs:
            if run.label == label:
                index = int(run.run_label.rpartition("-c")[2])
                by_config.setdefault(index, {})[run.seed] = rows[run]
        choices[label] = select(grids[label], by_config)
    eval_ranges = sorted({s.seeds for s in specs.values()}, key=lambda r: (r.start, r.stop))
    settings = {
        label: {
            "trajectories": opts.trajectories,
            "eval_trajectories": opts.eval_trajectories,
            "per_iter": opts.per_iter[label],
        }
        for label in opts.labels
    }
    write_tuned(
        tuned_path, opts.env, choices, tune_seeds, eval_ranges, settings, ENVS[opts.env].tuning
    )
    text = render_scores(choices)
    print(text, f"\nchosen values written to {tuned_path}", sep="\n")
    (opts.root / "tune").mkdir(parents=True, exist_ok=True)
    (opts.root / "tune" / "results.json").write_text(
        json.dumps(
            {
                "env": opts.env,
                "tuning_seeds": list(tune_seeds),
                "scores": {label: list(c.scores) for label, c in choices.items()},
                "wall_s": {run.run_dir.name: wall_seconds(run.run_dir) for run in runs},
                "overrides": {run.run_dir.name: list(run.extra) for run in runs},
            },
            indent=1,
        )
    )
    if write_costs_to:
        write_costs(
            write_costs_to,
            measured_costs(runs, specs, rows),
            f"{datetime.date.today()}: {len(runs)} tuning runs on {opts.env} "
            f"({', '.join(opts.labels)}), {opts.trajectories} trajectories each",
        )
    return 0
