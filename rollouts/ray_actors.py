"""Ray at the edge: actor wrappers for rollout workers and the learner.

This is the only module (with the trainer's cluster setup) that imports ``ray``. Workers
build their own inference copy of the policy inside the actor; weights travel once per
iteration through the object store (``ray.put`` then every worker reads the same object).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import ray

from agentrl.learner import Learner
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.types import Episode

from .group import PendingCollect, chunk_seed, split_jobs
from .worker import EpisodeJob, RolloutWorker


def check_resources(cpus: float, gpus: float, what: str) -> None:
    """Fail at once (instead of waiting forever) when the cluster can never fit ``what``."""
    total = ray.cluster_resources()
    have_cpu, have_gpu = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if cpus > have_cpu + 1e-9 or gpus > have_gpu + 1e-9:
        raise RuntimeError(
            f"{what} need {cpus:g} CPU and {gpus:g} GPU but the Ray cluster has {have_cpu:g} CPU and "
            f"{have_gpu:g} GPU in total; lower rollout.num_workers / rollout.num_cpus_per_worker / "
            f"cluster.learner_num_gpus, or add nodes"
        )


class _WorkerActor(RolloutWorker):
    """A rollout worker that imports the user's modules first (registrations, envs)."""

    def __init__(self, imports: list[str], import_path: str | None, *args: Any, **kwargs: Any):
        from agentrl.registry import import_user_modules

        import_user_modules(imports, import_path)
        super().__init__(*args, **kwargs)

    def ping(self) -> bool:
        return True


class RayWorkerGroup:
    """``num_workers`` rollout actors collecting in parallel.

    Args:
        num_workers: actors to start.
        env_id / env_kwargs / num_envs / sampling: as for :class:`RolloutWorker`.
        model: the policy config each actor builds its inference copy from.
        num_cpus / num_gpus: resources per actor.
        imports: user modules to import in each actor.
        import_path: folder put on ``sys.path`` for those imports (the driver's cwd).
    """

    def __init__(
        self,
        num_workers: int,
        env_id: str,
        env_kwargs: dict[str, Any],
        num_envs: int,
        sampling: SamplingConfig,
        model: ModelConfig,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        imports: list[str] | None = None,
        import_path: str | None = None,
        start_timeout_s: float = 600.0,
    ):
        check_resources(
            num_workers * num_cpus, num_workers * num_gpus, what=f"{num_workers} rollout workers"
        )
        actor_cls = ray.remote(_WorkerActor).options(
            num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=2
        )
        factory = functools.partial(Policy.from_config, model)
        self.workers: list[Any] = [
            actor_cls.remote(
                list(imports or []),
                import_path,
                env_id,
                env_kwargs,
                num_envs,
                sampling,
                policy_factory=factory,
                worker_index=i,
            )
            for i in range(num_workers)
        ]
        try:
            ray.get([w.ping.remote() for w in self.workers], timeout=start_timeout_s)
        except ray.exceptions.GetTimeoutError as e:
            raise RuntimeError(
                f"rollout workers did not start within {start_timeout_s:.0f} s; cluster resources: "
                f"{ray.available_resources()} (each worker needs {num_cpus} CPU, {num_gpus} GPU)"
            ) from e
        self.last_stats: dict[str, float] = {}

    def set_weights(self, weights: Any, version: int) -> None:
        ref = ray.put(weights)
        ray.get([w.set_weights.remote(ref, version) for w in self.workers])

    def collect(
        self, jobs: Sequence[EpisodeJob], rng_seed: int, greedy: bool = False, act: Any = None
    ) -> list[Episode]:
        return self.start_collect(jobs, rng_seed, greedy, act).result()

    def start_collect(
        self, jobs: Sequence[EpisodeJob], rng_seed: int, greedy: bool = False, act: Any = None
    ) -> PendingCollect:
        """Submit the chunks to the actors and return at once; the actors run them in order
        after anything already queued (a later ``set_weights`` waits for this collection)."""
        if act is not None:
            raise NotImplementedError(
                "custom acting rules (act=...) run only with cluster=inline for now"
            )
        chunks = split_jobs(jobs, len(self.workers))
        busy = [
            (i, w, chunk)
            for i, (w, chunk) in enumerate(zip(self.workers, chunks, strict=True))
            if chunk
        ]
        refs = [w.collect.remote(chunk, chunk_seed(rng_seed, i), greedy) for i, w, chunk in busy]
        stat_refs = [w.get_last_stats.remote() for _, w, _ in busy]

        def wait() -> tuple[list[Episode], dict[str, float]]:
            results = ray.get(refs)
            stats = ray.get(stat_refs)
            self.last_stats = {"gen_tokens": sum(s.get("gen_tokens", 0.0) for s in stats)}
            return [ep for chunk in results for ep in chunk], self.last_stats

        return PendingCollect(wait)

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)


class RemoteLearner:
    """A :class:`~agentrl.learner.Learner` in a Ray actor, with the same (blocking) methods."""

    def __init__(self, num_gpus: float, num_cpus: float, **kwargs: Any):
        check_resources(num_cpus, num_gpus, what="the learner")
        cls = ray.remote(Learner).options(num_gpus=num_gpus, num_cpus=num_cpus)
        self.actor: Any = cls.remote(**kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.actor, name)
        return lambda *a, **k: ray.get(method.remote(*a, **k))

    def shutdown(self) -> None:
        ray.kill(self.actor)
