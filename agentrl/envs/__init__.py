"""Built-in text environments, registered with Gymnasium on import.

>>> import gymnasium, agentrl.envs
>>> env = gymnasium.make("agentrl/TwentyQuestions-v0")             # or word_list="full"
>>> env = gymnasium.make(agentrl.envs.resolve_env_id("guess_the_number"), high=32)

- ``agentrl/TwentyQuestions-v0`` (:class:`~agentrl.envs.twenty_questions.TwentyQuestionsEnv`)
- ``agentrl/GuessTheNumber-v0`` (:class:`~agentrl.envs.guess_the_number.GuessTheNumberEnv`)
- ``agentrl/GuessMyCity-v0``, ``agentrl/Wordle-v0``, ``agentrl/Maze-v0`` (see docs/envs.md)
- adapters (optional extras): ``agentrl/TextWorld-v0``, ``agentrl/TextArena-<Game>-v0``,
  ``agentrl/BabyAI-v0`` (:mod:`agentrl.envs.adapters`)
- ``agentrl/ToolChain-v0`` (:class:`~agentrl.envs.toolchain.ToolChainEnv`): plans of module names (RLTF)
- ``agentrl/Game24-v0`` (:class:`~agentrl.envs.game24.Game24Env`)
- ``agentrl/TextCraft-v0`` (:class:`~agentrl.envs.textcraft.TextCraftEnv`): Crafter-like tech tree, tasks for curricula
- ``agentrl/RuleWorld-v0`` (:class:`~agentrl.envs.ruleworld.RuleWorldEnv`): XLand-MiniGrid-style rule worlds in text

Entry points are lazy ``"module:Class"`` strings; the envs truncate themselves at their
``max_turns``, so no ``max_episode_steps`` is registered (no ``TimeLimit`` wrapper).
"""

from __future__ import annotations

import gymnasium

ENV_ALIASES: dict[str, str] = {
    "twenty_questions": "agentrl/TwentyQuestions-v0",
    "guess_the_number": "agentrl/GuessTheNumber-v0",
    "guess_my_city": "agentrl/GuessMyCity-v0",
    "wordle": "agentrl/Wordle-v0",
    "maze": "agentrl/Maze-v0",
    "game24": "agentrl/Game24-v0",
    "toolchain": "agentrl/ToolChain-v0",
    "textcraft": "agentrl/TextCraft-v0",
    "ruleworld": "agentrl/RuleWorld-v0",
    "toolcalls": "agentrl/ToolCalls-v0",
}
"""Short names (used in configs) -> Gymnasium ids."""

ENV_IDS: tuple[str, ...] = tuple(ENV_ALIASES.values())
"""The Gymnasium ids of the built-in envs."""

_ENTRY_POINTS = {
    "agentrl/TwentyQuestions-v0": "agentrl.envs.twenty_questions:TwentyQuestionsEnv",
    "agentrl/GuessTheNumber-v0": "agentrl.envs.guess_the_number:GuessTheNumberEnv",
    "agentrl/GuessMyCity-v0": "agentrl.envs.guess_my_city:GuessMyCityEnv",
    "agentrl/Wordle-v0": "agentrl.envs.wordle:WordleEnv",
    "agentrl/Maze-v0": "agentrl.envs.maze:MazeEnv",
    "agentrl/Game24-v0": "agentrl.envs.game24:Game24Env",
    "agentrl/ToolChain-v0": "agentrl.envs.toolchain:ToolChainEnv",
    "agentrl/TextCraft-v0": "agentrl.envs.textcraft:TextCraftEnv",
    "agentrl/RuleWorld-v0": "agentrl.envs.ruleworld:RuleWorldEnv",
    "agentrl/ToolCalls-v0": "agentrl.envs.toolcalls:ToolCallsEnv",
}

for _id, _entry_point in _ENTRY_POINTS.items():
    if _id not in gymnasium.registry:  # re-importing (e.g. in a Ray worker) must not warn
        gymnasium.register(id=_id, entry_point=_entry_point)

# Adapters to TextWorld / TextArena / MiniGrid: ids only, the optional extra loads on make.
from agentrl.envs.adapters import ADAPTER_ENVS  # noqa: E402

for _id, (_entry_point, _kwargs) in ADAPTER_ENVS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(id=_id, entry_point=_entry_point, kwargs=_kwargs)


def resolve_env_id(name: str) -> str:
    """A Gymnasium id for an alias or id; raises ``ValueError`` listing the valid names."""
    name = ENV_ALIASES.get(name, name)
    if name not in gymnasium.registry:
        raise ValueError(
            f"unknown env {name!r}; aliases: {sorted(ENV_ALIASES)}, "
            f"agentrl ids: {sorted(i for i in gymnasium.registry if i.startswith('agentrl/'))}"
        )
    return name


from agentrl.envs.base import TextEnv, register_env  # noqa: E402
from agentrl.envs.guess_the_number import GuessTheNumberEnv  # noqa: E402
from agentrl.envs.scripted import ScriptedPolicy, make_scripted, run_scripted_episode  # noqa: E402
from agentrl.envs.twenty_questions import TwentyQuestionsEnv  # noqa: E402

__all__ = [
    "ENV_ALIASES",
    "ENV_IDS",
    "GuessTheNumberEnv",
    "ScriptedPolicy",
    "TextEnv",
    "TwentyQuestionsEnv",
    "make_scripted",
    "register_env",
    "resolve_env_id",
    "run_scripted_episode",
]
