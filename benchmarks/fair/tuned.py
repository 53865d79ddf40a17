"""Choosing each algorithm's configuration from its tuning runs, and the tuned-values file
the report reads (``--tuned FILE``).

Selection criterion (:func:`score`): the mean over tuning seeds of the mean sampled eval
return (``eval_sample/return``) over the run's last :data:`LAST_POINTS` eval points; the
highest wins, a tie goes to the configuration listed first in the grid.

The file (JSON) holds, per env and algorithm, the overrides the report runs with (the
grid's fixed ones and the chosen values, in that order), the chosen point, the score of
every configuration, and the tuning seeds, eval-seed ranges and budget, so the report can
refuse to overlap them. Tuning merges into an existing file: other envs and algorithms
(tuned by other invocations) are kept.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.fair.grid import AlgorithmGrid, Scalar
from benchmarks.fair.runs import Rows

FORMAT = "agentrl-sample-efficiency-tuned/1"
LAST_POINTS = 2
CRITERION = (
    f"mean over tuning seeds of the mean sampled eval return over each run's last {LAST_POINTS} "
    "eval points; highest wins, ties go to the configuration listed first"
)


class TunedError(ValueError):
    """A tuned-values file that does not fit the report asked for; the message says why."""


def score(rows: Rows, key: str = "eval_sample/return", last: int = LAST_POINTS) -> float:
    """Mean of ``key`` over the run's last ``last`` eval points."""
    values = [float(r[key]) for r in rows if key in r]
    if not values:
        raise TunedError(f"a tuning run has no {key!r} eval points (is eval.sample off?)")
    return statistics.fmean(values[-last:])


@dataclass(frozen=True)
class Choice:
    """An algorithm's chosen configuration on one env.

    Attributes:
        overrides: what the report runs add (the grid's fixed overrides, then the point's).
        point: the chosen ``{key: value}``; ``index`` its position in the grid.
        score: its :func:`score` (mean over tuning seeds).
        scores: every configuration's point, score and per-seed scores, in grid order.
    """

    overrides: tuple[str, ...]
    point: dict[str, Scalar]
    index: int
    score: float
    scores: tuple[dict[str, Any], ...]


def select(grid: AlgorithmGrid, runs: Mapping[int, Mapping[int, Rows]]) -> Choice:
    """The best configuration of ``grid`` from ``runs[config index][tuning seed]``."""
    points = grid.points()
    means = []
    scored: list[dict[str, Any]] = []
    for i, point in enumerate(points):
        per_seed = {seed: score(rows) for seed, rows in runs[i].items()}
        means.append(statistics.fmean(per_seed.values()))
        scored.append({"index": i, "point": point, "score": means[-1], "per_seed": per_seed})
    best = max(range(len(points)), key=lambda i: (means[i], -i))
    return Choice(
        tuple(grid.overrides(points[best])), points[best], best, means[best], tuple(scored)
    )


@dataclass(frozen=True)
class TunedEntry:
    """One algorithm's tuned values on one env, as the file holds them.

    Attributes:
        overrides: what the report runs add (the grid's fixed overrides, then the chosen values).
        tuning_seeds: the run seeds of its tuning runs.
        eval_ranges: the eval seeds its tuning runs played.
        settings: its tuning runs' ``trajectories``, ``eval_trajectories`` and ``per_iter``.
    """

    overrides: tuple[str, ...]
    tuning_seeds: tuple[int, ...]
    eval_ranges: tuple[range, ...]
    settings: dict[str, int]


@dataclass(frozen=True)
class Tuned:
    """A tuned-values file as read: ``entries[env][label]``."""

    entries: dict[str, dict[str, TunedEntry]]

    def entry(self, env: str, label: str, path: Path) -> TunedEntry:
        """The tuned values of ``label`` on ``env``; refuses a pair the file lacks."""
        if env not in self.entries:
            raise TunedError(
                f"{path} has no tuned values for env {env!r} "
                f"(it has: {', '.join(self.entries) or 'none'})"
            )
        if label not in self.entries[env]:
            raise TunedError(
                f"{path} has no tuned values for algorithm {label!r} on {env!r} "
                f"(tuned there: {', '.join(self.entries[env])}); tune it first or leave it out "
                "of --algorithms"
            )
        return self.entries[env][label]


def write_tuned(
    path: Path,
    env: str,
    choices: Mapping[str, Choice],
    tuning_seeds: Sequence[int],
    eval_ranges: Sequence[range],
    settings: Mapping[str, Mapping[str, int]],
    tuning_tasks: Sequence[str] = (),
) -> None:
    """Merge the env's ``choices`` (``settings[label]``: that label's tuning budget) into
    the tuned-values file ``path``: other envs and algorithms tuned before are kept.
    ``tuning_tasks``: the overrides that gave the tuning runs their own task set."""
    data: dict[str, Any] = (
        json.loads(path.read_text()) if path.exists() else {"format": FORMAT, "envs": {}}
    )
    if data.get("format") != FORMAT:
        raise TunedError(
            f"{path} is not a tuned-values file ({FORMAT}); choose another --tuned path"
        )
    data["criterion"] = CRITERION
    entry = data["envs"].setdefault(env, {"algorithms": {}})
    entry["tuning_tasks"] = list(tuning_tasks)
    algorithms = entry["algorithms"]
    for label, c in choices.items():
        algorithms[label] = {
            "overrides": list(c.overrides),
            "point": c.point,
            "index": c.index,
            "score": c.score,
            "scores": list(c.scores),
            "tuning_seeds": list(tuning_seeds),
            "tuning_eval_seeds": [[r.start, r.stop] for r in eval_ranges],
            "settings": dict(settings[label]),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def read_tuned(path: Path) -> Tuned:
    """Read a file :func:`write_tuned` wrote."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TunedError(f"cannot read tuned values {path}: {e}") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TunedError(f"{path} is not a tuned-values file ({FORMAT})")
    return Tuned(
        {
            env: {
                label: TunedEntry(
                    tuple(a["overrides"]),
                    tuple(int(s) for s in a["tuning_seeds"]),
                    tuple(range(lo, hi) for lo, hi in a["tuning_eval_seeds"]),
                    {k: int(v) for k, v in a["settings"].items()},
                )
                for label, a in e["algorithms"].items()
            }
            for env, e in data["envs"].items()
        }
    )


def check_no_override_of_tuned(tuned: Sequence[str], others: Sequence[str], label: str) -> None:
    """Refuse an ``--extra``/``--algo-extra`` override of a key the tuned values set: the
    report must run with exactly the chosen values."""
    keys = {o.partition("=")[0].lstrip("+~") for o in tuned}
    for o in others:
        key = o.partition("=")[0].lstrip("+~")
        if key in keys:
            raise TunedError(
                f"{label}: override {o!r} would replace the tuned value of {key!r} "
                f"(tuned: {', '.join(tuned)}); report runs use exactly the tuned values"
            )
