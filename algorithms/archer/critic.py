"""ArCHer's utterance-level double critic.

An encoder embeds an observation and an utterance separately (``h_s``, ``h_a``); two Q heads
read ``[h_s, h_a]`` and two V heads read ``h_s`` (3-layer MLPs, as the reference). The
target critic is a full deep copy (encoder included) moved by Polyak averaging.

Efficiency rules (each fixes a measured cost of the reference): each distinct text of a
call is encoded once (duplicates are gathered back from one row); each text is tokenised
once per run (:class:`TokenCache`, shared by the online and target critics); the encoder
runs in eval mode (no dropout, which also keeps updates deterministic under a seed).

Two encoders (``ArcherConfig.critic_encoder``): ``"separate"``, an encoder of its own (an HF
``AutoModel`` such as RoBERTa, a tiny random BERT for tests, or, with ``critic_model.name:
policy``, a copy of the policy's own transformer body, :func:`init_encoder_from_policy`), and
``"policy_lora"``, the policy's own backbone seen through a LoRA adapter of the critic's
(:class:`PolicyLoraEncoder`).

Both policy-based encoders are causal (``DoubleCritic.causal``): a position sees only the
ones before it, so the hidden states of a text's first ``n`` tokens are those of its
``n``-token prefix. The states of one conversation are prefixes of each other, so such a
critic runs each conversation of a call once and reads every state's pooled vector at the
state's own length (:meth:`DoubleCritic.embed`); bidirectional encoders (the tiny BERT,
RoBERTa) encode every text alone.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from agentrl.policy.device import autocast
from agentrl.policy.models import base_model, is_peft
from agentrl.policy.prefix import prefix_groups

from .config import ArcherConfig

if TYPE_CHECKING:
    from agentrl.policy import Policy


def precision_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a ``critic_precision`` / ``actor_precision`` value: bf16, or
    ``None`` for ``"fp32"``: no autocast of its own, so a caller's (the learner's
    ``model.autocast``, bf16 on CUDA by default) still applies."""
    return torch.bfloat16 if precision == "bf16" else None


class TokenCache:
    """Tokenises each distinct text once (LRU-bounded), keeping the END of long texts.

    Args:
        tokenizer: an HF tokenizer (its special tokens, e.g. ``<s>``/``</s>``, are added).
        max_length: token budget per text, special tokens included.
        max_entries: cache size; fresh policy samples make the set of texts unbounded.
    """

    def __init__(self, tokenizer: Any, max_length: int, max_entries: int = 100_000):
        self.tokenizer = tokenizer
        self.tokenizer.truncation_side = "left"
        self.max_length = max_length
        self.max_entries = max_entries
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = int(pad) if pad is not None else 0
        self._cache: OrderedDict[str, list[int]] = OrderedDict()

    def __call__(self, texts: Sequence[str]) -> list[list[int]]:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            enc = self.tokenizer(
                missing, truncation=True, max_length=self.max_length, add_special_tokens=True
            )["input_ids"]
            for text, ids in zip(missing, enc, strict=True):
                self._cache[text] = list(ids) or [self.pad_id]  # "" still gets one position
        out = []
        for t in texts:
            self._cache.move_to_end(t)
            out.append(self._cache[t])
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return out

    def __len__(self) -> int:
        return len(self._cache)


def _input_embedding(encoder: nn.Module) -> nn.Embedding | None:
    get = getattr(encoder, "get_input_embeddings", None)
    emb = get() if callable(get) else None
    return emb if type(emb) is nn.Embedding else None


def densify_grads_(params: Sequence[torch.Tensor]) -> None:
    """Replace every sparse ``.grad`` of ``params`` by its dense equivalent (duplicates summed)."""
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.to_dense()


def _mlp(in_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, 1),
    )


