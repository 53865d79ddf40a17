"""PPO's value functions: ``V`` of the state each agent token was sampled from.

Both read the same token sequences the policy is scored on (whole conversations, one pass
each) at the same positions: agent token ``k`` at position ``p`` is predicted from position
``p - 1``, whose hidden state is the state ``s_k``.

- :class:`PolicyValueHead` (``value_head=policy``): a linear head on the policy's final
  hidden state, in the policy's own scoring pass (:meth:`Policy.span_logprobs_hidden
  <agentrl.policy.Policy.span_logprobs_hidden>`): the value loss trains the shared body too.
- :class:`SeparateValue` (``value_head=separate``): an encoder of its own and a linear head;
  the encoder is ArCHer's (:mod:`agentrl.algorithms.archer.critic`): for a LoRA policy a
  LoRA adapter of its own on the policy's frozen base (:class:`PolicyLoraEncoder`), else a
  trainable copy of the policy's transformer body (:func:`policy_backbone`), re-copied from
  the policy when RL starts (after a warm start).

Heads start at zero (``V = 0``): the first value gradients do not reach the shared body.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from agentrl.policy import Policy

from ..archer.critic import PolicyLoraEncoder, policy_backbone

Spans = Sequence[tuple[int, int, int]]


def _zero_head(hidden_size: int) -> nn.Linear:
    head = nn.Linear(hidden_size, 1)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return head


class ValueModel(nn.Module, ABC):
    """A value function scored together with the policy: :meth:`score` gives the policy's
    per-token log-probs and the values at the same agent tokens."""

    @abstractmethod
    def score(
        self, policy: Policy, sequences: Sequence[Sequence[int]], spans: Spans
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logprobs [N, L], mask [N, L], values [N, L])`` of ``spans`` (layout of
        :meth:`Policy.span_logprobs <agentrl.policy.Policy.span_logprobs>`); values 0 off
        the mask."""

    def on_rl_start(self, policy: Policy) -> None:
        """Called once before the first update (after any warm start); nothing by default."""
        return None

    def trainable(self) -> Iterator[nn.Parameter]:
        """The parameters the value loss trains that the policy's optimiser does not hold."""
        return (p for p in self.parameters() if p.requires_grad)


class PolicyValueHead(ValueModel):
    """``V(s_k) = w . h_k + b`` on the policy's final hidden state ``h_k``."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.head = _zero_head(hidden_size)

    def score(
        self, policy: Policy, sequences: Sequence[Sequence[int]], spans: Spans
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logp, mask, hidden = policy.span_logprobs_hidden(sequences, spans)
        values = self.head(hidden.float()).squeeze(-1)
        return logp, mask, values * mask


class SeparateValue(ValueModel):
    """An encoder of its own (``encoder(input_ids, attention_mask).last_hidden_state``) and
    a linear head, run on the policy's token sequences.

    Args:
        encoder: a transformer body, or a :class:`PolicyLoraEncoder`.
        hidden_size: its width.
        pad_id: the id that pads sequences to a common length.
        copy_from_policy: re-copy the policy's body into ``encoder`` in :meth:`on_rl_start`.
    """

    def __init__(self, encoder: nn.Module, hidden_size: int, pad_id: int, copy_from_policy: bool):
        super().__init__()
        self.encoder = encoder
        self.head = _zero_head(hidden_size)
        self.pad_id = pad_id
        self.copy_from_policy = copy_from_policy

    def on_rl_start(self, policy: Policy) -> None:
        if self.copy_from_policy:
            with torch.no_grad():
                self.encoder.load_state_dict(policy_backbone(policy).state_dict())

    def values(self, sequences: Sequence[Sequence[int]], spans: Spans, width: int) -> torch.Tensor:
        """``[N, width]`` values of ``spans``' agent tokens (0 past each span's end), from one
        encoder pass over the sequences they are in (each cut after its last span)."""
        dev = self.head.weight.device
        used = sorted({q for q, _, _ in spans})
        where = {q: i for i, q in enumerate(used)}
        ends = {q: 0 for q in used}
        for q, _, e in spans:
            ends[q] = max(ends[q], e)
        ids = torch.full((len(used), max(ends.values())), self.pad_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for q in used:
            ids[where[q], : ends[q]] = torch.as_tensor(list(sequences[q][: ends[q]]), dtype=torch.long)
            attn[where[q], : ends[q]] = 1
        # agent token at position p is read at p - 1 (as the policy's log-prob of it)
        rows = torch.tensor([where[q] for q, _, _ in spans]).repeat_interleave(width)
        cols = torch.cat([torch.arange(s - 1, s - 1 + width) for _, s, _ in spans])
        cols = cols.clamp(max=ids.shape[1] - 1)
        valid = torch.cat([torch.arange(width) < e - s for _, s, e in spans]).to(dev)
        hidden = self.encoder(input_ids=ids.to(dev), attention_mask=attn.to(dev)).last_hidden_state
        values = self.head(hidden[rows.to(dev), cols.to(dev)].float()).squeeze(-1)
        return values.masked_fill(~valid, 0.0).view(len(spans), width)

    def score(
        self, policy: Policy, sequences: Sequence[Sequence[int]], spans: Spans
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _, logp, mask = policy.span_logprobs(sequences, spans)
        if len(spans) == 0 or logp.shape[1] == 0:
            return logp, mask, torch.zeros_like(logp)
        return logp, mask, self.values(sequences, spans, logp.shape[1])


def build_value_model(kind: str, policy: Policy, seed: int = 0) -> ValueModel | None:
    """The value function of ``value_head=kind`` (``None`` for ``"none"``), on the policy's
    device; initialised under ``seed`` without touching the global RNG."""
    hidden_size = int(policy.model.config.hidden_size)
    if kind == "none":
        return None
    if kind == "policy":
        return PolicyValueHead(hidden_size).to(policy.device)
    if kind != "separate":
        raise ValueError(f"value_head must be one of policy, separate, none; got {kind!r}")
    pad = policy.tokenizer.pad_token_id
    pad_id = int(pad) if pad is not None else 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if policy.is_lora:
            encoder: nn.Module = PolicyLoraEncoder(policy, "value", _value_lora(policy))
            model = SeparateValue(encoder, hidden_size, pad_id, copy_from_policy=False)
        else:
            encoder = copy.deepcopy(policy_backbone(policy))
            encoder.requires_grad_(True)
            encoder.eval()  # no dropout: updates stay deterministic under a seed
            model = SeparateValue(encoder, hidden_size, pad_id, copy_from_policy=True)
    return model.to(policy.device)


def _value_lora(policy: Policy) -> object:
    """A ``LoraConfig`` like the policy adapter's (rank, alpha, target modules)."""
    from peft import LoraConfig

    spec = policy.model.peft_config["default"]
    targets = spec.target_modules
    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=0.0,
        target_modules=sorted(targets) if isinstance(targets, set) else targets,
    )
