"""Random-initialised models of real shapes for the GPU proof (no weights, no hub access).

The GPU machine cannot download weights, and throughput does not depend on their values, so
:func:`random_policy` builds a :class:`~agentrl.policy.Policy` around a ``transformers``
model of a preset's published architecture (:data:`SHAPES`, the shapes that
``tests/test_model_presets.py`` checks) with random weights, made directly on the target
device, and a synthetic word-level tokenizer with one piece per id (so any sampled id
decodes). LoRA settings come from the preset's own config (``configs/model/<preset>.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)

from agentrl.config import load_config
from agentrl.policy import Policy
from agentrl.policy.models import wrap_lora

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")


@dataclass(frozen=True)
class Shape:
    """A decoder-only architecture: what ``AutoConfig.for_model`` needs, plus the preset
    (``configs/model/<preset>.yaml``) whose LoRA settings apply to it."""

    label: str
    preset: str
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool

    @property
    def approx_params(self) -> int:
        """Parameters of the attention and MLP weights and the (tied) embedding, roughly:
        to compare the cost of shapes without building them."""
        attn = self.hidden * (2 * self.hidden + 2 * self.hidden * self.kv_heads // self.heads)
        return self.layers * (attn + 3 * self.hidden * self.intermediate) + self.vocab * self.hidden

    def config(self) -> PretrainedConfig:
        """The ``transformers`` config of this shape (sdpa attention, no dropout)."""
        return AutoConfig.for_model(
            self.model_type,
            hidden_size=self.hidden,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            intermediate_size=self.intermediate,
            vocab_size=self.vocab,
            tie_word_embeddings=self.tied,
            max_position_embeddings=32768,
            attention_dropout=0.0,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )


SHAPES: dict[str, Shape] = {
    # Qwen2.5 published shapes (hidden, layers, heads, kv heads, intermediate, vocab, tied)
    "qwen2_5_0_5b": Shape(
        "Qwen2.5-0.5B", "qwen2_5_0_5b", "qwen2", 896, 24, 14, 2, 4864, 151936, True
    ),
    "qwen2_5_1_5b": Shape(
        "Qwen2.5-1.5B", "qwen2_5_1_5b", "qwen2", 1536, 28, 12, 2, 8960, 151936, True
    ),
    # --small: the same architecture at a size a CPU runs in a second
    "small": Shape("Qwen2 (small)", "qwen2_5_0_5b", "qwen2", 64, 2, 4, 2, 128, 1024, True),
}


def synthetic_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A word-level tokenizer with exactly ``vocab_size`` pieces (``<pad> <s> </s> <unk>``
    then ``t4 .. t{V-1}``): every id a random model samples decodes to a piece."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    vocab.update({f"t{i}": i for i in range(len(SPECIALS), vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    fast.padding_side = "left"
    return fast


def random_model(shape: Shape, device: torch.device, dtype: torch.dtype) -> PreTrainedModel:
    """A causal LM of ``shape`` with random weights (seed 0), built on ``device`` in ``dtype``."""
    # a forked RNG: building a model never disturbs the caller's random stream
    cuda = (
        [device.index if device.index is not None else torch.cuda.current_device()]
        if device.type == "cuda"
        else []
    )
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(0)
        with torch.device(device):
            model: PreTrainedModel = AutoModelForCausalLM.from_config(
                shape.config(), dtype=dtype, attn_implementation="sdpa"
            )
    return model


def random_policy(shape: Shape, device: torch.device, dtype: torch.dtype, lora: bool) -> Policy:
    """:func:`random_model` as a :class:`Policy`, wrapped with the preset's LoRA adapter when
    ``lora`` (``lora_r``, ``lora_alpha``, ``lora_target_modules`` of ``shape.preset``)."""
    model = random_model(shape, device, dtype)
    if lora:
        model = wrap_lora(model, load_config([f"model={shape.preset}"]).model).to(device)
    return Policy(model, synthetic_tokenizer(shape.vocab), device=device)


def parameter_count(model: torch.nn.Module) -> int:
    """All parameters (frozen ones included), tied weights once: ``N`` of ``6 * N``."""
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class Layout:
    """A multi-turn conversation of ``total`` ids: an opening (system prompt and the env's
    first message), then agent turns of ``agent`` ids separated by env replies of ``env``
    ids; it ends with an agent turn, so every id is fed to the model when it is scored."""

    total: int
    agent: int
    env: int
    opening: int

    def spans(self) -> list[tuple[int, int]]:
        """``(start, end)`` of every agent turn."""
        out = []
        pos = self.total - self.agent
        while pos >= self.opening:
            out.append((pos, pos + self.agent))
            pos -= self.agent + self.env
        return sorted(out)


def conversation_layout(total: int, agent: int, env: int, min_opening: int) -> Layout:
    """The layout of ``total`` ids with as many ``agent``/``env`` turns as fit after an
    opening of at least ``min_opening`` ids (the opening takes the remainder)."""
    turns = (total - min_opening + env) // (agent + env)
    if turns < 1:
        raise ValueError(
            f"a conversation of {total} ids cannot hold an opening of {min_opening} ids and one "
            f"agent turn of {agent} ids"
        )
    opening = total - turns * agent - (turns - 1) * env
    return Layout(total, agent, env, opening)


__all__ = [
    "Layout",
    "SHAPES",
    "SPECIALS",
    "Shape",
    "conversation_layout",
    "parameter_count",
    "random_model",
    "random_policy",
    "synthetic_tokenizer",
]
