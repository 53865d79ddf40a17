"""Tuning grids (``benchmarks/tuning_grid.json``) and the checks that keep tuning away from
the report: disjoint run seeds and disjoint eval seeds.

A grid file is JSON::

    {"algorithms": {
        "archer": {"fixed": ["algorithm.critic_model.name=policy"],
                   "grid": {"algorithm.actor_lr": [3e-5, 1e-4, 3e-4],
                            "algorithm.critic_lr": [3e-4, 1e-3]}},
        ...}}

``grid`` maps config keys to the values tried (every combination is one configuration, in
the order the keys and values are written); ``fixed`` overrides hold in every configuration
and in the report runs. Every algorithm must have the same number of configurations: with
the same trajectory budget per run and the same tuning seeds, that is the same tuning budget.
A ``note`` key at the top level is allowed (and ignored).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

Scalar = int | float | str | bool


class GridError(ValueError):
    """A tuning grid file that cannot be used; the message names the bad value."""


class SeedOverlapError(ValueError):
    """Tuning and report would share seeds; the message names both lists."""


def override_value(value: Scalar) -> str:
    """``value`` as a Hydra override writes it (``true``/``false`` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class AlgorithmGrid:
    """One algorithm's tuning grid.

    Attributes:
        label: the algorithm's label (``benchmarks.fair.setup.ALGORITHMS``).
        fixed: ``KEY=VALUE`` overrides of every configuration.
        axes: ``(key, values)`` pairs; the configurations are their product, in order.
    """

    label: str
    fixed: tuple[str, ...]
    axes: tuple[tuple[str, tuple[Scalar, ...]], ...]

    def points(self) -> list[dict[str, Scalar]]:
        """Every configuration as ``{key: value}``; configuration ``i`` is ``points()[i]``."""
        keys = [k for k, _ in self.axes]
        return [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(v for _, v in self.axes))
        ]

    def overrides(self, point: dict[str, Scalar]) -> list[str]:
        """The overrides of configuration ``point``: the fixed ones, then the point's."""
        return [*self.fixed, *(f"{k}={override_value(v)}" for k, v in point.items())]


def _scalar_list(label: str, key: str, values: object) -> tuple[Scalar, ...]:
    if not isinstance(values, list) or not values:
        raise GridError(
            f"grid of {label!r}: {key!r} must map to a non-empty list of values, got {values!r}"
        )
    for v in values:
        if not isinstance(v, int | float | str | bool):
            raise GridError(
                f"grid of {label!r}: {key!r} has {v!r}; values must be numbers, strings or booleans"
            )
    if len(set(map(repr, values))) != len(values):
        raise GridError(f"grid of {label!r}: {key!r} repeats a value in {values!r}")
    return tuple(values)


def _algorithm_grid(label: str, entry: object) -> AlgorithmGrid:
    if not isinstance(entry, dict) or "grid" not in entry or set(entry) - {"grid", "fixed"}:
        raise GridError(
            f"grid of {label!r}: expected an object with 'grid' (and optionally 'fixed'), got {entry!r}"
        )
    axes_in = entry["grid"]
    if not isinstance(axes_in, dict) or not axes_in:
        raise GridError(
            f"grid of {label!r}: 'grid' must be a non-empty object KEY -> [values], got {axes_in!r}"
        )
    fixed_in = entry.get("fixed", [])
    if not isinstance(fixed_in, list) or not all(isinstance(f, str) and "=" in f for f in fixed_in):
        raise GridError(
            f"grid of {label!r}: 'fixed' must be a list of 'KEY=VALUE' strings, got {fixed_in!r}"
        )
    fixed_keys = {f.partition("=")[0] for f in fixed_in}
    axes = []
    for key, values in axes_in.items():
        if "=" in key or "." not in key:
            raise GridError(
                f"grid of {label!r}: {key!r} is not a config key such as 'algorithm.lr'"
            )
        if key in fixed_keys:
            raise GridError(f"grid of {label!r}: {key!r} is both fixed and tuned")
        axes.append((key, _scalar_list(label, key, values)))
    return AlgorithmGrid(label, tuple(fixed_in), tuple(axes))


def parse_grid(data: object, known: Iterable[str]) -> dict[str, AlgorithmGrid]:
    """The grids of a loaded grid file; raises :class:`GridError` naming what is wrong.

    ``known``: the algorithm labels the harness knows. Every algorithm must have the same
    number of configurations (the same tuning budget)."""
    known = list(known)
    if not isinstance(data, dict) or "algorithms" not in data or set(data) - {"algorithms", "note"}:
        raise GridError("a grid file is an object with 'algorithms' (and optionally 'note')")
    entries = data["algorithms"]
    if not isinstance(entries, dict) or not entries:
        raise GridError("'algorithms' must be a non-empty object LABEL -> {grid, fixed}")
    grids = {}
    for label, entry in entries.items():
        if label not in known:
            raise GridError(
                f"grid names unknown algorithm {label!r}: choose from {', '.join(known)}"
            )
        grids[label] = _algorithm_grid(label, entry)
    sizes = {label: len(g.points()) for label, g in grids.items()}
    if len(set(sizes.values())) > 1:
        listed = ", ".join(f"{label} {n}" for label, n in sizes.items())
        raise GridError(
            f"every algorithm needs the same number of configurations (the same tuning budget); got {listed}"
        )
    return grids


def load_grid(path: Path, known: Iterable[str]) -> dict[str, AlgorithmGrid]:
    """:func:`parse_grid` of the JSON file ``path``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise GridError(f"cannot read tuning grid {path}: {e}") from e
    return parse_grid(data, known)


def check_seeds_disjoint(tuning: Sequence[int], report: Sequence[int]) -> None:
    """Refuse tuning seeds that are also report seeds, naming both lists."""
    shared = sorted(set(tuning) & set(report))
    if shared:
        raise SeedOverlapError(
            f"tuning seeds {sorted(tuning)} and report seeds {sorted(report)} share {shared}: "
            "tuning must never run on a report seed (pick --tune-seeds outside --seeds)"
        )


def check_eval_disjoint(tuning: Sequence[range], report: Sequence[range]) -> None:
    """Refuse eval-seed ranges of tuning runs that meet those of report runs, naming both."""
    for t in tuning:
        for r in report:
            if t and r and max(t.start, r.start) < min(t.stop, r.stop):
                raise SeedOverlapError(
                    f"tuning eval seeds {t.start}..{t.stop - 1} overlap report eval seeds "
                    f"{r.start}..{r.stop - 1}: tuning must be evaluated on seeds the report never "
                    "uses (set eval.seed of one of them elsewhere)"
                )
