"""Where the learner and the rollout workers run: one interface, two implementations.

The trainer is the loop, checkpoints and restarts; everything that depends on *where* the
pieces run goes through a :class:`Backend`:

- :class:`InlineBackend` (``cluster=inline``): one process. The learner is a
  :class:`~agentrl.learner.Learner`, the workers an
  :class:`~agentrl.rollouts.group.InlineWorkerGroup` sharing its policy (a weight sync moves
  nothing), the reward runs in the trainer, and an algorithm's own acting rule (CHAI, RLTF)
  acts in the rollouts.
- :class:`RayBackend` (``cluster=local|address``): the learner in a Ray actor
  (:class:`~agentrl.rollouts.ray_actors.RemoteLearner`), ``rollout.num_workers`` rollout
  actors in one placement group, a learned reward model in its own actor, and weights (the
  adapter only under LoRA) sent to the workers at each sync, with the state of the
  algorithm's acting rule (CHAI's critic, RLTF's epsilon), which every worker runs itself.

:func:`make_backend` picks one from ``cluster.mode``.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from agentrl.config import TrainConfig
    from agentrl.learner import Learner
    from agentrl.policy import SamplingConfig
    from agentrl.rewards import Reward
    from agentrl.rollouts.group import InlineWorkerGroup
    from agentrl.rollouts.learner_group import LearnerGroup
    from agentrl.rollouts.ray_actors import RayWorkerGroup, RemoteLearner
    from agentrl.rollouts.worker import ActFn

    LearnerHandle: TypeAlias = Learner | RemoteLearner | LearnerGroup
    WorkerGroup: TypeAlias = InlineWorkerGroup | RayWorkerGroup


@runtime_checkable
class Stoppable(Protocol):
    """What a backend stops at a rebuild or the end: Ray workers, remote learners, learner
    groups, remote rewards, the placement group."""

    def shutdown(self) -> None: ...


def sampling_config(cfg: TrainConfig) -> SamplingConfig:
    """The run's decoding settings: ``rollout.sampling`` with the env's reply length and stop
    strings (what training, ``agentrl eval`` and export agree on)."""
    from agentrl.policy import SamplingConfig

    return SamplingConfig(
        temperature=cfg.rollout.sampling.temperature,
        top_k=cfg.rollout.sampling.top_k,
        max_new_tokens=cfg.env.max_new_tokens,
        stop=tuple(cfg.env.stop),
        constraint=cfg.rollout.sampling.constraint,
    )


def learner_options(cfg: TrainConfig) -> dict[str, Any]:
    """The learner's keyword arguments from the config (what :meth:`Backend.build` builds it
    from): model, algorithm section, seed, sampling settings, imports, lifelong components."""
    from agentrl.validate import algorithm_section

    return dict(
        model=cfg.model,
        algorithm=algorithm_section(cfg),
        seed=cfg.seed,
        sampling_temperature=cfg.rollout.sampling.temperature,
        imports=list(cfg.imports),
        lifelong=list(cfg.lifelong),
        sampling_constraint=cfg.rollout.sampling.constraint,
        import_path=os.getcwd(),
    )


def worker_options(cfg: TrainConfig) -> dict[str, Any]:
    """The rollout worker's keyword options from the config (conversation and KV-cache settings)."""
    return dict(
        conversation=cfg.env.conversation,
        keep_kv_cache=cfg.rollout.keep_kv_cache,
        max_context_tokens=cfg.rollout.max_context_tokens,
    )


class Backend(ABC):
    """Builds the learner and the rollout workers for a run and moves what must move between
    them. ``start`` once, then ``build`` (again after a lost learner), ``shutdown`` at the end.

    Attributes:
        overlaps_collection: the next iteration's episodes are collected while the learner
            updates (Ray actors); inline, an asynchronous launch collects on the spot.
    """

    overlaps_collection: bool = False

    def __init__(self, cfg: TrainConfig, console: bool = True):
        self.cfg = cfg
        self.console = console

    def start(self) -> None:
        """Start or join whatever the backend runs on (nothing inline)."""
        return None

    @abstractmethod
    def build(
        self,
        learner_kwargs: dict[str, Any],
        sampling: SamplingConfig,
        worker_options: dict[str, Any],
    ) -> tuple[LearnerHandle, WorkerGroup]:
        """The learner (built from ``learner_kwargs``) and the group of rollout workers."""

    def wrap_reward(self, reward: Reward) -> Reward:
        """The reward (``agentrl.rewards``) as the trainer calls it (inline: itself)."""
        return reward

    def acting_rule(self, learner: LearnerHandle, sampling: SamplingConfig) -> ActFn | None:
        """The algorithm's own acting rule for the rollouts, or ``None`` to sample the policy."""
        return None

    @abstractmethod
    def sync_weights(self, learner: LearnerHandle, workers: WorkerGroup, version: int) -> int:
        """Give the workers the learner's weights of ``version``; returns the bytes sent."""

    def describe(self, run_dir: Path, workers: WorkerGroup) -> None:
        """Record where things run (Ray: ``run_dir/placement.json``)."""
        return None

    def stop_actors(self, *actors: object) -> None:
        """Stop ``actors`` (the learner, workers, reward) before a rebuild (nothing inline)."""
        return None

    def shutdown(self, *actors: object) -> None:
        """:meth:`stop_actors`, then stop whatever :meth:`start` started."""
        self.stop_actors(*actors)


