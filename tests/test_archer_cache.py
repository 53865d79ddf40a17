"""ArCHer's critic phase keeps the replayed conversations' prefilled KV caches across its steps:
the store itself (lookup, extension, LRU budget), samples equal to the uncached path over
several calls and whole updates, each conversation prefilled once per phase, and no cache
outliving the weights it was computed with."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
import torch
from conversation_fixtures import conversation_episodes

import agentrl.algorithms.archer.learner as archer_learner
from agentrl.algorithm import build_algorithm
from agentrl.algorithms.archer import Archer, ArcherConfig, ArcherOffline, ArcherOfflineConfig
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.kv import KVCache
from agentrl.policy.prefill_cache import PrefillCache
from agentrl.policy.prefix import prefix_groups
from agentrl.types import Generation

TINY_CRITIC = {
    "name": "tiny_encoder",
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 256,
}


def tiny_policy(lora: bool = False) -> Policy:
    return Policy.from_config(
        ModelConfig(
            name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, lora=lora
        ),
        device="cpu",
    )


def fake_cache(length: int) -> KVCache:
    """One layer, one head, head_dim 2, fp32: 16 bytes per token."""
    return KVCache([(torch.full((1, 1, length, 2), float(length)), torch.zeros(1, 1, length, 2))])


# --------------------------------------------------------------------------- the store


def test_store_cuts_extends_replaces_prefixes_and_evicts_least_recently_used() -> None:
    store = PrefillCache(max_bytes=16 * 10)
    assert store.lookup([1, 2, 3]) is None
    store.put([1, 2, 3], fake_cache(3))
    held = store.lookup([1, 2])  # covered: cut it
    assert held is not None and held.length == 3
    held = store.lookup([1, 2, 3, 4, 5])  # a held prefix: extend it
    assert held is not None and held.length == 3
    assert store.lookup([1, 3]) is None and store.lookup([2, 3]) is None
    assert store.stats.reused_tokens == 2 + 3
    store.put([1, 2, 3, 4, 5], fake_cache(5))  # replaces its held prefix [1, 2, 3]
    assert len(store) == 1 and store.nbytes == 16 * 5
    store.put([1, 2], fake_cache(2))  # already covered: nothing changes
    assert len(store) == 1 and store.nbytes == 16 * 5
    store.put([7, 8, 9], fake_cache(3))
    store.lookup([1, 2, 3])  # [1..5] becomes the most recently used
    store.put([4, 4, 4], fake_cache(3))  # 5 + 3 + 3 > 10 tokens: [7, 8, 9] goes
    assert store.lookup([7]) is None and store.lookup([1]) is not None
    assert store.nbytes == 16 * 8 and store.stats.evictions == 1
    store.put(list(range(20, 31)), fake_cache(11))  # alone over the budget: not kept
    assert store.lookup([20]) is None and store.nbytes == 16 * 8
    with pytest.raises(ValueError, match="a cache of 2 tokens cannot hold 3 ids"):
        store.put([5, 6, 7], fake_cache(2))
    with pytest.raises(ValueError, match="max_bytes must be >= 0, got -1"):
        PrefillCache(-1)
    store.clear()
    assert len(store) == 0 and store.nbytes == 0


# --------------------------------------------------------------------------- sampling


@pytest.fixture(scope="module")
def tiny() -> Policy:
    return tiny_policy()


def _conversations() -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(5, 200, (n,), generator=g).tolist() for n in (60, 40, 30)]


def _calls() -> list[list[list[int]]]:
    """Batches of states (conversation prefixes) as successive critic steps sample them: a
    conversation first seen short then longer (extended) then shorter (cut), a batch whose
    prompts share nothing among themselves, a one-token state."""
    a, b, c = _conversations()
    return [
        [a[:20], a[:10], b[:15], b[:40]],
        [a[:45], b[:7], a[:20], c[:30]],
        [a[:12], b[:40], c[:9]],  # no prompt a prefix of another: only the store shares
        [a[:60], a[:33], c[:30], b[:1], b[:25]],
    ]


def _sample_calls(
    policy: Policy, store: PrefillCache | None, sampling: SamplingConfig
) -> tuple[list[list[Generation]], torch.Tensor]:
    g = torch.Generator().manual_seed(3)  # one generator across the calls, as a critic phase
    out = [policy.generate_shared(p, sampling, g, store) for p in _calls()]
    return out, g.get_state()


def _assert_same_samples(ref: list[list[Generation]], got: list[list[Generation]]) -> None:
    assert len(ref) == len(got)
    for r, s in zip(ref, got, strict=True):
        assert [x.token_ids for x in s] == [x.token_ids for x in r]
        assert [x.prompt_ids for x in s] == [x.prompt_ids for x in r]
        for x, y in zip(r, s, strict=True):
            assert len(x.logprobs) == len(y.logprobs)
            assert (
                max((abs(u - v) for u, v in zip(x.logprobs, y.logprobs, strict=True)), default=0)
                < 1e-5
            )


@pytest.mark.parametrize("greedy", [True, False])
def test_stored_prefills_sample_what_fresh_prefills_sample(tiny: Policy, greedy: bool) -> None:
    sampling = SamplingConfig(max_new_tokens=5, greedy=greedy)
    ref, ref_state = _sample_calls(tiny, None, sampling)
    store = PrefillCache(1 << 30)
    got, got_state = _sample_calls(tiny, store, sampling)
    _assert_same_samples(ref, got)
    assert torch.equal(ref_state, got_state)  # the same uniform draws were consumed
    # every id of a conversation went through the model once: the longest state of each,
    # less the last id (the decode loop feeds it)
    roots, _ = prefix_groups([p for batch in _calls() for p in batch])
    assert store.stats.prefilled_tokens == sum(len(r) - 1 for r in roots) == 59 + 39 + 29
    # what the calls would have prefilled without the store: each call's roots
    per_call = sum(len(r) - 1 for batch in _calls() for r in prefix_groups(batch)[0])
    assert store.stats.prefilled_tokens + store.stats.reused_tokens == per_call
    assert store.stats.reused_tokens > store.stats.prefilled_tokens


def test_a_store_kept_past_a_weight_change_samples_differently() -> None:
    """Why the store must not outlive the weights: after one optimizer step, a store filled
    before it gives other log-probs than fresh prefills, and a new store gives theirs."""
    policy = tiny_policy()
    sampling = SamplingConfig(max_new_tokens=5, greedy=True)
    old = PrefillCache(1 << 30)
    _sample_calls(policy, old, sampling)
    prompts = [p for batch in _calls() for p in batch]
    optimizer = torch.optim.SGD(list(policy.trainable_parameters()), lr=2e-3)
    sums, _, _ = policy.action_logprobs(prompts, [[7, 8]] * len(prompts))
    (-sums.sum()).backward()
    optimizer.step()
    fresh, _ = _sample_calls(policy, None, sampling)
    _assert_same_samples(fresh, _sample_calls(policy, PrefillCache(1 << 30), sampling)[0])
    stale, _ = _sample_calls(policy, old, sampling)
    gap = max(
        abs(u - v)
        for f, s in zip(fresh, stale, strict=True)
        for x, y in zip(f, s, strict=True)
        for u, v in zip(x.logprobs, y.logprobs, strict=False)
    )
    assert gap > 1e-3


# --------------------------------------------------------------------------- ArCHer


def archer_config(critic_encoder: str = "separate") -> ArcherConfig:
    return ArcherConfig(
        critic_lr=1e-3,
        actor_lr=1e-2,  # large: the policy moves visibly between updates
        batch_size=8,
        grad_accum=2,
        critic_epochs=3,
        actor_epochs=2,
        warmup_iters=0,
        max_new_tokens=4,
        critic_head_hidden=32,
        critic_model=dict(TINY_CRITIC),
        critic_max_length=128,
        critic_encoder=critic_encoder,
    )


Call = tuple[list[list[int]], list[Generation], bool]


def recorded_run(
    reuse: bool, critic_encoder: str = "separate"
) -> tuple[list[dict[str, float]], list[Call]]:
    """Two ArCHer updates on the conversations, every fresh-action call recorded as
    (prompts, generations, whether it had a store). A ``policy_lora`` critic trains an
    adapter inside the policy's model during the critic phase (not the sampling one)."""
    torch.manual_seed(0)
    policy = tiny_policy(lora=critic_encoder == "policy_lora")
    algo = Archer(archer_config(critic_encoder=critic_encoder), policy, seed=0)
    if not reuse:
        algo.core.prefill_cache_bytes = 0
    calls: list[Call] = []
    inner = policy.generate_shared

    def record(
        prompts: Sequence[Sequence[int]],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
        prefill: PrefillCache | None = None,
    ) -> list[Generation]:
        gens = inner(prompts, sampling, generator, prefill)
        calls.append(([list(p) for p in prompts], gens, prefill is not None))
        return gens

    policy.generate_shared = record  # type: ignore[method-assign, assignment]
    episodes = conversation_episodes(policy)
    stats = [algo.update(episodes if i == 0 else []) for i in range(2)]
    return stats, calls


