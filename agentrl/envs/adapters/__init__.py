"""Adapters that wrap existing text-game ecosystems as agentrl text envs (optional extras).

============================  =====================================  ==============================
Gymnasium id                  wraps                                  install
============================  =====================================  ==============================
``agentrl/TextWorld-v0``      TextWorld games generated from a seed  ``pip install 'agentrl[textworld]'``
``agentrl/TextArena-<G>-v0``  TextArena single-player games G:       ``pip install 'agentrl[textarena]'``
                              GuessTheNumber, Mastermind,
                              FrozenLake, Sokoban, TowerOfHanoi
``agentrl/BabyAI-v0``         BabyAI / MiniGrid levels               ``pip install 'agentrl[minigrid]'``
============================  =====================================  ==============================

The ids are registered with the built-in envs, but the wrapped library is imported only
when an env is made; without it, ``gymnasium.make`` raises an ``ImportError`` that names
the install command. Everything runs offline: TextWorld games are generated locally,
and only TextArena games that need neither a corpus download nor a remote LLM are wrapped
(its Wordle and Hangman need nltk corpora, its TwentyQuestions a remote LLM).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

TEXTARENA_GAMES: tuple[str, ...] = (
    "GuessTheNumber", "Mastermind", "FrozenLake", "Sokoban", "TowerOfHanoi",
)  # fmt: skip
"""The TextArena single-player games that run offline."""

ADAPTER_ENVS: dict[str, tuple[str, dict[str, Any]]] = {
    "agentrl/TextWorld-v0": ("agentrl.envs.adapters.textworld_env:TextWorldEnv", {}),
    **{
        f"agentrl/TextArena-{game}-v0": (
            "agentrl.envs.adapters.textarena_env:TextArenaEnv",
            {"game": f"{game}-v0"},
        )
        for game in TEXTARENA_GAMES
    },
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
