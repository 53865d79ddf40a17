"""Turning episodes into the (intent, response) texts that reward models judge.

An env can say how (:class:`~agentrl.envs.base.TextEnv`'s optional hooks, on
``env.unwrapped``; Game of 24 has them all):

- ``intent(task)``: the task instruction (``None``, the default: the episode's first
  observation).
- ``response_text(episode)``: what the agent produced (``None``, the default: the final
  observation after the first one's text -- as recorded in
  ``turns[-1].info["final_observation"]``, or rebuilt by replaying the actions from
  ``reset(seed, task)``).
- :class:`~agentrl.envs.base.ScoresResponses` (a mixin): the env's own scorer, corruptions
  and reference responses, from which ARMAP's synthesize stage makes its pairs.
- ``clone()``: tree search (MCTS); the default deep-copies the env.

The hooks belong to an env instance, so they may depend on its kwargs (Game of 24's
``hide_results`` makes the response the plan without its results): every stage that makes
an env for its hooks (:func:`env_for`) takes the same ``env_kwargs``.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym

from agentrl.envs.base import TextEnv
from agentrl.types import Episode, TaskSpec


@functools.lru_cache(maxsize=16)
def env_for(env_id: str, kwargs_json: str = "{}") -> gym.Env[str, str]:
    """An (unwrapped) env instance used only for its hooks, cached per id and kwargs."""
    import json

    from agentrl.rollouts.worker import make_env

    return make_env(env_id, json.loads(kwargs_json)).unwrapped


def text_env(env: gym.Env[str, str] | None) -> TextEnv | None:
    """The :class:`TextEnv` under ``env``'s wrappers, whose hooks say how to read its
    episodes; ``None`` for no env or another kind of env (the defaults apply)."""
    base = env.unwrapped if env is not None else None
    return base if isinstance(base, TextEnv) else None


def episode_intent(episode: Episode, env: gym.Env[str, str] | None = None) -> str:
    hooks = text_env(env)
    text = hooks.intent(episode.task) if hooks is not None else None
    if text is not None:
        return str(text)
    return episode.turns[0].observation.strip() if episode.turns else ""


def episode_response(episode: Episode, env: gym.Env[str, str] | None = None) -> str:
    hooks = text_env(env)
    text = hooks.response_text(episode) if hooks is not None else None
    if text is not None:
        return str(text)
    if not episode.turns:
        return ""
    first, last = episode.turns[0].observation, episode.turns[-1]
    final = last.info.get("final_observation")
    if not (isinstance(final, str) and final) and env is not None:
        final = replay_final_observation(episode, env)
    text = final if isinstance(final, str) and final else f"{last.observation}> {last.action}\n"
    return text[len(first) :] if text.startswith(first) else text


def replay_final_observation(episode: Episode, env: gym.Env[str, str]) -> str | None:
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
    episode: Episode,
    env: gym.Env[str, str] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """``(intent, response)`` of an episode, using ``env``'s hooks where it has them.

    Without ``env``, one is made from the episode's id and ``env_kwargs`` (which should be
    the kwargs the episode was played with, for the replay of the final observation).
    """
    if env is None:
        import json

        env = env_for(episode.env_id, json.dumps(env_kwargs or {}, sort_keys=True))
    return episode_intent(episode, env), episode_response(episode, env)


def task_intent(env: gym.Env[str, str] | None, task: TaskSpec, first_observation: str) -> str:
    hooks = text_env(env)
    text = hooks.intent(task) if hooks is not None else None
    return str(text) if text is not None else first_observation.strip()
