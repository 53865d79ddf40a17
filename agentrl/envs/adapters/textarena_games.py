"""Which TextArena games the adapter can play, and the check each game passes when made.

Any id of TextArena's registry that has a ``-raw`` variant (``"Sokoban-v0"``,
``"TowerOfHanoi-v0-medium"``, ...) can be asked for. :func:`open_game` makes the raw game
and checks, with the network switched off (:func:`~agentrl.envs.adapters.offline.no_network`),
that it

1. constructs (some games download nltk corpora or build an LLM client here),
2. resets for one player, and its state is TextArena's ``SinglePlayerState`` (a
   multi-player game fails the reset or has another state class), and
3. answers moves (some games call a remote LLM on every move) and ends with a numeric
   reward: ``PROBE_MOVES``, a well-formed first move and then ill-formed ones, which end
   the game by TextArena's two-invalid-moves rule.

A failure raises :class:`TextArenaGameError` naming the game, the stage that failed and
the reason (the exception, and the addresses it tried to reach when it used the network).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from contextlib import AbstractContextManager, nullcontext
from typing import Protocol

from agentrl.envs.adapters import TEXTARENA_GAMES, require
from agentrl.envs.adapters.offline import NetworkAttempts, no_network

RAW = "-raw"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROBE_MOVES = ("[1]", "agentrl offline check", "agentrl offline check", "agentrl offline check")
"""The moves of the check: one well-formed in many games, then ill-formed ones, which end
any game by TextArena's rule (one warning, then the end) so that its end is checked too."""

TEXTARENA_OFFLINE_GAMES: tuple[str, ...] = (
    "2048-v0", "2048-v0-10x10", "2048-v0-3x3", "2048-v0-5x5", "2048-v0-6x6", "2048-v0-8x8",
    "2048-v0-easy", "2048-v0-extreme", "2048-v0-hard", "2048-v0-mega-easy",
    "2048-v0-super-easy", "2048-v0-ultra-easy", "2048-v0-very-easy", "2048-v0-very-hard",
    "Bandit-v0", "Bandit-v0-hard", "Blackjack-v0", "Blackjack-v0-long", "Crosswords-v0",
    "Crosswords-v0-hardcore", "FifteenPuzzle-v0", "FrozenLake-v0", "FrozenLake-v0-hardcore",
    "FrozenLake-v0-random", "GuessTheNumber-v0", "GuessTheNumber-v0-hardcore", "LightsOut-v0",
    "LogicPuzzle-v0", "LogicPuzzle-v0-hard", "Mastermind-v0", "Mastermind-v0-extreme",
    "Mastermind-v0-hard", "Minesweeper-v0", "Minesweeper-v0-hard", "Minesweeper-v0-medium",
    "Minesweeper-v0-small", "PegJump-v0", "RushHour-v0", "Secretary-v0", "Secretary-v0-long",
    "Set-v0", "Sokoban-v0", "Sokoban-v0-medium", "Sudoku-v0", "Sudoku-v0-easy",
    "Sudoku-v0-hard", "Sudoku-v0-medium", "Sudoku-v0-very-easy", "ThreeCardMonte-v0",
    "TowerOfHanoi-v0", "TowerOfHanoi-v0-extreme", "TowerOfHanoi-v0-hard",
    "TowerOfHanoi-v0-hardcore", "TowerOfHanoi-v0-medium",
)  # fmt: skip
"""Single-player ids that passed :func:`open_game` with textarena 0.7.4 (every variant);
written by ``benchmarks/textarena_offline.py``, listed in ``docs/envs.md``."""


class TextArenaGameError(ValueError):
    """A TextArena game the adapter cannot play: unknown, multi-player, or not offline."""


class ArenaGame(Protocol):
    """The part of a raw TextArena env (``textarena.Env``) that the adapter uses."""

    state: object
    """The game's ``textarena.State``, made by ``reset``."""

    def reset(self, num_players: int, seed: int | None = None) -> object: ...

    def step(self, action: str) -> tuple[bool, dict[str, object]]: ...

    def get_observation(self) -> tuple[int, list[tuple[object, ...]]]:
        """The current player's id and new messages ``(sender, text, ObservationType)``."""
        ...

    def close(self) -> tuple[dict[int, object] | None, dict[int, dict[str, object]] | None]:
        """The final rewards and per-player info (``reason``, ``invalid_move``)."""
        ...


