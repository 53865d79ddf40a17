"""What a plan will cost, from measured runs.

A finished run's metrics rows and recorded times (``wall.json``) split its cost into parts:
the BC **warm start** (per env: every algorithm clones the same scripted data with the same
SFT settings), a fixed **setup** (model and learner build, checkpoints, the summary), the
**training** seconds per trajectory (collection and update: each iteration's trajectories
over its ``perf/episodes_per_s``) and the **eval** seconds per eval episode played (an
iteration's ``perf/iteration_s`` less its training seconds, per episode and mode). A planned
run then costs ``warm start (if it has one) + setup + trajectories * train + (evals + 1) *
episodes * modes * eval``.

The measurements live in a costs file (``benchmarks/sample_efficiency_costs.json``; merge
finished runs into one with ``--write-costs``). Times taken on a shared machine are the
order of magnitude, not a promise.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.fair.plan import PlannedRun, RunSpec
from benchmarks.fair.runs import Rows, RunTimes, run_times


@dataclass(frozen=True)
class UnitCost:
    """Measured cost parts of one algorithm on one env (seconds)."""

    setup_s: float
    train_s_per_trajectory: float
    eval_s_per_episode: float


@dataclass
class EnvCost:
    """Measured costs on one env: its warm start (None: not measured) and each algorithm's parts."""

    warm_start_s: float | None = None
    algorithms: dict[str, UnitCost] = field(default_factory=dict)


Costs = dict[str, EnvCost]  # env -> costs


def run_cost(rows: Rows, times: RunTimes, spec: RunSpec) -> UnitCost:
    """The cost parts of one finished run (warm start excluded: ``times.warm_start_s``)."""
    train = evals = iteration = 0.0
    n_evals, trajectories, before = 0, 0, 0
    for r in rows:
        if "perf/iteration_s" not in r:
            continue
        n = int(r["episodes_total"]) - before
        before = int(r["episodes_total"])
        t = n / float(r["perf/episodes_per_s"]) if n else 0.0
        train += t
        trajectories += n
        iteration += float(r["perf/iteration_s"])
        if any(k.startswith(("eval/", "eval_sample/")) for k in r):
            evals += float(r["perf/iteration_s"]) - t
            n_evals += 1
    played = max(spec.episodes * spec.modes, 1)
    per_episode = evals / max(n_evals * played, 1)
    # the start's evaluation is not an iteration: one more eval's worth comes off the setup
    setup = times.wall_s - times.warm_start_s - iteration - per_episode * played
    return UnitCost(max(setup, 0.0), train / max(trajectories, 1), per_episode)


def mean_cost(costs: Sequence[UnitCost]) -> UnitCost:
    """Part by part mean of several runs' costs."""
    return UnitCost(
        statistics.fmean(c.setup_s for c in costs),
        statistics.fmean(c.train_s_per_trajectory for c in costs),
        statistics.fmean(c.eval_s_per_episode for c in costs),
    )


def estimate(run: PlannedRun, spec: RunSpec, cost: UnitCost, warm_start_s: float) -> float:
    """Seconds a planned run should take at the measured ``cost`` (plus ``warm_start_s`` when
    the run has a warm start)."""
    played = spec.episodes * spec.modes
    return (
        (warm_start_s if spec.warm_start else 0.0)
        + cost.setup_s
        + run.trajectories * cost.train_s_per_trajectory
        + (run.evals + 1) * played * cost.eval_s_per_episode
    )


def write_costs(path: Path, costs: Costs, note: str) -> None:
    """Merge ``costs`` into the costs file ``path`` (a warm start not measured keeps the
    file's value) and append ``note`` to its notes."""
    data: dict[str, Any] = (
        json.loads(path.read_text()) if path.exists() else {"notes": [], "envs": {}}
    )
    for env, c in costs.items():
        entry = data["envs"].setdefault(env, {"warm_start_s": None, "algorithms": {}})
        if c.warm_start_s is not None:
            entry["warm_start_s"] = c.warm_start_s
        entry["algorithms"].update({label: asdict(u) for label, u in c.algorithms.items()})
    data["notes"].append(note)
    path.write_text(json.dumps(data, indent=1) + "\n")


