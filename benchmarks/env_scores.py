"""Scores of the scripted ``random`` and ``good`` policies on every env (docs/envs.md).

For each env (built-in, then the adapters whose extra is installed) and each scripted
policy it has, play ``--seeds`` episodes (reset seeds ``0..N-1``, the policy seeded from
the episode seed) and report the mean return, the success rate and the mean number of
turns. Writes ``docs/env_scores.md`` (the table), ``docs/env_scores.png`` (success rates),
and replaces the table between the ``scores`` markers in ``docs/envs.md``. Usage::

    python benchmarks/env_scores.py                  # 100 seeds, everything
    python benchmarks/env_scores.py --seeds 5 --no-adapters --out runs/scores.md
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- scores:start -->", "<!-- scores:end -->"

# (row label, env id, env kwargs, policy kwargs)
BUILTIN: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("TwentyQuestions (10 words)", "agentrl/TwentyQuestions-v0", {}, {}),
    (
        "TwentyQuestions (157 words)",
        "agentrl/TwentyQuestions-v0",
        {"word_list": "full"},
        {"word_list": "full"},
    ),
    ("GuessTheNumber (1..16)", "agentrl/GuessTheNumber-v0", {}, {}),
    ("GuessMyCity (40 cities)", "agentrl/GuessMyCity-v0", {}, {}),
    ("Wordle (487 words)", "agentrl/Wordle-v0", {}, {}),
    ("Maze (4x4)", "agentrl/Maze-v0", {}, {}),
    ("Game24", "agentrl/Game24-v0", {}, {}),
    ("ToolChain", "agentrl/ToolChain-v0", {}, {}),
    ("TextCraft (task from the seed)", "agentrl/TextCraft-v0", {}, {}),
    ("RuleWorld (depth 2)", "agentrl/RuleWorld-v0", {}, {}),
]
ADAPTERS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    *[
        (f"TextArena {g}", f"agentrl/TextArena-{g}-v0", {}, {})
        for g in ("GuessTheNumber", "Mastermind", "FrozenLake", "Sokoban", "TowerOfHanoi")
    ],
    ("TextWorld (2 rooms, quest 2)", "agentrl/TextWorld-v0", {"max_turns": 30}, {}),
    ("BabyAI GoToRedBallNoDists", "agentrl/BabyAI-v0", {}, {}),
    ("BabyAI GoToLocal", "agentrl/BabyAI-v0", {"env_name": "BabyAI-GoToLocal-v0"}, {}),
]


@dataclass
class Score:
    label: str
    env_id: str
    kind: str
    mean_return: float
    success: float
    turns: float
    seconds: float


def score(
    label: str, env_id: str, env_kwargs: dict, policy_kwargs: dict, kind: str, seeds: int
) -> Score:
    """Mean return / success / turns of one scripted policy over ``seeds`` episodes."""
    from agentrl.envs import make_scripted, run_scripted_episode

    env = gym.make(env_id, **env_kwargs)
    policy = make_scripted(env_id, kind, **policy_kwargs)
    start = time.perf_counter()
    eps = [run_scripted_episode(env, policy, seed=s) for s in range(seeds)]
    env.close()
    return Score(
        label, env_id, kind,
        float(np.mean([e.total_reward for e in eps])),
        float(np.mean([e.success for e in eps])),
        float(np.mean([e.num_turns for e in eps])),
        time.perf_counter() - start,
    )  # fmt: skip


def table(scores: list[Score], seeds: int) -> str:
    lines = [
        f"Scripted policies, {seeds} seeds each (reset seeds 0..{seeds - 1}); "
        "produced by `python benchmarks/env_scores.py`.",
        "",
        "| env | policy | mean return | success | mean turns |",
        "|---|---|---:|---:|---:|",
    ]
    for s in scores:
        lines.append(
            f"| {s.label} | {s.kind} | {s.mean_return:.2f} | {s.success:.2f} | {s.turns:.1f} |"
        )
    return "\n".join(lines) + "\n"


def plot(scores: list[Score], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(s.label for s in scores))
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(labels) + 1.2))
    for i, kind in enumerate(("random", "good")):
        vals = {s.label: s.success for s in scores if s.kind == kind}
        ys = [j + (0.2 if i else -0.2) for j in range(len(labels))]
        ax.barh(ys, [vals.get(lbl, 0.0) for lbl in labels], height=0.4, label=kind)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("success rate")
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[Score]:
    import agentrl.envs  # noqa: F401  (registers the envs)
    from agentrl.envs.adapters.policies import POLICIES as ADAPTER_POLICIES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--no-adapters", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "env_scores.md")
    p.add_argument("--envs-doc", type=Path, default=ROOT / "docs" / "envs.md")
    args = p.parse_args(argv)

    rows = [(*r, ("random", "good")) for r in BUILTIN]
    if not args.no_adapters:
        rows += [(*r, tuple(ADAPTER_POLICIES[r[1]])) for r in ADAPTERS]
    scores = []
    for label, env_id, env_kw, pol_kw, kinds in rows:
        if env_id not in gym.registry:
            print(f"skip {label}: {env_id} is not registered")
            continue
        for kind in kinds:
            try:
                s = score(label, env_id, env_kw, pol_kw, kind, args.seeds)
            except ImportError as e:  # an adapter whose extra is not installed
                print(f"skip {label}: {e}")
                break
            scores.append(s)
            print(f"{label:32s} {kind:6s} return {s.mean_return:7.2f}  success {s.success:.2f}  "
                  f"turns {s.turns:5.1f}  ({s.seconds:.1f}s)")  # fmt: skip
    text = table(scores, args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Scripted policy scores\n\n" + text)
    plot(scores, args.out.with_suffix(".png"))
    if args.envs_doc.exists():
        doc = args.envs_doc.read_text()
        if START in doc and END in doc:
            head, rest = doc.split(START, 1)
            args.envs_doc.write_text(head + START + "\n" + text + END + rest.split(END, 1)[1])
    print(text)
    return scores


if __name__ == "__main__":
    main()
