"""Between the learner's per-turn rows and per-episode token sequences.

A :class:`~agentrl.batch.TurnBatch` holds one row per turn (``[N, L]``: the turn's agent
tokens). GAE runs over each episode's agent tokens in order, across its turns, which is the
layout :func:`~.losses.gae` takes: one row per episode (``[E, T]``), each turn's agent tokens
preceded by one masked slot that stands for the env's tokens between two replies (so a turn
boundary is a masked gap, as in a conversation). The layout does not depend on how the
episode was tokenised (one conversation, or one transcript prompt per turn).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agentrl.batch import TurnBatch


@dataclass(frozen=True)
class EpisodeTokens:
    """Where every agent token of a :class:`TurnBatch` sits in its episode's sequence.

    Attributes:
        episode: ``[N, L]`` long, the row of the token's episode in the ``[E, T]`` layout.
        position: ``[N, L]`` long, the token's position in that row.
        token_mask: ``[N, L]`` bool, the batch's agent tokens.
        mask: ``[E, T]`` float, 1 on agent tokens.
    """

    episode: torch.Tensor
    position: torch.Tensor
    token_mask: torch.Tensor
    mask: torch.Tensor

    def to_episodes(self, x: torch.Tensor) -> torch.Tensor:
        """``[N, L]`` per-turn values -> ``[E, T]`` (0 at masked positions)."""
        out = torch.zeros(self.mask.shape, dtype=torch.float32, device=x.device)
        m = self.token_mask.to(x.device)
        out[self.episode.to(x.device)[m], self.position.to(x.device)[m]] = x[m].float()
        return out

    def to_turns(self, y: torch.Tensor) -> torch.Tensor:
        """``[E, T]`` -> ``[N, L]`` (0 past each turn's last agent token)."""
        m = self.token_mask.to(y.device)
        out = torch.zeros(m.shape, dtype=y.dtype, device=y.device)
        out[m] = y[self.episode.to(y.device)[m], self.position.to(y.device)[m]]
        return out


def episode_tokens(batch: TurnBatch) -> EpisodeTokens:
    """The :class:`EpisodeTokens` of ``batch`` (its rows in episode order, turns in order,
    as :func:`agentrl.batch.build_turn_batch` lists them)."""
    token_mask = batch.action_mask.bool()
    lengths = token_mask.sum(-1).tolist()
    episodes = batch.episode_index.tolist()
    rows_of: dict[int, int] = {}
    position = torch.zeros(token_mask.shape, dtype=torch.long)
    episode = torch.zeros(token_mask.shape, dtype=torch.long)
    cursor: list[int] = []
    for i, (e, n) in enumerate(zip(episodes, lengths, strict=True)):
        row = rows_of.setdefault(e, len(rows_of))
        if row == len(cursor):
            cursor.append(0)
        start = cursor[row] + 1  # one masked slot: the env's tokens before this reply
        position[i, :n] = torch.arange(start, start + n)
        episode[i, :] = row
        cursor[row] = start + n
    mask = torch.zeros(len(cursor), max(cursor, default=0))
    mask[episode[token_mask], position[token_mask]] = 1.0
    return EpisodeTokens(episode=episode, position=position, token_mask=token_mask, mask=mask)


def turn_end_rewards(batch: TurnBatch) -> torch.Tensor:
    """``[N, L]``: each turn's reward on its last agent token, 0 elsewhere.

    Raises:
        ValueError: a turn without agent tokens (its reward would have no token to go to).
    """
    lengths = batch.action_mask.sum(-1).long()
    empty = (lengths == 0).nonzero().flatten().tolist()
    if empty:
        i = empty[0]
        raise ValueError(
            f"ppo: turn {int(batch.turn_index[i])} of episode {int(batch.episode_index[i])} has "
            "no action tokens; GAE puts a turn's reward on its last agent token"
        )
    out = torch.zeros(batch.action_mask.shape)
    out[torch.arange(len(batch)), lengths - 1] = batch.rewards.float()
    return out


def segment_chunks(batch: TurnBatch, turns: int) -> list[torch.Tensor]:
    """The rows of ``batch`` in order, cut into chunks of whole segments (conversations) of
    about ``turns`` turns: for passes without gradients over every row."""
    chunks: list[list[int]] = [[]]
    last_segment = None
    for row, seg in enumerate(batch.segment_index.tolist()):
        if seg != last_segment and len(chunks[-1]) >= turns:
            chunks.append([])
        chunks[-1].append(row)
        last_segment = seg
    return [torch.tensor(c, dtype=torch.long) for c in chunks if c]
