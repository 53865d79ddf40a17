"""ArCHer: hierarchical multi-turn actor-critic (Zhou et al. 2024, arXiv 2402.19446).

Two RL problems run side by side. High level, over utterances: one turn is one transition
``(s, a, r, s', done)`` with ``a`` the whole utterance, and an off-policy double critic is
trained from a replay buffer (:class:`CriticLearner`). Low level, over tokens: the policy's
tokens are trained by a policy gradient whose advantage comes from that critic.

Critic (Q heads on ``[h_s, h_a]``, V heads on ``h_s``; ``Qbar``/``Vbar`` = target copy)::

    Q_i(s, a) <- r + gamma * (1 - done) * Vbar_i(s')          (MSE, i = 1, 2)
    V_i(s)    <- Qbar_i(s, a'),   a' ~ pi(.|s) sampled fresh  (MSE)
    loss = L_Q1 + L_Q2 + L_V1 + L_V2;  target <- (1 - tau) target + tau online, every step

Actor, on states ``s`` from the buffer with fresh ``a ~ pi(.|s)``::

    A(s, a) = min(Q_1, Q_2)(s, a) - min(V_1, V_2)(s)           (no grad)
    loss    = -mean(A * sum_t log pi(a_t | s, a_<t))           (REINFORCE per utterance)

Schedule of one :meth:`Archer.update`: add every turn of the new episodes to the buffer;
``critic_epochs`` critic steps, each on ``batch_size`` transitions sampled uniformly, in
``grad_accum`` micro-batches; then, once ``warmup_iters`` updates have passed,
``actor_epochs`` actor steps on ``batch_size`` states each. Defaults: gamma 0.95, tau 0.1,
critic lr 2e-5, actor lr 1e-5, 50 critic / 3 actor steps of 256 (32 x 8), clip 1.0.

Differences from the reference code (each a quirk of that code):

- gradient accumulation divides by the number of micro-batches (the reference sums, so
  its effective lr is ``lr x accum``); every random draw comes from generators seeded by
  ``seed`` (replay sampling, fresh actions), so the same seed gives the same losses;
- no ``set_detect_anomaly`` around the critic phase;
- a critic micro-batch costs four encoder passes, not six: online (states, actions) and
  target (states + next states deduplicated in one pass, fresh actions); each distinct
  text is encoded once per pass and tokenised once per run (cache);
- the fresh ``a'`` of the V target is sampled once per critic step for the whole batch
  (batched), not at batch 8 for every micro-batch;
- the policy does not change during the critic phase, so the KV caches of the replayed
  conversations prefilled for one step's fresh actions are kept for the next steps
  (:meth:`CriticLearner.critic_phase`): each conversation goes through the policy once per
  update, not once per step; the same samples, log-probs up to float summation order;
- fresh actions go through the policy's KV-cached decode loop, whose steps run the body
  and ``W @ h^T`` for the last position (:mod:`agentrl.policy.lean`), and the critic encoder's
  token embedding gets a sparse gradient (dense once before clipping): equal up to float
  summation order, less time (docs/archer_update_speed.md);
- the actor is scored on the sampled token ids (``policy.action_logprobs``: left-padded
  prompts, log-softmax at action positions only), never on re-tokenised decoded text;
  generation stops per sequence at the stop string (the policy's decode loop);
- the target update is one fused ``torch._foreach_lerp_``;
- the critic's and the actor's gradients are cleared before and after each phase and
  clipped per network, so clipping never mixes them;
- nothing is pickled: the buffer is written as JSONL rows (:meth:`Archer.replay_rows`)
  and the state dict holds tensors, numbers and dicts only.

Also: the critic encoder always runs in eval mode (no dropout), which keeps same-seed runs
identical; timeouts are terminal as in the reference unless ``timeout_is_terminal=False``.

Variants: :class:`ArcherOffline` (``archer_offline``: IQL expectile critic + AWR actor on
a dataset) below, and CHAI in :mod:`.chai`. The critic encoder is a separate model
(RoBERTa-style, as the reference) or a LoRA adapter on the policy (:mod:`.critic`).
Extensions, off by default: ``ppo_clip`` (one sampled batch per update, ``actor_epochs``
clipped-ratio steps on it), ``normalize_advantage`` and ``critic_action_samples`` (at most
``k`` draws of the V target's ``a'`` per state per critic phase, reused by later steps:
:meth:`CriticLearner.target_actions`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from agentrl.algorithm import AlgorithmBase
from agentrl.optim import guarded_step
from agentrl.policy import SamplingConfig
from agentrl.policy.device import autocast
from agentrl.policy.prefill_cache import PrefillCache
from agentrl.policy.prefix import prefix_groups
from agentrl.registry import ALGORITHMS
from agentrl.types import Episode, Generation, load_episodes

from .config import ArcherConfig, ArcherOfflineConfig
from .critic import (
    POLICY_ENCODER,
    DoubleCritic,
    build_critic,
    densify_grads_,
    init_encoder_from_policy,
    precision_dtype,
)
from .losses import (
    actor_loss,
    advantage,
    awr_weights,
    expectile_loss,
    polyak_update_,
    q_loss,
    v_loss,
)
from .replay import ReplayBuffer, Transition


def make_adam(params: Any, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where torch has one (CPU, CUDA): one pass per tensor instead
    of ~10 element-wise passes (5x faster for a RoBERTa-sized critic on CPU), same update."""
    params = list(params)
    fused = bool(params) and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params
    )
    return torch.optim.Adam(params, lr=lr, fused=fused or None)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(lo, min(lo + size, n)) for lo in range(0, n, size)]


