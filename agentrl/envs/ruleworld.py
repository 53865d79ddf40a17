"""RuleWorld: XLand-MiniGrid-style procedural worlds in text (goal, production rules).

A world is sampled from its task spec ``{"world_seed": s, "depth": k, "distractors": m}``
(the rule-chain depth ``k`` is the difficulty knob). The room holds objects such as
``red ball``; production rules say that touching one object with another makes a third
(both are used up). The goal object is made by a chain of ``k`` rules from the initial
objects; ``m`` distractor rules and ``m`` distractor objects are added, and some
distractor rules are traps that use up an object the chain needs (so order matters).

Observation: the goal, the rules (``show_rules``, default on), the objects in the room
and the result of the last action. Action: ``touch <object> with <object>`` (also
``combine A and B``; the two objects named in order). The decoding constraint
``rollout.sampling.constraint=ruleworld`` (:func:`action_grammar`) lets a policy write only
``touch A with B`` over the objects in the room. Reward 1.0 when the goal object is
in the room (terminated, ``info["success"]``); ``invalid_penalty`` (-0.1) for text that
does not name two objects in the room; 0 otherwise. Truncated after ``max_turns``
(default ``2 * depth + 4``).

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: the result of the touch and the objects in the room.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import numpy as np

from agentrl.envs.base import TextEnv

COLORS = ("red", "blue", "green", "yellow", "purple", "white", "black", "orange")
SHAPES = ("ball", "key", "box", "star", "ring", "cube")
OBJECTS = tuple(f"{c} {s}" for c in COLORS for s in SHAPES)
Rule = tuple[str, str, str]  # (a, b, product); symmetric in a, b


def generate_world(seed: int, depth: int, distractors: int) -> tuple[list[str], list[Rule], str]:
    """``(initial objects, rules, goal)`` of a world; a pure function of its arguments."""
    if not 1 <= depth <= 8 or not 0 <= distractors <= 8:
        raise ValueError(
            f"RuleWorld needs depth in 1..8 and distractors in 0..8, got {depth}, {distractors}"
        )
    rng = np.random.default_rng([seed, depth, distractors])
    pool = [OBJECTS[i] for i in rng.permutation(len(OBJECTS))]
    take = iter(pool)
    held = next(take)
    initial, rules = [held], []
    for _ in range(depth):  # the chain: held + fresh -> product
        other, product = next(take), next(take)
        initial.append(other)
        rules.append((held, other, product))
        held = product
    goal = held
    extra = [next(take) for _ in range(distractors)]
    initial += extra
    for j in range(distractors):  # traps use up a chain input; others make junk
        a = initial[int(rng.integers(depth + 1))] if j % 2 == 0 else extra[j]
        b = extra[(j + 1) % distractors] if distractors > 1 else extra[j]
        if a != b:
            rules.append((a, b, next(take)))
    order = rng.permutation(len(rules))
    return [initial[i] for i in rng.permutation(len(initial))], [rules[i] for i in order], goal


def apply_rule(objects: list[str], rules: list[Rule], a: str, b: str) -> str | None:
    """The product of touching ``a`` with ``b`` (either order), or ``None``."""
    for x, y, out in rules:
        if {a, b} == {x, y} and (a != b or objects.count(a) >= 2):
            return out
    return None


def plan(
    objects: list[str], rules: list[Rule], goal: str, limit: int = 20000
) -> list[tuple[str, str]]:
    """A shortest list of touches that makes ``goal`` (BFS over rooms; empty if none)."""
    start = tuple(sorted(objects))
    back: dict[tuple[str, ...], tuple[tuple[str, ...], tuple[str, str]] | None] = {start: None}
    queue = deque([start])
    while queue and len(back) < limit:
        room = queue.popleft()
        if goal in room:
            path = []
            while (step := back[room]) is not None:
                room, move = step
                path.append(move)
            return path[::-1]
        for x, y, out in rules:
            rest = list(room)
            if x in rest:
                rest.remove(x)
                if y in rest:
                    rest.remove(y)
                    nxt = tuple(sorted([*rest, out]))
                    if nxt not in back:
                        back[nxt] = (room, (x, y))
                        queue.append(nxt)
    return []


_NAME = "(" + "|".join(COLORS) + r")\s+(" + "|".join(SHAPES) + ")"
_PAIR = re.compile(_NAME + r".*?" + _NAME, re.S)


def article(name: str) -> str:
    return "an" if name[0] in "aeiou" else "a"


def parse_touch(text: str) -> tuple[str, str] | None:
    """The first two objects named in ``text``."""
    m = _PAIR.search(text.lower())
    return (f"{m.group(1)} {m.group(2)}", f"{m.group(3)} {m.group(4)}") if m else None


def parse_observation(observation: str) -> tuple[list[str], list[Rule], str]:
    """``(objects, rules, goal)`` read back from an observation."""
    goal = re.search(r"^Goal: make an? (.+)\.$", observation, re.M)
    room = re.search(r"^Room: (.*)$", observation, re.M)
    rules = [
        (m.group(1), m.group(2), m.group(3))
        for m in re.finditer(r"^- touching (.+) with (.+) makes (.+)$", observation, re.M)
    ]
    objects = [o for o in (room.group(1).split(", ") if room else []) if o and o != "nothing"]
    return objects, rules, goal.group(1) if goal else ""


def instructions(max_turns: int, show_rules: bool = True) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    rules = (
        'The rules are listed under "Rules:".'
        if show_rules
        else "The rules are hidden: find them by trying."
    )
    return (
        'You are in RuleWorld: a room holds objects such as "red ball", and your goal is '
        "to make the goal object. Touching one object with another may turn both into a new "
        f"object, following production rules; both objects are used up, so choose the order "
        f"with care. {rules} You have {max_turns} turns.\n"
        "Reply with one action on a single line: touch <object> with <object>, naming two "
        'objects of the room exactly as written, e.g. "touch red ball with blue key". '
        "After each action I tell you what happened and list the objects in the room."
    )


class RuleWorldEnv(TextEnv):
    """A RuleWorld world (rules in the module docstring).

    Args:
        depth: rule-chain depth of the default task distribution (a list: drawn from it).
        distractors: distractor rules and objects of the default distribution.
        max_turns: turn limit (default ``2 * depth + 4`` of the task).
        show_rules: list the rules in the observation.
        invalid_penalty: reward of an action that does not name two objects in the room.
        render_mode: ``None`` or ``"ansi"``.
    """

    def __init__(
        self,
        depth: int | list[int] = 2,
        distractors: int = 2,
        max_turns: int | None = None,
        show_rules: bool = True,
        invalid_penalty: float = -0.1,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        self.depths = [depth] if isinstance(depth, int) else list(depth)
        self.distractors = distractors
        self._max_turns = max_turns
        self.show_rules = show_rules
        self.invalid_penalty = float(invalid_penalty)
        self.objects: list[str] = []
        self.rules: list[Rule] = []
        self.goal = ""

    def sample_task(self) -> dict[str, Any]:
        depth = self.depths[int(self.np_random.integers(len(self.depths)))]
        return {
            "world_seed": int(self.np_random.integers(2**31)),
            "depth": int(depth),
            "distractors": self.distractors,
        }

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if "world_seed" not in task:
            task.update(self.sample_task())  # e.g. a spec with only a privilege or depth
        depth = int(task.get("depth", self.depths[0]))
        self.objects, self.rules, self.goal = generate_world(
            int(task["world_seed"]), depth, int(task.get("distractors", self.distractors))
        )
        self.max_turns = self._max_turns or 2 * depth + 4
        info = {"instructions": instructions(self.max_turns, self.show_rules)}
        return self._render("You look around."), info

    def _message(self, last: str, success: bool = False) -> str:
        """``info["message"]``: what happened, then the objects in the room."""
        if success:
            last += f" You made the {self.goal}: goal reached!"
        elif self._turn >= self.max_turns:
            last += " That was your last turn."
        return f"{last}\nRoom: {', '.join(self.objects) or 'nothing'}"

    def _render(self, last: str) -> str:
        lines = [f"Goal: make {article(self.goal)} {self.goal}."]
        if self.show_rules:
            lines += ["Rules:"] + [f"- touching {a} with {b} makes {c}" for a, b, c in self.rules]
        lines += [
            f"Room: {', '.join(self.objects) or 'nothing'}",
            f"Last: {last}",
            "Action: touch <object> with <object>.",
        ]
        return "\n".join(lines) + "\n"

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        pair = parse_touch(action)
        if (
            pair is None
            or any(o not in self.objects for o in pair)
            or (pair[0] == pair[1] and self.objects.count(pair[0]) < 2)
        ):
            why = 'You cannot do that: name two objects of the room, like "touch A with B".'
            return (
                self._render("You cannot do that."),
                self.invalid_penalty,
                False,
                {"invalid_action": True, "message": self._message(why)},
            )
        a, b = pair
        out = apply_rule(self.objects, self.rules, a, b)
        if out is None:
            last = f"Touching {a} with {b} does nothing."
            return self._render(last), 0.0, False, {"message": self._message(last)}
        self.objects.remove(a)
        self.objects.remove(b)
        self.objects.append(out)
        success = self.goal in self.objects
        last = f"The {a} and the {b} turn into {article(out)} {out}."
        return (
            self._render(last),
            float(success),
            success,
            {"success": success, "message": self._message(last, success)},
        )


def room_actions(objects: list[str]) -> list[str]:
    """Every valid action in a room: ``touch A with B`` for two objects of ``objects`` (both
    orders; ``A`` with itself only when the room holds two of it)."""
    names = sorted(set(objects))
    return [f"touch {a} with {b}" for a in names for b in names if a != b or objects.count(a) >= 2]


ALL_ACTIONS = tuple(f"touch {a} with {b}" for a in OBJECTS for b in OBJECTS)
"""``touch A with B`` over the whole object vocabulary (the fallback of :func:`action_grammar`)."""


def action_grammar(prompt: str) -> Any:
    """The ``ruleworld`` decoding constraint's grammar for one prompt: exactly one of
    :func:`room_actions` of the last ``Room:`` line in ``prompt``, then a newline (a prompt
    without a room of two objects falls back to every pair of RuleWorld's 48 objects).
    Returns a :class:`agentrl.policy.constraints.ChoiceGrammar`."""
    from agentrl.policy.constraints import ChoiceGrammar

    rooms = re.findall(r"^Room: (.*)$", prompt, re.M)
    objects = [o for o in rooms[-1].split(", ") if o in _OBJECT_SET] if rooms else []
    actions = room_actions(objects)
    return ChoiceGrammar(tuple(actions) if actions else ALL_ACTIONS, terminator="\n")


_OBJECT_SET = frozenset(OBJECTS)


def task_list(
    depths: tuple[int, ...] = (1, 2, 3, 4), worlds: int = 25, distractors: int = 2
) -> list[dict[str, Any]]:
    """``worlds`` procedural worlds per depth (seeds 0..worlds-1), for curricula."""
    return [
        {"world_seed": s, "depth": d, "distractors": distractors}
        for d in depths
        for s in range(worlds)
    ]


# --- scripted players (registered in agentrl.envs.scripted) -----------------------------------


class RuleWorldRandom:
    """Touches two random objects of the room."""

    rng: np.random.Generator

    def reset(self, task: dict[str, Any], rng: np.random.Generator) -> None:
        self.rng = rng

    def act(self, observation: str) -> str:
        objects, _, _ = parse_observation(observation)
        if len(objects) < 2:
            return "touch nothing"
        i, j = self.rng.choice(len(objects), size=2, replace=False)
        return f"touch {objects[int(i)]} with {objects[int(j)]}"


class RuleWorldGood(RuleWorldRandom):
    """The first touch of a shortest plan (BFS over the rules read from the observation)."""

    def act(self, observation: str) -> str:
        objects, rules, goal = parse_observation(observation)
        steps = plan(objects, rules, goal)
        if not steps:
            return super().act(observation)
        return f"touch {steps[0][0]} with {steps[0][1]}"
