"""Hydra multirun sweeps for ``agentrl train -m`` (docs/curricula.md, "Sweeps").

``agentrl train -m curriculum=xland curriculum.max_success=0.6,0.8 curriculum.min_nonzero=0.05,0.1``
expands the overrides with Hydra's own override grammar and basic sweeper (comma lists,
``range(...)``, ``choice(...)``, ``glob(...)``, config groups such as ``curriculum=uniform,xland``)
into the cartesian product of jobs, and runs them one after another, each in its own run dir
``<root>/<index>_<swept overrides>`` under ``root`` = the (unswept) ``run_dir`` override or
``runs/multirun-<timestamp>``. After every job the summary table of all jobs (final greedy and
sampled evaluation) is written to ``<root>/multirun.md`` and ``<root>/multirun.json``, so a
sweep stopped half way keeps what it measured. Running the same command again reuses finished
jobs (their ``summary.json``), resumes interrupted ones from their latest checkpoint and runs
the rest. A job that fails is recorded with its error and the sweep goes on; every job's
config is validated before the first one starts.
"""

from __future__ import annotations

import json
import re
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentrl.config import ConfigError, load_config

MULTIRUN_FLAGS = ("-m", "--multirun")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+\-]")


@dataclass
class SweepJob:
    """One job of a sweep: its full overrides, the swept ones (its name) and its run dir."""

    index: int
    overrides: list[str]
    swept: list[str]
    run_dir: str
    status: str = "pending"
    """pending | done | reused | failed: <error> | interrupted"""
    iterations: int | None = None
    final_eval_success: float | None = None
    final_eval_return: float | None = None
    final_eval_sample_success: float | None = None
    final_eval_sample_return: float | None = None
    seconds: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)


def is_multirun(args: list[str]) -> bool:
    return any(a in MULTIRUN_FLAGS for a in args)


def expand(overrides: list[str]) -> tuple[list[list[str]], list[list[str]]]:
    """The sweep's jobs: ``(overrides of each job, swept overrides of each job)``.

    Parsing and expansion are Hydra's (``OverridesParser`` and ``BasicSweeper``), so the sweep
    syntax is exactly that of ``@hydra.main`` applications; a syntax error is a ConfigError.
    """
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        batches = BasicSweeper.split_arguments(parsed, None)
    except HydraException as e:
        raise ConfigError(f"invalid sweep override: {e}") from e
    swept_at = [i for i, o in enumerate(parsed) if o.is_sweep_override()]
    jobs = [list(job) for batch in batches for job in batch]
    return jobs, [[job[i] for i in swept_at] for job in jobs]


def job_name(index: int, swept: list[str], max_len: int = 120) -> str:
    """``<index>_<key=value,...>`` with characters unsafe in a path replaced by ``_``."""
    name = _UNSAFE.sub("_", ",".join(swept)) if swept else "job"
    return f"{index}_{name}"[:max_len]


def _root(overrides: list[str]) -> tuple[Path, list[str]]:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    rest, root = [], None
    for text in overrides:
        o = OverridesParser.create().parse_override(text)
        if o.get_key_element().lstrip("+~") == "run_dir":
            if o.is_sweep_override():
                raise ConfigError(
                    f"{text!r}: run_dir cannot be swept, it names the sweep's root folder (each "
                    "job runs in <run_dir>/<index>_<swept overrides>)"
                )
            root = o.value()
        elif o.get_key_element().lstrip("+~") == "resume":
            raise ConfigError(
                "resume cannot be given with --multirun: run the same sweep command again, it "
                "reuses finished jobs and resumes interrupted ones from their latest checkpoint"
            )
        else:
            rest.append(text)
    if root in (None, "null", ""):
        root = f"runs/multirun-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(str(root)), rest


def _run_dir_override(path: str) -> str:
    """``run_dir='<path>'``: quoted, as a job's name holds ``=`` and ``,`` (Hydra grammar)."""
    if "'" in path or "\\" in path:
        raise ConfigError(f"sweep run_dir {path!r}: a path with ' or \\ is not supported")
    return f"run_dir='{path}'"


