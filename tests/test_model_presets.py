"""The model presets for common instruct families compose, validate and describe real
architectures (built on the meta device: no weights, no hub access)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from agentrl.config import load_config

# Published shapes: (model_type, hidden, layers, heads, kv_heads, intermediate, vocab, tied, params)
SHAPES = {
    "qwen2_5_0_5b": ("qwen2", 896, 24, 14, 2, 4864, 151936, True, 0.494e9),
    "qwen2_5_1_5b": ("qwen2", 1536, 28, 12, 2, 8960, 151936, True, 1.54e9),
    "qwen2_5_7b": ("qwen2", 3584, 28, 28, 4, 18944, 152064, False, 7.62e9),
    "llama3_2_1b": ("llama", 2048, 16, 32, 8, 8192, 128256, True, 1.24e9),
    "llama3_2_3b": ("llama", 3072, 28, 24, 8, 8192, 128256, True, 3.21e9),
    "llama3_1_8b": ("llama", 4096, 32, 32, 8, 14336, 128256, False, 8.03e9),
    "smollm2_1_7b": ("llama", 2048, 24, 32, 32, 8192, 49152, True, 1.71e9),
}


@pytest.mark.parametrize("preset", sorted(SHAPES))
def test_preset_composes_and_its_lora_fits_the_architecture(preset: str) -> None:
    from peft import LoraConfig, get_peft_model

    cfg = load_config([f"model={preset}"])
    assert cfg.model.lora and cfg.model.name.count("/") == 1 and cfg.model.dtype == "bfloat16"
    kind, hidden, layers, heads, kv, inter, vocab, tied, params = SHAPES[preset]
    arch = AutoConfig.for_model(
        kind,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        intermediate_size=inter,
        vocab_size=vocab,
        tie_word_embeddings=tied,
    )
    with torch.device("meta"):  # the real size, no memory
        model = AutoModelForCausalLM.from_config(arch)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - params) / params < 0.02, (preset, n)
    lora = LoraConfig(
        r=cfg.model.lora_r,
        lora_alpha=cfg.model.lora_alpha,
        target_modules=list(cfg.model.lora_target_modules),
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    assert 0 < trainable < 0.02 * n  # an adapter, not the model
    per_layer = sum(
        cfg.model.lora_r * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if name.startswith("model.layers.0.") and name.rsplit(".", 1)[-1] in cfg.model.lora_target_modules
    )
    assert trainable == layers * per_layer  # every target module matched, in every layer


def test_model_hub_options_are_validated() -> None:
    cfg = load_config(["model=qwen2_5_0_5b", "model.revision=main", "model.attn_implementation=sdpa"])
    assert (cfg.model.revision, cfg.model.attn_implementation, cfg.model.trust_remote_code) == ("main", "sdpa", False)