def _without(stats: dict[str, float], *suffixes: str) -> dict[str, float]:
    return {k: v for k, v in stats.items() if not k.endswith(suffixes)}


def _logprob_gap(ref: list[Call], got: list[Call]) -> float:
    assert [c[0] for c in got] == [c[0] for c in ref]
    gap = 0.0
    for (_, r, _), (_, s, _) in zip(ref, got, strict=True):
        for x, y in zip(r, s, strict=True):
            if x.token_ids != y.token_ids:
                return math.inf
            gap = max([gap, *(abs(u - v) for u, v in zip(x.logprobs, y.logprobs, strict=True))])
    return gap


@pytest.mark.parametrize("critic_encoder", ["separate", "policy_lora"])
def test_updates_with_the_store_equal_updates_without_it(critic_encoder: str) -> None:
    ref_stats, ref_calls = recorded_run(reuse=False, critic_encoder=critic_encoder)
    stats, calls = recorded_run(reuse=True, critic_encoder=critic_encoder)
    assert _logprob_gap(ref_calls, calls) < 1e-5
    # the critic sees the same texts, the actor the same ids: the same losses, exactly
    prefill_keys = ("_s", "critic_prefill_tokens", "critic_reused_tokens")
    assert [_without(s, *prefill_keys) for s in stats] == [
        _without(s, *prefill_keys) for s in ref_stats
    ]
    assert "archer/critic_prefill_tokens" not in ref_stats[0]
    # critic phases sampled through a store, the actor phases (2 steps of 8) without one
    per_update = 3 + 2
    assert [c[2] for c in calls] == ([True] * 3 + [False] * 2) * 2
    assert len(calls) == 2 * per_update
    # each conversation went through the policy once per critic phase
    for u in range(2):
        phase = calls[u * per_update : u * per_update + 3]
        roots, _ = prefix_groups([p for c in phase for p in c[0]])
        assert stats[u]["archer/critic_prefill_tokens"] == sum(len(r) - 1 for r in roots)
        assert stats[u]["archer/critic_reused_tokens"] > 0


