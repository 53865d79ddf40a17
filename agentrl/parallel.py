"""Data parallelism inside the learner: one rank of a learner group.

A learner group (``cluster.learner_workers=N``, :mod:`agentrl.rollouts.learner_group`) is N
processes in one ``torch.distributed`` process group, each holding the same policy and
algorithm. Every rank receives the same global batch of episodes, computes the update's
targets (advantages, baselines, normalisation) on the whole batch exactly as one process
would, and then, for each optimiser step, scores only its own slice of the step's minibatch:

- **the split** (:func:`rank_rows`): the minibatch's units (conversations: rows of the same
  segment stay together, one forward pass each) in order of first appearance, every N-th
  one from the rank's index. Deterministic, and balanced: the ranks' unit counts differ by
  at most one (units sorted by length inside a minibatch also balance the tokens);
- **the normalisation**: an algorithm's minibatch loss is a mean over the minibatch's agent
  tokens. A rank's loss over its ``n_r`` tokens is scaled by ``N * n_r / n`` (``n``: the
  minibatch's tokens, known on every rank from the batch), so the gradient average that
  DDP/FSDP take is ``sum_r n_r / n * grad(mean_r) = grad(mean over all n tokens)``: the same
  gradient as one process, up to float summation order. Normalising by the local count
  would weigh a rank's tokens by ``1 / n_r`` instead;
- **the gradients** are averaged by PyTorch: DDP
  (:class:`~torch.nn.parallel.DistributedDataParallel` over the parameters of the algorithm's
  optimisers, its forward running the loss closure) or FSDP2
  (:func:`torch.distributed.fsdp.fully_shard`, :mod:`agentrl.fsdp`); then every rank clips
  and steps the same gradients;
- **gradient accumulation** (``cluster.grad_accum=k``): a rank's slice is cut into ``k``
  micro-batches of whole units, each scaled by its own token count, backward after backward
  (DDP synchronises on the last one only): the same gradient with less memory;
- **metrics**: per-minibatch stats (means over agent tokens) are gathered and weighted by
  each rank's token count, so every rank reports what one process would.

:class:`MinibatchStep` is the one-process step (every algorithm's default);
:class:`GroupStep` a rank's. An algorithm runs on a group when each optimiser step of its
update gets its gradients from :attr:`AlgorithmBase.data_parallel
<agentrl.algorithm.AlgorithmBase.data_parallel>` (its ``learner_group`` lists the strategies).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

if TYPE_CHECKING:
    from agentrl.config import TrainConfig

STRATEGIES = ("ddp", "fsdp")
"""``cluster.learner_strategy``: ``ddp`` replicates the trainable parameters (LoRA adapters,
small models), ``fsdp`` shards a fully fine-tuned HF model (FSDP2)."""

LossFn = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
"""``rows -> (loss, stats)``: the loss of those rows of the update's batch as a mean over
their agent tokens, and stats that are such means too."""
ExtraFn = Callable[[], torch.Tensor | None]
"""A loss term added once per optimiser step, not a per-token mean (a lifelong regulariser)."""


@dataclass(frozen=True)
class GroupSpec:
    """This process's place in a learner group.

    Attributes:
        rank: the process's index, ``0 .. world_size - 1`` (rank 0 writes checkpoints).
        world_size: processes in the group.
        strategy: ``ddp`` or ``fsdp`` (:data:`STRATEGIES`).
        grad_accum: micro-batches per rank and optimiser step.
    """

    rank: int
    world_size: int
    strategy: str = "ddp"
    grad_accum: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank {self.rank} is not a rank of a group of {self.world_size}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"learner strategy {self.strategy!r}: expected one of {', '.join(STRATEGIES)}"
            )
        if self.grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {self.grad_accum}")


def init_process_group(
    spec: GroupSpec, master_addr: str, master_port: int, device: torch.device, timeout_s: float = 1800.0
) -> None:
    """Join the group's ``torch.distributed`` process group: NCCL on CUDA, gloo on the CPU,
    rendezvous at ``tcp://master_addr:master_port`` (rank 0's node; found through Ray by
    :mod:`agentrl.rollouts.learner_group`). The rendezvous is passed as ``init_method`` rather
    than through ``MASTER_ADDR``/``WORLD_SIZE`` variables, which the HF Trainer of the warm
    start would read as a distributed launch of its own."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":  # NCCL and the object collectives use the current device
        torch.cuda.set_device(device.index if device.index is not None else 0)
    dist.init_process_group(
        backend,
        init_method=f"tcp://{master_addr}:{master_port}",
        rank=spec.rank,
        world_size=spec.world_size,
        timeout=timedelta(seconds=timeout_s),
    )


