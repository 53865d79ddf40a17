"""The GPU proof: every GPU measurement agentrl needs, in one call of ``benchmarks/gpu.sh``.

Parts, in order (each in its own process, under its own time cap, so a part that fails,
crashes or runs out of time is reported and the next one runs):

1. ``learner``: tokens/s and MFU of a PPO/GRPO update step (``Policy.span_logprobs``
   forward + backward, bf16 autocast), full fine-tuning and LoRA, at the Qwen2.5-0.5B and
   -1.5B shapes (random weights) on 2k- and 4k-token conversations
   (:mod:`benchmarks.gpu_learner`);
2. ``rollout``: sampled tokens/s of ``Policy.generate`` at batch 64, Qwen2.5-0.5B shape
   (:mod:`benchmarks.gpu_rollout`);
3. ``archer`` and ``grpo``: one end-to-end inline iteration each through the Trainer
   (:mod:`benchmarks.gpu_e2e`);
4. ``pytest_gpu``: ``pytest -m gpu tests/test_gpu.py``.

Each part prints one JSON line; everything goes to ``gpu_proof.json`` and a Markdown table
(``gpu_proof.md``, for docs/gpu.md) in ``--out-dir`` (default ``$OUT``, else ``runs/gpu``);
the parts' own output goes to ``gpu_proof.log`` there. ``--device cpu --small`` runs the
same code at tiny sizes on a CPU (the smoke test in tests/test_benchmark_smoke.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PARTS = ("learner", "rollout", "archer", "grpo", "pytest_gpu")
from benchmarks.gpu_report import render  # noqa: E402  (needs ROOT on sys.path)

RESULT_JSON = "gpu_proof.json"
RESULT_MD = "gpu_proof.md"
RESULT_LOG = "gpu_proof.log"


@dataclass(frozen=True)
class Plan:
    """The sizes and time caps of one mode (the H200 run, or ``--small`` on a CPU)."""

    shapes: list[str]
    lengths: list[int]
    tokens_per_step: int
    warmup: int
    steps: int
    turn: tuple[int, int, int]
    """(agent ids, env ids, minimum opening ids) of a conversation turn."""
    rollout_shape: str
    rollout_batch: int
    prompt: int
    new_tokens: int
    repeats: int
    caps: dict[str, float] = field(default_factory=dict)
    """Seconds each part may run, its process start-up included."""
    budget_s: float = 420.0
    """The whole proof's limit: a part gets no more than what is left of it."""


# The H200 budget (docs/gpu.md, "The GPU proof"): the caps sum to the 420 s budget, so with
# gpu.sh's set-up (installs, ~20-30 s) one call stays inside 8 minutes even if every part
# used all of its cap; expected use is about half.
FULL = Plan(
    shapes=["qwen2_5_0_5b", "qwen2_5_1_5b"],
    lengths=[2048, 4096],
    tokens_per_step=16384,
    warmup=2,
    steps=5,
    turn=(96, 128, 256),
    rollout_shape="qwen2_5_0_5b",
    rollout_batch=64,
    prompt=512,
    new_tokens=128,
    repeats=2,
    caps={"learner": 130.0, "rollout": 60.0, "archer": 70.0, "grpo": 60.0, "pytest_gpu": 100.0},
    budget_s=420.0,
)
SMALL = Plan(
    shapes=["small"],
    lengths=[128, 256],
    tokens_per_step=512,
    warmup=1,
    steps=2,
    turn=(8, 6, 16),
    rollout_shape="small",
    rollout_batch=8,
    prompt=16,
    new_tokens=8,
    repeats=1,
    caps={"learner": 120.0, "rollout": 90.0, "archer": 150.0, "grpo": 120.0, "pytest_gpu": 150.0},
    budget_s=600.0,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--device", default="cuda", help="cuda, cuda:N, or cpu (with --small: the smoke test)"
    )
    p.add_argument("--small", action="store_true", help="tiny shapes and short conversations")
    p.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {', '.join(PARTS)}"
    )
    p.add_argument("--out-dir", default=None, help="default: $OUT if set, else runs/gpu")
    p.add_argument("--budget-s", type=float, default=None, help="the whole proof's time limit")
    p.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="PART=SECONDS",
        help="override a part's time cap",
    )
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the measuring parts in this process, without time caps (debugging, smoke test)",
    )
    # internal: run one part in this process and write its result as JSON
    p.add_argument("--part", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    parts = [x for x in args.parts.split(",") if x]
    bad = [x for x in parts if x not in PARTS]
    if bad:
        p.error(f"--parts: unknown part(s) {', '.join(bad)}; choose from {', '.join(PARTS)}")
    if args.part is not None and args.part not in PARTS[:-1]:
        p.error(f"--part {args.part!r}: choose from {', '.join(PARTS[:-1])}")
    args.parts = parts
    caps: dict[str, float] = {}
    for item in args.cap:
        name, _, value = item.partition("=")
        try:
            caps[name] = float(value)
        except ValueError:
            p.error(f"--cap {item!r}: expected PART=SECONDS, e.g. learner=120")
        if name not in PARTS:
            p.error(f"--cap {item!r}: unknown part {name!r}; choose from {', '.join(PARTS)}")
    args.caps = caps
    return args


# --- one part, in its own process --------------------------------------------------------


def run_part(
    name: str,
    device_spec: str,
    small: bool,
    deadline: float,
    result_file: Path | None = None,
) -> dict[str, Any]:
    """Run part ``name`` (not ``pytest_gpu``) here and return its result (raises on
    failure); ``small``: the ``--small`` plan. The learner starts no case it expects to end
    after ``deadline`` (``time.time()``); the learner and the rollout write their result so
    far to ``result_file`` after every case."""
    import torch

    from agentrl.flops import peak_flops

    def report(result: dict[str, object]) -> None:
        if result_file is not None:  # atomically: the part may be killed at any moment
            tmp = result_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(result))
            tmp.replace(result_file)

    device = torch.device(device_spec)
    plan = SMALL if small else FULL
    if name == "learner":
        from benchmarks.gpu_learner import learner_cases, run_learner

        peak = peak_flops(torch.cuda.get_device_name(device)) if device.type == "cuda" else None
        cases = learner_cases(plan.shapes, plan.lengths, plan.tokens_per_step)
        return run_learner(
            device, cases, plan.warmup, plan.steps, peak, deadline, plan.turn, report
        )
    if name == "rollout":
        from benchmarks.gpu_rollout import run_rollout

        return run_rollout(
            plan.rollout_shape,
            device,
            plan.rollout_batch,
            plan.prompt,
            plan.new_tokens,
            plan.repeats,
            report,
        )
    from benchmarks.gpu_e2e import run_e2e

    return run_e2e(name, device_spec, small)


