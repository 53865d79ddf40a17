"""Scripted policies for the adapters, acting on the observation text only.

None of these import the wrapped libraries. ``good`` policies:

- TextArena GuessTheNumber: binary search on the range and the higher/lower replies.
- TextArena Mastermind: a random code consistent with every black/white feedback so far.
- TextArena FrozenLake: the first move of a shortest hole-free path on the latest board.
- TextArena TowerOfHanoi: the optimal next move from the latest board (any position).
- TextArena Sokoban: the first move of a shortest plan (BFS over player and box positions).

- BabyAI "go to" missions: walk towards the named object as the text describes it
  (other missions: random actions).

``random`` policies pick a uniformly random well-formed move (TextWorld: a random
admissible command; BabyAI: a random action name). TextWorld has no ``good`` text policy
here: its reset info carries the game's walkthrough, which the adapter tests play; BabyAI's
own expert (``minigrid.utils.baby_ai_bot.BabyAIBot``, reading the level's internals) is
also played there through the text actions.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from typing import Any

import numpy as np

from agentrl.types import TaskSpec


class _Base:
    rng: np.random.Generator

    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None:
        self.rng = rng

    def _pick(self, options: list[str] | tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]


def _last_board(observation: str) -> str:
    return observation.rsplit("Current Board:", 1)[-1]


# --- GuessTheNumber ----------------------------------------------------------------------------


class GuessTheNumberGood(_Base):
    def act(self, observation: str) -> str:
        m = re.search(r"between (\d+) and (\d+)", observation)
        lo, hi = (int(m.group(1)), int(m.group(2))) if m else (1, 20)
        pairs = re.findall(
            r"\[Player\] \[(\d+)\]\n\[GAME\] The target number is (higher|lower)", observation
        )
        for guess, hint in pairs:
            if hint == "higher":
                lo = max(lo, int(guess) + 1)
            else:
                hi = min(hi, int(guess) - 1)
        return f"[{(lo + hi) // 2}]" if lo <= hi else f"[{lo}]"


class GuessTheNumberRandom(_Base):
    def act(self, observation: str) -> str:
        m = re.search(r"between (\d+) and (\d+)", observation)
        lo, hi = (int(m.group(1)), int(m.group(2))) if m else (1, 20)
        return f"[{int(self.rng.integers(lo, hi + 1))}]"


# --- Mastermind --------------------------------------------------------------------------------


def _mastermind_spec(observation: str) -> tuple[int, int, bool]:
    m = re.search(
        r"(\d+) digits long, each digit from 1 to (\d+)(, with no duplicates)?", observation
    )
    return (int(m.group(1)), int(m.group(2)), bool(m.group(3))) if m else (4, 6, True)


def pegs(guess: tuple[int, ...], code: tuple[int, ...]) -> tuple[int, int]:
    """(black, white) pegs of ``guess`` against ``code``."""
    black = sum(g == c for g, c in zip(guess, code, strict=True))
    common = sum(min(guess.count(d), code.count(d)) for d in set(guess))
    return black, common - black


class MastermindGood(_Base):
    def act(self, observation: str) -> str:
        length, digits, unique = _mastermind_spec(observation)
        pool = (
            itertools.permutations(range(1, digits + 1), length)
            if unique
            else itertools.product(range(1, digits + 1), repeat=length)
        )
        history = [
            (tuple(int(d) for d in g.split()), (int(b), int(w)))
            for g, b, w in re.findall(
                r"Submitted \[([\d ]+)\]\. Feedback: (\d+) black peg\(s\), (\d+) white", observation
            )
        ]
        fit = [c for c in pool if all(pegs(g, c) == fb for g, fb in history)]
        code = fit[int(self.rng.integers(len(fit)))] if fit else tuple(range(1, length + 1))
        return "[" + " ".join(map(str, code)) + "]"


class MastermindRandom(_Base):
    def act(self, observation: str) -> str:
        length, digits, unique = _mastermind_spec(observation)
        code = self.rng.choice(np.arange(1, digits + 1), size=length, replace=not unique)
        return "[" + " ".join(str(int(d)) for d in code) + "]"


# --- grid games --------------------------------------------------------------------------------

_MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


def frozen_lake_grid(observation: str) -> list[list[str]]:
    """The latest FrozenLake board as rows of cell symbols (``" "``, ``H``, ``G``, ``P``)."""
    rows = []
    for line in _last_board(observation).splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() or " " for cell in line.strip("|").split("|")])
    return rows


class FrozenLakeGood(_Base):
    def act(self, observation: str) -> str:
        grid = frozen_lake_grid(observation)
        cells = {(r, c): ch for r, row in enumerate(grid) for c, ch in enumerate(row)}
        start = next((p for p, ch in cells.items() if ch == "P"), None)
        if start is None:
            return "[down]"
        back: dict[tuple[int, int], Any] = {start: None}
        queue = deque([start])
        while queue:
            p = queue.popleft()
            if cells[p] == "G":
                first = None
                while back[p] is not None:
                    p, first = back[p]
                return f"[{first}]"
            for move, (dr, dc) in _MOVES.items():
                q = (p[0] + dr, p[1] + dc)
                if q in cells and cells[q] != "H" and q not in back:
                    back[q] = (p, move)
                    queue.append(q)
        return f"[{self._pick(tuple(_MOVES))}]"


class GridRandom(_Base):
    """A random ``[up|down|left|right]`` (FrozenLake, Sokoban)."""

    def act(self, observation: str) -> str:
        return f"[{self._pick(tuple(_MOVES))}]"


def sokoban_boards(observation: str) -> list[list[list[str]]]:
    """Every Sokoban board in the observation, as rows of symbols (``# _ O X * P``)."""
    boards = []
    for chunk in observation.split("Current Board:")[1:]:
        rows = [line.split() for line in chunk.splitlines() if line.strip()]
        rows = [r for r in rows if r and set(r) <= set("#_OX*P")]
        if rows:
            boards.append(rows)
    return boards


def sokoban_plan(observation: str, max_states: int = 200_000) -> list[str]:
    """A shortest push plan for the latest board (BFS over player and box positions).

    Goals are read from every board of the transcript, so a goal hidden under the player
    or a box on the latest board is still known. Empty if no plan is found.
    """
    boards = sokoban_boards(observation)
    if not boards:
        return []
    goals = {
        (r, c) for b in boards for r, row in enumerate(b) for c, ch in enumerate(row) if ch in "O*"
    }
    board = boards[-1]
    walls = {(r, c) for r, row in enumerate(board) for c, ch in enumerate(row) if ch == "#"}
    inside = {(r, c) for r, row in enumerate(board) for c, _ in enumerate(row)}
    boxes = frozenset(
        (r, c) for r, row in enumerate(board) for c, ch in enumerate(row) if ch in "X*"
    )
    player = next(
        ((r, c) for r, row in enumerate(board) for c, ch in enumerate(row) if ch == "P"), None
    )
    if player is None or not goals:
        return []

    def free(p: tuple[int, int], bx: frozenset) -> bool:
        return p in inside and p not in walls and p not in bx

    start = (player, boxes)
    back: dict[Any, Any] = {start: None}
    queue = deque([start])
    while queue and len(back) < max_states:
        state = queue.popleft()
        pos, bx = state
        if bx <= goals:
            plan = []
            while back[state] is not None:
                state, move = back[state]
                plan.append(move)
            return plan[::-1]
        for move, (dr, dc) in _MOVES.items():
            nxt = (pos[0] + dr, pos[1] + dc)
            if nxt in bx:
                beyond = (nxt[0] + dr, nxt[1] + dc)
                if not free(beyond, bx):
                    continue
                new = (nxt, (bx - {nxt}) | {beyond})
            elif free(nxt, bx):
                new = (nxt, bx)
            else:
                continue
            if new not in back:
                back[new] = (state, move)
                queue.append(new)
    return []


class SokobanGood(_Base):
    """The first move of a shortest plan that puts every box on a goal."""

    def act(self, observation: str) -> str:
        plan = sokoban_plan(observation)
        return f"[{plan[0]}]" if plan else f"[{self._pick(tuple(_MOVES))}]"


# --- Tower of Hanoi ----------------------------------------------------------------------------


def hanoi_board(observation: str) -> dict[str, list[int]]:
    """The latest board, ``{"A": [3, 2, 1], "B": [], "C": []}`` (bottom first)."""
    board = {}
    for name, disks in re.findall(r"^([A-C]): \[([\d, ]*)\]", _last_board(observation), re.M):
        board[name] = [int(d) for d in disks.split(",") if d.strip()]
    return board


def hanoi_next_move(board: dict[str, list[int]], target: str) -> tuple[str, str] | None:
    """The optimal next move that brings every disk to ``target`` (``None`` when done)."""
    where = {disk: peg for peg, disks in board.items() for disk in disks}

    def solve(n: int, to: str) -> tuple[str, str] | None:
        if n == 0:
            return None
        src = where[n]
        if src == to:
            return solve(n - 1, to)
        spare = next(p for p in board if p not in (src, to))
        return solve(n - 1, spare) or (src, to)

    return solve(len(where), target)


class TowerOfHanoiGood(_Base):
    def act(self, observation: str) -> str:
        m = re.search(r"to tower ([A-C])", observation)
        move = hanoi_next_move(hanoi_board(observation), m.group(1) if m else "C")
        return f"[{move[0]} {move[1]}]" if move else "[A C]"


class TowerOfHanoiRandom(_Base):
    def act(self, observation: str) -> str:
        src, dst = self.rng.choice(["A", "B", "C"], size=2, replace=False)
        return f"[{src} {dst}]"


# --- TextWorld and BabyAI ----------------------------------------------------------------------


def admissible(observation: str) -> list[str]:
    """The commands listed on the observation's ``Admissible commands:`` line."""
    line = observation.rsplit("Admissible commands:", 1)[-1].strip().splitlines()
    return [c.strip() for c in line[0].split(",") if c.strip()] if line else []


class TextWorldRandom(_Base):
    def act(self, observation: str) -> str:
        return self._pick(admissible(observation) or ["look"])


class BabyAIRandom(_Base):
    def act(self, observation: str) -> str:
        return self._pick(("turn left", "turn right", "go forward", "pick up", "drop", "toggle"))


_SEEN = re.compile(
    r"a (?:open |closed |locked )?(\w+) (\w+), (?:(\d+) steps? forward)?(?: and )?(?:(\d+) steps? (left|right))?"
)


class BabyAIGoToGood(_Base):
    """For "go to the <color> <object>" missions: walk to the object as the text shows it.

    Object in view: turn towards it when it is level with the agent, else walk forward
    (turning away from whatever blocks the way); out of view: turn left, or walk forward
    one time in three so that the agent leaves a corner. Other missions: random actions.
    """

    def act(self, observation: str) -> str:
        m = re.search(r"Mission: go to (?:the|a) (\w+) (\w+)", observation)
        lines = observation.splitlines()
        seen = next((ln for ln in lines if ln.startswith("You see: ")), "")
        target = None
        for color, kind, fwd, side, way in _SEEN.findall(seen):
            if m and (color, kind) == (m.group(1), m.group(2)):
                target = (int(fwd or 0), int(side or 0) * (1 if way == "right" else -1))
                break
        if m is None:
            return self._pick(("turn left", "turn right", "go forward"))
        if target is None:
            return (
                "go forward"
                if self.rng.random() < 1 / 3 and "bumped" not in lines[-1]
                else "turn left"
            )
        forward, side = target
        if forward == 0:
            return "turn right" if side > 0 else "turn left"
        if forward == 1 and side == 0:
            return "done"
        if "bumped" in lines[-1]:
            return "turn right" if side >= 0 else "turn left"
        return "go forward"


_TA = "agentrl/TextArena-{}-v0"
POLICIES: dict[str, dict[str, Any]] = {
    _TA.format("GuessTheNumber"): {"random": GuessTheNumberRandom, "good": GuessTheNumberGood},
    _TA.format("Mastermind"): {"random": MastermindRandom, "good": MastermindGood},
    _TA.format("FrozenLake"): {"random": GridRandom, "good": FrozenLakeGood},
    _TA.format("TowerOfHanoi"): {"random": TowerOfHanoiRandom, "good": TowerOfHanoiGood},
    _TA.format("Sokoban"): {"random": GridRandom, "good": SokobanGood},
    "agentrl/TextWorld-v0": {"random": TextWorldRandom},
    "agentrl/BabyAI-v0": {"random": BabyAIRandom, "good": BabyAIGoToGood},
}
"""Adapter id -> the scripted policy classes it has."""
