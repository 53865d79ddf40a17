"""Shared conversation prefixes: grouping, packed scoring and shared-prefix sampling equal
the per-state paths (values, gradients, samples)."""

from __future__ import annotations

import pytest
import torch

from agentrl.algorithms.archer.learner import shared_chunks
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.prefix import branch_layout, prefix_groups


@pytest.fixture(scope="module")
def tiny() -> Policy:
    return Policy.from_config(ModelConfig(name="tiny"), device="cpu")


def _case() -> tuple[list[list[int]], list[list[int]]]:
    g = torch.Generator().manual_seed(0)
    a = torch.randint(5, 200, (60,), generator=g).tolist()
    b = torch.randint(5, 200, (40,), generator=g).tolist()
    prompts = [a[:10], a[:25], b[:7], a[:60], b[:40], a[:25], [3]]
    actions = [torch.randint(5, 200, (k,), generator=g).tolist() for k in (3, 5, 1, 4, 2, 0, 3)]
    return prompts, actions


def test_prefix_groups() -> None:
    prompts, _ = _case()
    roots, root_of = prefix_groups(prompts)
    assert root_of == [0, 0, 1, 0, 1, 0, 2]
    assert roots == [prompts[3], prompts[4], [3]]
    for p, r in zip(prompts, root_of, strict=True):
        assert roots[r][: len(p)] == p
    assert prefix_groups([[1, 2], [1, 3]]) == ([[1, 2], [1, 3]], [0, 1])  # no sharing
    assert shared_chunks([[1, 2], [1, 3]], 4) is None
    # whole conversations per micro-batch, in order, at most `size` states unless one is larger
    assert shared_chunks(prompts, 4) == [[0, 1, 3, 5], [2, 4, 6]]
    assert shared_chunks(prompts, 2) == [[0, 1, 3, 5], [2, 4], [6]]
    # a token budget splits conversations that fit the state count: 60^2 + 40^2 > 4000
    assert shared_chunks(prompts, 8, token_budget=4000) == [[0, 1, 3, 5], [2, 4, 6]]
    assert shared_chunks(prompts, 8, token_budget=100_000) == [[0, 1, 3, 5, 2, 4, 6]]
    # the actions count towards the packed length: (60 + 4 * 10)^2 = 10000 alone
    assert shared_chunks(prompts, 8, [10] * 7, token_budget=10_000) == [[0, 1, 3, 5], [2, 4, 6]]


def test_branch_layout_gives_each_action_its_own_context() -> None:
    pos, allowed, starts = branch_layout(4, [(2, 2), (4, 1)])
    assert starts == [4, 6] and pos.tolist() == [0, 1, 2, 3, 2, 3, 4]
    assert allowed[4].tolist() == [1, 1, 0, 0, 1, 0, 0]  # first token of branch 0: root[:2] + itself
    assert allowed[5].tolist() == [1, 1, 0, 0, 1, 1, 0]
    assert allowed[6].tolist() == [1, 1, 1, 1, 0, 0, 1]
    assert allowed[2].tolist() == [1, 1, 1, 0, 0, 0, 0]  # root tokens are causal
    with pytest.raises(ValueError, match="prefix of 5 ids does not fit a root of 4"):
        branch_layout(4, [(5, 1)])


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_shared_scoring_equals_per_state_scoring_values_and_gradients(tiny: Policy, attention: str) -> None:
    prompts, actions = _case()
    tiny.model.config._attn_implementation = attention
    try:
        tiny.model.zero_grad()
        ref = tiny.action_logprobs(prompts, actions)
        (ref[0] * torch.arange(1.0, 8.0)).sum().backward()
        ref_grads = [p.grad.clone() for p in tiny.trainable_parameters()]
        tiny.model.zero_grad()
        got = tiny.shared_action_logprobs(prompts, actions, batch_size=2)
        (got[0] * torch.arange(1.0, 8.0)).sum().backward()
        got_grads = [p.grad.clone() for p in tiny.trainable_parameters()]
    finally:
        tiny.model.config._attn_implementation = "sdpa"
        tiny.model.zero_grad()
    assert torch.equal(ref[2], got[2])
    assert (ref[1] - got[1]).abs().max() < 1e-5 and (ref[0] - got[0]).abs().max() < 1e-4
    for r, g in zip(ref_grads, got_grads, strict=True):
        assert torch.allclose(r, g, atol=1e-5, rtol=1e-4)


def test_branch_logprobs_rejects_a_prefix_longer_than_its_root(tiny: Policy) -> None:
    with pytest.raises(ValueError, match="branch 0: prefix 9 of root 0"):
        tiny.branch_logprobs([[1, 2, 3]], [(0, 9, [4])])