class InlineBackend(Backend):
    """Everything in the calling process (``cluster=inline``)."""

    def build(
        self,
        learner_kwargs: dict[str, Any],
        sampling: SamplingConfig,
        worker_options: dict[str, Any],
    ) -> tuple[Learner, InlineWorkerGroup]:
        from agentrl.learner import Learner
        from agentrl.rollouts.group import InlineWorkerGroup
        from agentrl.rollouts.worker import RolloutWorker

        cfg = self.cfg
        learner = Learner(**learner_kwargs)
        worker = RolloutWorker(
            cfg.env.id,
            cfg.env.kwargs,
            cfg.rollout.envs_per_worker,
            sampling,
            policy=learner.policy,
            step_timeout_s=cfg.fault.step_timeout_s,
            **worker_options,
        )
        return learner, InlineWorkerGroup(worker, cfg.rollout.num_workers)

    def acting_rule(self, learner: LearnerHandle, sampling: SamplingConfig) -> ActFn | None:
        from agentrl.learner import Learner
        from agentrl.play import acting_rule

        return acting_rule(learner.algorithm, sampling) if isinstance(learner, Learner) else None

    def sync_weights(self, learner: LearnerHandle, workers: WorkerGroup, version: int) -> int:
        workers.set_weights(None, version)  # the workers share the learner's policy
        return 0