def final_reward(game: str, rewards: dict[int, object] | None) -> float:
    """The player's reward from ``close()`` (0.0 when none); raises when it is no number."""
    value = (rewards or {}).get(0, 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TextArenaGameError(
            f"TextArena game {game!r} ended with reward {value!r}, not a number (a bug in the game)"
        )
    return float(value)


def game_ids(registry: Collection[str]) -> list[str]:
    """The ids in ``registry`` that have a ``-raw`` variant, without the suffix, sorted."""
    return sorted(i for i in registry if not i.endswith(RAW) and i + RAW in registry)


def examples(limit: int = 12) -> list[str]:
    """Verified single-player ids to suggest: the curated five first, no variants."""
    curated = [f"{g}-v0" for g in TEXTARENA_GAMES]
    others = [g for g in TEXTARENA_OFFLINE_GAMES if g.count("-") == 1 and g not in curated]
    return (curated + others)[:limit]


def resolve_game(game: str, registry: Collection[str]) -> str:
    """``game`` as a registry id without ``-raw``; raises for an id TextArena lacks."""
    base = game.removesuffix(RAW)
    valid = game_ids(registry)
    if base in valid:
        return base
    close = difflib.get_close_matches(base, valid, n=5, cutoff=0.6)
    hint = f" (did you mean {close}?)" if close else ""
    raise TextArenaGameError(
        f"unknown TextArena game {game!r}{hint}. Single-player games that run offline "
        f"include {examples()} (all of them: docs/envs.md; the registry has {len(valid)} "
        "ids, most of them multi-player)"
    )


def _reason(error: BaseException) -> str:
    """``"<Type>: <first line with words>"`` (nltk frames its message in ``***`` lines)."""
    lines = [_ANSI.sub("", line).strip() for line in str(error).splitlines()]
    words = [line for line in lines if any(ch.isalnum() for ch in line)]
    return f"{type(error).__name__}: {words[0][:300]}" if words else type(error).__name__


def _refused(
    game: str, stage: str, error: BaseException, attempts: NetworkAttempts
) -> TextArenaGameError:
    net = f"; it tried to reach the network ({attempts.summary()})" if attempts else ""
    return TextArenaGameError(
        f"TextArena game {game!r} cannot be played (checked with the network off): {stage} "
        f"failed with {_reason(error)}{net}"
    )


def _multi_player(game: str, detail: str) -> TextArenaGameError:
    return TextArenaGameError(
        f"TextArena game {game!r} is not a single-player game ({detail}); the adapter plays "
        f"single-player games only, e.g. {examples()}"
    )


def _players_needed(env: ArenaGame) -> int | None:
    """The fewest players (2 to 15, TextArena's range) for which ``env`` resets, or None."""
    for n in range(2, 16):
        try:
            env.reset(num_players=n, seed=0)
        except Exception:
            continue
        return n
    return None


def open_game(game: str, allow_network: bool = False) -> ArenaGame:
    """Make TextArena's raw ``game`` and check it (the module docstring's three steps).

    Args:
        game: a registry id (``"Sokoban-v0"``; a trailing ``-raw`` is accepted).
        allow_network: run the check with the network on (for games that need a remote
            service on purpose); by default any connection attempt fails the check.

    Returns the game, reset once with seed 0 and the probe moves played (reset it again).
    Raises :class:`TextArenaGameError` as described above; ``ImportError`` without textarena.
    """
    ta = require("textarena", "textarena")
    base = resolve_game(game, ta.envs.registration.ENV_REGISTRY)
    guard: AbstractContextManager[NetworkAttempts] = (
        nullcontext(NetworkAttempts()) if allow_network else no_network()
    )
    with guard as attempts:
        try:
            env: ArenaGame = ta.make(base + RAW)
        except Exception as e:
            raise _refused(base, "making it", e, attempts) from e
        try:
            env.reset(num_players=1, seed=0)
        except Exception as e:
            players = _players_needed(env)
            if players is None:
                raise _refused(base, "a one-player reset", e, attempts) from e
            detail = f"it resets for {players} players; for one: {_reason(e)}"
            raise _multi_player(base, detail) from e
        if not isinstance(env.state, ta.SinglePlayerState):
            raise _multi_player(base, f"its state is {type(env.state).__name__}")
        for move in PROBE_MOVES:
            try:
                done, _ = env.step(action=move)
            except Exception as e:
                raise _refused(base, f"the move {move!r}", e, attempts) from e
            if done:
                try:
                    rewards, _ = env.close()
                except Exception as e:
                    raise _refused(base, "ending the game", e, attempts) from e
                final_reward(base, rewards)
                break
    return env
