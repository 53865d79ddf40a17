"""ARMAP stage 4: planners guided by a reward model.

A *proposer* is any object with ``reset(task, rng)`` and ``act(observation) -> str`` (the
scripted policies of :mod:`agentrl.envs.scripted`, or :class:`PolicyProposer` around an LM
policy). A *scorer* maps finished episodes to scores (``reward.score`` of any registered
reward: ``learned_rm``, ``llm_judge``, ``env`` as an oracle, ...).

- :func:`best_of_n`: sample N trajectories, keep the best-scored one. Reports ``avg`` (the
  mean sample's success), ``max`` (oracle: did any sample succeed) and ``sel`` (the success
  of the reward model's pick).
- :func:`reflexion`: retry until the score passes ``threshold``; each retry of a proposer
  that reads text sees the earlier attempts and their scores as a reflection prefixed to
  the observation.
- :func:`mcts`: Monte-Carlo tree search over turns (UCT selection, proposer-sampled
  expansions, proposer rollouts, the reward model's score at the terminal state only) on
  envs that can be cloned (:meth:`TextEnv.clone`, a deep copy by default); returns
  the best-scored terminal trajectory found.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from agentrl.envs.base import TextEnv
from agentrl.types import Episode, TaskSpec, Turn

Scorer = Callable[[list[Episode]], list[float]]


class Proposer(Protocol):
    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None: ...

    def act(self, observation: str) -> str: ...


class PolicyProposer:
    """An LM :class:`~agentrl.policy.Policy` as a proposer (sampling with a seeded generator);
    it reads text, so run :func:`reflexion` with ``show_reflections=True`` for it."""

    def __init__(self, policy: Any, sampling: Any):
        self.policy, self.sampling = policy, sampling

    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None:
        import torch

        self.generator = torch.Generator().manual_seed(int(rng.integers(2**31 - 1)))

    def act(self, observation: str) -> str:
        return str(
            self.policy.generate_text([observation], self.sampling, generator=self.generator)[
                0
            ].text
        )


def select(scores: Sequence[float]) -> int:
    """The index of the best score (the first one on ties)."""
    if not scores:
        raise ValueError("select() needs at least one candidate")
    return int(np.argmax(np.asarray(scores, dtype=float)))


def clone_env(env: gym.Env[str, str]) -> gym.Env[str, str]:
    """An independent copy of ``env`` at its current state (for tree search): a
    :class:`~agentrl.envs.base.TextEnv`'s ``clone()``, else a deep copy."""
    base = env.unwrapped
    if isinstance(base, TextEnv):
        return base.clone()
    try:
        return copy.deepcopy(base)
    except Exception as e:  # anything a member's __deepcopy__ raises
        raise TypeError(
            f"MCTS needs a cloneable env: {type(base).__name__} cannot be deep-copied ({e})"
        ) from e


def _turn(obs: str, action: str, step: tuple[Any, ...]) -> Turn:
    next_obs, reward, terminated, truncated, info = step
    done = bool(terminated or truncated)
    return Turn(
        observation=obs,
        action=action,
        prompt_ids=[],
        action_ids=[],
        action_logprobs=[],
        reward=float(reward),
        terminated=bool(terminated),
        truncated=bool(truncated),
        next_observation="" if done else next_obs,
        info=dict(info),
    )


def _played_task(env: gym.Env[str, str], task: TaskSpec | None) -> TaskSpec:
    """The task the env is playing (a :class:`TextEnv` records it), else the one asked for."""
    base = env.unwrapped
    return dict(base.task) if isinstance(base, TextEnv) else dict(task or {})


def _finish(ep: Episode, env: gym.Env[str, str]) -> Episode:
    if ep.turns:
        last = ep.turns[-1]
        ep.success = bool(last.info.get("success", False))
        last.info["final_observation"] = str(env.unwrapped.render() or "")
    ep.env_reward = ep.total_reward
    return ep


def play(
    env: gym.Env[str, str],
    proposer: Proposer,
    episode: Episode,
    obs: str,
    rng: np.random.Generator,
    prefix: str = "",
    max_steps: int = 1000,
) -> Episode:
    """Continue ``episode`` from ``obs`` with ``proposer`` until the env ends it."""
    for _ in range(max_steps):
        action = proposer.act(prefix + obs)
        step = env.step(action)
        episode.turns.append(_turn(obs, action, step))
        obs = step[0]
        if step[2] or step[3]:
            return _finish(episode, env)
    raise RuntimeError(f"the episode did not end within {max_steps} steps")


def rollout(
    env: gym.Env[str, str],
    proposer: Proposer,
    seed: int,
    task: TaskSpec | None,
    rng: np.random.Generator,
    prefix: str = "",
) -> Episode:
    """One full episode from ``reset(seed, task)``."""
    obs, _ = env.reset(seed=seed, options={"task": dict(task)} if task else None)
    played = _played_task(env, task)
    proposer.reset(played, rng)
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    return play(env, proposer, Episode(env_id=env_id, task=played, seed=seed), obs, rng, prefix)


# --- Best-of-N -------------------------------------------------------------------------------


def best_of_n_report(
    successes: Sequence[bool], scores: Sequence[float], ns: Sequence[int]
) -> dict[int, dict[str, float]]:
    """avg / max / sel of the first ``n`` candidates, for each ``n`` in ``ns``."""
    out = {}
    for n in ns:
        s, r = list(successes[:n]), list(scores[:n])
        if len(s) < n:
            raise ValueError(f"need {n} candidates, have {len(s)}")
        out[n] = {"avg": float(np.mean(s)), "max": float(max(s)), "sel": float(s[select(r)])}
    return out


