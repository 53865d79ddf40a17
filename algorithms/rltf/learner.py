"""RLTF: reinforcement learning from task feedback (OpenAGI; Ge et al. 2023, arXiv 2304.04370).

The policy writes a plan (a sequence of module names) for a task given in language; the
env executes it and the task score ``R`` (0..1, -1 for an invalid plan) is the reward.
Per task the policy proposes ``k`` candidate plans; the executed one is chosen
epsilon-greedily: with probability ``epsilon_t = max(eps_min, eps_0 * decay^t)`` a uniformly
random candidate, else the most probable one. The update is REINFORCE on the executed
plan's log-probability,

    L = -mean_i (R_i - b) * log pi(plan_i | task_i)  [+ kl_coef * KL(pi || pi_0)]

with a running-mean baseline ``b`` (an exponential moving average of the batch-mean
reward). For plans written over several turns (ToolChain's ``multi_turn``), every turn is
one such term with ``R`` = the episode's (discounted, ``gamma``) reward-to-go and the
candidates drawn per turn. Plans are decoded under a constraint (``rollout.sampling.constraint=toolchain``,
:mod:`agentrl.policy.constraints`) so only valid plans are proposed; ``log pi`` is then the
constrained distribution's, as sampled (see :meth:`Policy.action_logprobs`).

Design: acting (``k`` candidates + epsilon-greedy) is the algorithm's acting rule
(:class:`EpsilonGreedyChoice`, :class:`~agentrl.algorithm.ActingRule`), which the trainer uses
for rollouts and sampled evaluation (as for CHAI). The candidates must be generated at acting
time because only the executed plan gets a reward from the env, and the env lives with the
rollout worker, not the algorithm: inline the rule runs with the learner's policy, over Ray
each rollout worker runs a copy with its own policy copy and the learner's epsilon
(:meth:`RLTF.acting_state`, sent at every weight sync). Greedy evaluation decodes the argmax
plan without the rule.

Deviations from the reference (listed here), and why:

- Candidates are *sampled* (``num_candidates``, default 8), not the top 30 beams: beam
  candidates are not draws from ``pi``, so REINFORCE on them has no unbiasedness argument;
  ``choice="first"`` makes the update exactly on-policy REINFORCE. The default
  ``choice="best"`` keeps the reference's greedy pick of the most probable candidate (biased
  towards the mode, which speeds up early learning; kept, documented).
- ``log pi(plan)`` is the summed token log-prob of the constrained distribution (the one
  sampled from), not a length-normalised beam score.
- The baseline is a running mean across updates (``baseline_momentum``), the first update
  starting from its own batch mean, instead of a per-batch or no baseline.
- The reference's schedule (0.2, x0.9 per step) leaves ~1% exploration after 30 updates;
  kept as the default, with ``min_epsilon`` as an optional floor.
- Optional KL to the initial policy (k3 estimator on the executed plan's tokens), which
  the reference does not have.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from agentrl.algorithm import ActingRule, ActingState, AlgorithmBase, rule_seed
from agentrl.batch import build_turn_batch
from agentrl.optim import guarded_step
from agentrl.policy import SamplingConfig
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode, Generation

from .config import RLTFConfig
from .losses import epsilon_at, epsilon_greedy, kl_k3, reinforce_loss, running_baseline

if TYPE_CHECKING:
    from agentrl.policy import Policy


class EpsilonGreedyChoice(ActingRule):
    """RLTF's acting rule: ``num_candidates`` sampled plans per state, the executed one a
    uniformly random candidate with probability :attr:`epsilon`, else the most probable one
    (``choice="best"``) or the first (``choice="first"``); under greedy sampling (or ``k = 1``)
    one plan.

    Args:
        policy: samples the candidates.
        num_candidates: ``k``.
        choice: ``"best"`` or ``"first"`` (:class:`~.config.RLTFConfig`).
        act_generator: the candidates' draws; choice_generator: the exploration draws (both
            on the CPU, so samples do not depend on where the policy runs).
        epsilon: the exploration rate (the algorithm's, set before each inline call; a
            worker's copy gets it from :meth:`RLTF.acting_state`).
    """

    def __init__(
        self,
        policy: Policy,
        num_candidates: int,
        choice: str,
        act_generator: torch.Generator,
        choice_generator: torch.Generator,
        epsilon: float = 0.0,
    ):
        self.policy = policy
        self.num_candidates = num_candidates
        self.choice = choice
        self.act_generator = act_generator
        self.choice_generator = choice_generator
        self.epsilon = epsilon

    def __call__(
        self,
        observations: Sequence[str],
        prompts: Sequence[Sequence[int]],
        sampling: SamplingConfig,
    ) -> list[Generation]:
        if sampling.is_greedy or self.num_candidates == 1:
            return self.policy.generate(prompts, sampling, generator=self.act_generator)
        k = self.num_candidates
        repeated = [p for p in prompts for _ in range(k)]
        gens = self.policy.generate(repeated, sampling, generator=self.act_generator)
        scores = torch.tensor([g.logprob for g in gens]).view(len(observations), k)
        greedy = (
            None if self.choice == "best" else torch.zeros(len(observations), dtype=torch.long)
        )
        picks = epsilon_greedy(scores, self.epsilon, self.choice_generator, greedy).tolist()
        return [gens[i * k + j] for i, j in enumerate(picks)]

    def load_state(self, state: ActingState) -> None:
        """Take the learner's epsilon (:meth:`RLTF.acting_state`)."""
        self.epsilon = float(state["epsilon"])

    def reseed(self, seed: int) -> None:
        self.act_generator.manual_seed(rule_seed(seed, 0))
        self.choice_generator.manual_seed(rule_seed(seed, 1))


@ALGORITHMS.register("rltf")
class RLTF(AlgorithmBase):
    """RLTF (see the module docstring)."""

    Config = RLTFConfig
    has_acting_rule = True  # the epsilon-greedy choice among sampled plans

    def __init__(self, config: RLTFConfig | None, policy: Any, seed: int = 0):
        self.config = config or RLTFConfig()
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=self.config.lr)
        # on the CPU: draws move to the logits' device, so samples and checkpoints do not
        # depend on where the policy runs
        self.act_generator = torch.Generator().manual_seed(seed + 3)
        self.choice_generator = torch.Generator().manual_seed(seed + 5)
        self.rule = EpsilonGreedyChoice(
            policy,
            self.config.num_candidates,
            self.config.choice,
            self.act_generator,
            self.choice_generator,
        )
        self.baseline: float | None = None
        self.num_updates = 0
        self.reference: Any = None
        if self.config.kl_coef > 0:
            self.reference = copy.deepcopy(policy.model).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)

    @property
    def epsilon(self) -> float:
        cfg = self.config
        return epsilon_at(self.num_updates, cfg.epsilon, cfg.epsilon_decay, cfg.min_epsilon)

    # --- acting -------------------------------------------------------------------------
    def act(
        self, observations: Sequence[str], prompts: Sequence[Sequence[int]], sampling: SamplingConfig
    ) -> list[Generation]:
        """Sample ``k`` plans per state (``prompts``: the policy's context ids; the state
        texts ``observations`` are not needed) and return the epsilon-greedy choice of each
        (:class:`EpsilonGreedyChoice` with this algorithm's generators and epsilon).

        Under greedy sampling all candidates coincide, so one greedy plan is decoded.
        """
        self.rule.epsilon = self.epsilon
        return self.rule(observations, prompts, sampling)

    def acting_state(self) -> ActingState:
        """The current exploration rate (a worker's :class:`EpsilonGreedyChoice` has the
        config and the policy weights already)."""
        return {"epsilon": torch.tensor(self.epsilon, dtype=torch.float64)}

    @classmethod
    def worker_acting_rule(cls, config: RLTFConfig, policy: Policy) -> EpsilonGreedyChoice:
        """An :class:`EpsilonGreedyChoice` around the worker's ``policy``; its epsilon comes
        with every :meth:`acting_state`."""
        return EpsilonGreedyChoice(
            policy, config.num_candidates, config.choice, torch.Generator(), torch.Generator()
        )

    # --- learning -----------------------------------------------------------------------
    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        start = time.perf_counter()
        batch = build_turn_batch(episodes, gamma=cfg.gamma)
        n = len(batch)
        if n == 0:
            return {"rltf/turns": 0.0}
        rewards = batch.returns
        used, kept = running_baseline(self.baseline, rewards, cfg.baseline_momentum)
        adv = rewards - used
        if cfg.normalize_advantage and n > 1:
            adv = adv / (rewards.std() + 1e-8)
        adv = adv.to(self.policy.device)  # meets the policy's log-probs (CPU-built batch)
        params = list(self.policy.trainable_parameters())
        self.policy.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total_loss, total_kl, total_logp = 0.0, 0.0, 0.0
        for lo in range(0, n, cfg.minibatch_size):
            idx = list(range(lo, min(n, lo + cfg.minibatch_size)))
            mb = batch.select(idx)
            logp_sum, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
            loss = reinforce_loss(logp_sum, adv[idx])
            if self.reference is not None:
                ref_logp = self._reference_logprobs(mb.prompts, mb.actions)
                kl = kl_k3(logp, ref_logp, mask).mean()
                loss = loss + cfg.kl_coef * kl
                total_kl += kl.item() * len(idx)
            (loss * len(idx) / n).backward()
            total_loss += loss.item() * len(idx)
            total_logp += float(logp_sum.detach().sum())
        grad_norm, _ = guarded_step(self.optimizer, params, cfg.grad_clip)
        self.policy.model.eval()
        stats = {
            "rltf/loss": total_loss / n,
            "rltf/reward": float(rewards.mean()),
            "rltf/baseline": used,
            "rltf/advantage_abs": float(adv.abs().mean()),
            "rltf/plan_logprob": total_logp / n,
            "rltf/epsilon": self.epsilon,
            "rltf/grad_norm": float(grad_norm),
            "rltf/turns": float(n),
        }
        if self.reference is not None:
            stats["rltf/kl"] = total_kl / n
        self.baseline = kept
        self.num_updates += 1
        stats["rltf/update_s"] = time.perf_counter() - start
        return stats

    def _reference_logprobs(
        self, prompts: list[list[int]], actions: list[list[int]]
    ) -> torch.Tensor:
        """Per-token log-probs ``[N, L]`` of the actions under the frozen initial model."""
        live = self.policy.model
        self.policy.model = self.reference
        try:
            with torch.no_grad():
                _, ref, _ = self.policy.action_logprobs(prompts, actions)
        finally:
            self.policy.model = live
        return ref

    # --- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "optimizer": self.optimizer.state_dict(),
            "act_generator": self.act_generator.get_state(),
            "choice_generator": self.choice_generator.get_state(),
            "baseline": self.baseline,
            "num_updates": self.num_updates,
        }
        if self.reference is not None:
            state["reference"] = {
                k: v.detach().cpu() for k, v in self.reference.state_dict().items()
            }
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.act_generator.set_state(state["act_generator"])
        self.choice_generator.set_state(state["choice_generator"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])
        self.num_updates = int(state["num_updates"])
        if self.reference is not None and "reference" in state:
            self.reference.load_state_dict(state["reference"])