def _deadline(cap_s: float) -> float:
    """When a part should start no more work: its cap less a margin for the last case to
    end and its result to be written (``time.time()``, which the child process shares)."""
    return time.time() + cap_s - max(5.0, 0.1 * cap_s)


def _child(args: argparse.Namespace) -> int:
    assert args.part is not None and args.result is not None and args.deadline is not None
    result_file = Path(args.result)
    result = run_part(args.part, args.device, args.small, args.deadline, result_file)
    result_file.write_text(json.dumps(result))
    return 0


# --- the orchestrator ----------------------------------------------------------------------


def environment(device_spec: str) -> dict[str, Any]:
    """What the proof ran on: device, peak, library versions, commit."""
    from importlib.metadata import version

    from agentrl.flops import peak_flops

    name, cuda_version = "cpu", None
    if device_spec.startswith("cuda"):  # torch is imported (seconds) only to name the GPU
        import torch

        name = torch.cuda.get_device_name(torch.device(device_spec))
        cuda_version = torch.version.cuda
    peak = peak_flops(name) if name != "cpu" else None
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "device": name,
        "peak_tflops": peak / 1e12 if peak else None,
        "python": platform.python_version(),
        "torch": version("torch"),
        "cuda": cuda_version,
        "transformers": version("transformers"),
        "peft": version("peft"),
        "commit": commit,
    }