def plan(overrides: list[str]) -> tuple[Path, list[SweepJob]]:
    """The sweep's root and jobs, each job's config validated (nothing is run)."""
    root, rest = _root(overrides)
    jobs_overrides, swept = expand(rest)
    jobs = []
    for i, (ov, sw) in enumerate(zip(jobs_overrides, swept, strict=True)):
        job = SweepJob(i, ov, sw, str(root / job_name(i, sw)))
        try:
            load_config([*ov, _run_dir_override(job.run_dir)])
        except ConfigError as e:
            raise ConfigError(f"sweep job {i} ({' '.join(sw) or 'no swept keys'}): {e}") from e
        jobs.append(job)
    return root, jobs


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def table(jobs: list[SweepJob]) -> str:
    """Markdown table: one row per job with its swept overrides and final evaluation."""
    lines = [
        "| job | overrides | status | iterations | eval success | eval return "
        "| sampled success | sampled return | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for j in jobs:
        cells = [
            str(j.index),
            " ".join(j.swept) or "-",
            j.status.split(":")[0],
            _fmt(j.iterations),
            _fmt(j.final_eval_success),
            _fmt(j.final_eval_return),
            _fmt(j.final_eval_sample_success),
            _fmt(j.final_eval_sample_return),
            "-" if j.seconds is None else f"{j.seconds:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write(root: Path, jobs: list[SweepJob]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in (
        ("multirun.json", json.dumps([asdict(j) for j in jobs], indent=1)),
        ("multirun.md", table(jobs)),
    ):
        tmp = root / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(root / name)


def _record(job: SweepJob, summary: dict[str, Any]) -> None:
    job.summary = summary
    job.iterations = summary.get("iterations")
    for key in (
        "final_eval_success",
        "final_eval_return",
        "final_eval_sample_success",
        "final_eval_sample_return",
    ):
        setattr(job, key, summary.get(key))


def run_sweep(overrides: list[str], console: bool = True) -> tuple[Path, list[SweepJob]]:
    """Run every job of the sweep in order; returns the root and the jobs with their results."""
    import gc

    from agentrl.trainer import Trainer

    root, jobs = plan(overrides)
    print(f"multirun: {len(jobs)} job(s) in {root}", flush=True)
    _write(root, jobs)
    for job in jobs:
        run_dir = Path(job.run_dir)
        extra = [_run_dir_override(job.run_dir)]
        done = run_dir / "summary.json"
        if done.exists():
            previous = json.loads(done.read_text())
            if not previous.get("interrupted"):
                _record(job, previous)
                job.status = "reused"
                print(f"multirun: job {job.index} already finished, reusing {done}", flush=True)
                _write(root, jobs)
                continue
        if (run_dir / "checkpoints" / "latest").exists():
            extra.append("resume=latest")
        print(f"multirun: job {job.index}: {' '.join(job.swept) or '(no swept keys)'}", flush=True)
        t0 = time.perf_counter()
        try:
            trainer = Trainer(load_config([*job.overrides, *extra]), console=console)
            summary = trainer.run()
        except KeyboardInterrupt:
            job.status = "interrupted"
            _write(root, jobs)
            raise
        except Exception as e:  # noqa: BLE001 - one failed job must not lose the others
            traceback.print_exc()
            job.status = f"failed: {type(e).__name__}: {e}"
            job.seconds = time.perf_counter() - t0
            _write(root, jobs)
            continue
        finally:
            trainer = None  # type: ignore[assignment]
            gc.collect()
        job.seconds = time.perf_counter() - t0
        _record(job, summary)
        job.status = "interrupted" if summary.get("interrupted") else "done"
        _write(root, jobs)
        if job.status == "interrupted":
            break
    return root, jobs


def cmd_multirun(overrides: list[str]) -> int:
    """``agentrl train -m ...``: exit 0 when every job finished, 1 when one failed, 130 on ^C."""
    args = [a for a in overrides if a not in MULTIRUN_FLAGS]
    try:
        root, jobs = run_sweep(args)
    except ConfigError as e:
        print(f"agentrl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("multirun: interrupted (run the same command again to continue)", file=sys.stderr)
        return 130
    print(table(jobs), end="")
    print(f"multirun: summary in {root / 'multirun.md'} and {root / 'multirun.json'}")
    if any(j.status == "interrupted" for j in jobs):
        return 130
    failed = [j for j in jobs if j.status.startswith("failed")]
    for j in failed:
        print(f"agentrl: error: sweep job {j.index} {j.status}", file=sys.stderr)
    return 1 if failed else 0
