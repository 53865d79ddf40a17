"""Prompted SmolLM2-135M-Instruct on TextCraft's privilege levels: can it use a hint?

The privileged-action comparison (``docs/curricula.md``) needs a policy that reads its
hints. Before budgeting RL runs with SmolLM2 this measures what the prompted model does
with them: the 13 count-1 tasks the scripted ``good`` player reaches within 12 turns
(:func:`benchmarks.curricula_textcraft.reachable_tasks`), one greedy episode per task at
privilege 0 (none), 1 (``Hint: next, <command>.`` in every observation) and 2 (the hint
plus the ``next`` macro), as a transcript and as a conversation. Reported: success,
invalid-reply rate, turns, wall time, and the first replies of one episode. Usage::

    python benchmarks/privileged_zero_shot.py --out docs/privileged_zero_shot.json
    python benchmarks/privileged_zero_shot.py --report-from docs/privileged_zero_shot.json \
        --doc docs/curricula.md   # the table between the privileged-zero-shot markers
"""

# ruff: noqa: E402
from __future__ import annotations

import os

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, str(ROOT))

from agentrl.config import load_config
from agentrl.policy import Policy, SamplingConfig
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
from benchmarks._results import splice_into_doc
from benchmarks.curricula_textcraft import reachable_tasks


def play(
    policy: Policy, tasks: list[dict[str, Any]], level: int, conversation: bool, max_turns: int
) -> dict[str, Any]:
    """One greedy episode per task at privilege ``level``; the row of the report."""
    cfg = load_config(["env=textcraft", "model=smollm2"])
    sampling = SamplingConfig(max_new_tokens=16, stop=("\n",), greedy=True)
    kwargs = {**cfg.env.kwargs, "max_turns": max_turns}
    worker = RolloutWorker(
        cfg.env.id, kwargs, len(tasks), sampling, policy=policy, conversation=conversation
    )
    jobs = [EpisodeJob(i, 100 + i, {**t, "privilege": level}) for i, t in enumerate(tasks)]
    start = time.perf_counter()
    eps = worker.collect(jobs, rng_seed=0)
    turns = [t for e in eps for t in e.turns]
    return {
        "conversation": conversation,
        "level": level,
        "episodes": len(eps),
        "success": sum(e.success for e in eps) / len(eps),
        "invalid": sum(bool(t.info.get("invalid_action")) for t in turns) / max(1, len(turns)),
        "turns": len(turns) / len(eps),
        "wall_s": time.perf_counter() - start,
        "example": [(t.observation[-300:], t.action) for t in eps[1].turns[:3]],
    }


START, END = "<!-- privileged-zero-shot:start -->", "<!-- privileged-zero-shot:end -->"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The report's table: one row per mode and privilege level."""
    lines = [
        "| mode | privilege | tasks solved (1 greedy episode each) | invalid replies | turns | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        mode = "conversation" if r["conversation"] else "transcript"
        solved = round(r["success"] * r["episodes"])
        lines.append(
            f"| {mode} | {r['level']} | {solved}/{r['episodes']} | {r['invalid']:.2f} | "
            f"{r['turns']:.1f} | {r['wall_s']:.0f} s |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--max-turns", type=int, default=12)
    ap.add_argument("--out", default=None)
    ap.add_argument("--report-from", default=None, metavar="JSON", help="render; no runs")
    ap.add_argument("--doc", default=None, help="page with the markers for the table")
    args = ap.parse_args(argv)
    if args.report_from:
        rows: list[dict[str, Any]] = json.loads(Path(args.report_from).read_text())
        text = markdown(rows)
        print(text)
        if args.doc and not splice_into_doc(args.doc, START, END, text):
            raise SystemExit(f"{args.doc} has no {START} ... {END} markers")
        return rows
    torch.manual_seed(0)
    tasks = reachable_tasks(args.max_turns)
    policy = Policy.from_config(load_config(["model=smollm2"]).model, device="cpu")
    rows = []
    for conversation in (False, True):
        for level in args.levels:
            row = play(policy, tasks, level, conversation, args.max_turns)
            rows.append(row)
            mode = "conversation" if conversation else "transcript"
            print(
                f"{mode:<12} privilege {level}: success {row['success']:.2f}  invalid "
                f"{row['invalid']:.2f}  turns {row['turns']:.1f}  {row['wall_s']:.0f} s",
                flush=True,
            )
            if args.out:
                Path(args.out).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