def _pytest_part(out_dir: Path, log: TextIO, cap_s: float) -> dict[str, Any]:
    """``pytest -m gpu tests/test_gpu.py``: counts, failures and skips from its JUnit XML."""
    xml = out_dir / "pytest_gpu.xml"
    cmd = [
        sys.executable, "-m", "pytest", "-m", "gpu", "tests/test_gpu.py", "-q",
        "-p", "no:cacheprovider", f"--junitxml={xml}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=cap_s)
    if not xml.is_file():
        raise RuntimeError(f"pytest exited with {proc.returncode} and wrote no report")
    root = ET.parse(xml).getroot()  # <testsuites><testsuite ...> (or a bare <testsuite>)
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        raise RuntimeError(f"pytest's report {xml} holds no <testsuite>")
    failures, skips = [], []
    for case in suite.iter("testcase"):
        for kind in ("failure", "error"):
            bad = case.find(kind)
            if bad is not None:
                failures.append(
                    f"{case.get('name')}: {(bad.get('message') or '').splitlines()[0][:300]}"
                )
        skip = case.find("skipped")
        if skip is not None:
            skips.append(f"{case.get('name')}: {skip.get('message')}")
    xml.unlink()
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    return {
        "returncode": proc.returncode,
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed": counts["failures"] + counts["errors"],
        "skipped": counts["skipped"],
        "failures": failures,
        "skips": skips,
    }


def _status(name: str, result: dict[str, Any]) -> str:
    if name == "pytest_gpu":
        return "ok" if result["returncode"] == 0 and result["failed"] == 0 else "failed"
    if name in ("learner", "rollout"):
        if not result["rows"]:
            return "failed"
        return "partial" if result["errors"] or result.get("skipped_for_time") else "ok"
    return "ok"


def run_one(
    name: str, args: argparse.Namespace, out_dir: Path, log: TextIO, cap_s: float
) -> dict[str, Any]:
    """Run part ``name`` (in a child process killed after ``cap_s`` seconds, unless
    ``--in-process``) and return its record: the part's result, ``status`` (``ok``,
    ``partial``: some cases failed or were not reached in time, ``failed``, ``timeout``,
    ``skipped``), ``error``, ``seconds``, ``cap_s``. Never raises."""
    start = time.monotonic()
    record: dict[str, Any] = {"part": name, "cap_s": round(cap_s, 1)}
    result_file = out_dir / f".{name}.json"
    result_file.unlink(missing_ok=True)
    log.write(f"\n===== part {name} (cap {cap_s:.0f} s) =====\n")
    log.flush()
    try:
        if cap_s <= 5:
            record.update(status="skipped", error="no time left in the budget")
            return record
        if name == "pytest_gpu":
            result = _pytest_part(out_dir, log, cap_s)
        elif args.in_process:
            result = run_part(name, args.device, args.small, _deadline(cap_s))
        else:
            cmd = [
                sys.executable, "-m", "benchmarks.gpu_proof", "--part", name,
                "--result", str(result_file), "--device", args.device,
                "--deadline", str(_deadline(cap_s)),
            ]  # fmt: skip
            if args.small:
                cmd.append("--small")
            proc = subprocess.run(
                cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=cap_s
            )
            result = _read_result(result_file)
            if proc.returncode == 0 and not result:
                raise RuntimeError(f"the part wrote no result; see {RESULT_LOG}")
            if proc.returncode != 0:  # keep what it measured before it broke, if anything
                error = f"exit status {proc.returncode}; see {RESULT_LOG}: {_log_tail(out_dir)}"
                record.update(result, status="failed", error=error)
                return record
        record.update(status=_status(name, result), **result)
    except subprocess.TimeoutExpired:
        # what the part measured before it was killed, if it reports as it goes
        error = f"killed after its cap of {cap_s:.0f} s"
        record.update(_read_result(result_file), status="timeout", error=error)
    except Exception as e:  # report it, run the next part
        record.update(status="failed", error=f"{type(e).__name__}: {e}")
    finally:
        record["seconds"] = round(time.monotonic() - start, 1)
        result_file.unlink(missing_ok=True)
        result_file.with_suffix(".tmp").unlink(missing_ok=True)
    return record


def _read_result(path: Path) -> dict[str, Any]:
    """A part's result file, or ``{}`` when it wrote none."""
    if not path.is_file():
        return {}
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def _log_tail(out_dir: Path, lines: int = 3) -> str:
    text = (out_dir / RESULT_LOG).read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    plan = SMALL if args.small else FULL
    if args.part is not None:
        return _child(args)
    started = time.monotonic()
    budget = args.budget_s or plan.budget_s
    out_dir = Path(args.out_dir or os.environ.get("OUT") or ROOT / "runs" / "gpu")
    out_dir.mkdir(parents=True, exist_ok=True)
    env = environment(args.device)
    print(json.dumps({"part": "environment", **env}), flush=True)
    records: list[dict[str, Any]] = []
    with (out_dir / RESULT_LOG).open("w") as log:
        for name in args.parts:
            left = budget - (time.monotonic() - started)
            cap = args.caps.get(name, plan.caps[name])
            record = run_one(name, args, out_dir, log, min(cap, left))
            records.append(record)
            print(json.dumps(record), flush=True)
    summary = {
        "environment": env,
        "mode": "small" if args.small else "full",
        "budget_s": budget,
        "total_s": round(time.monotonic() - started, 1),
        "parts": records,
    }
    (out_dir / RESULT_JSON).write_text(json.dumps(summary, indent=2) + "\n")
    table = render(summary)
    (out_dir / RESULT_MD).write_text(table + "\n")
    print(table)
    print(f"gpu_proof: results in {out_dir / RESULT_JSON} and {out_dir / RESULT_MD}", flush=True)
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