def read_costs(path: Path) -> Costs:
    """The costs of a costs file (empty when there is none)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    return {
        env: EnvCost(
            e["warm_start_s"], {label: UnitCost(**u) for label, u in e["algorithms"].items()}
        )
        for env, e in data["envs"].items()
    }


def duration(seconds: float) -> str:
    """``~N min`` under two hours, else ``~N.N h``."""
    return f"~{seconds / 60:.0f} min" if seconds < 7200 else f"~{seconds / 3600:.1f} h"


def render_plan(
    runs: Sequence[PlannedRun],
    specs: Mapping[PlannedRun, RunSpec],
    costs: Costs,
    source: Path,
    final_episodes: int = 0,
) -> str:
    """The planned runs, one line each with its estimate, and the total (runs with no
    measured cost, or a warm start not measured on their env, are named and not counted).
    ``final_episodes``: each run's final policy is re-evaluated on that many sampled episodes."""
    lines = [f"{len(runs)} planned runs (estimates from {source}):"]
    total, warm_total, unknown = 0.0, 0.0, set()
    by_label: dict[str, list[float]] = {}
    for run in runs:
        spec = specs[run]
        env = costs.get(run.env, EnvCost())
        cost = env.algorithms.get(run.label)
        warm = env.warm_start_s if spec.warm_start else 0.0
        secs = None
        if cost and warm is not None:
            secs = estimate(run, spec, cost, warm) + final_episodes * cost.eval_s_per_episode
        if secs is None:
            unknown.add(
                f"{run.label} on {run.env}" if cost is None else f"the warm start on {run.env}"
            )
        else:
            total += secs
            warm_total += warm or 0.0
            by_label.setdefault(run.label, []).append(secs)
        lines.append(
            f"  {run.mode:6s} {run.env:16s} {run.run_label:22s} seed {run.seed:<4d} "
            f"{run.trajectories} traj ({run.per_iter}/iter), {run.evals + 1} evals x "
            f"{spec.episodes} eps x {spec.modes} modes (seeds {spec.seed}..{spec.seed + spec.episodes - 1})"
            f"{', warm start' if spec.warm_start else ''}: "
            + ("no measurement" if secs is None else f"~{secs / 60:.1f} min")
        )
    lines.append(
        "per algorithm: "
        + ", ".join(f"{k} {len(v)} runs {duration(sum(v))}" for k, v in by_label.items())
    )
    lines.append(
        f"estimated total: {duration(total)} of this machine, one run at a time "
        f"(BC warm starts: {duration(warm_total)} of it)"
    )
    if unknown:
        lines.append(f"  (not counted, no measured cost: {', '.join(sorted(unknown))})")
    return "\n".join(lines)


def measured_costs(
    runs: Sequence[PlannedRun], specs: Mapping[PlannedRun, RunSpec], rows: Mapping[PlannedRun, Rows]
) -> Costs:
    """The costs of finished runs: per env and algorithm the mean over its runs, and per env
    the mean warm start of the runs that had one (runs :func:`run_one` did not time are left
    out)."""
    parts: dict[str, dict[str, list[UnitCost]]] = {}
    warm: dict[str, list[float]] = {}
    for run in runs:
        times = run_times(run.run_dir)
        if times is None:
            continue
        parts.setdefault(run.env, {}).setdefault(run.label, []).append(
            run_cost(rows[run], times, specs[run])
        )
        if specs[run].warm_start and times.warm_start_s > 0:
            warm.setdefault(run.env, []).append(times.warm_start_s)
    return {
        env: EnvCost(
            statistics.fmean(warm[env]) if env in warm else None,
            {label: mean_cost(cs) for label, cs in by.items()},
        )
        for env, by in parts.items()
    }
