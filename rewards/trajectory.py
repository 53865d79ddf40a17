"""Turning episodes into the (intent, response) texts that reward models judge.

An env may provide ARMAP hooks (duck-typed on ``env.unwrapped``; Game of 24 has them all):

- ``intent(task) -> str``: the task instruction (default: the episode's first observation).
- ``response_text(episode) -> str``: what the agent produced (default: the final
  observation after the first one's text -- as recorded in
  ``turns[-1].info["final_observation"]``, or rebuilt by replaying the actions from
  ``reset(seed, task)``).
- ``score_response(task, response) -> float``: the env's own scorer of a response.
- ``corrupt_response(task, response, rng) -> str``: a wrong variant of a good response.
- ``reference_response(task) -> str | None``: a known-good response.
- ``clone()`` or ``get_state()/set_state(state)``: tree search (MCTS).

The hooks belong to an env instance, so they may depend on its kwargs (Game of 24's
``hide_results`` makes the response the plan without its results): every stage that makes
an env for its hooks (:func:`env_for`) takes the same ``env_kwargs``.
"""

from __future__ import annotations

import functools
from typing import Any

from agentrl.types import Episode, TaskSpec


@functools.lru_cache(maxsize=16)
def env_for(env_id: str, kwargs_json: str = "{}") -> Any:
    """An (unwrapped) env instance used only for its hooks, cached per id and kwargs."""
    import json

    from agentrl.rollouts.worker import make_env

    return make_env(env_id, json.loads(kwargs_json)).unwrapped


def hook(env: Any, name: str) -> Any:
    """The env's hook ``name`` or ``None``."""
    return getattr(getattr(env, "unwrapped", env), name, None)


def episode_intent(episode: Episode, env: Any = None) -> str:
    fn = hook(env, "intent") if env is not None else None
    if fn is not None:
        return str(fn(episode.task))
    return episode.turns[0].observation.strip() if episode.turns else ""


def episode_response(episode: Episode, env: Any = None) -> str:
    fn = hook(env, "response_text") if env is not None else None
    if fn is not None:
        return str(fn(episode))
    if not episode.turns:
        return ""
    first, last = episode.turns[0].observation, episode.turns[-1]
    final = last.info.get("final_observation")
    if not (isinstance(final, str) and final) and env is not None:
        final = replay_final_observation(episode, env)
    text = final if isinstance(final, str) and final else f"{last.observation}> {last.action}\n"
    return text[len(first) :] if text.startswith(first) else text


def replay_final_observation(episode: Episode, env: Any) -> str | None:
    """The observation after the last turn, rebuilt by replaying the episode's actions from
    ``reset(seed, task)`` (rollout workers do not keep it); ``None`` if the replay fails."""
    try:
        obs, _ = env.reset(
            seed=episode.seed, options={"task": dict(episode.task)} if episode.task else None
        )
        for turn in episode.turns:
            obs, _r, terminated, truncated, _info = env.step(turn.action)
            if terminated or truncated:
                break
        return str(env.render() or obs)
    except Exception:
        return None


def intent_and_response(
    episode: Episode, env: Any = None, env_kwargs: dict[str, Any] | None = None
) -> tuple[str, str]:
    """``(intent, response)`` of an episode, using ``env``'s hooks where it has them.

    Without ``env``, one is made from the episode's id and ``env_kwargs`` (which should be
    the kwargs the episode was played with, for the replay of the final observation).
    """
    if env is None:
        import json

        env = env_for(episode.env_id, json.dumps(env_kwargs or {}, sort_keys=True))
    return episode_intent(episode, env), episode_response(episode, env)


def task_intent(env: Any, task: TaskSpec, first_observation: str) -> str:
    fn = hook(env, "intent")
    return str(fn(task)) if fn is not None else first_observation.strip()
