"""Playing a transcript env as a conversation.

Two kinds of text env exist:

- **conversational** envs return, at every step, only the env's *new* message (an answer,
  a tool result); the agent keeps the conversation. A :class:`~agentrl.envs.base.TextEnv`
  declares it with ``conversational = True``.
- **transcript** envs return the whole state at every step (every built-in env, TextArena's
  raw games, most text games). The agent can play them as they are (each turn is then a
  fresh one-message conversation), or, when the env also reports its new message, as a
  conversation through :class:`MessageView`.

A transcript env supports conversations by adding two documented info keys:

- ``info["instructions"]`` from ``reset``: the game, the goal and the action format in plain
  words; the conversation's first message is these instructions, a blank line, and the first
  observation (a transcript run never shows them, so scripted players and models trained on
  transcripts see exactly what they saw before);
- ``info["message"]`` from every ``step``: what the env says back this turn (e.g.
  ``"No."``), the conversation's next message. ``info["role"]`` may be ``"tool"`` for a tool
  result (default ``"user"``).

``agentrl train env.conversation=true`` (or ``make_env(..., conversation=True)``) wraps the env
in :class:`MessageView`; ``agentrl check-env --conversation`` checks the keys.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

INSTRUCTIONS_KEY = "instructions"
MESSAGE_KEY = "message"
ROLE_KEY = "role"


class MessageView(gym.Wrapper):
    """A transcript env seen as a conversation: ``step`` returns ``info["message"]``.

    ``transcript`` keeps the wrapped env's latest whole observation (the state a scripted
    player or a text critic reads). A step whose info lacks ``"message"`` raises a
    ``KeyError`` that names the env and the key.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.transcript = ""

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.transcript = str(obs)
        instructions = info.get(INSTRUCTIONS_KEY)
        first = f"{instructions}\n\n{obs}" if instructions else str(obs)
        return first, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.transcript = str(obs)
        if MESSAGE_KEY not in info:
            name = (
                self.env.spec.id if self.env.spec is not None else type(self.env.unwrapped).__name__
            )
            raise KeyError(
                f"{name} returned no info['{MESSAGE_KEY}'] from step(): it cannot be played as a "
                "conversation (env.conversation=true); add the key (docs/conversations.md) or "
                "run it as a transcript env (env.conversation=false)"
            )
        return str(info[MESSAGE_KEY]), float(reward), terminated, truncated, info


__all__ = ["INSTRUCTIONS_KEY", "MESSAGE_KEY", "MessageView", "ROLE_KEY"]
