"""TextWorld games, generated from a seed or read from a game file, as an agentrl text env.

Needs ``pip install 'agentrl[textworld]'``. Two kinds of task:

- ``{"game_seed": s}`` (the default distribution): the game is made once with TextWorld's
  own generator (``textworld.make``, what ``tw-make`` runs) with ``nb_rooms`` /
  ``nb_objects`` / ``quest_length`` and seed ``s``, cached as a ``.z8`` file (plus
  TextWorld's ``.json``) under ``games_dir``.
- ``{"game_file": path}``: a game file of the user's (``game_file=`` makes it the default
  task): a Z-machine file ``.z1``-``.z8`` (what ``tw-make`` writes, or any interactive-fiction
  game), or a Glulx ``.ulx`` file where the installed TextWorld still plays them (removed
  in textworld 1.7). A missing file, another extension or a file TextWorld cannot load
  raises an error naming the file (when the env is made, for ``game_file=``).

Games are played by TextWorld's engine. A TextWorld game (its ``.json`` next to the game
file) reports everything below; another Z-machine game reports what Jericho knows of it
(score, win and admissible commands for the games Jericho supports, otherwise only the
text: no reward or success, no invalid actions, and the episode ends at ``max_turns``).

Observation: on reset the game's objective and the room description (or the game's opening
text when it has neither); after each command the game's feedback. With ``show_commands``
(default) every observation ends with ``"Admissible commands: a, b, ..."`` (TextWorld's own
list, when the game has one), as ALFWorld-style agents use. Text is kept printable and cut
to 4,000 characters.

Reward: the game's score change (the game scores the quest); terminated when the game is
won or lost; ``info["success"]`` when won, ``info["score"]``/``info["max_score"]`` as the
game reports them. A command outside the admissible list is an invalid action: the game
still answers it (usually "You can't see any such thing."), the reward is
``invalid_penalty`` (0.0 by default) and ``info["invalid_action"]`` is set. Truncated after
``max_turns`` (50). Reset info carries the game's ``walkthrough`` (for scripted baselines;
empty when the game has none) and the ``game_file`` played.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Protocol

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


GAME_FILE_SUFFIXES: tuple[str, ...] = (*(f".z{i}" for i in range(1, 9)), ".ulx")
"""Game file extensions: Z-machine ``.z1``-``.z8`` and Glulx ``.ulx`` (textworld < 1.7)."""


class GameState(Protocol):
    """What the adapter reads of a ``textworld.GameState`` (None when the game lacks it)."""

    feedback: str | None
    objective: str | None
    description: str | None
    admissible_commands: list[str] | None
    policy_commands: list[str] | None
    score: int | None
    max_score: int | None
    won: bool | None
    lost: bool | None


class Game(Protocol):
    """The part of a started ``textworld.Environment`` that the adapter uses."""

    def reset(self) -> GameState: ...

    def step(self, command: str) -> tuple[GameState, float | None, bool]: ...

    def close(self) -> None: ...


def check_game_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as an absolute ``Path`` if it names an existing game file.

    Raises ``ValueError`` for an extension outside :data:`GAME_FILE_SUFFIXES` and
    ``FileNotFoundError`` for a missing file, both naming the file.
    """
    p = Path(path).expanduser().resolve()
    if p.suffix.lower() not in GAME_FILE_SUFFIXES:
        raise ValueError(
            f"TextWorld game file {str(path)!r} has extension {p.suffix!r}; valid extensions: "
            f"{list(GAME_FILE_SUFFIXES)} (.z8 is what tw-make writes; .ulx needs textworld<1.7)"
        )
    if not p.is_file():
        raise FileNotFoundError(f"TextWorld game file {str(path)!r} not found ({p})")
    problem = header_problem(p.read_bytes()[:64], p.stat().st_size, p.suffix.lower())
    if problem:
        raise ValueError(f"{str(path)!r} is not a playable game file: {problem}")
    return p


def header_problem(header: bytes, size: int, suffix: str) -> str:
    """Why a game file's first 64 bytes and size are not a story file ("" when they are).

    Checked before the file reaches Jericho's interpreter, which ends the whole process on
    a broken story file. Z-machine: version byte 1-8 and at least the length the header
    states (the Z-machine standard, section 11); Glulx: the ``Glul`` magic number.
    """
    if suffix == ".ulx":
        return "" if header.startswith(b"Glul") else "no Glulx 'Glul' magic number"
    if size < 64:
        return f"{size} bytes, shorter than a Z-machine header (64)"
    version = header[0]
    if not 1 <= version <= 8:
        return f"Z-machine version byte {version}, not 1-8"
    scale = 2 if version <= 3 else 4 if version <= 5 else 8
    stated = int.from_bytes(header[0x1A:0x1C], "big") * scale
    if size < stated:
        return f"{size} bytes, shorter than the {stated} its header states (truncated?)"
    return ""


