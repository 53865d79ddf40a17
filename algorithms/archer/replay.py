"""Replay buffer of utterance-level transitions ``(s, a, r, s', done)``.

Rows are plain JSON-able dicts, so a checkpoint writes the buffer as JSONL (never a
pickle). Indices are chronological (0 = oldest kept), so a buffer rebuilt from
:meth:`ReplayBuffer.rows` samples exactly what the original would with the same generator
state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

from agentrl.types import Episode


@dataclass
class Transition:
    """One turn as the critic sees it.

    Attributes:
        observation: ``s`` as text (:meth:`Episode.states`: the observation of a transcript
            env, the messages so far of a conversation).
        action: ``a``, the utterance text.
        action_ids: the sampled token ids of ``a``, ``[L]``.
        prompt_ids: the formatted prompt of ``s`` as the policy saw it, ``[P]`` (may be empty:
            then the policy re-encodes ``observation``).
        reward: ``r``.
        next_observation: ``s'`` (``""`` after the last turn), as ``observation``.
        done: no bootstrap from ``s'``.
    """

    observation: str
    action: str
    action_ids: list[int] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    reward: float = 0.0
    next_observation: str = ""
    done: bool = False


def episode_transitions(episode: Episode, timeout_is_terminal: bool = True) -> list[Transition]:
    """The transitions of one episode.

    ``done = terminated or truncated`` when ``timeout_is_terminal`` (the reference); otherwise
    a truncated turn bootstraps from its next observation, unless that is empty (nothing to
    bootstrap from: then it is terminal too).
    """
    out = []
    contexts, states, next_states = episode.contexts(), episode.states(), episode.next_states()
    for turn, context, state, next_state in zip(
        episode.turns, contexts, states, next_states, strict=True
    ):
        if turn.terminated:
            done = True
        elif turn.truncated:
            done = timeout_is_terminal or not next_state
        else:
            done = False
        out.append(
            Transition(
                observation=state,
                action=turn.action,
                action_ids=list(turn.action_ids),
                prompt_ids=context,
                reward=float(turn.reward),
                next_observation=next_state,
                done=bool(done),
            )
        )
    return out


class ReplayBuffer:
    """FIFO replay with uniform sampling (with replacement) from its own generator.

    Args:
        capacity: maximum number of transitions; the oldest is overwritten when full.
        seed: seed of the sampling generator.
    """

    def __init__(self, capacity: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._storage: list[Transition] = []
        self._start = 0  # storage index of the oldest transition once full
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self._storage)

    def __getitem__(self, i: int) -> Transition:
        """The ``i``-th oldest transition."""
        if not 0 <= i < len(self._storage):
            raise IndexError(f"replay index {i} out of range [0, {len(self._storage)})")
        return self._storage[(self._start + i) % self.capacity]

    def add(self, transition: Transition) -> None:
        if len(self._storage) < self.capacity:
            self._storage.append(transition)
        else:
            self._storage[self._start] = transition
            self._start = (self._start + 1) % self.capacity

    def extend(self, transitions: Iterable[Transition]) -> None:
        for t in transitions:
            self.add(t)

    def add_episodes(self, episodes: Iterable[Episode], timeout_is_terminal: bool = True) -> int:
        """Add every turn of ``episodes``; returns the number added."""
        n = 0
        for ep in episodes:
            ts = episode_transitions(ep, timeout_is_terminal)
            self.extend(ts)
            n += len(ts)
        return n

    def sample(self, n: int) -> list[Transition]:
        """``n`` transitions drawn uniformly with replacement."""
        if not self._storage:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = torch.randint(len(self._storage), (n,), generator=self.generator)
        return [self[i] for i in idx.tolist()]

    def rows(self) -> list[dict[str, Any]]:
        """The transitions, oldest first, as JSON-able dicts."""
        return [dataclasses.asdict(self[i]) for i in range(len(self))]

    def load_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        """Replace the contents by ``rows`` (keeps the last ``capacity``; generator untouched)."""
        self._storage = []
        self._start = 0
        self.extend(Transition(**row) for row in rows)

    @classmethod
    def from_rows(
        cls, rows: Iterable[dict[str, Any]], capacity: int, seed: int = 0
    ) -> ReplayBuffer:
        buf = cls(capacity, seed)
        buf.load_rows(rows)
        return buf

    def state_dict(self) -> dict[str, Any]:
        """Sampling state only (the contents travel as :meth:`rows`)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
