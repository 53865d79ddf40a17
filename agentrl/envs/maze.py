"""Maze: walk to the goal of a small text maze.

A perfect maze of ``size x size`` cells is carved from the seed (randomised depth-first
search, so exactly one path joins any two cells); the agent ``A`` and the goal ``G`` start
on two different random cells. The whole maze is drawn in every observation, so the state
is fully observed and the env is Markov.

Observation: ``"Maze: move A to G. # is a wall. Moves: north, south, east, west.\\n"``, the
grid (``2 * size + 1`` lines of ``#``, ``.``, ``A``, ``G``; north is up), then one line of
feedback: ``"Start."``, ``"You moved <dir>."``, ``"You hit a wall."`` or ``"Invalid move."``.

Actions: the first of ``north|south|east|west`` (or ``up|down|right|left``, ``n|s|e|w``)
found as a whole word in the action text, case-insensitive. Reward: 1.0 on reaching the
goal (terminated, ``info["success"]``); 0.0 for a move or a bump into a wall;
``invalid_penalty`` (-0.1) for an action that names no direction
(``info["invalid_action"]``). Truncated after ``max_turns`` (default ``2 * size * size``).

Conversations (:mod:`agentrl.envs.conversation`): ``reset`` returns the rules in plain words
as ``info["instructions"]``; every ``step`` returns ``info["message"]``: what happened and the maze drawn again.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

import numpy as np

from agentrl.envs.base import TextEnv

HEADER = "Maze: move A to G. # is a wall. Moves: north, south, east, west.\n"
MOVES: dict[str, tuple[int, int]] = {
    "north": (-1, 0),
    "south": (1, 0),
    "east": (0, 1),
    "west": (0, -1),
}
_ALIASES = {"up": "north", "down": "south", "right": "east", "left": "west",
            "n": "north", "s": "south", "e": "east", "w": "west", **{m: m for m in MOVES}}  # fmt: skip
_DIRECTION = re.compile(r"\b(" + "|".join(sorted(_ALIASES, key=len, reverse=True)) + r")\b")


def parse_move(text: str) -> str | None:
    """The first direction named in ``text`` (canonical name), or ``None``."""
    m = _DIRECTION.search(text.lower())
    return _ALIASES[m.group(1)] if m else None


def carve(size: int, rng: np.random.Generator) -> list[list[str]]:
    """A perfect maze as a ``(2*size+1)`` square grid of ``#`` and ``.`` (cells at odd indices)."""
    n = 2 * size + 1
    grid = [["#"] * n for _ in range(n)]
    start = (int(rng.integers(size)), int(rng.integers(size)))
    seen, stack = {start}, [start]
    grid[2 * start[0] + 1][2 * start[1] + 1] = "."
    while stack:
        r, c = stack[-1]
        nxt = [(r + dr, c + dc) for dr, dc in MOVES.values()
               if 0 <= r + dr < size and 0 <= c + dc < size and (r + dr, c + dc) not in seen]  # fmt: skip
        if not nxt:
            stack.pop()
            continue
        nr, nc = nxt[int(rng.integers(len(nxt)))]
        grid[r + nr + 1][c + nc + 1] = "."  # the wall between the two cells
        grid[2 * nr + 1][2 * nc + 1] = "."
        seen.add((nr, nc))
        stack.append((nr, nc))
    return grid


def parse_grid(observation: str) -> list[str]:
    """The grid lines of an observation."""
    return [line for line in observation.splitlines()[1:] if line and set(line) <= set("#.AG")]


def shortest_path(grid: list[str]) -> list[str]:
    """The moves of a shortest path from ``A`` to ``G`` in a grid (empty if none).

    One move goes from a cell to the next cell (two grid characters) through an open wall.
    """
    cells = {(r, c): ch for r, line in enumerate(grid) for c, ch in enumerate(line)}
    start = next((p for p, ch in cells.items() if ch == "A"), None)
    if start is None:
        return []
    back: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        p = queue.popleft()
        if cells[p] == "G":
            path = []
            while (step := back[p]) is not None:
                p, move = step
                path.append(move)
            return path[::-1]
        for move, (dr, dc) in MOVES.items():
            q = (p[0] + 2 * dr, p[1] + 2 * dc)
            if cells.get((p[0] + dr, p[1] + dc), "#") != "#" and q in cells and q not in back:
                back[q] = (p, move)
                queue.append(q)
    return []