class TextWorldEnv(TextEnv):
    """A TextWorld game per task: generated from a seed or read from a file (rules in the
    module docstring).

    Args:
        nb_rooms, nb_objects, quest_length: TextWorld generator options (2, 3, 2).
        num_games: the default task distribution is uniform over game seeds
            ``0..num_games-1`` (4).
        game_file: a game file to play instead (``.z1``-``.z8``, or ``.ulx`` with
            textworld < 1.7); then every default task is ``{"game_file": <its path>}``. The
            file is checked and loaded once here.
        max_turns: turn limit (50).
        show_commands: append the admissible commands to every observation (True).
        invalid_penalty: reward of a command outside the admissible list (0.0).
        games_dir: where generated games are cached (default: a folder in the temp dir,
            or ``$AGENTRL_TEXTWORLD_GAMES``).

    Raises:
        ValueError: ``game_file`` has another extension, or TextWorld cannot load it.
        FileNotFoundError: ``game_file`` does not exist.
    """

    def __init__(
        self,
        nb_rooms: int = 2,
        nb_objects: int = 3,
        quest_length: int = 2,
        num_games: int = 4,
        game_file: str | os.PathLike[str] | None = None,
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
        self._game: Game | None = None
        self._state: GameState | None = None
        self._score = 0
        self.game_file = check_game_file(game_file) if game_file is not None else None
        if self.game_file is not None:
            self._start(self.game_file).close()  # a file TextWorld cannot load fails here

    def sample_task(self) -> dict[str, Any]:
        if self.game_file is not None:
            return {"game_file": str(self.game_file)}
        return {"game_seed": int(self.np_random.integers(self.num_games))}

    def _start(self, path: Path) -> Game:
        infos = self._tw.EnvInfos(
            admissible_commands=True, policy_commands=True, max_score=True, won=True,
            lost=True, objective=True, description=True, score=True,
        )  # fmt: skip
        with warnings.catch_warnings():
            # jericho warns that it cannot track the score of TextWorld's games itself;
            # TextWorld reports the score, so the warning is noise here
            warnings.filterwarnings("ignore", message=".*not fully supported.*")
            try:
                game: Game = self._tw.start(str(path), request_infos=infos)
            except (OSError, ValueError, NotImplementedError, RuntimeError) as e:
                version = self._tw.__version__
                raise ValueError(
                    f"TextWorld {version} cannot load the game file {str(path)!r}: "
                    f"{type(e).__name__}: {e}"
                ) from e
        return game

    def _game_path(self, task: dict[str, Any]) -> Path:
        if "game_file" in task:
            return check_game_file(task["game_file"])
        if "game_seed" in task:
            return make_game(int(task["game_seed"]), *self.options, self.games_dir)
        raise ValueError(f"a TextWorld task needs 'game_seed' or 'game_file', got {task}")

    def _render(self, text: str) -> str:
        commands = self._state.admissible_commands if self._state is not None else None
        if self.show_commands and commands is not None:
            text += "\n\nAdmissible commands: " + ", ".join(commands)
        return clean(text) + "\n"

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        path = self._game_path(task)
        self.close()
        self._game = self._start(path)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not fully supported.*")
            state = self._state = self._game.reset()
        self._score = 0
        walkthrough = list(state.policy_commands or [])
        parts = [t for t in (state.objective, state.description) if t]
        obs = "\n\n".join(parts) if parts else (state.feedback or "")
        info = {
            "walkthrough": walkthrough,
            "max_score": state.max_score,
            "score": 0,
            "game_file": str(path),
        }
        return self._render(obs), info

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self._game is None or self._state is None:
            raise RuntimeError("TextWorldEnv.step() before reset()")
        # letters, digits, spaces, - and ' only: the interpreter treats e.g. "\\" as escapes
        command = " ".join(re.sub(r"[^a-z0-9' -]", " ", action[:180].lower()).split())
        listed = self._state.admissible_commands
        invalid = listed is not None and command not in {c.lower() for c in listed}
        state, _, done = self._game.step(command)
        self._state = state
        score = int(state.score or 0)
        reward = float(score - self._score) + (self.invalid_penalty if invalid else 0.0)
        self._score = score
        won = bool(state.won)
        info = {
            "success": won,
            "invalid_action": invalid,
            "score": score,
            "max_score": state.max_score,
        }
        return self._render(state.feedback or ""), reward, bool(done or won or state.lost), info

    def close(self) -> None:
        if self._game is not None:
            self._game.close()
            self._game = None