@pytest.mark.parametrize("greedy", [True, False])
def test_shared_prefix_sampling_equals_generate(tiny: Policy, greedy: bool) -> None:
    prompts, _ = _case()
    sampling = SamplingConfig(max_new_tokens=6, greedy=greedy)
    ref = tiny.generate(prompts, sampling, torch.Generator().manual_seed(3))
    got = tiny.generate_shared(prompts, sampling, torch.Generator().manual_seed(3))
    assert [g.token_ids for g in got] == [g.token_ids for g in ref]
    assert [g.prompt_ids for g in got] == prompts
    assert max(abs(a.logprob - b.logprob) for a, b in zip(ref, got, strict=True)) < 1e-4


def test_archer_actor_step_on_shared_states_has_the_per_state_gradient(tiny: Policy, monkeypatch) -> None:
    import agentrl.algorithms.archer.learner as archer_learner
    from agentrl.algorithm import build_algorithm

    prompts, actions = _case()
    algo = build_algorithm("archer", {"batch_size": 7, "grad_accum": 1}, tiny, seed=0)
    data = {
        "prompts": prompts,
        "actions": actions,
        "adv": torch.linspace(-1.0, 1.0, len(prompts)),
        "old": None,
        "stats": {},
    }
    grads: list[list[torch.Tensor]] = []

    def capture(optimizer, params, clip):
        grads.append([p.grad.clone() for p in params])
        return torch.tensor(0.0), True

    monkeypatch.setattr(archer_learner, "guarded_step", capture)
    shared = algo._actor_step(data)
    monkeypatch.setattr(archer_learner, "shared_chunks", lambda *args, **kwargs: None)
    plain = algo._actor_step(data)
    assert shared["actor_loss"] == pytest.approx(plain["actor_loss"], abs=1e-5)
    for g_shared, g_plain in zip(*grads, strict=True):
        assert torch.allclose(g_shared, g_plain, atol=1e-6, rtol=1e-4)


def _common_case() -> tuple[list[list[int]], list[list[int]]]:
    """Prompts that open with the same 50 ids (an env's rules) and then differ."""
    g = torch.Generator().manual_seed(1)
    rules = torch.randint(5, 200, (50,), generator=g).tolist()
    prompts = [rules + torch.randint(5, 200, (k,), generator=g).tolist() for k in (6, 1, 12, 3)]
    actions = [torch.randint(5, 200, (k,), generator=g).tolist() for k in (3, 5, 1, 4)]
    return prompts, actions


def test_common_prefix_length() -> None:
    from agentrl.policy.prefix import common_prefix_length

    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[1, 2, 3], [2, 2, 3]]) == 0
    assert common_prefix_length([[1, 2, 3]]) == 0  # nothing to share with
    prompts, _ = _common_case()
    assert common_prefix_length(prompts) == 50


@pytest.mark.parametrize("constraint", [None, "toolchain"])
def test_shared_common_prefix_scores_and_gradients_equal_whole_rows(tiny: Policy, constraint) -> None:
    prompts, actions = _common_case()
    results = []
    for shared in (0, 32):
        tiny.min_shared_prefix = shared
        tiny.model.zero_grad()
        sums, per_token, mask = tiny.action_logprobs(prompts, actions, constraint=constraint)
        sums.sum().backward()
        grads = [p.grad.clone() for p in tiny.model.parameters() if p.grad is not None]
        results.append((sums.detach(), per_token.detach(), mask, grads))
    tiny.min_shared_prefix = 32
    (s0, t0, m0, g0), (s1, t1, m1, g1) = results
    assert torch.equal(m0, m1)
    assert torch.allclose(t0, t1, atol=1e-5)
    assert len(g0) == len(g1) > 0
    for a, b in zip(g0, g1, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    # the shared path did run: a cache for 50 ids (each row keeps >= 1 id of its own)
    cache, n = tiny._shared_prefix_scoring(prompts)
    assert cache is not None and n == 50


def test_shared_common_prefix_sampling_equals_whole_rows(tiny: Policy) -> None:
    prompts, _ = _common_case()
    sampling = SamplingConfig(max_new_tokens=6, temperature=1.0)
    outs = []
    for shared in (0, 32):
        tiny.min_shared_prefix = shared
        gens = tiny.generate(prompts, sampling, torch.Generator().manual_seed(3))
        outs.append(gens)
    tiny.min_shared_prefix = 32
    for a, b in zip(*outs, strict=True):
        assert a.token_ids == b.token_ids
        assert torch.allclose(torch.tensor(a.logprobs), torch.tensor(b.logprobs), atol=1e-5)
    assert tiny._shared_prefix_caches(prompts, None)[0].length == 50