def best_of_n(
    env: gym.Env[str, str],
    proposer: Proposer,
    score: Scorer,
    seed: int,
    task: TaskSpec | None,
    n: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Sample ``n`` trajectories for one task and pick the best-scored one."""
    candidates = [rollout(env, proposer, seed, task, rng) for _ in range(n)]
    scores = [float(x) for x in score(candidates)]
    pick = select(scores)
    return {"candidates": candidates, "scores": scores, "pick": pick, "episode": candidates[pick]}


# --- Reflexion -------------------------------------------------------------------------------


def reflection_text(attempt: int, response: str, score: float) -> str:
    lines = " | ".join(ln.strip() for ln in response.splitlines() if ln.strip())
    return f"Reflection {attempt}: the attempt [{lines}] scored {score:.2f}, so it probably fails; try different steps.\n"


def reflexion(
    env: gym.Env[str, str],
    proposer: Proposer,
    score: Scorer,
    seed: int,
    task: TaskSpec | None,
    rng: np.random.Generator,
    max_attempts: int = 5,
    threshold: float = 0.5,
    show_reflections: bool = False,
) -> dict[str, Any]:
    """Retry with reflections until ``score >= threshold`` (or ``max_attempts``); returns the best attempt.

    With ``show_reflections`` (for proposers that read text: :class:`PolicyProposer`) the
    reflections on the earlier attempts are prefixed to each observation; without it
    (scripted players, which parse the observation) each retry only gets fresh randomness.
    """
    from ..trajectory import intent_and_response

    attempts: list[Episode] = []
    scores: list[float] = []
    reflections = ""
    for k in range(max_attempts):
        ep = rollout(env, proposer, seed, task, rng, prefix=reflections if show_reflections else "")
        s = float(score([ep])[0])
        attempts.append(ep)
        scores.append(s)
        if s >= threshold:
            break
        reflections += reflection_text(k + 1, intent_and_response(ep, env)[1], s)
    pick = select(scores)
    return {
        "candidates": attempts,
        "scores": scores,
        "pick": pick,
        "episode": attempts[pick],
        "attempts": len(attempts),
    }


# --- MCTS --------------------------------------------------------------------------------------


@dataclass
class _Node:
    env: gym.Env[str, str]
    obs: str
    turns: list[Turn]
    done: bool
    parent: _Node | None = None
    children: dict[str, _Node] = field(default_factory=dict)
    visits: int = 0
    value: float = 0.0

    def uct_child(self, c: float) -> _Node:
        log_n = math.log(max(self.visits, 1))
        return max(
            self.children.values(),
            key=lambda ch: ch.value / max(ch.visits, 1) + c * math.sqrt(log_n / max(ch.visits, 1)),
        )


def mcts(
    env: gym.Env[str, str],
    proposer: Proposer,
    score: Scorer,
    seed: int,
    task: TaskSpec | None,
    rng: np.random.Generator,
    simulations: int = 30,
    expansions: int = 4,
    c: float = 1.0,
) -> dict[str, Any]:
    """UCT search over turns with proposer-sampled actions.

    Every simulation walks down by UCT; a node visited ``v`` times may grow up to
    ``expansions * sqrt(v + 1)`` children (progressive widening), and the walk stops at the
    first node that grows one: a cloned env takes the new action's step. The proposer then
    rolls out to the end, the terminal trajectory is scored (the only reward), and the score
    is backed up the path. Returns the best-scored terminal trajectory seen.
    """
    obs, _ = env.reset(seed=seed, options={"task": dict(task)} if task else None)
    played = _played_task(env, task)
    proposer.reset(played, rng)
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    root = _Node(env=clone_env(env), obs=obs, turns=[], done=False)
    seen: list[Episode] = []
    seen_scores: list[float] = []

    def new_action(node: _Node) -> str | None:
        for _ in range(4):  # a few draws to find an action this node has not tried
            a = proposer.act(node.obs)
            if a not in node.children:
                return a
        return None

    for _ in range(simulations):
        node = root
        while not node.done:
            # progressive widening: a node visited v times may have expansions * sqrt(v + 1) children
            if len(node.children) < max(1, int(expansions * math.sqrt(node.visits + 1))):
                action = new_action(node)
                if action is not None:
                    child_env = clone_env(node.env)
                    step = child_env.step(action)
                    child = _Node(
                        env=child_env,
                        obs=step[0],
                        turns=[*node.turns, _turn(node.obs, action, step)],
                        done=bool(step[2] or step[3]),
                        parent=node,
                    )
                    node.children[action] = child
                    node = child
                    break
            if not node.children:
                break
            node = node.uct_child(c)
        sim_env = clone_env(node.env)
        ep = Episode(env_id=env_id, task=played, seed=seed, turns=copy.deepcopy(node.turns))
        ep = _finish(ep, sim_env) if node.done else play(sim_env, proposer, ep, node.obs, rng)
        value = float(score([ep])[0])
        seen.append(ep)
        seen_scores.append(value)
        back: _Node | None = node
        while back is not None:
            back.visits += 1
            back.value += value
            back = back.parent
    pick = select(seen_scores)
    return {
        "candidates": seen,
        "scores": seen_scores,
        "pick": pick,
        "episode": seen[pick],
        "root_visits": root.visits,
    }
