"""The report's statistics over seeds: final return and success with 95% bootstrap intervals,
trajectories to reach fixed return thresholds, and the reference algorithm's trajectories to
reach the best baseline's final return against that baseline's own.

Curves are means over seeds at each eval point (``episodes_total`` = trajectories so far);
"reach" is the first eval point after the start (the BC policy's point is skipped) whose
value is at least the target.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.fair.runs import Rows
from benchmarks.smollm2_learning import bootstrap_interval

Results = Mapping[str, Mapping[int, Rows]]  # label -> seed -> metrics rows

SAMPLED_RETURN = "eval_sample/return"
METRICS: dict[str, str] = {
    "eval_sample/return": "sampled return",
    "eval_sample/success": "sampled success",
    "eval/return": "greedy return",
    "eval/success": "greedy success",
}


@dataclass(frozen=True)
class Point:
    """One eval point of a curve: the trajectories collected and each seed's value there."""

    trajectories: int
    values: tuple[float, ...]

    @property
    def mean(self) -> float:
        """Mean over the seeds that have this point."""
        return statistics.fmean(self.values)


def curve_points(by_seed: Mapping[int, Rows], key: str) -> list[Point]:
    """The eval points of metric ``key`` over seeds, in order of trajectories."""
    at: dict[int, list[float]] = {}
    for rows in by_seed.values():
        for r in rows:
            if key in r:
                at.setdefault(int(r["episodes_total"]), []).append(float(r[key]))
    return [Point(t, tuple(v)) for t, v in sorted(at.items())]


def first_reach(points: Sequence[Point], target: float) -> int | None:
    """Trajectories of the first point after the start whose mean is >= ``target`` (None: never)."""
    return next((p.trajectories for p in points[1:] if p.mean >= target - 1e-9), None)


def seed_reach(rows: Rows, key: str, target: float) -> int | None:
    """:func:`first_reach` of one seed's curve."""
    return first_reach(curve_points({0: rows}, key), target)


def final_values(by_seed: Mapping[int, Rows], key: str) -> dict[int, float]:
    """Each seed's last value of ``key`` (seeds without any are left out)."""
    out = {}
    for seed, rows in by_seed.items():
        vals = [float(r[key]) for r in rows if key in r]
        if vals:
            out[seed] = vals[-1]
    return out


def final_stats(results: Results) -> list[dict[str, Any]]:
    """Per algorithm and metric: start and final means over seeds, the final's 95%
    bootstrap interval over seeds (:func:`benchmarks.smollm2_learning.bootstrap_interval`)
    and each seed's final value. Metrics a run did not evaluate are skipped."""
    rows = []
    for label, by_seed in results.items():
        for key in METRICS:
            finals = final_values(by_seed, key)
            if not finals:
                continue
            lo, hi = bootstrap_interval(list(finals.values()))
            rows.append(
                {
                    "algorithm": label,
                    "metric": key,
                    "start": curve_points(by_seed, key)[0].mean,
                    "final": statistics.fmean(finals.values()),
                    "final_ci": [lo, hi],
                    "per_seed": finals,
                }
            )
    return rows


def threshold_stats(
    results: Results, thresholds: Sequence[float], key: str = SAMPLED_RETURN
) -> dict[str, Any]:
    """Per algorithm and threshold: trajectories for the mean curve to reach it, and per seed."""
    out: dict[str, Any] = {}
    for label, by_seed in results.items():
        points = curve_points(by_seed, key)
        if not points:
            continue
        out[label] = {
            str(t): {
                "mean_curve": first_reach(points, t),
                "per_seed": {seed: seed_reach(rows, key, t) for seed, rows in by_seed.items()},
            }
            for t in thresholds
        }
    return out


def best_baseline_ratio(
    results: Results, reference: str, baselines: Sequence[str], key: str = SAMPLED_RETURN
) -> dict[str, Any] | None:
    """The baseline with the highest mean final ``key``, the trajectories its mean curve took
    to reach that final value, the ``reference``'s trajectories to reach it, and their ratio
    (baseline / reference: how many times fewer the reference needed; None if it never got
    there). None when the reference or every baseline is missing."""
    if reference not in results:
        return None
    finals = {
        b: statistics.fmean(f.values())
        for b in baselines
        if b in results and (f := final_values(results[b], key))
    }
    if not finals:
        return None
    best = max(finals, key=lambda b: finals[b])
    value = finals[best]
    base_n = first_reach(curve_points(results[best], key), value)
    ref_n = first_reach(curve_points(results[reference], key), value)
    return {
        "metric": key,
        "baseline": best,
        "value": value,
        "baseline_trajectories": base_n,
        "reference": reference,
        "reference_trajectories": ref_n,
        "ratio": base_n / ref_n if base_n and ref_n else None,
    }


def _cell(n: int | None) -> str:
    return "not reached" if n is None else str(n)


def render_report(
    finals: list[dict[str, Any]],
    thresholds: dict[str, Any],
    ratio: dict[str, Any] | None,
    per_iter: Mapping[str, int],
    wall: Mapping[str, Mapping[int, float | None]],
) -> str:
    """The report's Markdown: final table with intervals, thresholds, the ratio, wall times."""
    n_seeds = max((len(r["per_seed"]) for r in finals), default=0)
    lines = [
        f"Final eval (last eval point), mean over seeds [95% bootstrap interval over {n_seeds} seeds]:",
        "",
        "| algorithm | trajectories / iteration | metric | start (BC) | final mean [95% CI] | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for r in finals:
        lo, hi = r["final_ci"]
        seeds = ", ".join(f"{v:.2f}" for v in r["per_seed"].values())
        lines.append(
            f"| {r['algorithm']} | {per_iter[r['algorithm']]} | {METRICS[r['metric']]} | {r['start']:.3f} "
            f"| {r['final']:.3f} [{lo:.3f}, {hi:.3f}] | {seeds} |"
        )
    if thresholds:
        ts = list(next(iter(thresholds.values())))
        lines += [
            "",
            "Trajectories to reach each sampled-return threshold (mean curve over seeds; in brackets "
            "the seeds whose own curve reached it); eval points after the start only:",
            "",
            "| algorithm | " + " | ".join(f">= {t}" for t in ts) + " |",
            "|---|" + "---|" * len(ts),
        ]
        for label, by_t in thresholds.items():
            cells = []
            for t in ts:
                per_seed = by_t[t]["per_seed"]
                hit = sum(n is not None for n in per_seed.values())
                cells.append(f"{_cell(by_t[t]['mean_curve'])} ({hit}/{len(per_seed)})")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if ratio is not None:
        ref_n, base_n = ratio["reference_trajectories"], ratio["baseline_trajectories"]
        verdict = (
            f"**{ratio['ratio']:.2f}x** fewer"
            if ratio["ratio"] is not None
            else "not reached by the reference"
        )
        lines += [
            "",
            f"Best baseline by final mean sampled return: **{ratio['baseline']}** ({ratio['value']:.3f}, "
            f"reached by its mean curve at {_cell(base_n)} trajectories); {ratio['reference']} reached it at "
            f"{_cell(ref_n)}: {verdict}.",
        ]
    if wall:
        lines += [
            "",
            "Wall time per run (s):",
            "",
            "| run | " + " | ".join(["seconds"]) + " |",
            "|---|---|",
        ]
        for label, by_seed in wall.items():
            for seed, s in by_seed.items():
                lines.append(f"| {label} seed {seed} | {'-' if s is None else f'{s:.0f}'} |")
    return "\n".join(lines)
