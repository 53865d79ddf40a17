"""A synthetic "task bandit" for comparing curricula in seconds, without a policy.

A task's success probability grows with the number of times it was practised:
``p = sigmoid((n - d) / (d / 4))`` for a task of difficulty ``d`` (the episodes it needs to
reach 0.5), so an unpractised task succeeds almost never. Tasks come as OMNI's do
(``{"skill": ..., "count": ...}``):

- ``families`` skills, each with repeat variants ``counts`` (count ``c`` is
  ``1 + count_scale * (c - 1)`` times harder than count 1); practice on one task does not
  help another, so a repeat variant of a learned skill costs episodes and adds nothing new;
- ``impossible`` tasks (``skill="never_*"``) that never succeed.

The figure of merit, as in OMNI, is the number of *interesting* tasks learned: distinct
skills with at least one variant whose true success is above a threshold (repeat variants
count once, impossible tasks never). :func:`run_bandit` plays a curriculum through the
real ``sample`` / ``update`` API with :class:`~agentrl.types.Episode` objects.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrl.curricula.learning_progress import LearningProgressConfig, LearningProgressCurriculum
from agentrl.curricula.omni import Interestingness, OmniConfig, OmniCurriculum, RuleInterestingness
from agentrl.curricula.uniform import UniformConfig, UniformCurriculum
from agentrl.types import Episode, TaskSpec

CURRICULA_COMPARED = ("uniform", "learning_progress", "omni_noisy", "omni_oracle")


@dataclass
class BanditConfig:
    """The simulated task space and the training budget.

    Attributes:
        families: distinct skills; ``counts``: their repeat variants (7, as in OMNI's 105
            Crafter tasks); ``impossible``: tasks that never succeed.
        difficulty: range of a skill's count-1 difficulty ``d`` (episodes to reach 0.5).
        count_scale: count ``c`` is ``1 + count_scale * (c - 1)`` times harder.
        width: the sigmoid's width as a share of ``d`` (0.5: an unpractised task succeeds
            with probability 0.12).
        levels: tech-tree depth (1: every skill can be practised from the start).
        episodes, batch: training budget and episodes per ``sample`` / ``update``.
        learned_threshold: the omni curricula's learned threshold.
        thresholds: success thresholds of the learned counts.
    """

    families: int = 25
    counts: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    impossible: int = 150
    difficulty: tuple[float, float] = (10.0, 60.0)
    count_scale: float = 0.1
    width: float = 0.5
    levels: int = 1
    episodes: int = 3000
    batch: int = 50
    learned_threshold: float = 0.5
    thresholds: tuple[float, ...] = (0.1, 0.2, 0.4, 0.6)


class TaskBandit:
    """The simulated tasks and their practice counts (module docstring)."""

    def __init__(self, cfg: BanditConfig, seed: int = 0):
        rng = np.random.default_rng([seed, 7])
        base = rng.uniform(*cfg.difficulty, size=cfg.families)
        self.tasks: list[TaskSpec] = []
        self.difficulty: list[float] = []
        for f in range(cfg.families):
            for c in cfg.counts:
                self.tasks.append({"skill": f"s{f:02d}", "count": c})
                self.difficulty.append(float(base[f]) * (1 + cfg.count_scale * (c - 1)))
        for i in range(cfg.impossible):
            self.tasks.append({"skill": f"never_{i:03d}", "count": 1})
            self.difficulty.append(math.inf)
        self.index = {self.key(t): i for i, t in enumerate(self.tasks)}
        # a tech tree: a skill of level L > 0 is practised only once its parent (a skill of
        # level L - 1) succeeds at its count-1 task with probability >= 0.5
        per_level = max(cfg.families // cfg.levels, 1)
        self.parent: dict[int, int] = {}
        for f in range(per_level, cfg.families):
            level = min(f // per_level, cfg.levels - 1)
            lo = (level - 1) * per_level
            self.parent[f] = lo + int(rng.integers(per_level))
        self.n_counts = len(cfg.counts)
        self.width = cfg.width
        self.practice = np.zeros(len(self.tasks), dtype=int)
        self.plays = np.zeros(len(self.tasks), dtype=int)

    @staticmethod
    def key(task: TaskSpec) -> str:
        return f"{task['skill']}/{task['count']}"

    def success_prob(self, i: int) -> float:
        d = self.difficulty[i]
        if not self.unlocked(i):
            return 0.0
        return 1.0 / (1.0 + math.exp(-(self.practice[i] - d) / (d * self.width)))

    def unlocked(self, i: int) -> bool:
        if math.isinf(self.difficulty[i]):
            return False
        f = i // self.n_counts
        return f not in self.parent or self.success_prob(self.parent[f] * self.n_counts) >= 0.5

    def play(self, task: TaskSpec, rng: np.random.Generator) -> bool:
        i = self.index[self.key(task)]
        won = bool(rng.random() < self.success_prob(i))
        self.plays[i] += 1
        if self.unlocked(i):
            self.practice[i] += 1
        return won

    def learned(self, threshold: float) -> tuple[int, int]:
        """``(interesting skills learned, tasks learned)`` at ``threshold``."""
        hit = [i for i in range(len(self.tasks)) if self.success_prob(i) > threshold]
        return len({self.tasks[i]["skill"] for i in hit}), len(hit)


@dataclass
class NoisyInterestingness(Interestingness):
    """The rule MoI with each (candidate, learned) answer flipped with probability ``noise``
    (fixed per pair): a stand-in for an imperfect LLM judge in the fast comparison."""

    noise: float = 0.05
    rule: RuleInterestingness = field(default_factory=RuleInterestingness)

    def boring(self, candidate: TaskSpec, learned: TaskSpec) -> bool:
        digest = hashlib.sha256(
            f"{sorted(candidate.items())}|{sorted(learned.items())}".encode()
        ).digest()
        flip = int.from_bytes(digest[:4], "little") / 2**32 < self.noise
        return self.rule.boring(candidate, learned) != flip


def make_compared(
    name: str, tasks: list[TaskSpec], seed: int, learned_threshold: float = 0.5
) -> Any:
    """One of :data:`CURRICULA_COMPARED` over ``tasks``."""
    if name == "uniform":
        return UniformCurriculum(UniformConfig(tasks=tasks), seed=seed)
    if name == "learning_progress":
        return LearningProgressCurriculum(LearningProgressConfig(tasks=tasks), seed=seed)
    if name in ("omni_oracle", "omni_noisy"):
        moi = RuleInterestingness(("count",)) if name == "omni_oracle" else NoisyInterestingness()
        return OmniCurriculum(
            OmniConfig(tasks=tasks, moi="none", learned_threshold=learned_threshold),
            seed=seed,
            moi=moi,
        )
    raise ValueError(f"unknown curriculum {name!r}; valid: {', '.join(CURRICULA_COMPARED)}")


def run_bandit(name: str, cfg: BanditConfig, seed: int = 0) -> list[dict[str, float]]:
    """Train curriculum ``name`` on a fresh bandit; one row per batch with the learned counts."""
    bandit = TaskBandit(cfg, seed)
    cur = make_compared(name, bandit.tasks, seed, cfg.learned_threshold)
    rng = np.random.default_rng([seed, 11])
    rows: list[dict[str, float]] = []
    done = 0
    while done < cfg.episodes:
        n = min(cfg.batch, cfg.episodes - done)
        episodes = [
            Episode(env_id="bandit", task=t, seed=0, success=bandit.play(t, rng))
            for t in cur.sample(n)
        ]
        cur.update(episodes)
        done += n
        row: dict[str, float] = {"episodes": float(done)}
        for th in cfg.thresholds:
            skills, tasks = bandit.learned(th)
            row[f"skills@{th}"], row[f"tasks@{th}"] = float(skills), float(tasks)
        row["impossible_share"] = (
            float(
                sum(
                    bandit.plays[i]
                    for i, t in enumerate(bandit.tasks)
                    if str(t["skill"]).startswith("never")
                )
            )
            / done
        )
        rows.append(row)
    return rows


# --- privileged-action curriculum ----------------------------------------------------------

PRIVILEGE_MODES = ("none", "always", "curriculum")


@dataclass
class PrivilegeBanditConfig:
    """A long-horizon sparse-reward task with privileges, simulated.

    Success at privilege ``L`` is ``sigmoid((s + bonus[L] - difficulty) / width)`` for skill
    ``s``; a success teaches ``s += lr * (1 - p_L)`` (a policy-gradient step with a
    baseline: nothing more to learn where success is already certain), a failure teaches
    nothing (sparse reward). Evaluation is ``p_0``, at privilege 0.
    """

    bonus: tuple[float, ...] = (0.0, 4.0, 8.0)
    difficulty: float = 8.0
    width: float = 0.7
    lr: float = 0.5
    episodes: int = 3000
    batch: int = 20
    threshold: float = 0.8
    window: int = 40


def run_privileged(mode: str, cfg: PrivilegeBanditConfig, seed: int = 0) -> list[dict[str, float]]:
    """Train with privileges ``none`` (level 0 throughout), ``always`` (the top level) or
    ``curriculum`` (:class:`~agentrl.curricula.privileged.PrivilegedCurriculum`); one row per batch."""
    from agentrl.curricula.privileged import PrivilegedConfig, PrivilegedCurriculum

    if mode not in PRIVILEGE_MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(PRIVILEGE_MODES)}")
    top = len(cfg.bonus) - 1
    start = {"none": 0, "always": top, "curriculum": top}[mode]
    threshold = cfg.threshold if mode == "curriculum" else 1.1  # > 1: the level never drops
    cur = PrivilegedCurriculum(
        PrivilegedConfig(
            start_level=start,
            threshold=min(threshold, 1.0),
            window=cfg.window if mode == "curriculum" else 10**9,
        )
    )
    rng = np.random.default_rng([seed, 13])
    skill, done, rows = 0.0, 0, []

    def p(level: int) -> float:
        return 1.0 / (1.0 + math.exp(-(skill + cfg.bonus[level] - cfg.difficulty) / cfg.width))

    while done < cfg.episodes:
        episodes = []
        for task in cur.sample(cfg.batch):
            level = int(task["privilege"])
            prob = p(level)
            won = bool(rng.random() < prob)
            if won:
                skill += cfg.lr * (1.0 - prob)
            episodes.append(Episode(env_id="privileged", task=task, seed=0, success=won))
        cur.update(episodes)
        done += cfg.batch
        rows.append({"episodes": float(done), "level": float(cur.level), "success@0": p(0)})
    return rows


# --- xland: filtered task generation -----------------------------------------------------------


@dataclass
class XLandBanditConfig:
    """A procedural task space with one general skill ``g``, simulated.

    Task ``i`` of difficulty ``d_i`` succeeds with ``sigmoid((g - d_i) / width)``; a success
    teaches ``g += lr * (1 - p_i)`` (nothing from a failure or from a task already
    certain). Difficulties are uniform in ``difficulty``; ``held_out`` more tasks from the
    same range measure generalisation. The control policy is the untrained agent (``g = 0``).
    """

    tasks: int = 300
    held_out: int = 100
    difficulty: tuple[float, float] = (-2.0, 14.0)
    width: float = 1.0
    lr: float = 0.05
    episodes: int = 3000
    batch: int = 50


XLAND_MODES = ("uniform", "xland")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def run_xland(mode: str, cfg: XLandBanditConfig, seed: int = 0) -> list[dict[str, float]]:
    """Train with ``uniform`` or ``xland`` task sampling; rows with held-out percentiles."""
    from agentrl.curricula.xland import XLandConfig, XLandCurriculum

    if mode not in XLAND_MODES:
        raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(XLAND_MODES)}")
    rng = np.random.default_rng([seed, 17])
    d = rng.uniform(*cfg.difficulty, size=cfg.tasks)
    held = rng.uniform(*cfg.difficulty, size=cfg.held_out)
    tasks = [{"id": i} for i in range(cfg.tasks)]
    control = {f"id={i}": float(_sigmoid(-d[i] / cfg.width)) for i in range(cfg.tasks)}
    cur: Any = (
        UniformCurriculum(UniformConfig(tasks=tasks), seed=seed)
        if mode == "uniform"
        else XLandCurriculum(XLandConfig(tasks=tasks, control_success_by_task=control), seed=seed)
    )
    g, done, rows = 0.0, 0, []
    while done < cfg.episodes:
        episodes = []
        for task in cur.sample(cfg.batch):
            p = float(_sigmoid(np.array((g - d[task["id"]]) / cfg.width)))
            won = bool(rng.random() < p)
            if won:
                g += cfg.lr * (1.0 - p)
            episodes.append(Episode(env_id="xland", task=task, seed=0, success=won))
        cur.update(episodes)
        done += cfg.batch
        scores = _sigmoid((g - held) / cfg.width)
        rows.append(
            {
                "episodes": float(done),
                "skill": g,
                "held_out_mean": float(scores.mean()),
                "participation": float((scores > 0.05).mean()),
                "p10": float(np.percentile(scores, 10)),
                "p50": float(np.percentile(scores, 50)),
            }
        )
    return rows
