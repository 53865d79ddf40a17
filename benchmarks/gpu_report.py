"""The GPU proof's Markdown report (:func:`render`), to paste into docs/gpu.md."""

from __future__ import annotations

from typing import Any


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None, fmt: str = ",.0f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _learner(part: dict[str, Any]) -> list[str]:
    lines = [
        "| shape | precision | conversation | conversations/step | tokens/step | learner tokens/s "
        "| TFLOP/s (6N) | MFU (6N) | MFU (6N + attention) | peak GPU memory (GiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in part.get("rows", []):
        lines.append(
            f"| {r['shape']} | {r['precision']} | {r['conversation']} | {r['conversations_per_step']} "
            f"| {r['tokens_per_step']} | {_num(r['tokens_per_s'])} | {r['tflops_per_s']:.1f} "
            f"| {_pct(r['mfu'])} | {_pct(r['mfu_attn'])} | {_num(r['peak_memory_gb'], '.1f')} |"
        )
    return lines


def _rollout(part: dict[str, Any]) -> list[str]:
    lines = [
        "| shape | weights | batch | prompt ids | new tokens | sampled tokens/s | prefill tokens/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in part.get("rows", []):
        lines.append(
            f"| {r['shape']} | {r['setup']} | {r['batch']} | {r['prompt']} | {r['new_tokens']} "
            f"| {_num(r['tokens_per_s'])} | {_num(r['prefill_tokens_per_s'])} |"
        )
    return lines


def _e2e(parts: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| algorithm | model | iterations | wall (s) | learner update (s) | learner tokens/s "
        "| MFU (6N) | rollout tokens/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in parts:
        if r["status"] != "ok":
            continue
        lines.append(
            f"| {r['algorithm']} | {r['model']} | {r['iterations']} | {r['wall_s']:.1f} "
            f"| {r['update_s']:.2f} | {_num(r['learner_tokens_per_s'])} | {_pct(r['mfu'])} "
            f"| {_num(r['rollout_tokens_per_s'])} |"
        )
    return lines


def render(summary: dict[str, Any]) -> str:
    """The proof's summary (``gpu_proof.json``) as Markdown: environment, one row per part
    with its status and time, then each part's table."""
    env = summary["environment"]
    parts = {p["part"]: p for p in summary["parts"]}
    peak = f"{env['peak_tflops']:.0f} TFLOP/s" if env["peak_tflops"] else "none (no MFU)"
    lines = [
        f"### GPU proof on {env['device']} ({summary['mode']} sizes)",
        "",
        f"torch {env['torch']} (CUDA {env['cuda']}), transformers {env['transformers']}, "
        f"peft {env['peft']}, Python {env['python']}, commit {env['commit'] or 'unknown'}; "
        f"MFU against a dense bf16 peak of {peak}; {summary['total_s']:.0f} s in all "
        f"(budget {summary['budget_s']:.0f} s).",
        "",
        "| part | status | seconds | cap (s) | note |",
        "|---|---|---|---|---|",
    ]
    for p in summary["parts"]:
        note = p.get("error") or "; ".join(p.get("errors", []) + p.get("failures", []))
        if p.get("skipped_for_time"):
            note = (
                (note + "; " if note else "")
                + "not reached in time: "
                + ", ".join(p["skipped_for_time"])
            )
        if p["part"] == "pytest_gpu" and "passed" in p:
            counts = f"{p['passed']} passed, {p['failed']} failed, {p['skipped']} skipped"
            note = counts + (f"; {note}" if note else "")
        lines.append(f"| {p['part']} | {p['status']} | {p['seconds']} | {p['cap_s']} | {note} |")
    if "learner" in parts:
        lines += [
            "",
            "Learner (PPO/GRPO clipped loss via `Policy.span_logprobs`, bf16 autocast):",
            "",
        ]
        lines += _learner(parts["learner"])
    if "rollout" in parts:
        lines += ["", "Rollout (`Policy.generate`, HF backend, temperature 1):", ""]
        lines += _rollout(parts["rollout"])
    e2e = [parts[k] for k in ("archer", "grpo") if k in parts]
    if e2e:
        lines += ["", "End to end (`Trainer`, `cluster=inline`, one iteration):", ""]
        lines += _e2e(e2e)
    if "pytest_gpu" in parts and parts["pytest_gpu"].get("skips"):
        lines += ["", "Skipped GPU tests: " + "; ".join(parts["pytest_gpu"]["skips"])]
    return "\n".join(lines)


__all__ = ["render"]
