"""TextArena single-player games as agentrl text envs.

Needs ``pip install 'agentrl[textarena]'``. Wraps any single-player game of TextArena's
registry that runs offline (``game="Sokoban-v0"``, ``"Bandit-v0"``, variants such as
``"TowerOfHanoi-v0-medium"``), played through TextArena's ``-raw`` variant so that agentrl,
not TextArena, formats the observation. The game is checked when the env is made, with the
network switched off (:mod:`agentrl.envs.adapters.textarena_games`): an unknown id, a
multi-player game, or one that fails offline (TextArena's Wordle and Hangman download nltk
corpora, its TwentyQuestions calls a remote LLM) raises
:class:`~agentrl.envs.adapters.textarena_games.TextArenaGameError` naming the game and the
reason. The five games of :data:`~agentrl.envs.adapters.TEXTARENA_GAMES` have their own ids
(``agentrl/TextArena-<Game>-v0``) and scripted policies; ``agentrl/TextArena-v0`` takes any
other game as ``game=``. agentrl's own ``agentrl/Wordle-v0`` and ``agentrl/TwentyQuestions-v0``
run offline.

Observation: the game's transcript, one message per line block: ``"[GAME] <text>"`` for the
game, ``"[Player] <action>"`` for the agent's moves (the prompt with the rules first).
Long transcripts keep the prompt and the most recent messages (4,000 characters in all);
characters outside the printable set are replaced (Sokoban's box-on-goal ``√`` -> ``*``).

Actions: the text is passed to the game as is; the games read the move in square
brackets (``"[up]"``, ``"[A C]"``, ``"[2 1 4 5]"``, ``"[12]"``). Reward: the game's own
reward when it ends (1 for a win; otherwise 0 or the partial credit in ``[0, 1)`` that some
games give, e.g. for a close final guess), 0 before; terminated when the game says it is
over, ``info["success"]`` when that reward is 1 (a win), ``info["reason"]`` the game's
explanation. Invalid moves follow TextArena's rule:
the first gets a warning and a retry, the next one ends the game without reward; each sets
``info["invalid_action"]`` and adds ``invalid_penalty`` (0.0 by default). Truncated after
``max_turns`` (200; most games end themselves earlier).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

from agentrl.envs.adapters.textarena_games import ArenaGame, final_reward, open_game
from agentrl.envs.base import PRINTABLE, TextEnv

MAX_OBS = 4000
_REPLACE = {"√": "*", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"}


def message_parts(message: Sequence[object]) -> tuple[int, str, str]:
    """``(sender, text, kind)`` of a TextArena message ``(sender, text, ObservationType)``.

    Each part is found by its type (sender an int, text a str, kind the enum's name; -1, ""
    and "" when missing): a few games (Countdown, Cryptarithm and Slitherlink in textarena
    0.7.4) log the player's move with the three parts in another order.
    """
    kind = next((m.name for m in message if isinstance(m, Enum)), "")
    text = next((m for m in message if isinstance(m, str)), "")
    ints = (m for m in message if isinstance(m, int) and not isinstance(m, (bool, Enum)))
    return next(ints, -1), text, kind


def clean(text: str) -> str:
    """Map a few non-ASCII symbols, then drop anything else outside the printable set."""
    text = "".join(_REPLACE.get(ch, ch) for ch in text)
    return "".join(ch for ch in text if ch in PRINTABLE)


class TextArenaEnv(TextEnv):
    """One TextArena single-player game (rules in the module docstring).

    Args:
        game: a single-player id of TextArena's registry (``"Sokoban-v0"``,
            ``"TowerOfHanoi-v0-medium"``; a trailing ``-raw`` is accepted).
        max_turns: turn limit (200).
        invalid_penalty: added to the reward of an invalid move (0.0).
        allow_network: check the game with the network on (False: a game that tries to
            connect anywhere while it is made, reset or played once is refused).

    Raises:
        TextArenaGameError: ``game`` is unknown, multi-player, or fails offline.

    Task spec: ``{"game_seed": int}`` (passed to TextArena's ``reset``).
    """

    def __init__(
        self,
        game: str = "GuessTheNumber-v0",
        max_turns: int = 200,
        invalid_penalty: float = 0.0,
        allow_network: bool = False,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        self.game = game.removesuffix("-raw")
        self._env: ArenaGame = open_game(game, allow_network=allow_network)
        self.max_turns = max_turns
        self.invalid_penalty = float(invalid_penalty)
        self._prompt = ""
        self._messages: list[str] = []

    def sample_task(self) -> dict[str, Any]:
        return {"game_seed": int(self.np_random.integers(2**31))}

    def _pull(self) -> list[tuple[int, str]]:
        _, messages = self._env.get_observation()
        out = []
        for message in messages or []:
            sender, raw, kind = message_parts(message)
            text = clean(raw).strip()
            is_player = sender >= 0 or kind == "PLAYER_ACTION"  # some games log moves as -1
            out.append((0 if is_player else -1, text))
            self._messages.append(f"[{'Player' if is_player else 'GAME'}] {text}")
        return out

    def _render(self) -> str:
        text = "\n".join(self._messages) + "\n"
        if len(text) <= MAX_OBS:
            return text
        tail = text[-(MAX_OBS - min(len(self._prompt), MAX_OBS // 2) - 8) :]
        return self._prompt[: MAX_OBS // 2] + "\n[...]\n" + tail

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if "game_seed" not in task:
            raise ValueError(f"a TextArena task needs 'game_seed', got {task}")
        self._env.reset(num_players=1, seed=int(task["game_seed"]))
        self._messages = []
        self._pull()
        self._prompt = self._messages[0] if self._messages else ""
        return self._render(), {"game": self.game}

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        done, _ = self._env.step(action=clean(action)[:500])
        new = self._pull()
        invalid = any(s < 0 and "invalid move" in t.lower() for s, t in new)
        info: dict[str, Any] = {"invalid_action": invalid, "success": False}
        reward = self.invalid_penalty if invalid else 0.0
        if done:
            rewards, game_info = self._env.close()
            final = final_reward(self.game, rewards)
            details = (game_info or {}).get(0, {})
            reason = clean(str(details.get("reason", "")))
            invalid = invalid or bool(details.get("invalid_move", False))
            info.update(success=final >= 1.0, reason=reason, invalid_action=invalid)
            reward += final
            if reason:
                self._messages.append(f"[GAME] {reason}")
        return self._render(), reward, bool(done), info
