"""TextArena single-player games as agentrl text envs.

Needs ``pip install 'agentrl[textarena]'``. Wraps the offline single-player games of
:data:`~agentrl.envs.adapters.TEXTARENA_GAMES` (``game="Sokoban-v0"`` etc.; TextArena's
``-raw`` variant, so agentrl, not TextArena, formats the observation). Not wrapped:
TextArena's Wordle and Hangman (they download nltk corpora) and TwentyQuestions (it calls a
remote LLM); agentrl's own ``agentrl/Wordle-v0`` and ``agentrl/TwentyQuestions-v0`` run
offline.

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
``max_turns`` (200; the games end themselves earlier).
"""

from __future__ import annotations

from typing import Any

from agentrl.envs.adapters import TEXTARENA_GAMES, require
from agentrl.envs.base import PRINTABLE, TextEnv

MAX_OBS = 4000
_REPLACE = {"√": "*", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"}


def clean(text: str) -> str:
    """Map a few non-ASCII symbols, then drop anything else outside the printable set."""
    text = "".join(_REPLACE.get(ch, ch) for ch in text)
    return "".join(ch for ch in text if ch in PRINTABLE)


class TextArenaEnv(TextEnv):
    """One TextArena single-player game (rules in the module docstring).

    Args:
        game: ``"<Name>-v0"`` with a name of ``TEXTARENA_GAMES`` (or one of TextArena's
            variants of them, e.g. ``"TowerOfHanoi-v0-medium"``).
        max_turns: turn limit (200).
        invalid_penalty: added to the reward of an invalid move (0.0).

    Task spec: ``{"game_seed": int}`` (passed to TextArena's ``reset``).
    """

    def __init__(
        self,
        game: str = "GuessTheNumber-v0",
        max_turns: int = 200,
        invalid_penalty: float = 0.0,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if game.split("-")[0] not in TEXTARENA_GAMES:
            raise ValueError(
                f"unsupported TextArena game {game!r}; offline single-player games: "
                f"{[g + '-v0' for g in TEXTARENA_GAMES]}"
            )
        ta = require("textarena", "textarena")
        self.game = game
        self._env = ta.make(game if game.endswith("-raw") else f"{game}-raw")
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
            sender, text = int(message[0]), clean(str(message[1])).strip()
            kind = getattr(message[2], "name", "") if len(message) > 2 else ""
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
            final = float((rewards or {}).get(0, 0.0))
            details = (game_info or {}).get(0, {})
            reason = clean(str(details.get("reason", "")))
            invalid = invalid or bool(details.get("invalid_move", False))
            info.update(success=final >= 1.0, reason=reason, invalid_action=invalid)
            reward += final
            if reason:
                self._messages.append(f"[GAME] {reason}")
        return self._render(), reward, bool(done), info
