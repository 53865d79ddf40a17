"""Typed data that flows between the stages of a run.

Rollout workers produce :class:`Episode` objects made of :class:`Turn` objects; reward
models relabel them; algorithms turn them into tensors with pure functions (see
:mod:`agentrl.batch`). Nothing here holds Ray handles, env objects or models, so every
object is cheap to send through the Ray object store and to write as JSON.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

TaskSpec = dict[str, Any]
"""A task for an environment, passed as ``reset(options={"task": spec})``.

A plain JSON-serialisable dict, e.g. ``{"word": "dog"}`` or ``{"low": 1, "high": 50}``.
An empty dict means "the env's default distribution".
"""


@dataclass
class Generation:
    """One sampled utterance.

    Attributes:
        text: decoded action text (without the stop string).
        token_ids: sampled action token ids, ``[L]`` (including the stop token if one was hit).
        logprobs: per-token log-probabilities under the sampling distribution, ``[L]``.
            With temperature 1 these equal the policy's log-probs of ``token_ids``.
        prompt_ids: prompt token ids as the model saw them (no padding), ``[P]``.
        finish_reason: ``"stop"`` (stop string / eos) or ``"length"``.
    """

    text: str
    token_ids: list[int]
    logprobs: list[float]
    prompt_ids: list[int]
    finish_reason: str = "stop"

    @property
    def logprob(self) -> float:
        return float(sum(self.logprobs))


@dataclass
class Turn:
    """One high-level transition: observation -> utterance -> reward.

    Attributes:
        observation: the env's observation before this turn: the whole state of a transcript
            env, the new message of a conversational one (``docs/conversations.md``).
        action: the utterance sent to the env.
        prompt_ids: the token ids placed before this turn's action: the whole prompt when
            ``continues`` is False; when True, the ids appended to the previous turn's
            context and action (the close of the agent's last reply, the env's new message,
            the next generation prompt). :meth:`Episode.contexts` rebuilds whole prompts.
        action_ids: sampled token ids of the utterance, ``[L]``.
        action_logprobs: per-token sampling log-probs, ``[L]``.
        reward: env (or reward-model) reward for this turn.
        terminated / truncated: Gymnasium end flags after this step.
        next_observation: observation after the step (``""`` when the episode ended).
        info: JSON-serialisable info dict returned by ``env.step``.
        continues: the prompt extends the previous turn's context (a conversation) rather
            than starting a fresh one (a transcript env, or the first turn).
        role: the role of ``observation`` in the conversation: ``"user"`` or ``"tool"``.
        policy_version: version of the weights that sampled this turn (the learner's number
            of updates when they were sent to the worker).
    """

    observation: str
    action: str
    prompt_ids: list[int]
    action_ids: list[int]
    action_logprobs: list[float]
    reward: float
    terminated: bool
    truncated: bool
    next_observation: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    continues: bool = False
    role: str = "user"
    policy_version: int = 0

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated

    @property
    def action_logprob(self) -> float:
        return float(sum(self.action_logprobs))


@dataclass
class Episode:
    """A finished multi-turn trajectory.

    Attributes:
        env_id: Gymnasium id, e.g. ``"agentrl/TwentyQuestions-v0"``.
        task: the task spec the env was reset with.
        seed: the reset seed.
        turns: the transitions in order.
        success: ``info["success"]`` of the last step.
        policy_version: version of the weights that generated every turn.
        env_reward: the sum of the env's own rewards (kept when a reward model relabels).
        error: set when the env raised; the episode is then truncated at that turn.
    """

    env_id: str
    task: TaskSpec
    seed: int
    turns: list[Turn] = field(default_factory=list)
    success: bool = False
    policy_version: int = 0
    env_reward: float = 0.0
    error: str | None = None

    @property
    def total_reward(self) -> float:
        """Return of the episode under the (possibly relabelled) per-turn rewards."""
        return float(sum(t.reward for t in self.turns))

    @property
    def num_turns(self) -> int:
        return len(self.turns)

    @property
    def num_action_tokens(self) -> int:
        return sum(len(t.action_ids) for t in self.turns)

    def contexts(self) -> list[list[int]]:
        """The whole prompt (context) of every turn, ``[P_t]``: what the policy conditioned on.

        A continuing turn's context is the previous context, the previous action's ids and
        its own ``prompt_ids``, concatenated: the exact ids the sampler saw.
        """
        out: list[list[int]] = []
        for t, turn in enumerate(self.turns):
            if turn.continues:
                if t == 0:
                    raise ValueError("the first turn of an episode cannot continue a context")
                prev = self.turns[t - 1]
                out.append(out[-1] + list(prev.action_ids) + list(turn.prompt_ids))
            else:
                out.append(list(turn.prompt_ids))
        return out

    def segments(self) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """The episode as token sequences: one per fresh context (one for a whole
        conversation, one per turn for a transcript env).

        Returns:
            ``[(token_ids, spans)]`` where ``spans`` are the ``(start, end)`` positions of the
            segment's agent turns' action ids in ``token_ids`` (the agent mask), in turn order.
        """
        out: list[tuple[list[int], list[tuple[int, int]]]] = []
        for turn in self.turns:
            if not turn.continues or not out:
                out.append(([], []))
            ids, spans = out[-1]
            ids.extend(turn.prompt_ids)
            spans.append((len(ids), len(ids) + len(turn.action_ids)))
            ids.extend(turn.action_ids)
        return out

    def states(self) -> list[str]:
        """The state text of every turn, for text critics and reward models: the observation
        of a transcript env; for a conversation, the messages so far (observations and
        replies, one per line)."""
        out: list[str] = []
        for t, turn in enumerate(self.turns):
            if turn.continues and t > 0:
                out.append(f"{out[-1]}\n{self.turns[t - 1].action}\n{turn.observation}")
            else:
                out.append(turn.observation)
        return out

    def next_states(self) -> list[str]:
        """The state after every turn (``""`` after the last one), as :meth:`states`."""
        states = self.states()
        out = []
        for t, turn in enumerate(self.turns):
            if not turn.next_observation:
                out.append("")
            elif t + 1 < len(self.turns) and self.turns[t + 1].continues:
                out.append(states[t + 1])
            elif turn.continues:  # a conversation's last recorded turn
                out.append(f"{states[t]}\n{turn.action}\n{turn.next_observation}")
            else:
                out.append(turn.next_observation)
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Episode:
        d = dict(d)
        d["turns"] = [Turn(**t) for t in d.get("turns", [])]
        return Episode(**d)


def save_episodes(path: str, episodes: list[Episode]) -> None:
    """Write episodes as JSONL, one :meth:`Episode.to_dict` per line (a dataset for offline
    algorithms: ``agentrl train algorithm=archer_offline data=PATH``)."""
    import json

    with open(path, "w") as f:
        for e in episodes:
            f.write(json.dumps(e.to_dict()) + "\n")


def load_episodes(path: str) -> list[Episode]:
    """Episodes from a JSONL file, one :meth:`Episode.to_dict` per line; a bad line raises
    ``ValueError`` naming the file and line."""
    import json

    episodes = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                episodes.append(Episode.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: not an episode (Episode.to_dict() as JSON): {e}") from e
    if not episodes:
        raise ValueError(f"{path}: no episodes")
    return episodes

