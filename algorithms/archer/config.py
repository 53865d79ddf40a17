"""Typed configuration of ArCHer (and CHAI, which reuses its critic).

Defaults follow the paper / reference code (docs/archer.md); the comments
say where a small run wants other values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CRITIC_ENCODERS = ("separate", "policy_lora")
POOLINGS = ("mean", "cls", "last")
PRECISIONS = ("fp32", "bf16")


def _tiny_encoder() -> dict[str, Any]:
    return {
        "name": "tiny_encoder",  # or an HF model id / local path loaded with AutoModel
        "hidden_size": 64,
        "num_layers": 2,
        "num_heads": 2,
        "intermediate_size": 128,
        "max_position_embeddings": 512,
        "tokenizer": "policy",  # tiny_encoder only: "char" or "policy" (the policy's tokenizer)
    }


@dataclass
class ArcherConfig:
    """ArCHer hyper-parameters. The defaults are ``configs/algorithm/archer.yaml``'s: a
    schedule scaled to run in minutes on 2 CPU cores; the paper's values (critic lr 2e-5,
    actor lr 1e-5, 50 critic steps, batch 256 in 32 micro-batches, 10 warm-up iterations)
    are the experiment ``+experiment=archer_paper``.

    Attributes:
        gamma: utterance-level discount (paper 0.9-0.98 by env).
        tau: Polyak rate of the target critic, ``target <- (1 - tau) target + tau online``,
            applied after every critic step.
        critic_lr: Adam lr of the critic. The paper's 2e-5 suits a pretrained RoBERTa; a tiny
            randomly initialised critic (the default ``critic_model``) needs ~1e-4..1e-3.
        actor_lr: Adam lr of the policy (paper 1e-6..1e-5).
        actor_lr_decay_iters: extension, off (0) by default: anneal the actor lr linearly
            from ``actor_lr`` to ``actor_lr_end`` over this many actor-training updates
            (``update`` calls after the warm-up), then hold it. The reference keeps it
            constant; a decay stops a small policy's late drift (docs/sample_efficiency.md).
        actor_lr_end: the actor lr reached after ``actor_lr_decay_iters`` updates.
        critic_epochs: critic steps per ``update`` (each on ``batch_size`` transitions).
        actor_epochs: actor steps per ``update`` (each on ``batch_size`` states).
        batch_size: transitions (critic) or states (actor) per optimizer step.
        grad_accum: micro-batches per step; micro-batch = ``batch_size // grad_accum``.
            Gradients are averaged over micro-batches (the reference sums them).
        warmup_iters: ``update`` calls that train only the critic before the actor starts.
        grad_clip: max global grad norm, per network.
        buffer_size: replay capacity in transitions (FIFO overwrite).
        max_new_tokens / temperature / stop: sampling of the fresh actions
            ``a' ~ pi(.|s)`` used by the V target and the actor.
        critic_encoder: ``"separate"`` (an encoder of its own, RoBERTa-style, as the
            reference) or ``"policy_lora"`` (a LoRA adapter of the critic's own on the
            policy's backbone; needs a LoRA policy; ``critic_model`` is then unused).
        critic_model: the separate encoder: ``{"name": "tiny_encoder", ...}`` builds a small
            random BERT from the other keys (tests, tiny runs); ``{"name": "policy"}`` is a
            trainable copy of the policy's transformer body, taken when RL starts (after the BC
            warm start), the small-scale analog of the paper's pretrained critic; any other
            ``name`` is an HF id or path loaded with ``AutoModel`` / ``AutoTokenizer`` (e.g.
            ``roberta-base``).
        critic_lora: the ``"policy_lora"`` adapter: ``r``, ``alpha``, ``dropout``,
            ``target_modules`` (empty: the policy adapter's).
        critic_head_hidden: hidden width of the Q and V MLP heads (768 in the paper).
        critic_pooling: ``"mean"`` (masked mean over tokens), ``"cls"`` (first token: only
            for tokenizers that add one, e.g. RoBERTa's ``<s>``; the char tokenizer does not)
            or ``"last"`` (last token: the one a causal encoder such as the policy's body
            conditions on the whole text).
        critic_precision: ``"fp32"`` (default: no autocast of its own, so only the learner's
            ``model.autocast`` applies: none on a CPU, which is exact fp32, and bf16 on CUDA by
            default) or ``"bf16"``: the critic encoder runs under bf16 autocast (weights,
            heads and losses stay fp32); ~2.5x faster on CPUs with AVX512-BF16/AMX and on
            GPUs (docs/archer_update_speed.md).
        actor_precision: ``"fp32"`` (default; like ``critic_precision``) or ``"bf16"``: the
            policy's sampling of fresh actions (the critic's V target and the actor) and the
            actor's log-prob forward/backward run under bf16 autocast (weights, Adam and
            losses stay fp32).
        critic_max_length: token budget of one critic input; longer texts keep their end
            (left truncation: the latest turns of a conversation matter most).
        critic_prefill_cache_mb: bound (MiB) of the policy KV caches of replayed
            conversations kept across one update's critic steps, so each conversation is
            prefilled once per update (the policy is frozen there); 0 prefills every step.
        critic_action_samples: extension, off (0, the reference: the V target's
            ``a' ~ pi(.|s)`` is drawn afresh at every critic step). ``k >= 1``: within one
            update's critic phase (the policy is frozen there) a state gets at most ``k``
            draws; once it has ``k``, a later step uses one of them chosen uniformly. Every
            ``a'`` is still a draw from ``pi(.|s)``, so each step's V target keeps its
            expectation; reuse correlates the targets of the phase's steps. Decoding drops
            from one action per sampled transition per step to at most ``k`` per distinct
            state per update (docs/conversations.md). The actor's actions stay fresh.
        ppo_clip: extension, off by default. When set, the actor samples one batch of
            (s, a) per ``update`` and takes ``actor_epochs`` clipped-ratio steps on it.
        normalize_advantage: extension, off by default: standardise A over the actor batch.
        timeout_is_terminal: treat truncation (turn limit) as terminal, as the reference.
    """

    gamma: float = 0.95
    tau: float = 0.1
    critic_lr: float = 1e-3
    actor_lr: float = 1e-4
    actor_lr_decay_iters: int = 0
    actor_lr_end: float = 0.0
    critic_epochs: int = 20
    actor_epochs: int = 3
    batch_size: int = 64
    grad_accum: int = 1
    warmup_iters: int = 3
    grad_clip: float = 1.0
    buffer_size: int = 10000
    max_new_tokens: int = 32
    temperature: float = 1.0
    stop: list[str] = field(default_factory=lambda: ["\n"])
    critic_encoder: str = "separate"
    critic_model: dict[str, Any] = field(default_factory=_tiny_encoder)
    critic_lora: dict[str, Any] = field(
        default_factory=lambda: {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": []}
    )
    critic_head_hidden: int = 768
    critic_pooling: str = "mean"
    critic_max_length: int = 512
    critic_prefill_cache_mb: int = 1024
    critic_action_samples: int = 0
    critic_precision: str = "fp32"
    actor_precision: str = "fp32"
    ppo_clip: float | None = None
    normalize_advantage: bool = False
    timeout_is_terminal: bool = True

    def __post_init__(self) -> None:
        _check_range("gamma", self.gamma, 0.0, 1.0)
        _check_range("tau", self.tau, 0.0, 1.0, low_open=True)
        for name in ("critic_lr", "actor_lr", "grad_clip", "temperature"):
            _check_positive(name, getattr(self, name))
        for name in ("critic_epochs", "actor_epochs", "warmup_iters", "actor_lr_decay_iters"):
            _check_int(name, getattr(self, name), 0)
        for name in ("batch_size", "grad_accum", "buffer_size", "max_new_tokens"):
            _check_int(name, getattr(self, name), 1)
        for name in ("critic_head_hidden", "critic_max_length"):
            _check_int(name, getattr(self, name), 1)
        _check_int("critic_prefill_cache_mb", self.critic_prefill_cache_mb, 0)
        _check_int("critic_action_samples", self.critic_action_samples, 0)
        if not 0.0 <= self.actor_lr_end <= self.actor_lr:
            raise ValueError(
                f"actor_lr_end must be in [0, actor_lr={self.actor_lr}], got {self.actor_lr_end!r}"
            )
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be a multiple of grad_accum "
                f"({self.grad_accum}): micro-batch = batch_size // grad_accum"
            )
        if self.critic_encoder not in CRITIC_ENCODERS:
            raise ValueError(
                f"critic_encoder must be one of {CRITIC_ENCODERS}, got {self.critic_encoder!r}"
            )
        if self.critic_pooling not in POOLINGS:
            raise ValueError(
                f"critic_pooling must be one of {POOLINGS}, got {self.critic_pooling!r}"
            )
        for name in ("critic_precision", "actor_precision"):
            if getattr(self, name) not in PRECISIONS:
                raise ValueError(f"{name} must be one of {PRECISIONS}, got {getattr(self, name)!r}")
        if not isinstance(self.critic_model, dict) or not self.critic_model.get("name"):
            raise ValueError(
                "critic_model must be a dict with a 'name' ('tiny_encoder' or an HF id/path), "
                f"got {self.critic_model!r}"
            )
        if self.ppo_clip is not None:
            _check_range("ppo_clip", self.ppo_clip, 0.0, 1.0, low_open=True)
        self.stop = list(self.stop)

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.grad_accum

    @property
    def v_expectile(self) -> float | None:
        """The IQL expectile the V heads are fitted with at the data's actions, or ``None``
        for ArCHer's V target on fresh actions ``a' ~ pi`` (the online algorithms)."""
        return None

    def actor_lr_at(self, actor_update: int) -> float:
        """Actor lr of the ``actor_update``-th actor-training update (0-based)."""
        if self.actor_lr_decay_iters == 0:
            return self.actor_lr
        frac = min(1.0, actor_update / self.actor_lr_decay_iters)
        return self.actor_lr + (self.actor_lr_end - self.actor_lr) * frac


def _check_range(name: str, value: float, low: float, high: float, low_open: bool = False) -> None:
    ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_int(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@dataclass
class ArcherOfflineConfig(ArcherConfig):
    """Offline ArCHer: ArCHer's settings plus the dataset, IQL and AWR knobs.

    ``temperature`` / ``max_new_tokens`` are unused (nothing is sampled) and ``ppo_clip``
    must stay unset.

    Attributes:
        dataset: JSONL of episodes (one ``Episode.to_dict()`` per line) loaded into the
            buffer at construction; ``""`` for none. Keep ``buffer_size`` >= its turns.
        expectile: IQL expectile ``tau`` of the V regression, in (0, 1); 0.5 is the mean,
            larger values approach the max of Q over the data's actions.
        awr_beta: AWR temperature: weights ``exp(A / beta)`` (smaller = greedier).
        awr_max_weight: cap of the AWR weights.
    """

    dataset: str = ""
    expectile: float = 0.7
    awr_beta: float = 1.0
    awr_max_weight: float = 100.0

    @property
    def v_expectile(self) -> float | None:
        return self.expectile

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"expectile must be in (0, 1), got {self.expectile!r}")
        _check_positive("awr_beta", self.awr_beta)
        _check_positive("awr_max_weight", self.awr_max_weight)
        if self.ppo_clip is not None:
            raise ValueError("ppo_clip must be None for archer_offline (AWR has no ratio)")
