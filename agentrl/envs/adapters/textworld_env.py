"""TextWorld games, generated locally from a seed, as an agentrl text env.

Needs ``pip install 'agentrl[textworld]'``. A task is ``{"game_seed": s}``; the game is
made once with TextWorld's own generator (``textworld.make``, what ``tw-make`` runs) with
``nb_rooms`` / ``nb_objects`` / ``quest_length`` and seed ``s``, cached as a ``.z8`` file
(plus TextWorld's ``.json``) under ``games_dir``, and played by TextWorld's engine.

Observation: on reset the game's objective and the room description; after each command
the game's feedback. With ``show_commands`` (default) every observation ends with
``"Admissible commands: a, b, ..."`` (TextWorld's own list), as ALFWorld-style agents use.
Text is kept printable and cut to 4,000 characters.

Reward: the game's score change (the game scores the quest); terminated when the game is
won or lost; ``info["success"]`` when won, ``info["score"]``/``info["max_score"]`` as the
game reports them. A command outside the admissible list is an invalid action: the game
still answers it (usually "You can't see any such thing."), the reward is
``invalid_penalty`` (0.0 by default) and ``info["invalid_action"]`` is set. Truncated after
``max_turns`` (50). Reset info carries the game's ``walkthrough`` (for scripted baselines).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from agentrl.envs.adapters import require
from agentrl.envs.base import PRINTABLE, TextEnv

MAX_OBS = 4000


def clean(text: str, limit: int = MAX_OBS) -> str:
    """Printable characters only, trimmed, at most ``limit`` characters (the tail is kept)."""
    text = "".join(ch for ch in text if ch in PRINTABLE).strip()
    return text if len(text) <= limit else "[...]\n" + text[-(limit - 6) :]


def default_games_dir() -> Path:
    return Path(
        os.environ.get("AGENTRL_TEXTWORLD_GAMES", Path(tempfile.gettempdir()) / "agentrl-textworld")
    )


def make_game(
    seed: int, nb_rooms: int, nb_objects: int, quest_length: int, games_dir: Path
) -> Path:
    """The ``.z8`` file of the game for these options, generated on first use."""
    textworld = require("textworld", "textworld")
    games_dir.mkdir(parents=True, exist_ok=True)
    path = games_dir / f"tw_r{nb_rooms}_o{nb_objects}_q{quest_length}_s{seed}.z8"
    if path.exists() and path.with_suffix(".json").exists():
        return path
    tmp_dir = Path(tempfile.mkdtemp(dir=games_dir))  # generate aside, then move in place
    opts = textworld.GameOptions()
    opts.seeds = int(seed)
    opts.nb_rooms, opts.nb_objects, opts.quest_length = nb_rooms, nb_objects, quest_length
    opts.path = str(tmp_dir / path.name)
    opts.file_ext = ".z8"
    made, _ = textworld.make(opts)
    os.replace(Path(made).with_suffix(".json"), path.with_suffix(".json"))
    os.replace(made, path)
    shutil.rmtree(tmp_dir, ignore_errors=True)
    return path


class TextWorldEnv(TextEnv):
    """A TextWorld game per task seed (rules in the module docstring).

    Args:
        nb_rooms, nb_objects, quest_length: TextWorld generator options (2, 3, 2).
        num_games: the default task distribution is uniform over game seeds
            ``0..num_games-1`` (4).
        max_turns: turn limit (50).
        show_commands: append the admissible commands to every observation (True).
        invalid_penalty: reward of a command outside the admissible list (0.0).
        games_dir: where generated games are cached (default: a folder in the temp dir,
            or ``$AGENTRL_TEXTWORLD_GAMES``).
    """

    def __init__(
        self,
        nb_rooms: int = 2,
        nb_objects: int = 3,
        quest_length: int = 2,
        num_games: int = 4,
        max_turns: int = 50,
        show_commands: bool = True,
        invalid_penalty: float = 0.0,
        games_dir: str | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        self._tw = require("textworld", "textworld")
        self.options = (int(nb_rooms), int(nb_objects), int(quest_length))
        self.num_games = int(num_games)
        self.max_turns = max_turns
        self.show_commands = show_commands
        self.invalid_penalty = float(invalid_penalty)
        self.games_dir = Path(games_dir) if games_dir else default_games_dir()
        self._game: Any = None
        self._state: Any = None
        self._score = 0

    def sample_task(self) -> dict[str, Any]:
        return {"game_seed": int(self.np_random.integers(self.num_games))}

    def _render(self, text: str) -> str:
        if self.show_commands and self._state is not None:
            text += "\n\nAdmissible commands: " + ", ".join(self._state.admissible_commands or [])
        return clean(text) + "\n"

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if "game_seed" not in task:
            raise ValueError(f"a TextWorld task needs 'game_seed', got {task}")
        path = make_game(int(task["game_seed"]), *self.options, self.games_dir)
        if self._game is not None:
            self._game.close()
        infos = self._tw.EnvInfos(
            admissible_commands=True, policy_commands=True, max_score=True, won=True,
            lost=True, objective=True, description=True, score=True,
        )  # fmt: skip
        with warnings.catch_warnings():
            # jericho warns that it cannot track the score of TextWorld's games itself;
            # TextWorld reports the score, so the warning is noise here
            warnings.filterwarnings("ignore", message=".*not fully supported.*")
            self._game = self._tw.start(str(path), request_infos=infos)
            self._state = self._game.reset()
        self._score = 0
        walkthrough = list(self._state.policy_commands or [])
        obs = f"{self._state.objective}\n\n{self._state.description}"
        info = {"walkthrough": walkthrough, "max_score": self._state.max_score, "score": 0}
        return self._render(obs), info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        # letters, digits, spaces, - and ' only: the interpreter treats e.g. "\\" as escapes
        command = " ".join(re.sub(r"[^a-z0-9' -]", " ", action[:180].lower()).split())
        admissible = {c.lower() for c in (self._state.admissible_commands or [])}
        invalid = command not in admissible
        self._state, _, done = self._game.step(command)
        score = int(self._state.score or 0)
        reward = float(score - self._score) + (self.invalid_penalty if invalid else 0.0)
        self._score = score
        won = bool(self._state.won)
        info = {
            "success": won,
            "invalid_action": invalid,
            "score": score,
            "max_score": self._state.max_score,
        }
        return (
            self._render(self._state.feedback or ""),
            reward,
            bool(done or won or self._state.lost),
            info,
        )

    def close(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None
