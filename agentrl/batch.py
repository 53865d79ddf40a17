"""Episodes -> tensors: the one pure function between rollouts and learners.

Every algorithm that trains on utterances uses :func:`build_turn_batch`; it never mutates
the episodes it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agentrl.types import Episode


@dataclass(frozen=True)
class TurnBatch:
    """One row per turn (utterance) of a set of episodes. ``N`` turns, ``L`` = longest action.

    Attributes:
        prompts: the whole prompt (context) token ids per turn, unpadded (length ``N``).
        actions: sampled action token ids per turn, unpadded (length ``N``).
        action_ids: ``[N, L]`` long, right-padded with 0.
        action_mask: ``[N, L]`` float, 1 on real action tokens.
        old_logprobs: ``[N, L]`` float, per-token sampling log-probs, 0 on padding.
        rewards: ``[N]`` float, the turn's reward.
        returns: ``[N]`` float, discounted reward-to-go within the episode.
        dones: ``[N]`` float, 1 when the episode ended at this turn (terminated or truncated).
        terminated: ``[N]`` float, 1 when the env terminated (not truncated) at this turn.
        episode_index: ``[N]`` long, index of the turn's episode in the input.
        turn_index: ``[N]`` long, position of the turn in its episode.
        observations / next_observations: the state texts before and after each turn
            (:meth:`Episode.states`; length ``N``).
        action_texts: the utterances (length ``N``).
        segments: the token sequences the turns live in (:meth:`Episode.segments`: one per
            conversation, one per turn for a transcript env), unpadded.
        segment_index: ``[N]`` long, the segment of each turn.
        action_start: ``[N]`` long, where each turn's action ids start in its segment
            (so ``segments[s][:action_start]`` is the turn's prompt).
        policy_version: ``[N]`` long, the version of the weights that sampled each turn.
    """

    prompts: list[list[int]]
    actions: list[list[int]]
    action_ids: torch.Tensor
    action_mask: torch.Tensor
    old_logprobs: torch.Tensor
    rewards: torch.Tensor
    returns: torch.Tensor
    dones: torch.Tensor
    terminated: torch.Tensor
    episode_index: torch.Tensor
    turn_index: torch.Tensor
    observations: list[str]
    next_observations: list[str]
    action_texts: list[str]
    segments: list[list[int]]
    segment_index: torch.Tensor
    action_start: torch.Tensor
    policy_version: torch.Tensor

    def __len__(self) -> int:
        return len(self.prompts)

    def select(self, index: torch.Tensor | Sequence[int]) -> TurnBatch:
        """A new batch with the rows ``index`` (a minibatch)."""
        idx = torch.as_tensor(index, dtype=torch.long)
        rows = idx.tolist()
        width = max([len(self.actions[i]) for i in rows] + [1])
        return TurnBatch(
            prompts=[self.prompts[i] for i in rows],
            actions=[self.actions[i] for i in rows],
            action_ids=self.action_ids[idx, :width],
            action_mask=self.action_mask[idx, :width],
            old_logprobs=self.old_logprobs[idx, :width],
            rewards=self.rewards[idx],
            returns=self.returns[idx],
            dones=self.dones[idx],
            terminated=self.terminated[idx],
            episode_index=self.episode_index[idx],
            turn_index=self.turn_index[idx],
            observations=[self.observations[i] for i in rows],
            next_observations=[self.next_observations[i] for i in rows],
            action_texts=[self.action_texts[i] for i in rows],
            segments=self.segments,
            segment_index=self.segment_index[idx],
            action_start=self.action_start[idx],
            policy_version=self.policy_version[idx],
        )

    def spans(self) -> list[tuple[int, int, int]]:
        """``(segment, start, end)`` of every turn's action ids, for
        :meth:`Policy.span_logprobs <agentrl.policy.Policy.span_logprobs>`."""
        return [
            (s, a, a + len(act))
            for s, a, act in zip(
                self.segment_index.tolist(), self.action_start.tolist(), self.actions, strict=True
            )
        ]


def segment_minibatches(batch: TurnBatch, turns: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Random minibatches of whole segments (conversations), about ``turns`` turns each.

    Each minibatch holds every turn of its segments, so one forward pass per segment scores
    them all (:meth:`Policy.span_logprobs <agentrl.policy.Policy.span_logprobs>`). Segments
    are shuffled, sorted by length inside windows of eight minibatches (less padding) and cut;
    the minibatch order is shuffled again. With one segment per turn (transcript envs) this
    is a random, length-grouped split of the turns.

    Returns:
        the row indices of each minibatch (long tensors).
    """
    n_seg = len(batch.segments)
    if n_seg == 0 or len(batch) == 0:
        return []
    size = max(1, round(turns * n_seg / len(batch)))
    rows_of: list[list[int]] = [[] for _ in range(n_seg)]
    for row, seg in enumerate(batch.segment_index.tolist()):
        rows_of[seg].append(row)
    used = torch.tensor([s for s in range(n_seg) if rows_of[s]], dtype=torch.long)
    lengths = torch.tensor([len(batch.segments[s]) for s in used.tolist()])
    order = torch.randperm(len(used), generator=generator)
    groups: list[list[int]] = []
    window = 8 * size
    for lo in range(0, len(order), window):
        chunk = order[lo : lo + window]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        groups.extend(used[chunk[i : i + size]].tolist() for i in range(0, len(chunk), size))
    perm = torch.randperm(len(groups), generator=generator).tolist()
    return [torch.tensor([r for s in groups[g] for r in rows_of[s]], dtype=torch.long) for g in perm]


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """Reward-to-go ``G_t = r_t + gamma * G_{t+1}`` for one episode."""
    out = [0.0] * len(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = float(rewards[t]) + gamma * running
        out[t] = running
    return out


def build_turn_batch(episodes: Sequence[Episode], gamma: float = 1.0) -> TurnBatch:
    """Flatten ``episodes`` into a :class:`TurnBatch` (one row per turn, episode order kept)."""
    prompts: list[list[int]] = []
    actions: list[list[int]] = []
    logps: list[list[float]] = []
    rewards: list[float] = []
    returns: list[float] = []
    dones: list[float] = []
    terms: list[float] = []
    ep_idx: list[int] = []
    turn_idx: list[int] = []
    obs: list[str] = []
    next_obs: list[str] = []
    texts: list[str] = []
    segments: list[list[int]] = []
    seg_idx: list[int] = []
    starts: list[int] = []
    versions: list[int] = []
    for e, ep in enumerate(episodes):
        rtg = discounted_returns([t.reward for t in ep.turns], gamma)
        for ids, spans in ep.segments():
            for start, _ in spans:
                seg_idx.append(len(segments))
                starts.append(start)
            segments.append(ids)
        contexts, states, next_states = ep.contexts(), ep.states(), ep.next_states()
        for t, turn in enumerate(ep.turns):
            if len(turn.action_logprobs) != len(turn.action_ids):
                raise ValueError(
                    f"episode {e} turn {t}: {len(turn.action_ids)} action ids but "
                    f"{len(turn.action_logprobs)} log-probs"
                )
            prompts.append(contexts[t])
            actions.append(list(turn.action_ids))
            logps.append(list(turn.action_logprobs))
            rewards.append(float(turn.reward))
            returns.append(rtg[t])
            dones.append(float(turn.done))
            terms.append(float(turn.terminated))
            ep_idx.append(e)
            turn_idx.append(t)
            obs.append(states[t])
            next_obs.append(next_states[t])
            texts.append(turn.action)
            versions.append(int(turn.policy_version))
    n = len(prompts)
    width = max([len(a) for a in actions] + [1])
    action_ids = torch.zeros(n, width, dtype=torch.long)
    mask = torch.zeros(n, width)
    old = torch.zeros(n, width)
    for i, (a, lp) in enumerate(zip(actions, logps, strict=True)):
        if a:
            action_ids[i, : len(a)] = torch.tensor(a, dtype=torch.long)
            mask[i, : len(a)] = 1.0
            old[i, : len(a)] = torch.tensor(lp, dtype=torch.float32)
    return TurnBatch(
        prompts=prompts,
        actions=actions,
        action_ids=action_ids,
        action_mask=mask,
        old_logprobs=old,
        rewards=torch.tensor(rewards, dtype=torch.float32),
        returns=torch.tensor(returns, dtype=torch.float32),
        dones=torch.tensor(dones, dtype=torch.float32),
        terminated=torch.tensor(terms, dtype=torch.float32),
        episode_index=torch.tensor(ep_idx, dtype=torch.long),
        turn_index=torch.tensor(turn_idx, dtype=torch.long),
        observations=obs,
        next_observations=next_obs,
        action_texts=texts,
        segments=segments,
        segment_index=torch.tensor(seg_idx, dtype=torch.long),
        action_start=torch.tensor(starts, dtype=torch.long),
        policy_version=torch.tensor(versions, dtype=torch.long),
    )
