"""``model.gradient_checkpointing``: the learner's gradients are unchanged, autograd keeps far
fewer activations, and sampling is untouched."""

from __future__ import annotations

import pytest
import torch

from agentrl.config import load_config
from agentrl.policy import ModelConfig, Policy, SamplingConfig

TINY = dict(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128)
SEQS = [list(range(5, 45)), list(range(7, 30)) + list(range(60, 75))]
SPANS = [(0, 10, 16), (0, 30, 40), (1, 20, 38)]


def _policy(checkpointing: bool, lora: bool) -> Policy:
    torch.manual_seed(0)  # the same LoRA initialisation
    return Policy.from_config(
        ModelConfig(**TINY, lora=lora, gradient_checkpointing=checkpointing), device="cpu"
    )


def _grads(policy: Policy) -> tuple[dict[str, torch.Tensor], int]:
    """Trainable parameters' gradients of one scoring pass in training mode, and the bytes
    autograd saved for the backward pass during the forward pass."""
    saved = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[0] += t.numel() * t.element_size()
        return t

    policy.model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        _, per_token, mask = policy.span_logprobs(SEQS, SPANS)
    (per_token * mask).sum().backward()
    named = policy.model.named_parameters()
    return {n: p.grad.clone() for n, p in named if p.requires_grad and p.grad is not None}, saved[0]


@pytest.mark.parametrize("lora", [False, True])
def test_checkpointed_gradients_equal_plain_ones_with_fewer_saved_activations(lora: bool) -> None:
    plain, plain_saved = _grads(_policy(False, lora))
    ckpt, ckpt_saved = _grads(_policy(True, lora))
    assert ckpt_saved < 0.4 * plain_saved  # the layers' activations were not kept
    assert plain.keys() == ckpt.keys() and plain
    if lora:
        assert all("lora_" in n for n in plain)
    for name in plain:
        assert torch.allclose(plain[name], ckpt[name], atol=1e-6, rtol=1e-5), name
    assert any(g.abs().sum() > 0 for g in ckpt.values())


def test_sampling_is_unchanged() -> None:
    prompts = [SEQS[0][:12], SEQS[1][:20]]
    outs = []
    for checkpointing in (False, True):
        policy = _policy(checkpointing, lora=True)
        gens = policy.generate(
            prompts, SamplingConfig(max_new_tokens=6), torch.Generator().manual_seed(3)
        )
        outs.append([(g.token_ids, [round(x, 5) for x in g.logprobs]) for g in gens])
    assert outs[0] == outs[1]


def test_config_option_and_large_presets() -> None:
    assert load_config(["model.gradient_checkpointing=true"]).model.gradient_checkpointing
    assert not load_config([]).model.gradient_checkpointing
    for preset in ("qwen2_5_7b", "llama3_1_8b"):
        assert load_config([f"model={preset}"]).model.gradient_checkpointing
    assert not load_config(["model=smollm2"]).model.gradient_checkpointing


def test_lora_build_and_reload_raise_no_checkpointing_deprecation(tmp_path) -> None:
    """peft reads a property that newer transformers deprecates on every read; agentrl's
    adapter calls filter that one warning (``peft_quietly``) so every run does not print it."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = _policy(checkpointing=False, lora=True)
        policy.save(tmp_path / "ckpt")
        Policy.load(tmp_path / "ckpt", device="cpu", model_config=ModelConfig(**TINY, lora=True))
    assert not [w for w in caught if "is_gradient_checkpointing" in str(w.message)]
