"""``agentrl plan``: run a reward-guided planner over many tasks, resumably, and summarise.

One JSONL row per task (``id`` = task index; re-running skips done ids) and a summary in
``<out>.summary.json``. Task ``t`` resets the env with seed ``seed + t``; with
``exclude=TRIPLETS.jsonl`` tasks whose ``task_id`` appears in the reward model's data are
skipped (the next seeds are used), so the evaluation runs on unseen tasks. ``env_kwargs``
are the kwargs the tasks are played with; a ``learned_rm`` reward writes the episodes in the
response format its checkpoint records (Game of 24's ``hide_results``, for one), whatever the
plan plays with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from agentrl.progress import Progress

from .jsonl import append_jsonl, done_ids, read_jsonl, repair
from .planners import Proposer, best_of_n_report, mcts, reflexion, rollout

if TYPE_CHECKING:
    from ..base import Reward

PLANNERS = ("best_of_n", "reflexion", "mcts")


@dataclass
class PlanConfig:
    env: str = "game24"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    planner: str = "best_of_n"
    reward: dict[str, Any] = field(default_factory=lambda: {"name": "learned_rm"})
    """The scorer: any reward section (``learned_rm`` with ``path``, ``env`` = oracle, ...)."""
    proposer: str = "mix"
    epsilon: float = 0.7
    tasks: int = 50
    seed: int = 100_000
    ns: list[int] = field(default_factory=lambda: [1, 10, 100])
    attempts: int = 5
    threshold: float = 0.5
    simulations: int = 30
    expansions: int = 4
    exclude: str | None = None
    out: str = "armap/plan.jsonl"
    progress: bool = True
    """Print a line about every tenth of the tasks (a bar on an interactive terminal)."""

    def __post_init__(self) -> None:
        if self.planner not in PLANNERS:
            raise ValueError(
                f"unknown planner {self.planner!r}; valid planners: {', '.join(PLANNERS)}"
            )
        if not self.ns or min(self.ns) < 1:
            raise ValueError(f"ns must be a non-empty list of positive integers, got {self.ns}")


def _task_seeds(cfg: PlanConfig, env: gym.Env[str, str]) -> list[int]:
    if not cfg.exclude:
        return [cfg.seed + t for t in range(cfg.tasks)]
    seen = {str(r.get("task_id")) for r in read_jsonl(cfg.exclude)}
    seeds: list[int] = []
    s = cfg.seed
    while len(seeds) < cfg.tasks and s < cfg.seed + 100 * cfg.tasks + 1000:
        _, info = env.reset(seed=s)
        if str(info.get("task_id", "")) not in seen:  # a TextEnv's reset names its task
            seeds.append(s)
        s += 1
    return seeds


def summarize(cfg: PlanConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"planner": cfg.planner, "tasks": len(rows)}
    if not rows:
        return out
    if cfg.planner == "best_of_n":
        for n in cfg.ns:
            for k in ("avg", "max", "sel"):
                out[f"N={n}/{k}"] = float(np.mean([r["report"][str(n)][k] for r in rows]))
    else:
        out["success"] = float(np.mean([r["success"] for r in rows]))
        out["first_try_success"] = float(np.mean([r["first_success"] for r in rows]))
        out["mean_candidates"] = float(np.mean([r["candidates"] for r in rows]))
    return out


def run_plan(cfg: PlanConfig, scorer: Reward | None = None) -> dict[str, Any]:
    """Plan on ``cfg.tasks`` tasks; ``scorer`` (a reward object) defaults to the reward that
    ``cfg.reward`` names."""
    from agentrl.envs import resolve_env_id
    from agentrl.envs.scripted import make_scripted
    from agentrl.rollouts.worker import make_env

    from ..base import build_reward

    env_id = resolve_env_id(cfg.env)
    env = make_env(env_id, cfg.env_kwargs)
    proposer = make_scripted(
        env_id, cfg.proposer, **({"epsilon": cfg.epsilon} if cfg.proposer == "mix" else {})
    )
    reward = scorer if scorer is not None else build_reward(cfg.reward)
    out = Path(cfg.out)
    repair(out)
    have = done_ids(out)
    seeds = list(enumerate(_task_seeds(cfg, env)))
    todo = [(t, seed) for t, seed in seeds if t not in have]
    name = f"planning ({cfg.planner})"
    with Progress(enabled=cfg.progress).phase(name, len(todo), "task", plain_updates=True) as bar:
        for t, seed in todo:
            append_jsonl(out, [_plan_task(cfg, env, proposer, reward, t, seed)])
            bar.advance()
    summary = summarize(cfg, list(read_jsonl(out)))
    Path(str(out) + ".summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _plan_task(
    cfg: PlanConfig,
    env: gym.Env[str, str],
    proposer: Proposer,
    reward: Reward,
    t: int,
    seed: int,
) -> dict[str, Any]:
    """The JSONL row of task ``t`` (reset seed ``seed``) under ``cfg.planner``."""
    rng = np.random.default_rng([seed, 3])
    row: dict[str, Any] = {"id": t, "seed": seed}
    if cfg.planner == "best_of_n":
        n = max(cfg.ns)
        cands = [rollout(env, proposer, seed, None, rng) for _ in range(n)]
        scores = [float(x) for x in reward.score(cands)]
        succ = [bool(e.success) for e in cands]
        row.update(
            task=cands[0].task,
            scores=scores,
            successes=succ,
            report={str(k): v for k, v in best_of_n_report(succ, scores, cfg.ns).items()},
        )
    else:
        if cfg.planner == "reflexion":
            res = reflexion(
                env, proposer, reward.score, seed, None, rng, cfg.attempts, cfg.threshold
            )
        else:
            res = mcts(
                env, proposer, reward.score, seed, None, rng, cfg.simulations, cfg.expansions
            )
        row.update(
            task=res["episode"].task,
            success=bool(res["episode"].success),
            first_success=bool(res["candidates"][0].success),
            score=res["scores"][res["pick"]],
            candidates=len(res["candidates"]),
            actions=[turn.action for turn in res["episode"].turns],
        )
    return row