def _unit_keys(rows: torch.Tensor, units: torch.Tensor | None) -> list[int]:
    """The unit of each position of ``rows``: its segment, or the position itself."""
    return units[rows].tolist() if units is not None else list(range(len(rows)))


def rank_rows(
    rows: torch.Tensor, rank: int, world_size: int, units: torch.Tensor | None = None
) -> torch.Tensor:
    """The positions of ``rows`` (a minibatch) that ``rank`` computes.

    ``units[row]`` groups rows that must stay on one rank (a conversation's turns, scored in
    one forward pass); without ``units`` every position is its own unit. The units, in order
    of first appearance, are dealt round-robin: rank ``r`` gets units ``r, r + N, r + 2N, ...``.
    Returns those rows in their minibatch order (possibly none)."""
    keys = _unit_keys(rows, units)
    order = list(dict.fromkeys(keys))
    mine = set(order[rank::world_size])
    return rows[[i for i, k in enumerate(keys) if k in mine]]


def micro_batches(rows: torch.Tensor, n: int, units: torch.Tensor | None = None) -> list[torch.Tensor]:
    """``rows`` cut into at most ``n`` non-empty pieces of whole units, contiguous and
    balanced in unit count (empty list for no rows)."""
    keys = _unit_keys(rows, units)
    order = list(dict.fromkeys(keys))
    pieces: list[torch.Tensor] = []
    for part in torch.tensor_split(torch.arange(len(order)), min(n, max(len(order), 1))):
        chosen = {order[i] for i in part.tolist()}
        if chosen:
            pieces.append(rows[[i for i, k in enumerate(keys) if k in chosen]])
    return pieces


class MinibatchStep:
    """How an algorithm's optimiser step gets its gradients: here, in one process.

    ``backward`` leaves the step's gradients in the parameters' ``.grad`` and returns the
    loss and stats to log; the caller zeroes the gradients before and steps after.
    """

    rank: int = 0
    world_size: int = 1

    def backward(
        self,
        rows: torch.Tensor,
        loss_fn: LossFn,
        extra_fn: ExtraFn,
        tokens: torch.Tensor,
        units: torch.Tensor | None = None,
    ) -> tuple[float, dict[str, float]]:
        """Backward of ``loss_fn(rows) + extra_fn()``.

        Args:
            rows: the minibatch, row indices of the update's batch.
            loss_fn: see :data:`LossFn`.
            extra_fn: see :data:`ExtraFn`.
            tokens: ``[N]`` agent tokens of every row of the batch (the loss's denominator).
            units: ``[N]`` rows with the same value stay on one rank (:func:`rank_rows`).

        Returns:
            ``(loss, stats)`` of the whole minibatch.
        """
        loss, stats = loss_fn(rows)
        extra = extra_fn()
        if extra is not None:
            loss = loss + extra
        loss.backward()
        return loss.item(), stats


class _ClosureModule(nn.Module):
    """The parameters one optimiser step trains, as the module DDP wraps: its forward runs a
    loss closure, so DDP's gradient hooks cover every parameter of the algorithm's
    optimisers (the policy's, a value head's, a separate critic's) whichever path the
    closure takes through the policy."""

    def __init__(self, params: Sequence[nn.Parameter]):
        super().__init__()
        self.params = nn.ParameterList(params)

    def forward(self, closure: Callable[[], torch.Tensor]) -> torch.Tensor:
        return closure()


