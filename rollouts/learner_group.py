"""A data-parallel learner group on Ray (``cluster.learner_workers=N``, N > 1).

N Ray actors, one per rank, each a :class:`~agentrl.learner.Learner` with
``cluster.learner_num_cpus`` / ``cluster.learner_num_gpus``, joined in one
``torch.distributed`` process group (NCCL on GPUs, gloo on CPUs) in which the algorithm's
optimiser steps average their gradients (DDP or FSDP2, :mod:`agentrl.parallel`).

Placement: rank 0 runs in the learner's bundle of the run's placement group (bundle 0);
ranks 1 .. N-1 in a placement group of their own, one bundle per rank, with
``cluster.placement_strategy`` (PACK keeps them on as few nodes as possible). The rendezvous
is rank 0's node, as Ray knows its address, and a port found free there by a task in rank 0's
bundle; it is passed to every rank as ``tcp://ADDR:PORT``.

:class:`LearnerGroup` has the methods the trainer and the backend call on a
:class:`~agentrl.rollouts.ray_actors.RemoteLearner`. Every rank gets the same global batch
(one object in Ray's store) at each update and splits it itself; versions, stats and weights
come from rank 0 (the same on every rank; under FSDP every rank takes part in gathering the
weights); ``save`` and ``load`` run on every rank, rank 0 writes (through the driver when it
runs on another node than the driver).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from agentrl.config import ClusterConfig
from agentrl.errors import LearnerLost
from agentrl.learner import Learner
from agentrl.parallel import GroupSpec, init_process_group
from agentrl.policy.chat import ToolSpec
from agentrl.policy.device import actor_device, resolve_device
from agentrl.types import Episode

from .placement import Placement
from .ray_actors import check_resources


def _rendezvous() -> tuple[str, int]:
    """This node's address (as Ray knows it) and a TCP port free on it."""
    with socket.socket() as s:
        s.bind(("", 0))
        port = int(s.getsockname()[1])
    return str(ray.util.get_node_ip_address()), port


class _RankActor(Learner):
    """One rank of the group: joins the process group, then is a :class:`Learner` in it."""

    def __init__(self, spec: GroupSpec, master_addr: str, master_port: int, **kwargs: Any):
        init_process_group(spec, master_addr, master_port, resolve_device(kwargs["model"].device))
        super().__init__(**kwargs, group=spec)

    def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


