"""TextCraft: a Crafter-like text world with a tech tree, for open-ended curricula (OMNI).

The agent collects resources, places stations and makes tools, as in Crafter's
achievement tree, through text commands. A task is an achievement and a count: ``{"achievement":
"collect_wood", "count": 3}`` ("collect 3 wood"), the repeat variants of OMNI's setting.
Some tasks are impossible: their achievement has no recipe (``collect_ruby``, ...).

Tech tree (:data:`RECIPES`; tools are kept, materials are used up)::

    collect wood | sapling | drink                     no tool
    collect stone | coal  <- wood pickaxe              collect iron <- stone pickaxe
    collect diamond <- iron pickaxe
    place table (1 wood) | plant (1 sapling) | furnace (1 stone, table)
    make wood pickaxe | wood sword            (table, 1 wood)
    make stone pickaxe | stone sword          (table, 1 wood, 1 stone)
    make iron pickaxe | iron sword            (table, furnace, 1 wood, 1 coal, 1 iron)

Observation: the task, the inventory, the placed stations, the achievement counts, the
result of the last command, and the command forms. Actions: ``collect <resource>``,
``place <station>``, ``make <item>`` (case-insensitive, the first such command in the
text). Reward 1.0 when the task's achievement count is reached (terminated,
``info["success"]``); ``invalid_penalty`` (-0.1) for text with no known command
(``info["invalid_action"]``); 0 otherwise (a command whose requirements are missing
just fails). Truncated after ``max_turns`` (50). The world has no randomness: the reset
seed only picks the task when none is given.

Privileges (task key ``"privilege"``, for the ``privileged`` curriculum; default 0): at
level >= 1 every observation ends with ``Hint: next, <command>.`` (an oracle peek at the
tech tree); at level 2 the command ``next`` also performs the hinted step (a macro
action). Success is always judged on the real task, and ``info["privilege_used"]`` says
whether the step used a privilege (the hint shown or the macro taken).

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: the result of the command, the inventory, stations and achievements (and the hint).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentrl.envs.base import TextEnv


@dataclass(frozen=True)
class Recipe:
    """What an achievement needs: tools held, stations placed, materials used up."""

    tools: tuple[str, ...] = ()
    stations: tuple[str, ...] = ()
    cost: dict[str, int] = field(default_factory=dict)


_IRON = Recipe(stations=("table", "furnace"), cost={"wood": 1, "coal": 1, "iron": 1})
RECIPES: dict[str, Recipe] = {
    "collect_wood": Recipe(),
    "collect_sapling": Recipe(),
    "collect_drink": Recipe(),
    "collect_stone": Recipe(tools=("wood_pickaxe",)),
    "collect_coal": Recipe(tools=("wood_pickaxe",)),
    "collect_iron": Recipe(tools=("stone_pickaxe",)),
    "collect_diamond": Recipe(tools=("iron_pickaxe",)),
    "place_table": Recipe(cost={"wood": 1}),
    "place_plant": Recipe(cost={"sapling": 1}),
    "place_furnace": Recipe(stations=("table",), cost={"stone": 1}),
    "make_wood_pickaxe": Recipe(stations=("table",), cost={"wood": 1}),
    "make_wood_sword": Recipe(stations=("table",), cost={"wood": 1}),
    "make_stone_pickaxe": Recipe(stations=("table",), cost={"wood": 1, "stone": 1}),
    "make_stone_sword": Recipe(stations=("table",), cost={"wood": 1, "stone": 1}),
    "make_iron_pickaxe": _IRON,
    "make_iron_sword": _IRON,
}
"""The 16 possible achievements."""

IMPOSSIBLE: tuple[str, ...] = (
    "collect_ruby",
    "collect_unicorn",
    "place_portal",
    "make_diamond_pickaxe",
    "make_gold_sword",
)
"""Achievements no command can reach (OMNI's impossible tasks)."""

COUNTS: tuple[int, ...] = (1, 2, 3, 4, 5)
VERBS = ("collect", "place", "make")
HELP = "Commands: collect <resource>, place <station>, make <item>."
MAX_PRIVILEGE = 2
_COMMAND = re.compile(r"\b(collect|place|make)\s+([a-z]+(?:[ _][a-z]+)?)")


def instructions(max_turns: int = 50, privilege: int = 0) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    objects: dict[str, list[str]] = {v: [] for v in VERBS}
    for name in RECIPES:
        verb, _, obj = name.partition("_")
        objects[verb].append(obj.replace("_", " "))
    lines = [
        "You are in TextCraft, a crafting world in text. Your task is stated on the "
        '"Task:" line, e.g. "Task: collect 2 stone." (collect stone twice). You collect '
        "resources, place stations and make tools; tools are kept, while materials are "
        "used up. Some commands need a tool, a station or materials first: then I tell you "
        f"what to do first. You have {max_turns} turns.",
        "Reply with one command on a single line:",
        f"- collect <resource>: {', '.join(objects['collect'])}",
        f"- place <station>: {', '.join(objects['place'])}",
        f"- make <item>: {', '.join(objects['make'])}",
    ]
    if privilege >= 1:
        lines.append('I also give a hint: "Hint: next, <command>." names a useful next command.')
    if privilege >= 2:
        lines.append('You may also reply "next" to do the hinted command.')
    lines.append("After each command I tell you what happened and show your inventory.")
    return "\n".join(lines)


def achievement_text(achievement: str, count: int = 1) -> str:
    """``("collect_wood", 3)`` -> ``"collect 3 wood"``; count 1 is left out."""
    verb, _, obj = achievement.partition("_")
    n = f"{count} " if count > 1 else ""
    return f"{verb} {n}{obj.replace('_', ' ')}"


def describe_task(task: dict[str, Any]) -> str:
    """The task's sentence, e.g. ``"collect 3 wood"`` (also the MoI's text of a task)."""
    return achievement_text(str(task["achievement"]), int(task.get("count", 1)))


def task_list(counts: tuple[int, ...] = COUNTS, impossible: bool = True) -> list[dict[str, Any]]:
    """Every task: each achievement at each count, possible ones first."""
    names = list(RECIPES) + (list(IMPOSSIBLE) if impossible else [])
    return [{"achievement": a, "count": int(c)} for a in names for c in counts]


def parse_command(text: str) -> str | None:
    """The achievement named by the first command in ``text`` (``"make wood pickaxe"`` ->
    ``"make_wood_pickaxe"``), or ``None``; only the 16 possible achievements count."""
    for m in _COMMAND.finditer(text.lower()):
        words = m.group(2).replace("_", " ").split()
        for k in (2, 1):  # "make wood pickaxe" before "collect wood then ..."
            name = f"{m.group(1)}_{'_'.join(words[:k])}"
            if len(words) >= k and name in RECIPES:
                return name
    return None


def parse_task(observation: str) -> tuple[str, int] | None:
    """``(achievement, count)`` from the ``Task:`` line of an observation."""
    m = re.search(r"^Task: (collect|place|make) (?:(\d+) )?([a-z ]+)\.$", observation, re.M)
    if m is None:
        return None
    return f"{m.group(1)}_{m.group(3).replace(' ', '_')}", int(m.group(2) or 1)


def parse_state(observation: str) -> tuple[dict[str, int], set[str]]:
    """``(inventory, placed stations)`` from an observation."""
    inv: dict[str, int] = {}
    placed: set[str] = set()
    for line in observation.splitlines():
        if line.startswith("Inventory: ") and line != "Inventory: nothing":
            for part in line[len("Inventory: ") :].split(", "):
                name, _, n = part.rpartition(" ")
                inv[name.replace(" ", "_")] = int(n)
        if line.startswith("Placed: ") and line != "Placed: nothing":
            placed = {p.replace(" ", "_") for p in line[len("Placed: ") :].split(", ")}
    return inv, placed


def missing(achievement: str, inv: dict[str, int], placed: set[str]) -> str | None:
    """The first requirement of ``achievement`` not met (an achievement to do first)."""
    r = RECIPES[achievement]
    for tool in r.tools:
        if inv.get(tool, 0) < 1:
            return f"make_{tool}"
    for station in r.stations:
        if station not in placed:
            return f"place_{station}"
    for item, n in r.cost.items():
        if inv.get(item, 0) < n:
            return f"collect_{item}" if f"collect_{item}" in RECIPES else f"make_{item}"
    return None


class TextCraftEnv(TextEnv):
    """The TextCraft world (rules in the module docstring).

    Args:
        max_turns: turn limit (50).
        invalid_penalty: reward of text with no known command (-0.1).
        counts: the repeat counts of the default task distribution.
        impossible: include the impossible tasks in the default distribution.
        render_mode: ``None`` or ``"ansi"``.

    Task spec: ``{"achievement": str, "count": int, "privilege": int}`` (count defaults to
    1, privilege to 0; a spec with only ``privilege`` gets a task from the distribution).
    """

    def __init__(
        self,
        max_turns: int = 50,
        invalid_penalty: float = -0.1,
        counts: tuple[int, ...] | list[int] = COUNTS,
        impossible: bool = True,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {max_turns}")
        self.max_turns = max_turns
        self.invalid_penalty = float(invalid_penalty)
        self.tasks = task_list(tuple(counts), impossible)
        self.inventory: dict[str, int] = {}
        self.placed: list[str] = []
        self.achieved: dict[str, int] = {}
        self.goal = ("collect_wood", 1)
        self.privilege = 0

    def sample_task(self) -> dict[str, Any]:
        return dict(self.tasks[int(self.np_random.integers(len(self.tasks)))])

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if "achievement" not in task:  # e.g. {"privilege": 2} from the privileged curriculum
            task.update(self.sample_task())
        self.privilege = int(task.get("privilege", 0))
        if not 0 <= self.privilege <= MAX_PRIVILEGE:
            raise ValueError(
                f"TextCraft privilege must be in 0..{MAX_PRIVILEGE}, got {self.privilege}"
            )
        achievement, count = task.get("achievement"), int(task.get("count", 1))
        if achievement not in RECIPES and achievement not in IMPOSSIBLE:
            raise ValueError(
                f"unknown TextCraft achievement {achievement!r}; valid: {sorted(RECIPES) + list(IMPOSSIBLE)}"
            )
        if count < 1:
            raise ValueError(f"a TextCraft task count must be >= 1, got {count}")
        self.goal = (str(achievement), count)
        self.inventory, self.placed, self.achieved = {}, [], {}
        obs = self._render("You are in a forest by a lake, with rocks and caves nearby.")
        return obs, {"instructions": instructions(self.max_turns, self.privilege)}

    def _state(self) -> str:
        """The ``Inventory:``, ``Placed:`` and ``Achievements:`` lines (newline-terminated)."""
        inv = (
            ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in self.inventory.items() if v)
            or "nothing"
        )
        placed = ", ".join(self.placed) or "nothing"
        done = (
            ", ".join(f"{achievement_text(k)} x{v}" for k, v in self.achieved.items()) or "nothing"
        )
        return f"Inventory: {inv}\nPlaced: {placed}\nAchievements: {done}\n"

    def _hint(self) -> str:
        """The ``Hint:`` line at privilege >= 1 (newline-terminated), else ``""``."""
        if self.privilege >= 1 and (step := self.next_step()) is not None:
            macro = " (or say: next)" if self.privilege >= 2 else ""
            return f"Hint: next, {achievement_text(step)}{macro}.\n"
        return ""

    def _render(self, last: str) -> str:
        return (
            f"Task: {achievement_text(*self.goal)}.\n{self._state()}"
            f"Last: {last}\n{HELP}\n{self._hint()}"
        )

    def _message(self, last: str, success: bool = False) -> str:
        """``info["message"]``: what happened, then the state lines (and the hint)."""
        if success:
            last += " Task complete!"
        elif self._turn >= self.max_turns:
            last += " That was your last turn."
        return f"{last}\n{self._state()}{self._hint()}".rstrip("\n")

    def next_step(self) -> str | None:
        """The achievement to do next towards the goal (``None`` for an impossible goal)."""
        if self.goal[0] not in RECIPES:
            return None
        step = self.goal[0]
        while (need := missing(step, self.inventory, set(self.placed))) is not None:
            step = need
        return step

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        name = parse_command(action)
        macro = (
            self.privilege >= 2
            and name is None
            and re.search(r"\bnext\b", action.lower()) is not None
        )
        if macro:
            name = self.next_step()
        obs, reward, terminated, info = self._apply(name)
        info["privilege_used"] = self.privilege >= 1
        return obs, reward, terminated, info

    def _apply(self, name: str | None) -> tuple[str, float, bool, dict[str, Any]]:
        if name is None:
            return (
                self._render("Unknown command."),
                self.invalid_penalty,
                False,
                {"invalid_action": True, "message": self._message(f"Unknown command. {HELP}")},
            )
        need = missing(name, self.inventory, set(self.placed))
        if need is not None:
            last = f"You cannot {achievement_text(name)}: first {achievement_text(need)}."
            return self._render(last), 0.0, False, {"message": self._message(last)}
        recipe = RECIPES[name]
        for item, n in recipe.cost.items():
            self.inventory[item] -= n
        verb, _, obj = name.partition("_")
        if verb == "place":
            if obj not in self.placed:
                self.placed.append(obj)
        else:
            self.inventory[obj] = self.inventory.get(obj, 0) + 1
        self.achieved[name] = self.achieved.get(name, 0) + 1
        success = self.achieved.get(self.goal[0], 0) >= self.goal[1]
        last = f"You {achievement_text(name)}."
        return (
            self._render(last),
            float(success),
            success,
            {"success": success, "message": self._message(last, success)},
        )


# --- scripted players (registered in agentrl.envs.scripted) -----------------------------------

ALL_COMMANDS: tuple[str, ...] = tuple(achievement_text(a) for a in RECIPES)


class TextCraftRandom:
    """A uniformly random command of the 16 possible ones."""

    rng: np.random.Generator

    def reset(self, task: dict[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, observation: str) -> str:
        return ALL_COMMANDS[int(self.rng.integers(len(ALL_COMMANDS)))]


class TextCraftGood(TextCraftRandom):
    """Walks the tech tree: the first unmet requirement of the task, recursively, from the
    observation only; a random command on an impossible task."""

    def act(self, observation: str) -> str:
        goal = parse_task(observation)
        if goal is None or goal[0] not in RECIPES:
            return super().act(observation)
        inv, placed = parse_state(observation)
        step = goal[0]
        for _ in range(len(RECIPES)):  # the tree is shallower than this
            need = missing(step, inv, placed)
            if need is None:
                break
            step = need
        return achievement_text(step)