class RayBackend(Backend):
    """The learner and the rollout workers as Ray actors (``cluster=local|address``)."""

    overlaps_collection = True

    def __init__(self, cfg: TrainConfig, console: bool = True):
        super().__init__(cfg, console)
        self.placement: Any = None
        self._owns_ray = False

    def start(self) -> None:
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        from agentrl.rollouts.launch import start_or_join

        cfg = self.cfg
        needed = (
            cfg.cluster.learner_workers * cfg.cluster.learner_num_cpus
            + cfg.rollout.num_workers * cfg.rollout.num_cpus_per_worker
        )
        # local: embedded Ray; address: cluster.address / auto / RAY_ADDRESS (docs/cluster.md)
        self._owns_ray = start_or_join(cfg.cluster, needed, console=self.console)

    def build(
        self,
        learner_kwargs: dict[str, Any],
        sampling: SamplingConfig,
        worker_options: dict[str, Any],
    ) -> tuple[RemoteLearner | LearnerGroup, RayWorkerGroup]:
        from agentrl.algorithm import acting_rule_spec
        from agentrl.rollouts.placement import place
        from agentrl.rollouts.ray_actors import RayWorkerGroup, RemoteLearner, check_resources

        cfg = self.cfg
        learners = cfg.cluster.learner_workers
        check_resources(
            learners * cfg.cluster.learner_num_cpus + cfg.rollout.num_workers * cfg.rollout.num_cpus_per_worker,
            learners * cfg.cluster.learner_num_gpus + cfg.rollout.num_workers * cfg.rollout.num_gpus_per_worker,
            what=f"the learner and {cfg.rollout.num_workers} rollout workers",
        )
        if self.placement is not None:  # a rebuild after a lost learner
            self.placement.shutdown()
        # one placement group: learner = bundle 0, worker i = bundle 1 + i (docs/cluster.md)
        self.placement = place(
            cfg.rollout.num_workers,
            cfg.rollout.num_cpus_per_worker,
            cfg.rollout.num_gpus_per_worker,
            cfg.cluster.learner_num_cpus,
            cfg.cluster.learner_num_gpus,
            strategy=cfg.cluster.placement_strategy,
            timeout_s=cfg.cluster.placement_timeout_s,
        )
        learner: RemoteLearner | LearnerGroup
        if learners > 1:  # a data-parallel group; rank 0 in the learner's bundle (docs/cluster.md)
            from agentrl.rollouts.learner_group import LearnerGroup

            learner = LearnerGroup.from_config(cfg.cluster, placement=self.placement, **learner_kwargs)
        else:
            learner = RemoteLearner(
                cfg.cluster.learner_num_gpus,
                cfg.cluster.learner_num_cpus,
                placement=self.placement,
                **learner_kwargs,
            )
        workers = RayWorkerGroup(
            cfg.rollout.num_workers,
            cfg.env.id,
            cfg.env.kwargs,
            cfg.rollout.envs_per_worker,
            sampling,
            cfg.model,
            num_cpus=cfg.rollout.num_cpus_per_worker,
            num_gpus=cfg.rollout.num_gpus_per_worker,
            imports=list(cfg.imports),
            import_path=os.getcwd(),
            step_timeout_s=cfg.fault.step_timeout_s,
            worker_retries=cfg.fault.worker_retries,
            placement=self.placement,
            worker_options=worker_options,
            acting_rule=acting_rule_spec(cfg.algorithm["name"], learner_kwargs["algorithm"]),
        )
        return learner, workers

    def wrap_reward(self, reward: Reward) -> Reward:
        if reward.passthrough:  # the env's reward: nothing to run remotely
            return reward
        from agentrl.rollouts.reward_actors import RemoteReward

        # the reward model in its own actor
        return RemoteReward(self.cfg.reward, reward, imports=list(self.cfg.imports), import_path=os.getcwd())

    def acting_rule(self, learner: LearnerHandle, sampling: SamplingConfig) -> ActFn | None:
        from agentrl.algorithm import algorithm_class
        from agentrl.rollouts.ray_actors import WorkerActingRule

        # each worker runs its copy, built at its start and refreshed at every sync
        acts = algorithm_class(self.cfg.algorithm["name"]).has_acting_rule
        return WorkerActingRule() if acts else None

    def sync_weights(self, learner: LearnerHandle, workers: WorkerGroup, version: int) -> int:
        from agentrl.rollouts.ray_actors import RayWorkerGroup

        assert isinstance(workers, RayWorkerGroup)
        weights, _ = learner.get_weights()
        state = learner.acting_state() if workers.has_acting_rule else None
        workers.set_weights(weights, version, state)
        sent = [*weights.values(), *(state or {}).values()]
        return sum(t.numel() * t.element_size() for t in sent)

    def describe(self, run_dir: Path, workers: WorkerGroup) -> None:
        """``run_dir/placement.json``: the strategy, the bundles, the node of the learner's
        bundle and of every rollout worker (as each worker reports it), and the nodes."""
        import ray

        from agentrl.rollouts.placement import describe_nodes
        from agentrl.rollouts.ray_actors import RayWorkerGroup

        assert isinstance(workers, RayWorkerGroup)
        bundle_nodes = self.placement.bundle_nodes()
        info = {
            "strategy": self.placement.strategy,
            "bundles": self.placement.bundles,
            "learner_node": bundle_nodes[0],
            "worker_nodes": list(workers.node_ids),
            "nodes": {
                n["NodeID"]: {"address": n["NodeManagerAddress"], "resources": n["Resources"]}
                for n in ray.nodes()
                if n.get("Alive")
            },
        }
        (run_dir / "placement.json").write_text(json.dumps(info, indent=2))
        if self.console:
            nodes = ", ".join(n[:8] for n in info["worker_nodes"])
            print(
                f"agentrl: placement ({info['strategy']}): learner on node {info['learner_node'][:8]}, "
                f"rollout workers on [{nodes}]; cluster: {describe_nodes()}"
            )

    def stop_actors(self, *actors: object) -> None:
        # the placement group last: removing it frees its bundles
        for obj in (*actors, self.placement):
            if isinstance(obj, Stoppable):  # an inline learner has nothing to stop
                try:
                    obj.shutdown()
                except Exception:
                    pass
        self.placement = None

    def shutdown(self, *actors: object) -> None:
        self.stop_actors(*actors)
        if self._owns_ray:
            import ray

            ray.shutdown()
            self._owns_ray = False


def make_backend(cfg: TrainConfig, console: bool = True) -> Backend:
    """:class:`InlineBackend` for ``cluster.mode=inline``, else :class:`RayBackend`."""
    return InlineBackend(cfg, console) if cfg.cluster.mode == "inline" else RayBackend(cfg, console)


__all__ = [
    "Backend",
    "InlineBackend",
    "RayBackend",
    "learner_options",
    "make_backend",
    "sampling_config",
    "worker_options",
]