class LearnerGroup:
    """``num_workers`` learner ranks in Ray actors, presented as one learner.

    Args:
        num_workers: ranks (N > 1).
        num_gpus: GPUs per rank.
        num_cpus: CPUs per rank.
        strategy: ``ddp`` or ``fsdp``.
        grad_accum: micro-batches per rank and optimiser step.
        placement: the run's :class:`~agentrl.rollouts.placement.Placement` (rank 0 goes into
            its learner bundle), or ``None``: rank 0 too in the ranks' own placement group.
        placement_strategy: the strategy of the ranks' own placement group.
        placement_timeout_s: how long to wait for that group before failing.
        transfer_files: send checkpoints through Ray; default: for each rank on another node
            than the driver.
        **kwargs: the :class:`Learner` arguments (``model``, ``algorithm``, ``seed``, ...).

    Raises:
        ClusterError: the ranks' placement group was not placed in time.
    """

    def __init__(
        self,
        num_workers: int,
        num_gpus: float,
        num_cpus: float,
        strategy: str = "ddp",
        grad_accum: int = 1,
        placement: Placement | None = None,
        placement_strategy: str = "PACK",
        placement_timeout_s: float = 120.0,
        transfer_files: bool | None = None,
        **kwargs: Any,
    ):
        if num_workers < 2:
            raise ValueError(f"a learner group needs 2 or more ranks, got {num_workers}")
        check_resources(
            num_workers * num_cpus, num_workers * num_gpus, what=f"a group of {num_workers} learners"
        )
        self.strategy = strategy
        model = kwargs["model"]  # model.device=auto: the rank's GPU, or the CPU without one
        kwargs["model"] = dataclasses.replace(model, device=actor_device(model.device, num_gpus))
        # rank 0 in the run's learner bundle; the others (all, without one) in their own group
        own = num_workers - 1 if placement is not None else num_workers
        self._placement: PlacementGroup | None = self._place_ranks(own, num_cpus, num_gpus, placement_strategy, placement_timeout_s)
        self.actors: list[Any] = []  # Ray actor handles (their methods are dynamic)
        try:
            strategies = [placement.learner_strategy()] if placement is not None else []
            strategies += [
                PlacementGroupSchedulingStrategy(
                    placement_group=self._placement,
                    placement_group_bundle_index=i,
                    placement_group_capture_child_tasks=False,
                )
                for i in range(own)
            ]
            # the rendezvous: rank 0's node, found by a task in rank 0's bundle
            find = ray.remote(num_cpus=0)(_rendezvous).options(scheduling_strategy=strategies[0])
            master = ray.get(find.remote())
            cls = ray.remote(_RankActor)
            for rank, where in enumerate(strategies):
                spec = GroupSpec(rank, num_workers, strategy, grad_accum)
                options = dict(num_gpus=num_gpus, num_cpus=num_cpus, scheduling_strategy=where)
                self.actors.append(cls.options(**options).remote(spec, *master, **kwargs))
            self.node_ids: list[str] = self._all("node_id")  # waits until every rank is built
        except BaseException:
            self.shutdown()
            raise
        here = ray.get_runtime_context().get_node_id()
        self.transfer = [transfer_files if transfer_files is not None else n != here for n in self.node_ids]

    @classmethod
    def from_config(
        cls, cluster: ClusterConfig, placement: Placement | None = None, **kwargs: Any
    ) -> LearnerGroup:
        """The group of ``cluster.learner_workers`` ranks the ``cluster`` section describes."""
        return cls(
            cluster.learner_workers,
            cluster.learner_num_gpus,
            cluster.learner_num_cpus,
            strategy=cluster.learner_strategy,
            grad_accum=cluster.grad_accum,
            placement=placement,
            placement_strategy=cluster.placement_strategy,
            placement_timeout_s=cluster.placement_timeout_s,
            **kwargs,
        )

    @staticmethod
    def _place_ranks(n: int, cpus: float, gpus: float, strategy: str, timeout_s: float) -> PlacementGroup:
        from agentrl.cluster import ClusterError

        from .placement import describe_nodes

        bundle = {k: float(v) for k, v in (("CPU", cpus), ("GPU", gpus)) if v > 0}
        group = placement_group([dict(bundle) for _ in range(n)], strategy=strategy)
        try:
            ray.get(group.ready(), timeout=timeout_s)
        except ray.exceptions.GetTimeoutError as e:
            remove_placement_group(group)
            raise ClusterError(
                f"could not place learner ranks 1..{n} ({strategy}, {n} x {bundle}) within "
                f"{timeout_s:g} s. Cluster nodes: {describe_nodes()}. Lower "
                "cluster.learner_workers / cluster.learner_num_*, or add nodes"
            ) from e
        return group

    # --- calls ------------------------------------------------------------------------------
    def _wait(self, refs: Sequence[Any], what: str) -> list[Any]:
        """The results of ``refs`` (one per rank); a rank whose process died is a
        :class:`LearnerLost` as soon as it is seen, not after the others time out."""
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(done[0])
            except ray.exceptions.RayActorError as e:
                raise LearnerLost(f"a learner rank was lost during {what}(): {type(e).__name__}") from e
        return list(ray.get(list(refs)))

    def _all(self, name: str, *args: Any, **kwargs: Any) -> list[Any]:
        """``name(*args, **kwargs)`` on every rank at once (collectives need them all)."""
        return self._wait([getattr(a, name).remote(*args, **kwargs) for a in self.actors], name)

    def _rank0(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._wait([getattr(self.actors[0], name).remote(*args, **kwargs)], name)[0]

    # --- the learner's methods ---------------------------------------------------------------
    def update(self, episodes: list[Episode]) -> dict[str, float]:
        """One update on the global batch ``episodes``; the stats (the same on every rank)."""
        batch = ray.put(list(episodes))
        return dict(self._all("update", batch)[0])

    def get_weights(self) -> tuple[dict[str, Any], int]:
        """Rank 0's weights (the adapter only under LoRA) and version."""
        if self.strategy == "fsdp":  # gathered from every rank's shard
            return tuple(self._all("get_weights")[0])  # type: ignore[return-value]
        return tuple(self._rank0("get_weights"))  # type: ignore[return-value]

    def get_version(self) -> int:
        return int(self._rank0("get_version"))

    def acting_state(self) -> dict[str, Any]:
        return dict(self._rank0("acting_state"))

    def warm_start(
        self,
        rows: list[dict[str, str]],
        epochs: float,
        lr: float,
        batch_size: int,
        seed: int,
        progress: bool = False,
    ) -> dict[str, float]:
        """The warm start on rank 0 alone, then its weights to every rank."""
        stats = dict(self._rank0("warm_start", rows, epochs, lr, batch_size, seed, progress=progress))
        self._all("broadcast_weights")
        return stats

    def sft_rows(
        self, episodes: list[Episode], stop: list[str], tools: Sequence[ToolSpec] = ()
    ) -> list[dict[str, str]]:
        return list(self._rank0("sft_rows", episodes, stop, tools))

    def format_prompts(self, observations: list[str]) -> list[str]:
        return list(self._rank0("format_prompts", observations))

    def lifelong_task_start(self, task: dict[str, Any]) -> None:
        raise NotImplementedError("lifelong components run with one learner (cluster.learner_workers=1)")

    def lifelong_task_end(self) -> dict[str, float]:
        raise NotImplementedError("lifelong components run with one learner (cluster.learner_workers=1)")

    def save(self, directory: str) -> None:
        """Every rank saves (a collective); rank 0 writes into ``directory`` (a path on the
        driver's disk), itself or through the driver."""
        calls = [
            a.save_files.remote() if moved else a.save.remote(directory)
            for a, moved in zip(self.actors, self.transfer, strict=True)
        ]
        results = self._wait(calls, "save")
        if self.transfer[0]:
            root = Path(directory)
            for rel, data in results[0].items():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)

    def load(self, directory: str, weights_only: bool = False) -> None:
        """Every rank loads the checkpoint in ``directory`` (on the driver's disk)."""
        files: Any = None
        if any(self.transfer):
            root = Path(directory)
            files = ray.put({str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()})
        calls = [
            a.load_files.remote(files, weights_only=weights_only)
            if moved
            else a.load.remote(directory, weights_only=weights_only)
            for a, moved in zip(self.actors, self.transfer, strict=True)
        ]
        self._wait(calls, "load")

    def pids(self) -> list[int]:
        """The ranks' process ids, rank 0 first."""
        return [int(p) for p in self._all("pid")]

    def shutdown(self) -> None:
        """Stop every rank and free their placement group."""
        for a in self.actors:
            ray.kill(a)
        if self._placement is not None:
            remove_placement_group(self._placement)
            self._placement = None


__all__ = ["LearnerGroup"]