def test_a_store_kept_across_updates_would_be_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above fails when one store lives on across updates (and so across the
    actor steps between them): the second update's fresh actions then start from caches of
    the first update's weights."""
    shared = PrefillCache(1 << 30)
    monkeypatch.setattr(shared, "clear", lambda: None)
    monkeypatch.setattr(archer_learner, "PrefillCache", lambda max_bytes: shared)
    _, ref_calls = recorded_run(reuse=False)
    _, leaky_calls = recorded_run(reuse=True)
    assert _logprob_gap(ref_calls[:5], leaky_calls[:5]) < 1e-5  # the first update is fine
    assert _logprob_gap(ref_calls[5:], leaky_calls[5:]) > 1e-3


def test_critic_phase_drops_its_store_on_exit_and_on_errors() -> None:
    algo = Archer(archer_config(), tiny_policy(), seed=0)
    algo.core.add_episodes(conversation_episodes(algo.policy))
    with algo.core.critic_phase() as store:
        assert (
            store is not None
            and store.max_bytes == algo.config.critic_prefill_cache_mb << 20 == 1 << 30
        )
        algo.core.step()
        assert len(store) > 0 and store.nbytes > 0
        with pytest.raises(RuntimeError, match="critic phases do not nest"):
            with algo.core.critic_phase():
                pass
    assert len(store) == 0 and store.nbytes == 0 and algo.core._prefill is None
    with pytest.raises(KeyError):
        with algo.core.critic_phase() as store:
            algo.core.step()
            raise KeyError("boom")
    assert store is not None and len(store) == 0 and algo.core._prefill is None
    algo.core.prefill_cache_bytes = 0
    with algo.core.critic_phase() as store:
        assert store is None


def test_no_store_where_nothing_is_sampled() -> None:
    algo = build_algorithm(
        "archer_offline",
        {"critic_model": dict(TINY_CRITIC), "critic_head_hidden": 32, "batch_size": 4},
        tiny_policy(),
    )
    assert isinstance(algo, ArcherOffline) and isinstance(algo.config, ArcherOfflineConfig)
    with algo.core.critic_phase() as store:
        assert store is None


@pytest.mark.slow
def test_profile_script_times_both_critic_phases_on_the_tiny_model() -> None:
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import archer_smollm2_profile as bench

    out = bench.main(
        ["--model", "tiny", "--episodes", "2", "--critic-phase", "--critic-steps", "2"]
    )
    assert out is not None and out["max_stat_difference"] == 0.0
    assert out["with_reuse_s"] > 0 and out["without_reuse_s"] > 0


def test_chai_critic_steps_share_one_store_per_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """CHAI's critic steps run in a critic phase too: one store per update, and its
    conversations are prefilled once across the update's steps."""
    import dataclasses

    from agentrl.algorithms.archer.chai import Chai, ChaiConfig

    made: list[PrefillCache] = []

    def record(max_bytes: int) -> PrefillCache:
        made.append(PrefillCache(max_bytes))
        return made[-1]

    monkeypatch.setattr(archer_learner, "PrefillCache", record)
    cfg = ChaiConfig(**{**dataclasses.asdict(archer_config()), "num_candidates": 2})
    chai = Chai(cfg, tiny_policy(), seed=0)
    chai.update(conversation_episodes(chai.policy))
    assert len(made) == 1 and made[0].stats.reused_tokens > 0
    assert len(made[0]) == 0  # emptied when the phase ended
