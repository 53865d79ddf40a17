"""Token-level PPO for multi-turn agents (the on-policy baseline of the ArCHer paper).

Every agent token is an action. With a value function (``value_head=policy``: a linear head
on the policy's body; ``separate``: a critic of its own, :mod:`.value_head`) each agent
token gets its own advantage from GAE over the episode's agent tokens in order
(:func:`~.losses.gae`: ``gamma`` discounts across turns, ``lam`` at every token; env tokens
are not actions and are skipped), the value loss (optionally clipped) joins the surrogate,
and an optional per-token KL penalty to the reference (fixed or adaptive) is subtracted
from the rewards. ``value_head=none`` is the critic-free variant: every token of turn ``t``
gets ``A_t = G_t - b(t)`` (reward-to-go minus the batch-mean return at the same turn index).

The loss is PPO's clipped surrogate on the per-token ratio ``pi(a|s)/pi_old(a|s)`` against
the log-probs captured while sampling (re-scored once when the rollout sampled at a
temperature other than 1); ``epochs`` passes in minibatches of whole conversations
(:func:`~agentrl.batch.segment_minibatches`), each scored in one forward pass
(:meth:`~agentrl.policy.Policy.span_logprobs`). Values, old values and the reference's
log-probs come from one pass without gradients before the first epoch. ``docs/ppo.md``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from agentrl.algorithm import AlgorithmBase
from agentrl.batch import TurnBatch, build_turn_batch, segment_minibatches
from agentrl.optim import guarded_step
from agentrl.policy import Policy
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode

from .config import PPOConfig
from .layout import episode_tokens, segment_chunks, turn_end_rewards
from .losses import (
    adaptive_kl_coef,
    behaviour_weights,
    clipped_policy_loss,
    episode_returns,
    explained_variance,
    gae,
    masked_normalize,
    turn_advantages,
    value_loss,
)
from .value_head import ValueModel, build_value_model


class ClippedConfig(Protocol):
    """The config fields the clipped-surrogate loop reads (PPO's and GRPO's configs)."""

    lr: float
    gamma: float
    clip: float
    epochs: int
    minibatch_size: int
    grad_clip: float
    stale_weight_cap: float


@dataclass(frozen=True)
class UpdateTargets:
    """What an update's minibatches are compared with, one row per turn of its batch.

    Attributes:
        old_logprobs: ``[N, L]`` log-probs of the sampling policy.
        advantages: ``[N]`` one per turn (shared by its tokens) or ``[N, L]`` one per token.
        old_values: ``[N, L]`` values before the update (PPO with a value head), else None.
        returns: ``[N, L]`` value targets (with ``old_values``), else None.
        weights: ``[N, L]`` decoupled PPO's importance weights when some turns are stale
            (:func:`~.losses.behaviour_weights`), else None.
    """

    old_logprobs: torch.Tensor
    advantages: torch.Tensor
    old_values: torch.Tensor | None = None
    returns: torch.Tensor | None = None
    weights: torch.Tensor | None = None


class ClippedPolicyGradient(AlgorithmBase):
    """PPO's clipped surrogate on whole conversations; subclasses say what the advantage of
    each turn is (:meth:`advantages`) and may add loss terms (:meth:`extra_terms`).

    Every agent token of a turn gets the turn's advantage; the ratio is against the
    sampling log-probs captured in the rollout (re-scored once when the rollout sampled at
    another temperature). When some turns were sampled by older weights than the learner's
    (asynchronous collection, ``rollout.max_staleness``), the update is decoupled PPO: the
    ratio is against the current policy before the update (the proximal policy, one pass
    without gradients) and each stale token is weighted by the truncated importance ratio of
    proximal to behaviour policy (:meth:`correct_staleness`); ``epochs`` passes in minibatches of whole conversations, each
    scored in one forward pass; a lifelong ``extra_loss_fn`` joins every step. A subclass
    with more to fit (PPO's value function) overrides :meth:`prepare` and
    :meth:`minibatch_loss`; the optimiser's parameter groups are clipped and stepped together.
    """

    supports_extra_loss = True
    learner_group = ("ddp", "fsdp")
    stat_prefix: ClassVar[str] = ""
    config: ClippedConfig

    def __init__(self, config: Any, policy: Policy, seed: int = 0):
        self.config = config if config is not None else self.Config()  # type: ignore[misc]
        self.policy = policy
        self.optimizer = torch.optim.Adam(policy.trainable_parameters(), lr=self.config.lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.num_updates = 0
        self.sampling_temperature = 1.0

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer]

    @abstractmethod
    def advantages(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``[N]`` one advantage per row of ``batch`` (``build_turn_batch(episodes, gamma)``)
        and stats to log."""

    def extra_terms(
        self, logp: torch.Tensor, mb: TurnBatch, mask: torch.Tensor
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """A loss term added to the surrogate of minibatch ``mb`` (``logp``/``mask``: its
        per-token log-probs and agent-token mask), and stats; none by default."""
        return None, {}

    def old_logprobs(self, batch: TurnBatch) -> torch.Tensor:
        """``[N, L]`` the log-probs the ratio is taken against: the sampling ones, re-scored
        when the rollout sampled at a temperature other than 1."""
        if self.sampling_temperature == 1.0:
            return batch.old_logprobs
        with torch.no_grad():
            return self.policy.span_logprobs(batch.segments, batch.spans())[1]

    def stale(self, batch: TurnBatch) -> torch.Tensor:
        """``[N]`` bool: the turn was sampled by weights older than the learner's."""
        return batch.policy_version < int(self.policy.version)

    def current_logprobs(self, batch: TurnBatch, temperature: float = 1.0) -> torch.Tensor:
        """``[N, L]`` the current policy's log-probs of the batch's actions, without
        gradients, on the CPU (whole conversations in chunks of ``minibatch_size`` turns)."""
        out = torch.zeros_like(batch.old_logprobs)
        self.policy.model.eval()
        with torch.no_grad():
            for rows in segment_chunks(batch, self.config.minibatch_size):
                mb = batch.select(rows)
                logp = self.policy.span_logprobs(mb.segments, mb.spans(), temperature=temperature)[1]
                out[rows, : logp.shape[1]] = logp.float().cpu()
        return out

    def correct_staleness(
        self, batch: TurnBatch, anchor: torch.Tensor, current: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, float]]:
        """``(anchor, weights, stats)`` of the update: unchanged when every turn is fresh;
        else decoupled PPO's proximal log-probs (``current``, the current policy at
        temperature 1, computed here when not given) as the anchor and
        :func:`~.losses.behaviour_weights` against the sampling log-probs (the current
        policy at the sampling temperature over the behaviour policy)."""
        stale = self.stale(batch)
        if not bool(stale.any()):
            return anchor, None, {}
        proximal = current if current is not None else self.current_logprobs(batch)
        at_sampling = (
            proximal
            if self.sampling_temperature == 1.0
            else self.current_logprobs(batch, self.sampling_temperature)
        )
        weights = behaviour_weights(at_sampling, batch.old_logprobs, stale, self.config.stale_weight_cap)
        mask = batch.action_mask.bool() & stale.unsqueeze(-1)
        n = mask.sum().clamp(min=1)
        stats = {
            "stale_frac": float(stale.float().mean()),
            "stale_weight_mean": float((weights * mask).sum() / n),
            "stale_weight_capped_frac": float(((weights >= self.config.stale_weight_cap) & mask).sum() / n),
        }
        return proximal, weights * batch.action_mask, stats

    def prepare(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[UpdateTargets, dict[str, float]]:
        """The targets of this update, fixed before its first minibatch, and stats: the
        advantages of :meth:`advantages`, :meth:`old_logprobs` and, for stale turns,
        :meth:`correct_staleness`'s anchor and weights, on the policy's device."""
        adv, stats = self.advantages(episodes, batch)
        anchor, weights, stale_stats = self.correct_staleness(batch, self.old_logprobs(batch))
        # The batch is built on the CPU; the loss meets the policy's log-probs on its device.
        dev = self.policy.device
        return UpdateTargets(
            anchor.to(dev), adv.to(dev), weights=None if weights is None else weights.to(dev)
        ), {**stats, **stale_stats}

    def minibatch_loss(
        self, mb: TurnBatch, rows: torch.Tensor, targets: UpdateTargets
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of minibatch ``mb`` (the rows ``rows`` of the update's batch) and stats:
        the clipped surrogate plus :meth:`extra_terms`."""
        _, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
        w = logp.shape[1]
        loss, stats = clipped_policy_loss(
            logp,
            targets.old_logprobs[rows, :w],
            targets.advantages[rows],
            mask,
            self.config.clip,
            None if targets.weights is None else targets.weights[rows, :w],
        )
        term, term_stats = self.extra_terms(logp, mb, mask)
        if term is not None:
            loss = loss + term
        return loss, {**stats, **term_stats}

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        prefix = self.stat_prefix
        start = time.perf_counter()
        batch = build_turn_batch(episodes, gamma=cfg.gamma)
        if len(batch) == 0:
            return {f"{prefix}/turns": 0.0}
        targets, adv_stats = self.prepare(episodes, batch)
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.policy.model.train()
        stats: dict[str, list[float]] = {"loss": [], "clip_frac": [], "approx_kl": [], "grad_norm": []}
        tokens = batch.action_mask.sum(-1)  # the minibatch losses are means over these
        for _ in range(cfg.epochs):
            for idx in segment_minibatches(batch, cfg.minibatch_size, self.generator):
                self.optimizer.zero_grad(set_to_none=True)
                # one process, or this rank's conversations of a learner group (agentrl.parallel)
                loss, mb_stats = self.data_parallel.backward(
                    idx,
                    lambda rows: self.minibatch_loss(batch.select(rows), rows, targets),
                    self._extra_loss,
                    tokens,
                    units=batch.segment_index,
                )
                grad_norm, _ = guarded_step(self.optimizer, params, cfg.grad_clip)
                stats["loss"].append(loss)
                stats["grad_norm"].append(float(grad_norm))
                for k, v in mb_stats.items():
                    stats.setdefault(k, []).append(v)
        self.policy.model.eval()
        self.num_updates += 1
        out = {f"{prefix}/{k}": sum(v) / max(len(v), 1) for k, v in stats.items()}
        # The first minibatch's ratio is 1 (no step yet), so the mean hides one large step;
        # the largest minibatch KL is the one to watch (docs/scaling.md: PPO under staleness).
        out[f"{prefix}/approx_kl_max"] = max(stats["approx_kl"], default=0.0)
        out.update({f"{prefix}/{k}": v for k, v in adv_stats.items()})
        out[f"{prefix}/turns"] = float(len(batch))
        out[f"{prefix}/update_s"] = time.perf_counter() - start
        return out

    def _extra_loss(self) -> torch.Tensor | None:
        """A lifelong regulariser (e.g. EWC) added to every step, or None."""
        return self.extra_loss_fn(self.policy) if self.extra_loss_fn is not None else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "num_updates": self.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.num_updates = int(state["num_updates"])


@ALGORITHMS.register("ppo")
class PPO(ClippedPolicyGradient):
    """Token-level PPO with a learned value function and GAE (see the module docstring)."""

    Config = PPOConfig
    stat_prefix = "ppo"
    config: PPOConfig

    def __init__(self, config: PPOConfig | None, policy: Policy, seed: int = 0):
        super().__init__(config, policy, seed)
        cfg = self.config
        self.value_model: ValueModel | None = build_value_model(cfg.value_head, policy, seed)
        if self.value_model is not None:
            self.optimizer.add_param_group({"params": list(self.value_model.trainable())})
        self.rl_started = False
        self.kl_coef = float(cfg.kl_coef)
        # the KL reference: the adapter switched off under LoRA, else a frozen copy
        self.reference: Policy | None = None
        if cfg.kl_coef > 0 and not policy.is_lora:
            self.reference = copy.deepcopy(policy)
            self.reference.model.requires_grad_(False)

    @classmethod
    def check_run(cls, config: Any, constraint: str | None) -> None:
        """``value_head=policy`` reads the policy's hidden states in its one-pass scoring,
        which a decoding constraint replaces by per-turn scoring."""
        if isinstance(config, PPOConfig) and config.value_head == "policy" and constraint:
            raise ValueError(
                "ppo: value_head=policy reads the policy's hidden states in its one-pass "
                f"scoring, which the decoding constraint {constraint!r} "
                "(rollout.sampling.constraint) replaces by per-turn scoring; use "
                "algorithm.value_head=separate or none"
            )

    @classmethod
    def check_group(cls, config: Any, strategy: str) -> None:
        """FSDP shards the policy alone: a value function or a frozen reference copy would
        be parameters outside it."""
        super().check_group(config, strategy)
        if strategy == "fsdp" and isinstance(config, PPOConfig) and (config.value_head != "none" or config.kl_coef > 0):
            raise ValueError(
                f"with fsdp the policy is the only sharded model, so value_head={config.value_head} "
                f"and kl_coef={config.kl_coef:g} (a frozen copy) must be none and 0: use "
                "algorithm=ppo_critic_free (algorithm.kl_coef=0), or cluster.learner_strategy=ddp"
            )

    def advantages(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The critic-free advantage of every turn (``value_head=none``):
        ``batch.returns`` against ``baseline``."""
        cfg = self.config
        return turn_advantages(batch.returns, batch.turn_index, cfg.baseline, cfg.normalize_advantage), {}

    def score(self, mb: TurnBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(logprobs, mask, values or None)`` of ``mb``'s agent tokens, ``[N, L]`` each."""
        if self.value_model is None:
            _, logp, mask = self.policy.span_logprobs(mb.segments, mb.spans())
            return logp, mask, None
        return self.value_model.score(self.policy, mb.segments, mb.spans())

    def prepare(
        self, episodes: Sequence[Episode], batch: TurnBatch
    ) -> tuple[UpdateTargets, dict[str, float]]:
        cfg = self.config
        if not self.rl_started and self.value_model is not None:
            self.value_model.on_rl_start(self.policy)
        self.rl_started = True
        if self.value_model is None and self.kl_coef == 0:
            return super().prepare(episodes, batch)  # the critic-free PPO, unchanged
        self.check_run(cfg, self.policy.default_constraint)  # also checked before the run
        old, values, ref = self._scores_without_grad(batch)
        rescored = self.sampling_temperature != 1.0 or bool(self.stale(batch).any())
        old, weights, stats = self.correct_staleness(batch, old, old if rescored else None)
        mask = batch.action_mask
        kl_tokens = torch.zeros_like(mask)
        if ref is not None:
            kl_tokens = (old - ref) * mask
            kl = float(kl_tokens.sum() / mask.sum().clamp(min=1))
            stats.update({"kl_ref": kl, "kl_coef": self.kl_coef})
        dev = self.policy.device
        if values is None:
            rewards = batch.rewards - self.kl_coef * kl_tokens.sum(-1)
            penalised = dataclasses.replace(
                batch, rewards=rewards, returns=episode_returns(rewards, batch.episode_index, cfg.gamma)
            )
            adv, adv_stats = self.advantages(episodes, penalised)
            targets = UpdateTargets(old.to(dev), adv.to(dev))
        else:
            rewards = turn_end_rewards(batch) - self.kl_coef * kl_tokens
            layout = episode_tokens(batch)
            # V-trace's c_k = min(1, pi_prox / mu): the decoupled weights below the cap, 1 on fresh turns
            traces = weights.clamp(max=1.0) if cfg.vtrace and weights is not None else None
            adv_e, ret_e = gae(
                layout.to_episodes(rewards),
                layout.to_episodes(values),
                layout.mask,
                cfg.gamma,
                cfg.lam,
                None if traces is None else layout.to_episodes(traces),
            )
            adv, returns = layout.to_turns(adv_e), layout.to_turns(ret_e)
            adv_stats = {
                "explained_var": explained_variance(values, returns, mask),
                "value_mean": float((values * mask).sum() / mask.sum().clamp(min=1)),
                "return_mean": float((returns * mask).sum() / mask.sum().clamp(min=1)),
            }
            if cfg.normalize_advantage:
                adv = masked_normalize(adv, mask)
            targets = UpdateTargets(old.to(dev), adv.to(dev), values.to(dev), returns.to(dev))
        if weights is not None:
            targets = dataclasses.replace(targets, weights=weights.to(dev))
        if ref is not None and cfg.kl_target is not None:
            self.kl_coef = adaptive_kl_coef(self.kl_coef, stats["kl_ref"], cfg.kl_target)
        return targets, {**stats, **adv_stats}

    def _scores_without_grad(
        self, batch: TurnBatch
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``(old log-probs, values or None, reference log-probs or None)``, ``[N, L]`` on the
        CPU, from passes without gradients over whole conversations in chunks of about
        ``minibatch_size`` turns. The old log-probs are the sampling ones, or the current
        policy's (at temperature 1) when the rollout sampled at another temperature or some
        turns are stale (decoupled PPO's proximal policy)."""
        old = batch.old_logprobs.clone()
        values = torch.zeros_like(old) if self.value_model is not None else None
        ref = torch.zeros_like(old) if self.kl_coef > 0 else None
        rescore = self.sampling_temperature != 1.0 or bool(self.stale(batch).any())
        self.policy.model.eval()
        with torch.no_grad():
            for rows in segment_chunks(batch, self.config.minibatch_size):
                mb = batch.select(rows)
                if values is not None or rescore:
                    logp, _, v = self.score(mb)
                    w = logp.shape[1]
                    if rescore:
                        old[rows, :w] = logp.float().cpu()
                    if values is not None and v is not None:
                        values[rows, :w] = v.float().cpu()
                if ref is not None:
                    r = self._reference_logprobs(mb)
                    ref[rows, : r.shape[1]] = r.float().cpu()
        return old, values, ref

    def _reference_logprobs(self, mb: TurnBatch) -> torch.Tensor:
        if self.reference is not None:
            return self.reference.span_logprobs(mb.segments, mb.spans())[1]
        return self.policy.reference_logprobs(mb.segments, mb.spans())

    def minibatch_loss(
        self, mb: TurnBatch, rows: torch.Tensor, targets: UpdateTargets
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The clipped surrogate, ``vf_coef`` times the value loss and the entropy bonus."""
        cfg = self.config
        logp, mask, values = self.score(mb)
        w = logp.shape[1]
        adv = targets.advantages[rows]
        if adv.dim() == 2:
            adv = adv[:, :w]
        loss, stats = clipped_policy_loss(
            logp,
            targets.old_logprobs[rows, :w],
            adv,
            mask,
            cfg.clip,
            None if targets.weights is None else targets.weights[rows, :w],
        )
        stats["pg_loss"] = loss.item()
        if values is not None and targets.old_values is not None and targets.returns is not None:
            vl = value_loss(values, targets.old_values[rows, :w], targets.returns[rows, :w], mask, cfg.vf_clip)
            loss = loss + cfg.vf_coef * vl
            stats["value_loss"] = vl.item()
        entropy = -(logp * mask).sum() / mask.sum().clamp(min=1)
        if cfg.entropy_coef:
            loss = loss - cfg.entropy_coef * entropy
        stats["entropy"] = entropy.item()
        return loss, stats

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state.update({"kl_coef": self.kl_coef, "rl_started": self.rl_started})
        if self.value_model is not None:
            state["value_model"] = self.value_model.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.kl_coef = float(state["kl_coef"])
        self.rl_started = bool(state["rl_started"])
        if self.value_model is not None:
            self.value_model.load_state_dict(state["value_model"])
