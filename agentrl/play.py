"""One play loop for every place that plays a policy without training it.

A training run's evaluation (:meth:`agentrl.trainer.Trainer.evaluate`), a checkpoint's
evaluation (``agentrl eval``, :func:`agentrl.evaluate.evaluate_checkpoint`), a lifelong
scenario's test blocks (:func:`agentrl.lifelong.scenario.evaluate_policy`) and ARMAP's
collection with a checkpoint's policy (:func:`agentrl.rewards.armap.collect.collect_with_policy`)
all call :func:`play`, so they agree on what a decoding mode is and which seed it draws with:

- ``greedy``: argmax decoding, sampling generator seeded with ``seed``;
- ``sampled``: the sampling settings (temperature, top-k, stop strings, constraint), or the
  algorithm's own acting rule when it has one (CHAI's critic-ranked choice), seeded with
  ``seed + 1``.

Episode ``j`` plays env seed ``episode_seed + j`` in every mode, so both modes meet the same
tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from agentrl.types import Episode

if TYPE_CHECKING:
    from agentrl.algorithm import AlgorithmBase
    from agentrl.policy import SamplingConfig
    from agentrl.progress import Progress
    from agentrl.rollouts.worker import ActFn, EpisodeJob

Mode = Literal["greedy", "sampled"]
MODES: tuple[Mode, ...] = ("greedy", "sampled")
METRIC_PREFIX: dict[Mode, str] = {"greedy": "eval", "sampled": "eval_sample"}


class Collector(Protocol):
    """What :func:`play` needs: a worker, an inline group or a Ray group of workers."""

    def collect(
        self,
        jobs: Sequence[EpisodeJob],
        rng_seed: int,
        greedy: bool = False,
        act: ActFn | None = None,
        on_episode: Callable[[], None] | None = None,
    ) -> list[Episode]: ...


def episode_jobs(
    episodes: int, episode_seed: int, tasks: Sequence[Mapping[str, Any]] | None = None
) -> list[EpisodeJob]:
    """``episodes`` jobs on env seeds ``episode_seed, episode_seed + 1, ...``; with ``tasks``,
    job ``j`` plays task ``tasks[j % len(tasks)]``."""
    from agentrl.rollouts.worker import EpisodeJob

    return [
        EpisodeJob(j, episode_seed + j, dict(tasks[j % len(tasks)]) if tasks else {})
        for j in range(episodes)
    ]


def acting_rule(algorithm: AlgorithmBase, sampling: SamplingConfig) -> ActFn | None:
    """The algorithm's own acting rule for the sampled mode (CHAI's critic-ranked choice,
    RLTF's candidate choice), or ``None`` when it samples the policy."""
    if not algorithm.has_acting_rule:
        return None
    return lambda states, prompts: algorithm.act(states, prompts, sampling)


def play(
    collector: Collector,
    jobs: Sequence[EpisodeJob],
    seed: int,
    modes: Sequence[Mode] = MODES,
    act: ActFn | None = None,
    progress: Progress | None = None,
) -> dict[Mode, list[Episode]]:
    """Play ``jobs`` once per decoding mode; returns the episodes per mode, in job order.

    Args:
        collector: who plays (a worker, an inline group or a Ray group).
        jobs: the episodes to play (:func:`episode_jobs`).
        seed: the greedy mode's sampling seed; the sampled mode draws with ``seed + 1``.
        modes: a subset of ``("greedy", "sampled")``.
        act: the algorithm's acting rule for the sampled mode, or ``None`` for sampling.
        progress: draws an ``evaluating (<mode>)`` bar per mode (episodes done, ETA).
    """
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"unknown decoding mode(s) {unknown}: choose from {list(MODES)}")
    out: dict[Mode, list[Episode]] = {}
    for mode in modes:
        greedy = mode == "greedy"
        if progress is None:
            out[mode] = collector.collect(
                jobs, rng_seed=seed if greedy else seed + 1, greedy=greedy, act=None if greedy else act
            )
            continue
        with progress.phase(f"evaluating ({mode})", len(jobs), "episode") as bar:
            out[mode] = collector.collect(
                jobs,
                rng_seed=seed if greedy else seed + 1,
                greedy=greedy,
                act=None if greedy else act,
                on_episode=bar.advance,
            )
    return out


def action_key(action: str) -> str:
    """The form in which two actions count as the same: case and whitespace ignored."""
    return " ".join(action.split()).casefold()


def repeated_turns(episode: Episode) -> list[bool]:
    """Per turn of ``episode``: whether its action repeats an earlier action of the same
    episode (:func:`action_key`). In a deterministic env a repeated question learns nothing."""
    seen: set[str] = set()
    out = []
    for turn in episode.turns:
        key = action_key(turn.action)
        out.append(key in seen)
        seen.add(key)
    return out


def episode_stats(prefix: str, episodes: Sequence[Episode]) -> dict[str, float]:
    """Mean return, success, turns, invalid-action rate and repeat rate (the fraction of
    turns whose action repeats an earlier one of its episode, :func:`repeated_turns`), and
    the error count, as ``{prefix}/...`` metrics (empty for no episodes)."""
    if not episodes:
        return {}
    n = len(episodes)
    turns = sum(e.num_turns for e in episodes)
    repeats = sum(sum(repeated_turns(e)) for e in episodes)
    return {
        f"{prefix}/return": sum(e.env_reward for e in episodes) / n,
        f"{prefix}/success": sum(e.success for e in episodes) / n,
        f"{prefix}/turns": turns / n,
        f"{prefix}/errors": float(sum(e.error is not None for e in episodes)),
        f"{prefix}/invalid_actions": sum(
            sum(bool(t.info.get("invalid_action")) for t in e.turns) for e in episodes
        )
        / max(turns, 1),
        f"{prefix}/repeat_rate": repeats / max(turns, 1),
    }


def mode_stats(played: Mapping[Mode, Sequence[Episode]]) -> dict[str, float]:
    """:func:`episode_stats` of every mode under its metric prefix (``eval/``, ``eval_sample/``)."""
    out: dict[str, float] = {}
    for mode, eps in played.items():
        out.update(episode_stats(METRIC_PREFIX[mode], eps))
    return out


__all__ = [
    "acting_rule",
    "action_key",
    "METRIC_PREFIX",
    "MODES",
    "Collector",
    "Mode",
    "episode_jobs",
    "episode_stats",
    "mode_stats",
    "play",
    "repeated_turns",
]
