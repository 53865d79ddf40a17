"""The lean decode step of Policy.generate (agentrl.policy.lean): same samples, less time."""

from __future__ import annotations

import pytest
import torch

from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.lean import last_logits, lean_parts

TINY = dict(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)


def tiny_policy(**kw) -> Policy:
    torch.manual_seed(0)
    return Policy.from_config(ModelConfig(**TINY, **kw))


def _prompts(policy: Policy) -> list[list[int]]:
    return policy.encode_prompts(
        ["Pick A or B", "start", "a much longer observation: is it red?", "x"]
    )


def _sample(policy: Policy, cfg: SamplingConfig, seed: int, lean: bool):
    policy.lean_decode = lean
    try:
        return policy.generate(_prompts(policy), cfg, torch.Generator().manual_seed(seed))
    finally:
        policy.lean_decode = True


def assert_same_samples(out, ref) -> None:
    """Same tokens, texts, finish reasons; log-probs equal up to float summation order."""
    assert len(out) == len(ref)
    for o, r in zip(out, ref, strict=True):
        assert (o.token_ids, o.text, o.finish_reason, o.prompt_ids) == (
            r.token_ids,
            r.text,
            r.finish_reason,
            r.prompt_ids,
        )
        assert torch.allclose(torch.tensor(o.logprobs), torch.tensor(r.logprobs), atol=1e-5)


@pytest.mark.parametrize("lora", [False, True])
def test_lean_step_gives_the_full_forwards_samples(lora):
    policy = tiny_policy(lora=lora)
    assert lean_parts(policy.model) is not None  # the lean step is what this test exercises
    policy.model.train()
    reasons = set()
    # a stop string (rows end at different steps, finished rows get dropped) and a fixed length
    for cfg in (SamplingConfig(max_new_tokens=12, stop=("a",)), SamplingConfig(max_new_tokens=7)):
        for seed in range(3):
            ref = _sample(policy, cfg, seed, lean=False)
            out = _sample(policy, cfg, seed, lean=True)
            assert_same_samples(out, ref)
            reasons.update(o.finish_reason for o in out)
    assert reasons == {"stop", "length"}
    assert policy.model.training  # train/eval mode restored


def test_lean_step_skips_the_lm_head_and_full_forward_uses_it():
    policy = tiny_policy()
    calls = []
    head = policy.model.get_output_embeddings()
    forward = head.forward

    def counting(x):  # an instance attribute, not a hook (a hook turns the lean step off)
        calls.append(x.shape[1])
        return forward(x)

    head.forward = counting
    cfg = SamplingConfig(max_new_tokens=5)
    _sample(policy, cfg, 0, lean=True)
    assert calls == []
    _sample(policy, cfg, 0, lean=False)
    assert calls and set(calls) == {1}  # logits_to_keep=1: one position per call


def test_lean_step_honours_a_callers_autocast():
    policy = tiny_policy()
    cfg = SamplingConfig(max_new_tokens=7)
    exact = _sample(policy, cfg, 0, lean=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lean = _sample(policy, cfg, 0, lean=True)
        full = _sample(policy, cfg, 0, lean=False)
    assert [g.logprobs for g in lean] != [g.logprobs for g in exact]
    for a, b in zip(lean, full, strict=True):  # both in bf16: close, not necessarily equal
        n = min(len(a.logprobs), len(b.logprobs))
        if a.token_ids[:n] == b.token_ids[:n]:
            assert torch.allclose(
                torch.tensor(a.logprobs[:n]), torch.tensor(b.logprobs[:n]), atol=5e-2
            )


def test_last_logits_match_the_linear_head_and_other_heads_fall_back():
    w = torch.randn(300, 16)
    for rows in (1, 8, 65):  # 65: above SMALL_BATCH, F.linear
        h = torch.randn(rows, 16)
        out = last_logits(h, w)
        assert out.shape == (rows, 300) and out.is_contiguous()
        assert torch.allclose(out, torch.nn.functional.linear(h, w), atol=1e-5)
    policy = tiny_policy()
    base = policy.model
    base.lm_head = torch.nn.Linear(base.lm_head.in_features, base.lm_head.out_features)  # a bias
    assert lean_parts(base) is None
    cfg = SamplingConfig(max_new_tokens=5)
    assert_same_samples(_sample(policy, cfg, 0, lean=True), _sample(policy, cfg, 0, lean=False))
    policy = tiny_policy()
    assert lean_parts(policy.model) is not None
    head = policy.model.get_output_embeddings()
    handle = head.register_forward_hook(lambda _m, _i, out: out * 0.5)  # a hooked head
    assert lean_parts(policy.model) is None
    hooked = _sample(policy, cfg, 0, lean=True)
    assert_same_samples(hooked, _sample(policy, cfg, 0, lean=False))
    handle.remove()
    unhooked = _sample(policy, cfg, 0, lean=True)  # the hook changed the samples
    assert [g.logprobs for g in hooked] != [g.logprobs for g in unhooked]
    assert_same_samples(_sample(policy, cfg, 0, lean=True), _sample(policy, cfg, 0, lean=False))
