"""CHAI: act by the critic's pick among k samples of a frozen policy (ArCHer paper baseline).

From the ArCHer paper's baselines (Zhou et al. 2024, arXiv 2402.19446; CHAI is Verma et
al. 2022): the utterance-level double critic is trained exactly as ArCHer's
(:class:`~agentrl.algorithms.archer.learner.CriticLearner`: ``V`` bootstraps on fresh
samples of the same frozen policy), the policy is never updated, and acting samples
``k = num_candidates`` utterances per observation and returns the one with the highest
``min(Q_1, Q_2)(s, a)``.

Under greedy sampling all candidates would be the same, so :meth:`Chai.act` then samples
one. The rule (:class:`CriticChoice`) runs where the episodes are collected: inline with the
learner's critic, on Ray rollout workers with a copy of it that every weight sync refreshes
(:meth:`Chai.acting_state`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from agentrl.algorithm import ActingRule, ActingState, AlgorithmBase, rule_seed
from agentrl.policy import SamplingConfig
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode, Generation

from .config import ArcherConfig
from .critic import DoubleCritic, build_critic
from .learner import CriticLearner

if TYPE_CHECKING:
    from agentrl.policy import Policy


@dataclass
class ChaiConfig(ArcherConfig):
    """ArCHer's critic settings plus the number of candidates (actor settings are unused).

    Attributes:
        num_candidates: utterances sampled per observation in :meth:`Chai.act` (paper: 5).
    """

    num_candidates: int = 5
    actor_lr: float = 3e-4

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.num_candidates, bool) or not (
            isinstance(self.num_candidates, int) and self.num_candidates >= 1
        ):
            raise ValueError(f"num_candidates must be an integer >= 1, got {self.num_candidates!r}")


class CriticChoice(ActingRule):
    """CHAI's acting rule: per state, ``num_candidates`` samples of the policy and the one with
    the highest ``min(Q_1, Q_2)(s, a)``; under greedy sampling one sample (all would be equal).

    Args:
        policy: samples the candidates.
        critic: ranks them (the learner's own inline; a worker's copy over Ray).
        num_candidates: ``k``.
        micro_batch_size: states scored per critic pass (``k`` candidates each).
        generator: the candidates' draws, on the CPU (they move to the logits' device), so
            samples do not depend on where the policy runs.
    """

    def __init__(
        self,
        policy: Policy,
        critic: DoubleCritic,
        num_candidates: int,
        micro_batch_size: int,
        generator: torch.Generator,
    ):
        self.policy = policy
        self.critic = critic
        self.num_candidates = num_candidates
        self.micro_batch_size = micro_batch_size
        self.generator = generator

    @torch.no_grad()
    def __call__(
        self,
        observations: Sequence[str],
        prompts: Sequence[Sequence[int]],
        sampling: SamplingConfig,
    ) -> list[Generation]:
        if not observations:
            return []
        k = 1 if sampling.is_greedy else self.num_candidates
        gens = self.policy.generate(
            [p for p in prompts for _ in range(k)], sampling, self.generator
        )
        if k == 1:
            return gens
        obs = [o for o in observations for _ in range(k)]
        mb = self.micro_batch_size * k
        scores = torch.cat(
            [
                self.critic.min_q(obs[lo : lo + mb], [g.text for g in gens[lo : lo + mb]])
                for lo in range(0, len(obs), mb)
            ]
        )
        best = scores.view(len(observations), k).argmax(dim=1).tolist()
        return [gens[i * k + j] for i, j in enumerate(best)]

    def load_state(self, state: ActingState) -> None:
        """Load the learner's critic (:meth:`Chai.acting_state`)."""
        self.critic.load_state_dict(state)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(rule_seed(seed, 0))


@ALGORITHMS.register("chai")
class Chai(AlgorithmBase):
    """CHAI (see the module docstring)."""

    Config = ChaiConfig
    has_acting_rule = True  # the critic-ranked choice among sampled candidates

    def __init__(self, config: ChaiConfig | None, policy: Any, seed: int = 0):
        self.config = config or ChaiConfig()
        self.policy = policy
        self.core = CriticLearner(self.config, policy, seed)
        # on the CPU: draws move to the logits' device, so samples and checkpoints do not
        # depend on where the policy runs
        self.act_generator = torch.Generator().manual_seed(seed + 2)
        self.rule = CriticChoice(
            policy,
            self.core.critic,
            self.config.num_candidates,
            self.config.micro_batch_size,
            self.act_generator,
        )
        self.num_updates = 0

    @property
    def critic(self) -> DoubleCritic:
        return self.core.critic

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        added = self.core.add_episodes(episodes)
        out: dict[str, float] = {"chai/transitions_added": float(added)}
        if len(self.core.buffer) > 0 and self.config.critic_epochs > 0:
            start = time.perf_counter()
            with self.core.critic_phase():  # the policy is frozen: conversations prefilled once
                steps = [self.core.step() for _ in range(self.config.critic_epochs)]
            out["chai/critic_s"] = time.perf_counter() - start
            for key in steps[0]:
                out[f"chai/{key}"] = sum(s[key] for s in steps) / len(steps)
        self.num_updates += 1
        out["chai/buffer_size"] = float(len(self.core.buffer))
        out["chai/critic_steps"] = float(self.core.steps)
        return out

    def act(
        self,
        observations: Sequence[str],
        prompts: Sequence[Sequence[int]],
        sampling: SamplingConfig | None = None,
    ) -> list[Generation]:
        """Per state, the best of ``num_candidates`` samples by ``min(Q_1, Q_2)``
        (:class:`CriticChoice` with the learner's critic and :attr:`act_generator`).

        ``observations`` are the state texts the critic reads, ``prompts`` the policy's
        context ids of the same states (the rollout worker's conversation contexts).
        """
        return self.rule(observations, prompts, sampling or self.core.sampling)

    def acting_state(self) -> ActingState:
        """The critic's ``state_dict`` on the CPU (heads and encoder; only the critic's LoRA
        tensors with ``critic_encoder=policy_lora``): what a worker's :class:`CriticChoice`
        ranks with."""
        state = self.core.critic.state_dict()
        return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}

    @classmethod
    def worker_acting_rule(cls, config: ChaiConfig, policy: Policy) -> CriticChoice:
        """A :class:`CriticChoice` around the worker's ``policy`` with a critic of its own, built
        as the learner's (for ``policy_lora``: an adapter on the worker's policy), frozen; its
        weights come with every :meth:`acting_state`."""
        critic = build_critic(config, policy)
        critic.requires_grad_(False)
        return CriticChoice(
            policy, critic, config.num_candidates, config.micro_batch_size, torch.Generator()
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            **self.core.state_dict(),
            "act_generator": self.act_generator.get_state(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.core.load_state_dict(state)
        self.act_generator.set_state(state["act_generator"])
        self.num_updates = int(state["num_updates"])

    def replay_rows(self) -> list[dict[str, Any]]:
        return self.core.buffer.rows()

    def load_replay_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.core.buffer.load_rows(rows)