class GroupStep(MinibatchStep):
    """A rank's optimiser step in a learner group (the module docstring has the rule).

    Args:
        spec: the rank, the group size, the strategy and ``grad_accum``.
        params: the parameters of the algorithm's optimisers, in their order.
        model: the policy's model; under FSDP (already sharded, :func:`agentrl.fsdp.shard_model`)
            a rank with nothing to score runs it on one token, since every rank must take
            part in every forward's all-gather.

    Raises:
        ValueError: under FSDP, an optimiser trains a parameter the policy's sharding does
            not hold (a value head, a critic).
    """

    def __init__(self, spec: GroupSpec, params: Sequence[nn.Parameter], model: nn.Module):
        self.spec = spec
        self.rank, self.world_size = spec.rank, spec.world_size
        self.params = list(params)
        self.model = model
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        if spec.strategy == "ddp":
            # find_unused_parameters off: every trained parameter takes part in every step
            # (a rank without rows touches them all with weight 0), and one that does not
            # fails loudly in DDP instead of its Adam moments drifting from one process's
            self.ddp = nn.parallel.DistributedDataParallel(
                _ClosureModule(self.params), find_unused_parameters=False
            )
        else:
            from torch.distributed.tensor import DTensor

            outside = [tuple(p.shape) for p in self.params if not isinstance(p, DTensor)]
            if outside:
                raise ValueError(
                    "cluster.learner_strategy=fsdp shards the policy's model only, but the "
                    f"algorithm also trains {len(outside)} parameters outside it (shapes "
                    f"{outside[:3]}); use cluster.learner_strategy=ddp"
                )

    def _idle_loss(self) -> torch.Tensor:
        """A zero loss that touches every trained parameter: the backward of a rank with no
        rows in a minibatch (DDP: every gradient hook fires; FSDP: one forward, as the other
        ranks run)."""
        if self.ddp is None:
            device = next(iter(self.params)).device
            ids = torch.zeros((1, 1), dtype=torch.long, device=device)
            return self.model(input_ids=ids, use_cache=False).logits.sum() * 0.0
        return torch.stack([p.sum() for p in self.params]).sum() * 0.0

    def backward(
        self,
        rows: torch.Tensor,
        loss_fn: LossFn,
        extra_fn: ExtraFn,
        tokens: torch.Tensor,
        units: torch.Tensor | None = None,
    ) -> tuple[float, dict[str, float]]:
        """:meth:`MinibatchStep.backward` of this rank's share; returns the whole
        minibatch's loss and stats (the same on every rank)."""
        spec = self.spec
        total = max(float(tokens[rows].sum()), 1.0)
        mine = rank_rows(rows, spec.rank, spec.world_size, units)
        pieces: list[torch.Tensor | None] = list(micro_batches(mine, spec.grad_accum, units))
        if self.ddp is None:  # FSDP: every rank runs grad_accum forwards (their all-gathers)
            pieces += [None] * (spec.grad_accum - len(pieces))
        elif not pieces:  # DDP: one synchronising backward per rank and step
            pieces = [None]
        weighted_loss, extra_value = 0.0, 0.0
        weighted: dict[str, float] = {}
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1

            def closure(piece: torch.Tensor | None = piece, last: bool = last) -> torch.Tensor:
                nonlocal weighted_loss, extra_value
                if piece is None:
                    out = self._idle_loss()
                else:
                    loss, stats = loss_fn(piece)
                    n = float(tokens[piece].sum())
                    weighted_loss += loss.item() * n
                    for k, v in stats.items():
                        weighted[k] = weighted.get(k, 0.0) + float(v) * n
                    out = loss * (spec.world_size * n / total)
                extra = extra_fn() if last else None
                if extra is not None:  # averaged over the ranks: itself
                    extra_value = extra.item()
                    out = out + extra
                return out

            if self.ddp is not None:
                sync = contextlib.nullcontext() if last else self.ddp.no_sync()
                with sync:
                    self.ddp(closure).backward()
            else:
                closure().backward()
        parts: list[Any] = [None] * spec.world_size
        dist.all_gather_object(parts, (weighted_loss, weighted))
        loss_sum = sum(p[0] for p in parts)
        stats: dict[str, float] = {}
        for _, part in parts:
            for k, v in part.items():
                stats[k] = stats.get(k, 0.0) + v
        return loss_sum / total + extra_value, {k: v / total for k, v in stats.items()}


