"""FSDP2 for a learner group (``cluster.learner_strategy=fsdp``): a fully fine-tuned HF
model sharded across the group's ranks with :func:`torch.distributed.fsdp.fully_shard`.

Each transformer block (the classes the model lists in ``_no_split_modules``, e.g.
``LlamaDecoderLayer``) is one FSDP unit, the root (embeddings, final norm, LM head, tied
weights together) another. The model must be sharded before the algorithm builds its
optimiser, which then holds the sharded parameters (``DTensor``) and keeps its moments
sharded too.

Checkpoints stay in the one-process format, so a checkpoint moves between any number of
processes and both strategies: the full state is gathered on save (:func:`full_weights`,
:func:`full_tensors`) and rank 0 writes it; on load every rank reads the full state and keeps
its shard (:func:`load_full_weights`, :func:`shard_optimizer_state`). Gathering costs one
full copy in rank 0's CPU memory; ``torch.distributed.checkpoint``'s sharded files would
avoid that for models larger than one host's memory, at the price of a second checkpoint
format.

The sharded model is always run through its own ``forward`` (its class becomes
``FSDP<Name>``, which :func:`agentrl.policy.lean.lean_parts` does not split into body and
head): FSDP gathers the root's parameters in that forward's hooks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from transformers import PreTrainedModel


def shard_model(model: PreTrainedModel) -> None:
    """``fully_shard`` every transformer block of HF ``model`` (its ``_no_split_modules``
    classes), then the model itself, over all ranks of the process group, in place.

    Raises:
        ValueError: the model names no block class, or none is found in it.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    names = set(model._no_split_modules or ())
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ValueError(
            f"cluster.learner_strategy=fsdp found no transformer blocks to shard in "
            f"{type(model).__name__} (its _no_split_modules: {sorted(names) or 'none'}); use "
            "cluster.learner_strategy=ddp"
        )
    device = next(model.parameters()).device
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


def _tied_names(model: nn.Module) -> set[str]:
    """Parameter names that repeat an earlier name's parameter (a tied LM head)."""
    every = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    return every - {n for n, _ in model.named_parameters()}


def full_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """The sharded ``model``'s full state dict on rank 0's CPU (``{}`` on the other ranks),
    a tied weight under its first name only (as :meth:`Policy.get_weights
    <agentrl.policy.Policy.get_weights>`). A collective: every rank calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    tied = _tied_names(model)
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k not in tied:
            assert isinstance(v, torch.Tensor), f"{k}: {type(v).__name__} in a full state dict"
            out[k] = v
    return out


def load_full_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load a full state dict (every rank holds the same one) into the sharded ``model``;
    each rank keeps its shard. A collective.

    Raises:
        KeyError: a key is unknown, or one is missing that is not a tied duplicate.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    result = set_model_state_dict(
        model, dict(weights), options=StateDictOptions(full_state_dict=True, strict=False)
    )
    missing = [k for k in result.missing_keys if k not in _tied_names(model)]
    if missing or result.unexpected_keys:
        raise KeyError(
            f"weights do not match the model: missing {missing[:5]}, "
            f"unexpected {list(result.unexpected_keys)[:5]}"
        )


def full_tensors(obj: Any) -> Any:
    """``obj`` (nested dicts, lists, tuples) with every ``DTensor`` replaced by its full value
    on the CPU (an algorithm's state: sharded optimiser moments). A collective: every rank
    walks the same structure in the same order."""
    from torch.distributed.tensor import DTensor

    if isinstance(obj, DTensor):
        return obj.full_tensor().cpu()
    if isinstance(obj, dict):
        return {k: full_tensors(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(full_tensors(v) for v in obj)
    return obj


def shard_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """After ``optimizer.load_state_dict`` of a full (one-process) state: every state tensor
    of a sharded parameter with that parameter's full shape becomes a ``DTensor`` sharded as
    the parameter, each rank keeping its part of its own full copy (no communication)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    for group in optimizer.param_groups:
        for p in group["params"]:
            if not isinstance(p, DTensor) or p not in optimizer.state:
                continue
            state = optimizer.state[p]
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and not isinstance(value, DTensor) and value.shape == p.shape:
                    local = value.to(p.to_local().device)
                    state[key] = distribute_tensor(local, p.device_mesh, p.placements, src_data_rank=None)


__all__ = ["full_tensors", "full_weights", "load_full_weights", "shard_model", "shard_optimizer_state"]
