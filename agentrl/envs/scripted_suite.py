"""Scripted ``random`` and ``good`` policies for Guess My City, Wordle and Maze.

Like those of :mod:`agentrl.envs.scripted` they read only the observation (plus the
public rules of the game) and draw every random choice from the generator given to
``reset``:

- Guess My City -- random: any canonical question or guess; good: keep the cities
  consistent with the answers so far, ask the canonical question whose answers split them
  into the most groups (smallest expected remainder), and name the city once one is left.
- Wordle -- random: any word of the list; good: a random word among those consistent
  with all the feedback so far.
- Maze -- random: a random direction; good: the first move of a shortest path (BFS on the
  drawn grid).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from agentrl.envs import guess_my_city as gmc
from agentrl.envs import maze, wordle
from agentrl.types import TaskSpec


class _Base:
    rng: np.random.Generator

    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None:
        self.rng = rng

    def _pick(self, options: list[str] | tuple[str, ...]) -> str:
        return options[int(self.rng.integers(len(options)))]


class GuessMyCityRandom(_Base):
    """A uniformly random canonical question or city guess."""

    def __init__(self) -> None:
        self.actions = list(gmc.QUESTIONS) + [gmc.guess_text(c) for c in gmc.CITIES]

    def act(self, observation: str) -> str:
        return self._pick(self.actions)


class GuessMyCityGood(_Base):
    """Elimination by the most informative canonical question, then the guess."""

    def candidates(self, observation: str) -> list[gmc.City]:
        """The cities whose answers match every past answer (all cities if none do)."""
        pairs = gmc.parse_observation(observation)
        fit = [c for c in gmc.CITIES if all(gmc.answer(c, q) == a for q, a in pairs)]
        return fit or list(gmc.CITIES)

    def act(self, observation: str) -> str:
        cities = self.candidates(observation)
        if len(cities) == 1:
            return gmc.guess_text(cities[0])
        scored = []
        for q in gmc.QUESTIONS:
            groups = Counter(gmc.answer(c, q) for c in cities)
            scored.append((sum(n * n for n in groups.values()), q))
        best = min(s for s, _ in scored)
        return self._pick([q for s, q in scored if s == best])


class WordleRandom(_Base):
    """A uniformly random word of the list."""

    def act(self, observation: str) -> str:
        return self._pick(wordle.word_list())


class WordleGood(_Base):
    """A random word consistent with all the feedback so far."""

    def act(self, observation: str) -> str:
        fit = wordle.consistent(wordle.word_list(), wordle.parse_observation(observation))
        return self._pick(fit or list(wordle.word_list()))


class MazeRandom(_Base):
    """A uniformly random direction."""

    def act(self, observation: str) -> str:
        return self._pick(tuple(maze.MOVES))


class MazeGood(_Base):
    """The first step of a shortest path to the goal."""

    def act(self, observation: str) -> str:
        path = maze.shortest_path(maze.parse_grid(observation))
        return path[0] if path else self._pick(tuple(maze.MOVES))