class DoubleCritic(nn.Module):
    """``Q_1, Q_2`` on ``[h_s, h_a]`` and ``V_1, V_2`` on ``h_s``.

    Args:
        encoder: a text encoder returning ``last_hidden_state`` ``[N, T, H]`` (HF ``AutoModel``).
        tokens: the :class:`TokenCache` of the encoder's tokenizer.
        hidden_size: ``H``.
        head_hidden: width of the MLP heads.
        pooling: ``"mean"`` (masked mean over tokens), ``"cls"`` (first token) or ``"last"``
            (last token).
        precision: ``"fp32"`` (no autocast of its own: a caller's applies), or ``"bf16"`` to
            run the encoder under bf16 autocast (weights, pooling and heads stay fp32; ~2.5x
            faster on CPUs with AVX512-BF16 or on GPUs).
        causal: the encoder is causal (each position attends to itself and earlier ones
            only, as the policy's body): :meth:`embed` then encodes texts whose token ids
            are prefixes of another text's once, inside the longer text's pass. Only exact
            for a causal encoder; :func:`build_critic` sets it from the config.
    """

    def __init__(
        self,
        encoder: nn.Module,
        tokens: TokenCache,
        hidden_size: int,
        head_hidden: int = 768,
        pooling: str = "mean",
        precision: str = "fp32",
        causal: bool = False,
    ):
        super().__init__()
        self.precision = precision
        self.causal: bool = causal
        self.encoder = encoder
        self.tokens = tokens
        self.pooling = pooling
        self.q1 = _mlp(2 * hidden_size, head_hidden)
        self.q2 = _mlp(2 * hidden_size, head_hidden)
        self.v1 = _mlp(hidden_size, head_hidden)
        self.v2 = _mlp(hidden_size, head_hidden)
        self.encoder_passes = 0  # counted for tests and profiling
        self.encoder_positions = 0  # token positions run through the encoder, padding included
        self.train()
        # The token embedding's gradient is sparse (the rows of this batch's tokens) instead of
        # a dense [vocab, H] tensor per encoder pass (two per critic micro-batch, summed);
        # :func:`densify_grads_` makes it dense once before clipping and Adam: the same
        # gradient, ~40 ms less per critic step with the reference's 49k x 768 embedding.
        # Not for the policy_lora encoder: that embedding is the policy's.
        emb = None if isinstance(encoder, PolicyLoraEncoder) else _input_embedding(encoder)
        if emb is not None:
            emb.sparse = True

    def train(self, mode: bool = True) -> DoubleCritic:
        super().train(mode)
        self.encoder.eval()  # dropout stays off
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Pooled embeddings ``[N, H]`` of ``texts``: one encoder pass over the distinct texts.

        With a causal encoder (:attr:`causal`), texts whose token ids (after
        :class:`TokenCache`'s left truncation) are a prefix of another text's are not run on
        their own: the pass holds only the longest text of each prefix group
        (:func:`~agentrl.policy.prefix.prefix_groups`), and each text is pooled from that
        row's first ``len`` positions: ``last`` at position ``len - 1``, ``mean`` as the
        running sum at ``len - 1`` over ``len``, ``cls`` at position 0. The values and the
        gradients (one backward through the shared pass) are those of encoding every text
        alone, up to float summation order.
        """
        uniq = list(dict.fromkeys(texts))
        ids = self.tokens(uniq)
        device = self.device
        if self.causal:
            roots, root_of = prefix_groups(ids)
            hidden, _ = self._encode(roots)
            row = torch.tensor(root_of, device=device)
            length = torch.tensor([len(x) for x in ids], device=device)
            if self.pooling == "cls":
                pooled = hidden[row, 0]
            elif self.pooling == "last":
                pooled = hidden[row, length - 1]
            else:  # a prefix holds real tokens only: its masked mean is its running mean
                pooled = hidden.cumsum(1)[row, length - 1] / length.unsqueeze(-1).to(hidden.dtype)
        else:
            hidden, mask = self._encode(ids)
            if self.pooling == "cls":
                pooled = hidden[:, 0]
            elif self.pooling == "last":  # right-padded: the last real token saw the whole text
                pooled = hidden[torch.arange(len(ids), device=device), mask.sum(1) - 1]
            else:
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1)
        where = {t: i for i, t in enumerate(uniq)}
        return pooled[torch.tensor([where[t] for t in texts], device=device)]

    def _encode(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """One encoder pass over ``ids``, right-padded: ``(hidden [N, T, H] fp32, mask [N, T])``."""
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.tokens.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            mask[i, : len(x)] = 1
        device = self.device
        input_ids, mask = input_ids.to(device), mask.to(device)
        with autocast(device, precision_dtype(self.precision)):
            hidden = self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state
        self.encoder_passes += 1
        self.encoder_positions += input_ids.numel()
        return hidden.float(), mask

    def q_heads(self, h_s: torch.Tensor, h_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``Q_1, Q_2`` ``[B]`` from embeddings ``h_s, h_a`` ``[B, H]``."""
        x = torch.cat([h_s, h_a], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)

    def v_heads(self, h_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``V_1, V_2`` ``[B]`` from ``h_s`` ``[B, H]``."""
        return self.v1(h_s).squeeze(-1), self.v2(h_s).squeeze(-1)

    def forward(
        self, observations: Sequence[str], actions: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Q_1, Q_2, V_1, V_2)``, each ``[B]``, in two encoder passes (states, actions)."""
        h_s = self.embed(observations)
        h_a = self.embed(actions)
        return (*self.q_heads(h_s, h_a), *self.v_heads(h_s))

    def min_q(self, observations: Sequence[str], actions: Sequence[str]) -> torch.Tensor:
        """``min(Q_1, Q_2)(s, a)``, ``[B]``."""
        q1, q2 = self.q_heads(self.embed(observations), self.embed(actions))
        return torch.minimum(q1, q2)

    def target_copy(self) -> DoubleCritic:
        """A frozen deep copy (shares the token cache) for the Polyak-averaged target."""
        target = copy.deepcopy(self, memo={id(self.tokens): self.tokens})
        target.requires_grad_(False)
        return target


def build_critic(config: ArcherConfig, policy: Policy | None = None, seed: int = 0) -> DoubleCritic:
    """Build the critic that ``config`` describes, on ``policy.device`` (CPU without a policy).

    Initialisation is seeded by ``seed`` without touching the global RNG state.
    """
    spec = dict(config.critic_model)
    name = spec["name"]
    encoder: Any
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if config.critic_encoder == "policy_lora":
            if policy is None:
                raise ValueError("critic_encoder=policy_lora needs the policy it adds an adapter to")
            encoder = PolicyLoraEncoder(policy, "critic", _lora_config(config.critic_lora, policy))
            tokenizer = copy.deepcopy(policy.tokenizer)  # TokenCache sets truncation_side
            limit = int(getattr(policy.model.config, "max_position_embeddings", 10**9))
        elif name == "tiny_encoder":
            encoder, tokenizer, limit = _tiny_encoder(spec, policy)
        elif name == POLICY_ENCODER:
            encoder, tokenizer, limit = _policy_copy(policy)
        else:
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(name)
            encoder = AutoModel.from_pretrained(name)
            limit = int(getattr(tokenizer, "model_max_length", 10**9))
        max_length = min(config.critic_max_length, limit)
        critic = DoubleCritic(
            encoder,
            TokenCache(tokenizer, max_length),
            hidden_size=int(encoder.config.hidden_size),
            head_hidden=config.critic_head_hidden,
            pooling=config.critic_pooling,
            precision=config.critic_precision,
            causal=causal_encoder(config),
        )
    return critic.to(policy.device) if policy is not None else critic


POLICY_ENCODER = "policy"  # critic_model.name: a copy of the policy's transformer body


def causal_encoder(config: ArcherConfig) -> bool:
    """Whether ``config``'s critic encoder is causal: the policy's own backbone
    (``critic_encoder="policy_lora"``) or a copy of it (``critic_model.name="policy"``).
    Every other encoder (the tiny BERT, an HF ``AutoModel`` such as RoBERTa) is taken as
    bidirectional."""
    return config.critic_encoder == "policy_lora" or config.critic_model["name"] == POLICY_ENCODER


def policy_backbone(policy: Any) -> Any:
    """The policy's transformer body (e.g. ``LlamaModel``: no LM head), peft unwrapped."""
    model = policy.model
    base = base_model(model)
    return getattr(base, base.base_model_prefix, base)


def _policy_copy(policy: Any) -> tuple[Any, Any, int]:
    """A trainable deep copy of the policy's body and its tokenizer (``critic_model.name:
    policy``): the critic starts with what the policy knows about the environment's language,
    the small-scale analog of the paper's pretrained RoBERTa. Its weights are separate from the
    policy's (the critic never moves the actor); :func:`init_encoder_from_policy` re-copies them
    when RL starts, i.e. after the BC warm start."""
    if policy is None:
        raise ValueError("critic_model.name='policy' needs a policy to copy")
    encoder = copy.deepcopy(policy_backbone(policy))
    encoder.requires_grad_(True)
    if hasattr(encoder.config, "use_cache"):
        encoder.config.use_cache = False
    tokenizer = copy.deepcopy(policy.tokenizer)  # TokenCache sets truncation_side
    limit = int(getattr(encoder.config, "max_position_embeddings", 10**9))
    return encoder, tokenizer, limit


@torch.no_grad()
def init_encoder_from_policy(critics: Sequence[DoubleCritic], policy: Any) -> None:
    """Copy the policy body's current weights into each critic's encoder (online and target),
    leaving the Q/V heads alone."""
    state = policy_backbone(policy).state_dict()
    for critic in critics:
        critic.encoder.load_state_dict(state)


def _tiny_encoder(spec: dict[str, Any], policy: Any) -> tuple[Any, Any, int]:
    """A small random BERT (tests, tiny runs) over the char tokenizer or the policy's."""
    from transformers import BertConfig, BertModel

    from agentrl.policy.tokenizer import build_char_tokenizer

    which = spec.get("tokenizer", "char")
    if which == "char":
        tokenizer = build_char_tokenizer()
    elif which == "policy":
        if policy is None:
            raise ValueError("critic_model.tokenizer='policy' needs a policy")
        tokenizer = copy.deepcopy(policy.tokenizer)  # TokenCache sets truncation_side
    else:
        raise ValueError(f"critic_model.tokenizer must be 'char' or 'policy', got {which!r}")
    max_pos = int(spec.get("max_position_embeddings", 512))
    cfg = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=int(spec.get("hidden_size", 64)),
        num_hidden_layers=int(spec.get("num_layers", 2)),
        num_attention_heads=int(spec.get("num_heads", 2)),
        intermediate_size=int(spec.get("intermediate_size", 128)),
        max_position_embeddings=max_pos,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=tokenizer.pad_token_id or 0,
    )
    return BertModel(cfg, add_pooling_layer=False), tokenizer, max_pos


def _lora_config(spec: dict[str, Any], policy: Any) -> Any:
    """The critic adapter's ``LoraConfig``; target modules default to the policy adapter's."""
    from peft import LoraConfig

    if policy is None or not is_peft(policy.model):
        raise ValueError(
            "critic_encoder='policy_lora' needs a LoRA policy (model.lora=true): the critic "
            "adds its own adapter to the policy's peft model"
        )
    targets = spec.get("target_modules") or policy.model.peft_config["default"].target_modules
    return LoraConfig(
        r=int(spec.get("r", 8)),
        lora_alpha=int(spec.get("alpha", 16)),
        lora_dropout=float(spec.get("dropout", 0.0)),
        target_modules=sorted(targets) if isinstance(targets, set) else targets,
    )


class PolicyLoraEncoder(nn.Module):
    """The policy's backbone seen through a LoRA adapter of the critic's own.

    The backbone is not a submodule: the critic must not own, copy, move or save the
    policy's weights. Only this adapter's LoRA tensors are registered (``self.lora``, the
    same ``Parameter`` objects as inside the backbone), so the critic's ``parameters()``,
    ``state_dict()``, optimizer and Polyak update cover exactly them. ``deepcopy`` (the
    target critic) adds a second adapter, ``"<adapter>_target"``, with copied weights.

    peft's ``set_adapter`` freezes every other adapter; each forward therefore activates
    this adapter, runs the backbone (eval mode), re-activates the previous adapter and
    restores every ``requires_grad`` flag. The online critic's adapter keeps
    ``requires_grad=True`` (autograd drops the gradient of a leaf whose flag is off at
    backward time), so ``policy.trainable_parameters()`` lists it too; the policy's
    ``get_weights`` still sends the ``"default"`` adapter only.

    Args:
        policy: a :class:`~agentrl.policy.Policy` whose model is a peft model.
        adapter: the adapter name to create.
        lora_config: its ``peft.LoraConfig``.
        trainable: ``requires_grad`` of the adapter's tensors.
    """

    def __init__(self, policy: Any, adapter: str, lora_config: Any, trainable: bool = True):
        super().__init__()
        model = policy.model
        self._policy = [policy]  # a list: not registered as a submodule
        self.adapter = adapter
        self.lora_config = lora_config
        self.config = model.config
        model.add_adapter(adapter, lora_config)
        tag = f".{adapter}."
        self.lora = nn.ParameterDict(
            {
                n.replace(tag, ".").replace(".", "|"): p
                for n, p in model.named_parameters()
                if tag in n
            }
        )
        if not len(self.lora):
            raise ValueError(f"LoRA adapter {adapter!r} matched no module of the policy")
        for p in self.lora.values():
            p.requires_grad_(trainable)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        model = self._policy[0].model
        previous = model.active_adapter
        flags = [(p, p.requires_grad) for p in model.parameters()]
        was_training = model.training
        base = model.get_base_model()
        backbone = getattr(base, base.base_model_prefix, base)
        model.set_adapter(self.adapter)
        model.eval()
        try:
            return backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        finally:
            model.set_adapter(previous)
            model.train(was_training)
            for p, flag in flags:
                p.requires_grad_(flag)

    def __deepcopy__(self, memo: dict[int, Any]) -> PolicyLoraEncoder:
        policy = self._policy[0]
        name, i = f"{self.adapter}_target", 1
        while name in policy.model.peft_config:
            i += 1
            name = f"{self.adapter}_target{i}"
        clone = PolicyLoraEncoder(policy, name, self.lora_config, trainable=False)
        with torch.no_grad():
            for key, p in self.lora.items():
                clone.lora[key].copy_(p)
        memo[id(self)] = clone
        return clone
