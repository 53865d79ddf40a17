"""The runs an invocation will make, checked before any of them starts.

Every distinct run configuration is composed and validated as ``agentrl train`` would
(``agentrl.validate.validate_components``), so a GRPO batch that is not a multiple of its
group size, a misspelt key or an unknown value stops the whole plan before the first run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.fair.grid import AlgorithmGrid
from benchmarks.fair.runs import Rows, check_budget, run_overrides
from benchmarks.fair.setup import ALGORITHMS, ENVS, TUNING_EVAL_SEED


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the plan.

    Attributes:
        mode: ``tune`` or ``report``.
        env: the env's name (``benchmarks.fair.setup.ENVS``).
        label: the algorithm's label; ``run_label`` names its folder (``label`` in a report,
            ``{label}-c{index}`` for tuning configuration ``index``).
        config: the ``algorithm=`` choice.
        seed: the run seed.
        trajectories, per_iter, eval_trajectories: budget, batch and eval interval.
        root: the folder that holds ``{run_label}-seed{seed}``.
        extra: overrides after the harness's own (env, tuned or grid values, user's).
    """

    mode: str
    env: str
    label: str
    run_label: str
    config: str
    seed: int
    trajectories: int
    per_iter: int
    eval_trajectories: int
    root: Path
    extra: tuple[str, ...]

    @property
    def run_dir(self) -> Path:
        """The run's folder."""
        return self.root / f"{self.run_label}-seed{self.seed}"

    @property
    def evals(self) -> int:
        """Evaluations after the start (the start's evaluation is one more)."""
        return self.trajectories // self.eval_trajectories

    def overrides(self) -> list[str]:
        """The full override list of the run."""
        return run_overrides(
            self.config,
            self.seed,
            self.trajectories,
            self.per_iter,
            self.eval_trajectories,
            self.run_dir,
            list(self.extra),
        )


@dataclass(frozen=True)
class RunSpec:
    """What a run's composed config says about its cost and seeds: its evaluations play
    ``episodes`` env seeds from ``seed`` in ``modes`` modes (greedy, sampled); ``warm_start``:
    it begins with a BC warm start."""

    seed: int
    episodes: int
    modes: int
    warm_start: bool

    @property
    def seeds(self) -> range:
        """The env seeds of the run's eval episodes."""
        return range(self.seed, self.seed + self.episodes)


def validate(runs: list[PlannedRun]) -> dict[PlannedRun, RunSpec]:
    """Compose and validate every distinct configuration of ``runs`` (runs that differ only
    by seed share one check); each run's :class:`RunSpec`. Raises ``SystemExit`` naming
    the run whose configuration fails."""
    from agentrl.config import ConfigError, load_config
    from agentrl.validate import validate_components

    checked: dict[tuple[str, int, tuple[str, ...]], RunSpec] = {}
    out = {}
    for run in runs:
        check_budget(run.run_label, run.trajectories, run.per_iter, run.eval_trajectories)
        key = (run.config, run.per_iter, run.extra)
        if key not in checked:
            try:
                cfg = load_config(run.overrides())
                validate_components(cfg)
            except (ConfigError, ValueError) as e:
                raise SystemExit(f"{run.mode} run {run.run_label} on {run.env}: {e}") from e
            modes = int(cfg.eval.greedy) + int(cfg.eval.sample)
            warm = cfg.warm_start.enabled and not cfg.init_from and not cfg.resume
            checked[key] = RunSpec(cfg.eval.seed, cfg.eval.episodes, modes, bool(warm))
        out[run] = checked[key]
    return out


@dataclass(frozen=True)
class Options:
    """What the command line asked for, shared by tuning and report.

    Attributes:
        env: the env's name.
        labels: the algorithm labels to run, in order.
        base_of: label -> the algorithm it runs (a key of ``ALGORITHMS``; a ``--variant``
            label maps to its base).
        per_iter: label -> trajectories per iteration.
        algo_extra: label -> its own overrides (``--algo-extra``).
        extra: overrides of every run (``--extra``).
        trajectories, eval_trajectories: budget per run and eval interval.
        root: the env's folder of runs.
    """

    env: str
    labels: tuple[str, ...]
    base_of: Mapping[str, str]
    per_iter: Mapping[str, int]
    algo_extra: Mapping[str, tuple[str, ...]]
    extra: tuple[str, ...]
    trajectories: int
    eval_trajectories: int
    root: Path

    def config(self, label: str) -> str:
        """The ``algorithm=`` choice of ``label``."""
        return ALGORITHMS[self.base_of[label]].config


def report_runs(
    opts: Options, seeds: Sequence[int], tuned: Mapping[str, Sequence[str]]
) -> list[PlannedRun]:
    """The report's runs: every label and seed, with the env's settings, then the label's
    ``tuned`` overrides (none without a tuned file), then the user's."""
    env = ENVS[opts.env].overrides
    return [
        PlannedRun(
            "report",
            opts.env,
            label,
            label,
            opts.config(label),
            seed,
            opts.trajectories,
            opts.per_iter[label],
            opts.eval_trajectories,
            opts.root,
            (*env, *tuned.get(label, ()), *opts.extra, *opts.algo_extra[label]),
        )
        for label in opts.labels
        for seed in seeds
    ]


def tuning_runs(
    opts: Options, grids: Mapping[str, AlgorithmGrid], seeds: Sequence[int]
) -> list[PlannedRun]:
    """The tuning runs: every label, grid configuration and tuning seed, on the env's tuning
    task set (``EnvSetting.tuning``), evaluated from ``eval.seed=TUNING_EVAL_SEED``; folders
    ``root/tune/{label}-c{index}-seed{seed}``."""
    env = (*ENVS[opts.env].overrides, *ENVS[opts.env].tuning)
    runs = []
    for label in opts.labels:
        grid = grids[label]
        for i, point in enumerate(grid.points()):
            extra = (
                *env,
                *grid.overrides(point),
                f"eval.seed={TUNING_EVAL_SEED}",
                *opts.extra,
                *opts.algo_extra[label],
            )
            runs += [
                PlannedRun(
                    "tune",
                    opts.env,
                    label,
                    f"{label}-c{i}",
                    opts.config(label),
                    seed,
                    opts.trajectories,
                    opts.per_iter[label],
                    opts.eval_trajectories,
                    opts.root / "tune",
                    extra,
                )
                for seed in seeds
            ]
    return runs


def execute(runs: Sequence[PlannedRun], reuse: bool) -> dict[PlannedRun, Rows]:
    """Run every planned run in order (``reuse``: keep finished runs found on disk)."""
    from benchmarks.fair.runs import run_one

    return {
        run: run_one(
            run.config,
            run.seed,
            run.trajectories,
            run.per_iter,
            run.eval_trajectories,
            run.root,
            list(run.extra),
            reuse=reuse,
            label=run.run_label,
        )
        for run in runs
    }
