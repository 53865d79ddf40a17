"""Placement of the learner and the rollout workers on a Ray cluster.

One placement group holds one bundle for the learner (index 0) and one per rollout worker
(indices ``1..num_workers``), so the whole run's resources are reserved at once, before any
model is built, and the strategy decides how they spread over nodes:

- ``PACK`` (default): as few nodes as possible (cheap weight sync on one machine);
- ``SPREAD``: across nodes, best effort;
- ``STRICT_PACK`` / ``STRICT_SPREAD``: all on one node / each bundle on its own node, or fail.

A group that cannot be placed within the timeout fails with a message naming the bundles
and the cluster's nodes and resources (instead of a run that waits forever).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from agentrl.cluster import ClusterError

LEARNER_BUNDLE = 0


def _bundle(cpus: float, gpus: float) -> dict[str, float]:
    return {k: float(v) for k, v in (("CPU", cpus), ("GPU", gpus)) if v > 0}


@dataclass
class Placement:
    """A ready placement group: the learner's bundle and one bundle per rollout worker."""

    group: Any
    bundles: list[dict[str, float]]
    strategy: str
    removed: bool = False

    @property
    def num_workers(self) -> int:
        return len(self.bundles) - 1

    def learner_strategy(self) -> PlacementGroupSchedulingStrategy:
        return self.strategy_for(LEARNER_BUNDLE)

    def worker_strategy(self, worker_index: int) -> PlacementGroupSchedulingStrategy:
        return self.strategy_for(1 + worker_index)

    def strategy_for(self, bundle_index: int) -> PlacementGroupSchedulingStrategy:
        # Tasks and actors the learner or a worker starts itself stay outside the group.
        return PlacementGroupSchedulingStrategy(
            placement_group=self.group,
            placement_group_bundle_index=bundle_index,
            placement_group_capture_child_tasks=False,
        )

    def bundle_nodes(self) -> list[str]:
        """The node id each bundle was placed on (learner first)."""
        table = ray.util.placement_group_table(self.group)
        nodes = table.get("bundles_to_node_id", {})
        return [str(nodes.get(i, "")) for i in range(len(self.bundles))]

    def shutdown(self) -> None:
        """Remove the group (Ray stops the actors still in it and frees its resources)."""
        if not self.removed:
            self.removed = True
            remove_placement_group(self.group)


def describe_bundles(bundles: list[dict[str, float]]) -> str:
    """``learner {CPU: 1} + 2 workers x {CPU: 1}`` (grouping equal worker bundles)."""

    def fmt(b: dict[str, float]) -> str:
        return "{" + ", ".join(f"{k}: {v:g}" for k, v in b.items()) + "}"

    parts = [f"learner {fmt(bundles[0])}"]
    workers = bundles[1:]
    if workers and all(b == workers[0] for b in workers):
        parts.append(f"{len(workers)} rollout workers x {fmt(workers[0])}")
    else:
        parts += [f"worker {i} {fmt(b)}" for i, b in enumerate(workers)]
    return " + ".join(parts)


def describe_nodes() -> str:
    """The alive nodes and their CPU/GPU (and custom) resources, one clause per node."""
    rows = []
    for node in ray.nodes():
        if not node.get("Alive", False):
            continue
        res = {
            k: v
            for k, v in node.get("Resources", {}).items()
            if not k.startswith(("node:", "memory", "object_store_memory", "accelerator_type"))
        }
        shown = ", ".join(f"{k}: {v:g}" for k, v in sorted(res.items()))
        rows.append(f"{node.get('NodeManagerAddress', '?')} ({node['NodeID'][:8]}) {{{shown}}}")
    return "; ".join(rows) or "no alive nodes"


def place(
    num_workers: int,
    worker_cpus: float,
    worker_gpus: float,
    learner_cpus: float,
    learner_gpus: float,
    strategy: str = "PACK",
    timeout_s: float = 120.0,
) -> Placement:
    """Reserve the learner's and the workers' resources in one placement group.

    Raises:
        ClusterError: the group was not placed within ``timeout_s`` (the message names the
            bundles, the strategy and every node's resources); the pending group is removed.
    """
    bundles = [_bundle(learner_cpus, learner_gpus)] + [
        _bundle(worker_cpus, worker_gpus) for _ in range(num_workers)
    ]
    group = placement_group(bundles, strategy=strategy, name="")
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError as e:
        remove_placement_group(group)
        hint = (
            "STRICT_SPREAD needs one node per bundle. "
            if strategy == "STRICT_SPREAD"
            else "STRICT_PACK needs one node that fits every bundle. "
            if strategy == "STRICT_PACK"
            else ""
        )
        raise ClusterError(
            f"could not place the run's placement group ({strategy}) within {timeout_s:g} s: "
            f"{describe_bundles(bundles)}. Cluster nodes: {describe_nodes()}. {hint}Lower "
            "rollout.num_workers / rollout.num_cpus_per_worker / rollout.num_gpus_per_worker / "
            "cluster.learner_num_*, pick another cluster.placement_strategy, or add nodes"
        ) from e
    return Placement(group, bundles, strategy)


__all__ = ["LEARNER_BUNDLE", "Placement", "describe_bundles", "describe_nodes", "place"]
