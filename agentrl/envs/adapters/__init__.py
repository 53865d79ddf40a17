"""Adapters that wrap existing text-game ecosystems as agentrl text envs (optional extras).

============================  =====================================  ==============================
Gymnasium id                  wraps                                  install
============================  =====================================  ==============================
``agentrl/TextWorld-v0``      TextWorld games generated from a seed  ``pip install 'agentrl[textworld]'``
``agentrl/TextArena-<G>-v0``  TextArena single-player games G:       ``pip install 'agentrl[textarena]'``
                              GuessTheNumber, Mastermind,
                              FrozenLake, Sokoban, TowerOfHanoi
``agentrl/TextArena-v0``      any single-player TextArena game that  ``pip install 'agentrl[textarena]'``
                              runs offline, ``game="Bandit-v0"``
``agentrl/BabyAI-v0``         BabyAI / MiniGrid levels               ``pip install 'agentrl[minigrid]'``
============================  =====================================  ==============================

The ids are registered with the built-in envs, but the wrapped library is imported only
when an env is made; without it, ``gymnasium.make`` raises an ``ImportError`` that names
the install command. Everything runs offline: TextWorld games are generated locally or
read from a game file, and a TextArena game is checked with the network switched off when
it is made (its Wordle and Hangman need nltk corpora, its TwentyQuestions a remote LLM:
they are refused with the reason).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

TEXTARENA_GAMES: tuple[str, ...] = (
    "GuessTheNumber", "Mastermind", "FrozenLake", "Sokoban", "TowerOfHanoi",
)  # fmt: skip
"""The curated TextArena games: each has its own id and scripted ``random`` / ``good``
policies (tested). Not a limit: ``agentrl/TextArena-v0`` plays any single-player game
that runs offline."""

ADAPTER_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "agentrl/TextWorld-v0": ("agentrl.envs.adapters.textworld_env:TextWorldEnv", {}),
    **{
        f"agentrl/TextArena-{game}-v0": (
            "agentrl.envs.adapters.textarena_env:TextArenaEnv",
            {"game": f"{game}-v0"},
        )
        for game in TEXTARENA_GAMES
    },
    "agentrl/TextArena-v0": ("agentrl.envs.adapters.textarena_env:TextArenaEnv", {}),
    "agentrl/BabyAI-v0": ("agentrl.envs.adapters.minigrid_env:MiniGridTextEnv", {}),
}
"""Adapter ids -> (lazy entry point, default kwargs)."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an ``ImportError`` naming ``pip install 'agentrl[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"this env needs the optional package {module!r}: pip install 'agentrl[{extra}]' "
            f"(or pip install {module}); import failed with: {e}"
        ) from e