def instructions(max_turns: int) -> str:
    """The rules in plain words for a chat model (``info["instructions"]`` of ``reset``)."""
    return (
        "You are in a maze drawn as a grid of characters: # is a wall, . is open floor, A is "
        "you and G is the goal. North is up, south is down, east is right, west is left. "
        f"Reach G in at most {max_turns} moves.\n"
        "Reply with one move on a single line: north, south, east or west. A move takes you "
        "to the next cell in that direction (two characters along in the drawing) unless a "
        "wall (#) is in between; then you stay where you are. After each move I tell you what happened "
        "and draw the maze again."
    )


class MazeEnv(TextEnv):
    """A seeded text maze (rules in the module docstring).

    Args:
        size: cells per side (4: a 9 x 9 grid).
        max_turns: turn limit (default ``2 * size * size``).
        invalid_penalty: reward of an action that names no direction (-0.1).
        render_mode: ``None`` or ``"ansi"``.

    Task spec: ``{"maze_seed": int}`` (the maze and both positions follow from it).
    """

    def __init__(
        self,
        size: int = 4,
        max_turns: int | None = None,
        invalid_penalty: float = -0.1,
        render_mode: str | None = None,
    ):
        super().__init__(render_mode=render_mode)
        if not 2 <= size <= 20:
            raise ValueError(f"size must be in [2, 20], got {size}")
        self.size = size
        self.max_turns = max_turns if max_turns is not None else 2 * size * size
        self.invalid_penalty = float(invalid_penalty)
        self.grid: list[list[str]] = []
        self.pos = self.goal = (1, 1)

    def sample_task(self) -> dict[str, Any]:
        """``{"maze_seed": ...}`` drawn from ``self.np_random``."""
        return {"maze_seed": int(self.np_random.integers(2**31))}

    def _reset(self, task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        if "maze_seed" not in task:
            raise ValueError(f"a Maze task needs 'maze_seed', got {task}")
        rng = np.random.default_rng(int(task["maze_seed"]))
        self.grid = carve(self.size, rng)
        a, g = rng.choice(self.size * self.size, size=2, replace=False)
        self.pos = (2 * int(a // self.size) + 1, 2 * int(a % self.size) + 1)
        self.goal = (2 * int(g // self.size) + 1, 2 * int(g % self.size) + 1)
        return self._render("Start."), {"instructions": instructions(self.max_turns)}

    def _drawing(self) -> str:
        """The grid with ``A`` and ``G``, one line per row (no trailing newline)."""
        rows = []
        for r, line in enumerate(self.grid):
            chars = list(line)
            if r == self.goal[0]:
                chars[self.goal[1]] = "G"
            if r == self.pos[0]:
                chars[self.pos[1]] = "A"
            rows.append("".join(chars))
        return "\n".join(rows)

    def _render(self, feedback: str) -> str:
        return HEADER + self._drawing() + "\n" + feedback + "\n"

    def _message(self, feedback: str) -> str:
        """``info["message"]``: what happened, then the maze as it is now."""
        if self._turn >= self.max_turns and self.pos != self.goal:
            feedback += " That was your last move."
        return f"{feedback}\n{self._drawing()}"

    def _step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        move = parse_move(action)
        if move is None:
            message = self._message(
                "Invalid move: reply with one direction: north, south, east or west."
            )
            return (
                self._render("Invalid move."),
                self.invalid_penalty,
                False,
                {"invalid_action": True, "message": message},
            )
        dr, dc = MOVES[move]
        if self.grid[self.pos[0] + dr][self.pos[1] + dc] == "#":
            info = {"invalid_action": False, "message": self._message("You hit a wall.")}
            return self._render("You hit a wall."), 0.0, False, info
        self.pos = (self.pos[0] + 2 * dr, self.pos[1] + 2 * dc)
        won = self.pos == self.goal
        obs = self._render(f"You moved {move}.")
        n = self._turn
        done = f" and reached the goal in {n} move{'s' * (n > 1)}!" if won else "."
        info = {
            "success": won,
            "invalid_action": False,
            "message": self._message(f"You moved {move}{done}"),
        }
        return obs, (1.0 if won else 0.0), won, info