SHARED_TOKEN_BUDGET = 2 * 2048 * 2048
"""Bound of a shared micro-batch: the sum over its conversations of (packed length)^2. The
attention of a packed conversation holds ``heads x L x L`` numbers per layer for the
backward, so this bounds its memory (two 2048-token conversations); SmolLM2's 64-state
batches of 2,000-token TwentyQuestions conversations ran out of 24 GB in one pass."""


def shared_chunks(
    prompts: Sequence[Sequence[int]],
    size: int,
    action_lengths: Sequence[int] | None = None,
    token_budget: int = SHARED_TOKEN_BUDGET,
) -> list[list[int]] | None:
    """Micro-batches of state indices that keep each conversation whole, or ``None`` when
    no prompt is a prefix of another (then plain ``size``-state slices are used).

    States are grouped under their conversation (:func:`~agentrl.policy.prefix.prefix_groups`)
    and whole conversations are packed, in order, into micro-batches of at most ``size``
    states whose packed lengths (the conversation plus its states' actions,
    ``action_lengths``) have squares summing to at most ``token_budget``; a conversation
    that alone exceeds a bound forms one micro-batch."""
    roots, root_of = prefix_groups(prompts)
    if len(roots) == len(prompts):
        return None
    members: list[list[int]] = [[] for _ in roots]
    for i, r in enumerate(root_of):
        members[r].append(i)
    lengths = action_lengths or [0] * len(prompts)
    out: list[list[int]] = []
    cost = 0
    for root, group in zip(roots, members, strict=True):
        packed = (len(root) + sum(lengths[i] for i in group)) ** 2
        if out and len(out[-1]) + len(group) <= size and cost + packed <= token_budget:
            out[-1].extend(group)
            cost += packed
        else:
            out.append(list(group))
            cost = packed
    return out


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class CriticLearner:
    """The utterance-level critic of ArCHer (shared with CHAI): buffer, critic, target, steps.

    With a config whose ``v_expectile`` is set (:class:`ArcherOfflineConfig`) the V heads
    are fitted IQL-style, by expectile regression on ``min(Qbar_1, Qbar_2)(s, a)`` at the
    buffer's own actions, and no fresh actions are sampled; the Q loss is unchanged.

    Within :meth:`critic_phase` (ArCHer's ``critic_epochs`` steps) the policy is frozen, so
    the KV caches of the replayed conversations prefilled for one step's fresh actions are
    kept for the next steps (:class:`~agentrl.policy.prefill_cache.PrefillCache`, at most
    :attr:`prefill_cache_bytes`): each conversation goes through the policy once per phase,
    not once per step. The samples are those of a phase without the store: the same draws
    and token ids, log-probs equal up to float summation order.

    Args:
        config: the algorithm config.
        policy: the :class:`~agentrl.policy.Policy` that samples the fresh ``a' ~ pi(.|s)``.
        seed: seeds the critic's initialisation, replay sampling and fresh-action sampling.

    Attributes:
        prefill_cache_bytes: bound of the KV caches a critic phase keeps, from
            ``config.critic_prefill_cache_mb`` (1 GiB by default: ~23k context tokens of
            SmolLM2-135M in fp32 at 46 KB per token); ``0`` prefills every step again.
    """

    def __init__(self, config: ArcherConfig, policy: Any, seed: int = 0):
        self.config = config
        self.policy = policy
        self.critic: DoubleCritic = build_critic(config, policy, seed)
        self.target_critic: DoubleCritic = self.critic.target_copy()
        self.optimizer = make_adam(self.critic.parameters(), config.critic_lr)
        self.buffer = ReplayBuffer(config.buffer_size, seed=seed)
        # on the CPU: draws move to the logits' device, so samples and checkpoints do not
        # depend on where the policy runs
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.sampling = SamplingConfig(
            temperature=config.temperature,
            max_new_tokens=config.max_new_tokens,
            stop=tuple(config.stop),
        )
        self.expectile: float | None = config.v_expectile
        self.steps = 0
        self.prefill_cache_bytes = config.critic_prefill_cache_mb << 20
        self._prefill: PrefillCache | None = None  # set within critic_phase only
        # critic_action_samples > 0: each state's draws of a' within the current critic phase
        self._pool: dict[tuple[int, ...], list[str]] | None = None
        # critic_model.name=policy: the encoder is (re)copied from the policy when RL starts,
        # i.e. after the trainer's BC warm start, which runs after this constructor.
        self.encoder_pending = (
            config.critic_encoder == "separate" and config.critic_model["name"] == POLICY_ENCODER
        )

    def add_episodes(self, episodes: Sequence[Episode]) -> int:
        if self.encoder_pending:
            init_encoder_from_policy([self.critic, self.target_critic], self.policy)
            self.encoder_pending = False
        return self.buffer.add_episodes(episodes, self.config.timeout_is_terminal)

    def prompts(self, batch: Sequence[Transition]) -> list[list[int]]:
        """The policy prompt of each transition (stored ids, or encoded when missing)."""
        missing = [i for i, t in enumerate(batch) if not t.prompt_ids]
        out = [t.prompt_ids for t in batch]
        if missing:
            enc = self.policy.encode_prompts([batch[i].observation for i in missing])
            for i, ids in zip(missing, enc, strict=True):
                out[i] = ids
        return out

    @contextmanager
    def critic_phase(self) -> Iterator[PrefillCache | None]:
        """Scope of steps during which the policy's weights do not change.

        Yields the :class:`~agentrl.policy.prefill_cache.PrefillCache` that
        :meth:`sample_actions` keeps conversations' KV caches in (``None`` when the critic
        samples nothing, as IQL's, or ``prefill_cache_bytes`` is 0); it is emptied and
        dropped on exit, errors included, so no cache outlives the weights it was computed
        with. So is the pool of ``a'`` draws of ``critic_action_samples``
        (:meth:`target_actions`). Nothing within may change the policy's weights (actor
        steps come after).
        """
        if self._prefill is not None or self._pool is not None:
            raise RuntimeError("critic phases do not nest")
        store = None
        if self.expectile is None and self.prefill_cache_bytes > 0:
            store = PrefillCache(self.prefill_cache_bytes)
        self._prefill = store
        if self.expectile is None and self.config.critic_action_samples > 0:
            self._pool = {}
        try:
            yield store
        finally:
            self._prefill = None
            self._pool = None
            if store is not None:
                store.clear()

    def sample_actions(
        self, batch: Sequence[Transition], generator: torch.Generator | None = None
    ) -> list[Generation]:
        """One fresh ``a ~ pi(.|s)`` per transition, in one batched call of the policy's decode
        loop (its lean step; under bf16 autocast with ``actor_precision=bf16``). States of
        one conversation are prefixes of each other: each conversation's context is
        prefilled once (:meth:`~agentrl.policy.Policy.generate_shared`), and within
        :meth:`critic_phase` once for the whole phase."""
        return self.decode(self.prompts(batch), generator)

    def decode(
        self, prompts: list[list[int]], generator: torch.Generator | None = None
    ) -> list[Generation]:
        """One fresh action per prompt (prompt ids as :meth:`prompts` gives them), in one
        batched call of the policy's decode loop, within :meth:`critic_phase` on its prefill
        store: every fresh action of the critic and the actor goes through here."""
        with autocast(self.policy.device, precision_dtype(self.config.actor_precision)):
            return self.policy.generate_shared(
                prompts, self.sampling, generator or self.generator, self._prefill
            )

    def target_actions(self, batch: Sequence[Transition]) -> tuple[list[str], int]:
        """The ``a' ~ pi(.|s)`` of the V target for each transition, and how many were
        decoded now. Without a pool (``critic_action_samples=0`` or outside a critic phase)
        every one is a fresh draw; with one, a state with fewer than ``k`` draws in this
        phase gets a new one (batched, as :meth:`sample_actions`), and a state with ``k``
        reuses one of them, chosen uniformly with the critic's generator."""
        pool = self._pool
        if pool is None:
            return [g.text for g in self.sample_actions(batch)], len(batch)
        k = self.config.critic_action_samples
        prompts = self.prompts(batch)
        keys = [tuple(p) for p in prompts]
        planned: dict[tuple[int, ...], int] = {}
        need = []
        for i, key in enumerate(keys):
            if len(pool.get(key, ())) + planned.get(key, 0) < k:
                planned[key] = planned.get(key, 0) + 1
                need.append(i)
        out: list[str | None] = [None] * len(batch)
        if need:
            for i, gen in zip(need, self.decode([prompts[i] for i in need]), strict=True):
                pool.setdefault(keys[i], []).append(gen.text)
                out[i] = gen.text
        for i, key in enumerate(keys):
            if out[i] is None:
                drawn = pool[key]
                out[i] = drawn[int(torch.randint(len(drawn), (1,), generator=self.generator))]
        return [a for a in out if a is not None], len(need)

    @torch.no_grad()
    def advantages(self, observations: Sequence[str], actions: Sequence[str]) -> torch.Tensor:
        """``A = min Q(s, a) - min V(s)`` of the online critic, ``[B]``, in micro-batches."""
        parts = []
        for sl in _chunks(len(observations), self.config.micro_batch_size):
            parts.append(advantage(*self.critic(observations[sl], actions[sl])))
        return torch.cat(parts)

    def step(self) -> dict[str, float]:
        """One critic step on ``batch_size`` replayed transitions; then the Polyak update."""
        cfg = self.config
        batch = self.buffer.sample(cfg.batch_size)
        stats: dict[str, float] = defaultdict(float)
        if self.expectile is None:
            fresh, decoded = self.target_actions(batch)
            stats["actions_decoded"] = float(decoded)
        else:  # IQL: V regresses on Q at the data's actions
            fresh = [t.action for t in batch]
        chunks = _chunks(len(batch), cfg.micro_batch_size)
        self.optimizer.zero_grad(set_to_none=True)
        for sl in chunks:
            rows = batch[sl]
            obs = [t.observation for t in rows]
            device = self.critic.device
            r = torch.tensor([t.reward for t in rows], dtype=torch.float32, device=device)
            done = torch.tensor([float(t.done) for t in rows], device=device)
            qbar1, qbar2, vbar1, vbar2 = self._targets(rows, fresh[sl])
            q1, q2, v1, v2 = self.critic(obs, [t.action for t in rows])
            lq = q_loss(q1, q2, r, done, vbar1, vbar2, cfg.gamma)
            if self.expectile is None:
                lv = v_loss(v1, v2, qbar1, qbar2)
            else:
                qmin = torch.minimum(qbar1, qbar2)
                lv = expectile_loss(qmin - v1, self.expectile)
                lv = lv + expectile_loss(qmin - v2, self.expectile)
            ((lq + lv) / len(chunks)).backward()
            stats["q_loss"] += lq.item() / len(chunks)
            stats["v_loss"] += lv.item() / len(chunks)
            stats["q_mean"] += torch.minimum(q1, q2).mean().item() / len(chunks)
            stats["v_mean"] += torch.minimum(v1, v2).mean().item() / len(chunks)
        params = list(self.critic.parameters())
        densify_grads_(params)  # the token embedding's gradient is sparse (critic.py)
        norm, _ = guarded_step(self.optimizer, params, cfg.grad_clip)
        self.optimizer.zero_grad(set_to_none=True)
        polyak_update_(
            list(self.target_critic.parameters()), list(self.critic.parameters()), cfg.tau
        )
        self.steps += 1
        stats["critic_grad_norm"] = float(norm)
        return dict(stats)

    @torch.no_grad()
    def _targets(
        self, rows: Sequence[Transition], fresh: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``Qbar_i(s, a')`` and ``Vbar_i(s')`` (0 where done): two target encoder passes."""
        target = self.target_critic
        live = [i for i, t in enumerate(rows) if not t.done]
        n = len(rows)
        h = target.embed([t.observation for t in rows] + [rows[i].next_observation for i in live])
        qbar1, qbar2 = target.q_heads(h[:n], target.embed(fresh))
        vbar1 = torch.zeros(n, device=h.device)
        vbar2 = torch.zeros(n, device=h.device)
        if live:
            v1n, v2n = target.v_heads(h[n:])
            idx = torch.tensor(live, device=h.device)
            vbar1[idx], vbar2[idx] = v1n, v2n
        return qbar1, qbar2, vbar1, vbar2

    def state_dict(self) -> dict[str, Any]:
        return {
            "critic": self.critic.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "critic_optimizer": self.optimizer.state_dict(),
            "replay_generator": self.buffer.generator.get_state(),
            "sample_generator": self.generator.get_state(),
            "critic_steps": self.steps,
            "encoder_pending": self.encoder_pending,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.critic.load_state_dict(state["critic"])
        self.target_critic.load_state_dict(state["target_critic"])
        self.optimizer.load_state_dict(state["critic_optimizer"])
        self.buffer.generator.set_state(state["replay_generator"])
        self.generator.set_state(state["sample_generator"])
        self.steps = int(state["critic_steps"])
        self.encoder_pending = bool(state.get("encoder_pending", False))


@ALGORITHMS.register("archer")
class Archer(AlgorithmBase):
    """ArCHer (see the module docstring).

    Args:
        config: :class:`ArcherConfig` (defaults when None).
        policy: the :class:`~agentrl.policy.Policy`, trained in place.
        seed: seeds every random draw of the algorithm.
    """

    Config = ArcherConfig
    supports_extra_loss = True  # lifelong extra losses (EWC) join every actor step

    def __init__(self, config: ArcherConfig | None, policy: Any, seed: int = 0):
        self.config = config or ArcherConfig()
        self.policy = policy
        # Before the critic exists: a "policy_lora" critic adds trainable tensors to the model.
        self.actor_params = list(policy.trainable_parameters())
        self.core = CriticLearner(self.config, policy, seed)
        self.actor_optimizer = make_adam(self.actor_params, self.config.actor_lr)
        self.num_updates = 0
        self.actor_steps = 0

    # aliases for tests and tools
    @property
    def critic(self) -> DoubleCritic:
        return self.core.critic

    @property
    def target_critic(self) -> DoubleCritic:
        return self.core.target_critic

    @property
    def buffer(self) -> ReplayBuffer:
        return self.core.buffer

    def update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        cfg = self.config
        added = self.core.add_episodes(episodes)
        out: dict[str, float] = {"archer/transitions_added": float(added)}
        if len(self.core.buffer) > 0:
            start = time.perf_counter()
            with self.core.critic_phase() as prefill:
                critic = [self.core.step() for _ in range(cfg.critic_epochs)]
            out["archer/critic_s"] = time.perf_counter() - start
            if prefill is not None:  # context ids run through the policy / served by the store
                out["archer/critic_prefill_tokens"] = float(prefill.stats.prefilled_tokens)
                out["archer/critic_reused_tokens"] = float(prefill.stats.reused_tokens)
            for key in critic[0] if critic else ():
                out[f"archer/{key}"] = _mean([s[key] for s in critic])
            train_actor = self.num_updates >= cfg.warmup_iters and cfg.actor_epochs > 0
            if train_actor:
                start = time.perf_counter()
                lr = cfg.actor_lr_at(self.num_updates - cfg.warmup_iters)
                for group in self.actor_optimizer.param_groups:
                    group["lr"] = lr
                out["archer/actor_lr"] = lr
                actor = self._actor_phase()
                out["archer/actor_s"] = time.perf_counter() - start
                for key in actor[0]:
                    out[f"archer/{key}"] = _mean([s[key] for s in actor])
            out["archer/actor_trained"] = float(train_actor)
        self.num_updates += 1
        out["archer/buffer_size"] = float(len(self.core.buffer))
        out["archer/critic_steps"] = float(self.core.steps)
        out["archer/actor_steps"] = float(self.actor_steps)
        return out

    def _actor_phase(self) -> list[dict[str, float]]:
        cfg = self.config
        if cfg.ppo_clip is None:  # the reference: fresh states and actions every step
            return [self._actor_step(self._actor_batch()) for _ in range(cfg.actor_epochs)]
        data = self._actor_batch()  # PPO-style: one batch, several clipped steps
        return [self._actor_step(data) for _ in range(cfg.actor_epochs)]

    def _actor_batch(self) -> dict[str, Any]:
        """States from the buffer, fresh ``a ~ pi``, their advantage and sampling log-probs."""
        cfg = self.config
        batch = self.core.buffer.sample(cfg.batch_size)
        gens = self.core.sample_actions(batch)
        adv = self.core.advantages([t.observation for t in batch], [g.text for g in gens])
        stats = {"advantage_mean": float(adv.mean()), "advantage_std": float(adv.std(correction=0))}
        if cfg.normalize_advantage and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        prompts = [g.prompt_ids for g in gens]
        actions = [g.token_ids for g in gens]
        old = None
        if cfg.ppo_clip is not None:
            if cfg.temperature == 1.0:
                old = torch.tensor([g.logprob for g in gens], device=self.policy.device)
            else:  # sampling log-probs are under pi_T; the ratio needs pi's own
                with torch.no_grad():
                    old, _, _ = self.policy.shared_action_logprobs(
                        prompts, actions, batch_size=cfg.micro_batch_size
                    )
        return {"prompts": prompts, "actions": actions, "adv": adv, "old": old, "stats": stats}

    def _actor_step(self, data: dict[str, Any]) -> dict[str, float]:
        cfg = self.config
        self.core.critic.zero_grad(set_to_none=True)  # never clip or step mixed grads
        self.actor_optimizer.zero_grad(set_to_none=True)
        n = len(data["adv"])
        shared = shared_chunks(
            data["prompts"], cfg.micro_batch_size, [len(a) for a in data["actions"]]
        )
        # micro-batches of states; with shared prefixes, whole conversations per micro-batch
        # (each scored in one pass) weighted by their share of the states
        if shared is None:
            plain = _chunks(n, cfg.micro_batch_size)
            chunks = [(list(range(n))[sl], 1, len(plain)) for sl in plain]
        else:
            chunks = [(idx, len(idx), n) for idx in shared]
        model = self.policy.model
        was_training = model.training
        model.train()
        loss_sum = logp_sum = 0.0
        try:
            for idx, share, whole in chunks:
                prompts = [data["prompts"][i] for i in idx]
                actions = [data["actions"][i] for i in idx]
                with autocast(self.policy.device, precision_dtype(cfg.actor_precision)):
                    if shared is None:
                        sums, _, _ = self.policy.action_logprobs(prompts, actions)
                    else:
                        sums, _, _ = self.policy.shared_action_logprobs(prompts, actions)
                sums = sums.float()
                rows = torch.tensor(idx)
                adv = data["adv"][rows.to(data["adv"].device)].to(sums.device)
                old = data["old"][rows.to(data["old"].device)] if data["old"] is not None else None
                loss = actor_loss(sums, adv, old, cfg.ppo_clip)
                (loss * share / whole).backward()
                loss_sum += loss.item() * share / whole
                logp_sum += float(sums.detach().mean()) * share / whole
            # set by the learner (agentrl.lifelong)
            extra = self.extra_loss_fn(self.policy) if self.extra_loss_fn is not None else None
            if extra is not None:
                extra.backward()
                loss_sum += float(extra.detach())
        finally:
            model.train(was_training)
        norm, _ = guarded_step(self.actor_optimizer, self.actor_params, cfg.grad_clip)
        self.actor_optimizer.zero_grad(set_to_none=True)
        self.actor_steps += 1
        return {
            "actor_loss": loss_sum,
            "actor_logprob": logp_sum,
            "actor_grad_norm": float(norm),
            **data["stats"],
        }

    # --- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Critic, target, optimizers, generator states, counters (no policy, no buffer)."""
        return {
            **self.core.state_dict(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "num_updates": self.num_updates,
            "actor_steps": self.actor_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.core.load_state_dict(state)
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.num_updates = int(state["num_updates"])
        self.actor_steps = int(state["actor_steps"])

    def replay_rows(self) -> list[dict[str, Any]]:
        return self.core.buffer.rows()

    def load_replay_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        self.core.buffer.load_rows(rows)


@ALGORITHMS.register("archer_offline")
class ArcherOffline(Archer):
    """Offline ArCHer: IQL expectile critic + AWR actor on a fixed dataset of episodes.

    The same paper's offline variant. The buffer is filled from ``config.dataset`` (JSONL,
    one :meth:`Episode.to_dict` per line) at construction; ``update(episodes)`` adds any
    episodes it is given (none in a purely offline run), then trains. Critic: ArCHer's Q
    loss, and ``V_i <- expectile_tau(min(Qbar_1, Qbar_2)(s, a) - V_i(s))`` at the dataset's
    actions (no sampling; the Q target keeps ArCHer's target ``Vbar``). Actor (AWR), on the
    dataset's actions::

        w = min(exp(A(s, a) / beta), w_max),  A = min Q(s, a) - min V(s)     (no grad)
        loss = -mean(w * log pi(a|s))

    Actions without stored token ids are tokenised from their text plus the first stop
    string, so the policy also learns to end the utterance.
    """

    Config = ArcherOfflineConfig
    config: ArcherOfflineConfig
    offline = True  # the trainer collects no rollouts; ``agentrl train algorithm=archer_offline data=PATH``

    def __init__(self, config: ArcherOfflineConfig | None, policy: Any, seed: int = 0):
        super().__init__(config or ArcherOfflineConfig(), policy, seed)
        if self.config.dataset:
            self.core.add_episodes(load_episodes(self.config.dataset))

    def _actor_batch(self) -> dict[str, Any]:
        cfg = self.config
        batch = self.core.buffer.sample(cfg.batch_size)
        adv = self.core.advantages([t.observation for t in batch], [t.action for t in batch])
        weights = awr_weights(adv, cfg.awr_beta, cfg.awr_max_weight)
        stop = cfg.stop[0] if cfg.stop else ""
        actions = [
            t.action_ids or self.policy.tokenizer.encode(t.action + stop, add_special_tokens=False)
            for t in batch
        ]
        stats = {
            "advantage_mean": float(adv.mean()),
            "advantage_std": float(adv.std(correction=0)),
            "awr_weight_mean": float(weights.mean()),
        }
        return {
            "prompts": self.core.prompts(batch),
            "actions": actions,
            "adv": weights,
            "old": None,
            "stats": stats,
        }


__all__ = ["Archer", "ArcherOffline", "CriticLearner", "load_episodes"]