def gather_to_rank0(obj: Any) -> list[Any] | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; ``None`` elsewhere."""
    parts: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, parts, dst=0)
    return parts


def broadcast_parameters(params: Sequence[torch.Tensor]) -> None:
    """Copy rank 0's values of ``params`` into every rank's (in place, in this order)."""
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def check_learner_group(cfg: TrainConfig, section: dict[str, Any]) -> None:
    """Refuse, before any work, what a learner group (``cluster.learner_workers > 1``)
    cannot run, ``section`` being the algorithm's config section as the trainer builds it; a
    ``ConfigError`` names the setting and what works."""
    from agentrl.algorithm import algorithm_class
    from agentrl.config import ConfigError, make_dataclass_config
    from agentrl.registry import ALGORITHMS

    c = cfg.cluster
    n = c.learner_workers
    if n == 1:
        if c.grad_accum != 1:
            raise ConfigError(
                f"cluster.grad_accum={c.grad_accum} cuts each rank's share of a minibatch of a "
                "learner group: it needs cluster.learner_workers > 1 (with one learner lower "
                "the algorithm's minibatch_size instead)"
            )
        return
    where = f"cluster.learner_workers={n}"
    if c.mode == "inline":
        raise ConfigError(
            f"{where} runs the learners as Ray actors; cluster=inline is one process: use "
            "cluster=local or cluster=address"
        )
    if 0 < c.learner_num_gpus < 1:
        raise ConfigError(
            f"{where} with cluster.learner_num_gpus={c.learner_num_gpus:g}: NCCL needs a GPU of "
            "its own per rank (1 or more), or 0 for gloo on CPUs"
        )
    name = cfg.algorithm["name"]
    cls = algorithm_class(name)
    config = make_dataclass_config(cls.Config, section, where=f"algorithm={name}") if cls.Config else None
    try:
        cls.check_group(config, c.learner_strategy)
    except ValueError as e:
        able = sorted(
            k for k in ALGORITHMS.names() if c.learner_strategy in algorithm_class(k).learner_group
        )
        raise ConfigError(
            f"algorithm={name} cannot run on a learner group ({where}, "
            f"cluster.learner_strategy={c.learner_strategy}): {e}. Algorithms that can: "
            f"{', '.join(able)} (ppo_critic_free is ppo); or set cluster.learner_workers=1"
        ) from e
    if cfg.lifelong:
        raise ConfigError(
            f"{where}: lifelong components (lifelong={list(cfg.lifelong)}) run with one "
            "learner only; set cluster.learner_workers=1"
        )
    if c.learner_strategy == "fsdp":
        if cfg.model.lora:
            raise ConfigError(
                "cluster.learner_strategy=fsdp shards a fully fine-tuned model; model.lora=true "
                "trains a small adapter: use cluster.learner_strategy=ddp"
            )
        if cfg.warm_start.enabled and not cfg.init_from and not cfg.resume:
            raise ConfigError(
                "cluster.learner_strategy=fsdp does not run the warm start (the HF Trainer "
                "would see a sharded model): set warm_start.enabled=false, or warm-start "
                "with cluster.learner_strategy=ddp and continue with init_from"
            )


__all__ = [
    "STRATEGIES",
    "ExtraFn",
    "GroupSpec",
    "GroupStep",
    "LossFn",
    "MinibatchStep",
    "broadcast_parameters",
    "check_learner_group",
    "gather_to_rank0",
    "init_process_group",
    "micro_batches",
    "rank_rows",
]
