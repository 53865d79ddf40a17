"""Curricula compared on the synthetic task bandit (docs/curricula.md).

For each of ``uniform``, ``learning_progress``, ``omni_noisy`` (omni with a rule MoI whose
answers are wrong 5% of the time) and ``omni_oracle`` (omni with the rule MoI), train on
:class:`agentrl.curricula.bandit.TaskBandit` for ``--seeds`` seeds and report the number
of interesting tasks learned (distinct skills with a variant above 0.1 / 0.2 / 0.4 / 0.6
success) at the end, plus the share of episodes spent on impossible tasks; plots skills
learned (success > 0.4) over training. ``--llm-probe`` also asks the LLM MoI (default
SmolLM2-135M-Instruct) about labelled TextCraft task pairs and reports its agreement with
the rule oracle. Writes ``docs/curricula_results.md``, ``docs/curricula_bandit.png``,
``docs/curricula_results.json`` and replaces the table between the ``results`` markers of
``docs/curricula.md``. Usage::

    python benchmarks/curricula.py                    # 3 seeds, the default bandit
    python benchmarks/curricula.py --llm-probe        # + SmolLM2's answers on 20 pairs
    python benchmarks/curricula.py --seeds 1 --episodes 500 --out runs/c.md --doc runs/doc.md
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from agentrl.curricula.bandit import (
    CURRICULA_COMPARED,
    PRIVILEGE_MODES,
    XLAND_MODES,
    BanditConfig,
    PrivilegeBanditConfig,
    XLandBanditConfig,
    run_bandit,
    run_privileged,
    run_xland,
)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, str(ROOT))

from benchmarks._results import splice_into_doc  # noqa: E402

START, END = "<!-- results:start -->", "<!-- results:end -->"


def run_all(cfg: BanditConfig, seeds: int) -> dict[str, list[list[dict[str, float]]]]:
    return {name: [run_bandit(name, cfg, s) for s in range(seeds)] for name in CURRICULA_COMPARED}


def bandit_table(results: dict[str, list[list[dict[str, float]]]], cfg: BanditConfig) -> str:
    ths = cfg.thresholds
    head = (
        "| curriculum | "
        + " | ".join(f"skills > {t}" for t in ths)
        + " | tasks > 0.4 | impossible share |"
    )
    lines = [head, "|" + "---|" * (len(ths) + 3)]
    for name, runs in results.items():
        last = [r[-1] for r in runs]

        def cell(key: str, digits: int = 1, last: list[dict[str, float]] = last) -> str:
            v = np.array([x[key] for x in last])
            return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"

        cells = [cell(f"skills@{t}") for t in ths] + [
            cell("tasks@0.4"),
            cell("impossible_share", 2),
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, list[list[dict[str, float]]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key in zip(axes, ("skills@0.2", "skills@0.4"), strict=True):
        for name, runs in results.items():
            x = [r["episodes"] for r in runs[0]]
            y = np.array([[r[key] for r in run] for run in runs])
            ax.plot(x, y.mean(0), label=name)
            ax.fill_between(x, y.mean(0) - y.std(0), y.mean(0) + y.std(0), alpha=0.2)
        ax.set_xlabel("episodes")
        ax.set_ylabel(f"interesting tasks learned (success > {key.split('@')[1]})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Task bandit, mean ± std over {len(next(iter(results.values())))} seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def mean_std(values: list[float], digits: int = 2) -> str:
    v = np.array(values)
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"


def xland_section(seeds: int) -> tuple[str, dict[str, Any]]:
    cfg = XLandBanditConfig()
    final = {m: [run_xland(m, cfg, s)[-1] for s in range(seeds)] for m in XLAND_MODES}
    lines = [
        f"XLand bandit: {cfg.tasks} training tasks, {cfg.held_out} held-out tasks, {cfg.episodes} "
        f"episodes, {seeds} seeds (per-task success on the held-out tasks):",
        "",
        "| sampling | held-out mean | participation (> 0.05) | 10th percentile | 50th percentile |",
        "|---|---|---|---|---|",
    ]
    for m, rows in final.items():
        cells = [
            mean_std([r[k] for r in rows]) for k in ("held_out_mean", "participation", "p10", "p50")
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n", {m: rows for m, rows in final.items()}


def privileged_section(seeds: int) -> tuple[str, dict[str, Any]]:
    cfg = PrivilegeBanditConfig()
    runs = {m: [run_privileged(m, cfg, s) for s in range(seeds)] for m in PRIVILEGE_MODES}
    lines = [
        f"Privileged bandit: levels 0-{len(cfg.bonus) - 1}, {cfg.episodes} episodes, {seeds} seeds "
        "(success at privilege 0 after training):",
        "",
        "| training | success at privilege 0 | episodes until level 0 |",
        "|---|---|---|",
    ]
    for m, rs in runs.items():
        reach = [next((r["episodes"] for r in run if r["level"] == 0), float("nan")) for run in rs]
        reach_cell = "-" if m != "curriculum" else mean_std(reach, 0)
        lines.append(f"| {m} | {mean_std([run[-1]['success@0'] for run in rs])} | {reach_cell} |")
    return "\n".join(lines) + "\n", {m: [run[-1] for run in rs] for m, rs in runs.items()}


def probe_pairs() -> list[tuple[dict[str, Any], dict[str, Any], bool]]:
    """``(candidate, learned, boring by the rule oracle)`` TextCraft pairs, half of each."""
    from agentrl.envs.textcraft import RECIPES

    names = list(RECIPES)
    out = []
    for i, a in enumerate(names[:10]):
        out.append(({"achievement": a, "count": 2 + i % 4}, {"achievement": a, "count": 1}, True))
        b = names[(i + 5) % len(names)]
        out.append(({"achievement": b, "count": 1}, {"achievement": a, "count": 1}, False))
    return out


def llm_probe(model: str) -> tuple[str, dict[str, Any]]:
    """Ask the LLM MoI about :func:`probe_pairs`; returns a markdown table and numbers."""
    import torch

    from agentrl.curricula import LLMInterestingness
    from agentrl.envs.textcraft import describe_task, task_list

    torch.manual_seed(0)  # the default LLM MoI of omni (relative threshold over all 105 tasks)
    moi = LLMInterestingness(model={"name": model}, describe=describe_task, reference=task_list())
    t0 = time.perf_counter()
    answers = [(moi.boring(c, learned), truth) for c, learned, truth in probe_pairs()]
    per_query = (time.perf_counter() - t0) / len(answers)
    tp = sum(a and t for a, t in answers)
    tn = sum(not a and not t for a, t in answers)
    n_boring = sum(t for _, t in answers)
    info = {
        "model": model,
        "pairs": len(answers),
        "accuracy": (tp + tn) / len(answers),
        "said_boring": sum(a for a, _ in answers) / len(answers),
        "recall_boring": tp / max(n_boring, 1),
        "recall_interesting": tn / max(len(answers) - n_boring, 1),
        "seconds_per_query": per_query,
    }
    table = (
        "| model | pairs | accuracy | says boring | boring recall | interesting recall | s / query |\n"
        "|---|---|---|---|---|---|---|\n"
        f"| {model} | {info['pairs']} | {info['accuracy']:.2f} | {info['said_boring']:.2f} | "
        f"{info['recall_boring']:.2f} | {info['recall_interesting']:.2f} | {per_query:.2f} |"
    )
    return table, info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=BanditConfig.episodes)
    ap.add_argument("--llm-probe", action="store_true")
    ap.add_argument("--llm-model", default="smollm2")
    ap.add_argument("--out", default=str(ROOT / "docs" / "curricula_results.md"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "curricula.md"))
    args = ap.parse_args(argv)

    cfg = BanditConfig(episodes=args.episodes)
    t0 = time.perf_counter()
    results = run_all(cfg, args.seeds)
    table = bandit_table(results, cfg)
    text = (
        f"Task bandit: {cfg.families} skills x {len(cfg.counts)} repeat variants + {cfg.impossible} "
        f"impossible tasks, {cfg.episodes} episodes in batches of {cfg.batch}, "
        f"{args.seeds} seeds (mean ± std; {time.perf_counter() - t0:.0f} s).\n\n{table}\n"
    )
    out: dict[str, Any] = {"config": dataclasses.asdict(cfg), "final": {}}
    for name, runs in results.items():
        out["final"][name] = [r[-1] for r in runs]
    xland_text, out["xland"] = xland_section(args.seeds)
    privileged_text, out["privileged"] = privileged_section(args.seeds)
    text += f"\n{xland_text}\n{privileged_text}"
    if args.llm_probe:
        probe_table, info = llm_probe(args.llm_model)
        text += f"\nLLM model of interestingness on {info['pairs']} labelled TextCraft pairs:\n\n{probe_table}\n"
        out["llm_probe"] = info
    print(text)
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    plot(results, out_path.with_name("curricula_bandit.png"))
    out_path.with_name("curricula_results.json").write_text(json.dumps(out, indent=1))
    splice_into_doc(args.doc, START, END, text)
    return out


if __name__ == "__main__":
    main()
