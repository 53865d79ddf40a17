"""Ray at the edge: actor wrappers for rollout workers and the learner.

With :mod:`.launch` (starting/joining Ray) and :mod:`.placement` (the run's placement group)
these are the only modules that import ``ray``. Workers
build their own inference copy of the policy inside the actor; weights travel once per
iteration through the object store (``ray.put`` then every worker reads the same object).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import ray

from agentrl.algorithm import ActingRuleSpec, ActingState
from agentrl.errors import LearnerLost, WorkerLost
from agentrl.learner import Learner
from agentrl.policy import ModelConfig, SamplingConfig
from agentrl.policy.device import actor_device, worker_device
from agentrl.policy.vllm_backend import build_inference_policy
from agentrl.types import Episode, Generation

from .group import PendingCollect, chunk_seed, split_jobs
from .worker import ActFn, EpisodeJob, RolloutWorker


def check_resources(cpus: float, gpus: float, what: str) -> None:
    """Fail at once (instead of waiting forever) when the cluster can never fit ``what``."""
    total = ray.cluster_resources()
    have_cpu, have_gpu = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if cpus > have_cpu + 1e-9 or gpus > have_gpu + 1e-9:
        from agentrl.cluster import ClusterError

        raise ClusterError(
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

    def pid(self) -> int:
        """The actor's process id (diagnostics and fault-injection tests)."""
        import os

        return os.getpid()

    def node_id(self) -> str:
        """The Ray node this worker runs on (where its placement bundle was put)."""
        return str(ray.get_runtime_context().get_node_id())

    def collect_chunk(
        self, jobs: Sequence[EpisodeJob], rng_seed: int, greedy: bool, own_rule: bool = False
    ) -> tuple[list[Episode], dict[str, float]]:
        """``collect`` plus its stats in one call (no second round trip that could interleave);
        ``own_rule``: act with this worker's acting rule (:meth:`RolloutWorker.acting_fn`)."""
        import time

        start = time.perf_counter()
        act = self.acting_fn(rng_seed) if own_rule else None
        episodes = self.collect(jobs, rng_seed, greedy, act=act)
        # the worker's busy time: the pipeline's idle fractions (docs/scaling.md)
        return episodes, {**self.get_last_stats(), "busy_s": time.perf_counter() - start}


class WorkerActingRule:
    """The ``act`` of a :class:`RayWorkerGroup` collection with the algorithm's acting rule:
    each worker acts with its own copy (built from the group's ``acting_rule``, given the
    learner's acting state at every weight sync). It runs only there: calling it is an error."""

    def __call__(self, states: list[str], prompts: list[list[int]]) -> list[Generation]:
        raise RuntimeError(
            "WorkerActingRule runs in the Ray rollout workers: pass it as act= to "
            "RayWorkerGroup.collect"
        )


class RayWorkerGroup:
    """``num_workers`` rollout actors collecting in parallel.

    A worker whose process dies is restarted by Ray (``max_restarts``) or, once those are
    spent, replaced; the episodes it was collecting are collected again on it with the same
    jobs, RNG seed and weights, so the batch neither loses nor duplicates an episode
    (``worker_retries`` times per chunk, then :class:`WorkerLost`).

    Args:
        num_workers: actors to start.
        env_id / env_kwargs / num_envs / sampling: as for :class:`RolloutWorker`.
        model: the policy config each actor builds its inference copy from.
        num_cpus / num_gpus: resources per actor.
        imports: user modules to import in each actor.
        import_path: folder put on ``sys.path`` for those imports (the driver's cwd).
        step_timeout_s: per env call, see :class:`RolloutWorker`.
        worker_retries: re-collections of one chunk after its worker died.
        placement: a :class:`~agentrl.rollouts.placement.Placement`: worker ``i`` (and its
            replacement) runs in bundle ``1 + i``; ``None``: wherever Ray schedules it.
        worker_options: further :class:`RolloutWorker` keyword arguments (``conversation``,
            ``keep_kv_cache``, ``max_context_tokens``).
        acting_rule: the algorithm's acting rule, which every worker builds around its policy
            copy (``collect(act=WorkerActingRule())`` acts with it); ``None``: none.
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
        step_timeout_s: float = 0.0,
        worker_retries: int = 3,
        placement: Any = None,
        worker_options: dict[str, Any] | None = None,
        acting_rule: ActingRuleSpec | None = None,
    ):
        check_resources(
            num_workers * num_cpus, num_workers * num_gpus, what=f"{num_workers} rollout workers"
        )
        self._remote_cls = ray.remote(_WorkerActor)
        self._actor_options: dict[str, Any] = dict(
            num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=2
        )
        self._actor_args = (
            list(imports or []),
            import_path,
            env_id,
            env_kwargs,
            num_envs,
            sampling,
        )
        self._actor_kwargs = dict(
            # the inference copy (model.backend hf or vllm) on the actor's own GPU, else CPU
            policy_factory=functools.partial(
                build_inference_policy, model, worker_device(num_gpus)
            ),
            step_timeout_s=step_timeout_s,
            acting_rule=acting_rule,
            **(worker_options or {}),
        )
        self.has_acting_rule = acting_rule is not None
        self.start_timeout_s = start_timeout_s
        self.worker_retries = worker_retries
        self._placement = placement
        self.workers: list[Any] = [self._make_actor(i) for i in range(num_workers)]
        try:  # the node each worker runs on (logged; the multi-node test checks it)
            self.node_ids: list[str] = ray.get(
                [w.node_id.remote() for w in self.workers], timeout=start_timeout_s
            )
        except ray.exceptions.GetTimeoutError as e:
            raise RuntimeError(
                f"rollout workers did not start within {start_timeout_s:.0f} s; cluster resources: "
                f"{ray.available_resources()} (each worker needs {num_cpus} CPU, {num_gpus} GPU)"
            ) from e
        self.last_stats: dict[str, float] = {}
        # (weights ref, version, acting state ref or None) the workers hold
        self._weights: tuple[Any, int, Any] | None = None
        self.recoveries = 0  # chunks collected again after a worker died
        self._weight_calls: list[tuple[int, Any]] = []  # (worker, set_weights call) not yet checked

    def _make_actor(self, index: int) -> Any:
        options = dict(self._actor_options)
        if self._placement is not None:
            options["scheduling_strategy"] = self._placement.worker_strategy(index)
        cls = self._remote_cls.options(**options)
        return cls.remote(*self._actor_args, worker_index=index, **self._actor_kwargs)

    def set_weights(
        self, weights: Any, version: int, acting_state: ActingState | None = None
    ) -> None:
        """Give every worker ``weights`` of ``version`` and, for its acting rule, the learner's
        ``acting_state`` of the same version (one object-store copy each)."""
        self._settle_weight_calls()
        ref = ray.put(weights)
        state = None if acting_state is None else ray.put(acting_state)
        self._weights = (ref, version, state)
        # Not waited for: an actor runs its calls in submission order, so collections
        # launched after this get these weights, and the ones already queued (asynchronous
        # collection, rollout.max_staleness) finish with theirs first, without the trainer
        # waiting for them. A worker that died surfaces at the next sync or in its chunk.
        self._weight_calls = [(i, w.set_weights.remote(ref, version, state)) for i, w in enumerate(self.workers)]

    def _settle_weight_calls(self) -> None:
        """Check the earlier weight calls that have finished: a worker that died is revived
        (with the newest weights); calls still queued behind a collection stay pending."""
        pending, self._weight_calls = self._weight_calls, []
        for i, call in pending:
            ready, _ = ray.wait([call], timeout=0)
            if not ready:
                self._weight_calls.append((i, call))
                continue
            try:
                ray.get(call)
            except ray.exceptions.RayActorError:
                self._revive(i)  # loads the newest weights into the restarted worker

    def _revive(self, index: int) -> None:
        """Wait until worker ``index`` answers again (Ray restarts it, or we start a new one)
        and give it the newest weights."""
        import time

        deadline = time.monotonic() + self.start_timeout_s
        while True:
            try:
                ray.get(self.workers[index].ping.remote(), timeout=self.start_timeout_s)
                break
            except ray.exceptions.ActorDiedError:  # Ray's restarts are spent: a fresh actor
                self.workers[index] = self._make_actor(index)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:
                if time.monotonic() > deadline:
                    raise WorkerLost(
                        f"rollout worker {index} did not come back within {self.start_timeout_s:.0f} s"
                    ) from e
                time.sleep(0.5)  # restarting
        if self._weights is not None:
            ray.get(self.workers[index].set_weights.remote(*self._weights))

    def collect(
        self,
        jobs: Sequence[EpisodeJob],
        rng_seed: int,
        greedy: bool = False,
        act: ActFn | None = None,
        on_episode: Callable[[], None] | None = None,
    ) -> list[Episode]:
        return self.start_collect(jobs, rng_seed, greedy, act, on_episode).result()

    def start_collect(
        self,
        jobs: Sequence[EpisodeJob],
        rng_seed: int,
        greedy: bool = False,
        act: ActFn | None = None,
        on_episode: Callable[[], None] | None = None,
    ) -> PendingCollect:
        """Submit the chunks to the actors and return at once; the actors run them in order
        after anything already queued (a later ``set_weights`` waits for this collection).
        ``act``: ``None`` (sample the policy) or a :class:`WorkerActingRule` (each worker's
        copy of the algorithm's acting rule). ``on_episode`` is called once per episode of
        each chunk as ``result()`` receives it."""
        if act is not None and not isinstance(act, WorkerActingRule):
            raise NotImplementedError(
                f"act={act!r} would run in the driver: a Ray group acts with None (sampling) or "
                "WorkerActingRule() (the algorithm's acting rule, built in every worker)"
            )
        own_rule = act is not None
        if own_rule and not self.has_acting_rule:
            raise ValueError("act=WorkerActingRule() needs a RayWorkerGroup built with acting_rule")
        chunks = split_jobs(jobs, len(self.workers))
        weights = self._weights  # what these chunks are collected with
        busy = [(i, chunk) for i, chunk in enumerate(chunks) if chunk]
        refs = {
            i: self.workers[i].collect_chunk.remote(
                chunk, chunk_seed(rng_seed, i), greedy, own_rule
            )
            for i, chunk in busy
        }

        def wait() -> tuple[list[Episode], dict[str, float]]:
            episodes: list[Episode] = []
            gen_tokens = busy_s = 0.0
            for i, chunk in busy:
                eps, stats = self._chunk_result(
                    i, chunk, chunk_seed(rng_seed, i), greedy, own_rule, refs[i], weights
                )
                episodes.extend(eps)
                gen_tokens += stats.get("gen_tokens", 0.0)
                busy_s += stats.get("busy_s", 0.0)
                if on_episode is not None:
                    for _ in eps:
                        on_episode()
            self.last_stats = {"gen_tokens": gen_tokens, "worker_busy_s": busy_s}
            return episodes, self.last_stats

        return PendingCollect(wait)

    def _chunk_result(
        self,
        index: int,
        chunk: list[EpisodeJob],
        seed: int,
        greedy: bool,
        own_rule: bool,
        ref: Any,
        weights: tuple[Any, int, Any] | None,
    ) -> tuple[list[Episode], dict[str, float]]:
        """The chunk's episodes; if its worker died, collect the same chunk again on it."""
        import sys

        for attempt in range(self.worker_retries + 1):
            try:
                return ray.get(ref)
            except ray.exceptions.RayActorError as e:
                if attempt == self.worker_retries:
                    raise WorkerLost(
                        f"rollout worker {index} died {attempt + 1} times while collecting "
                        f"{len(chunk)} episodes (seeds {chunk[0].seed}..{chunk[-1].seed}); "
                        f"raise fault.worker_retries or look at the worker's log: {e}"
                    ) from e
                print(
                    f"agentrl: rollout worker {index} died ({type(e).__name__}); collecting its "
                    f"{len(chunk)} episodes again (retry {attempt + 1}/{self.worker_retries})",
                    file=sys.stderr,
                )
                self.recoveries += 1
                self._revive(index)
                worker, newest = self.workers[index], self._weights
                stale = weights is not None and newest is not None and weights[1] != newest[1]
                if stale:  # the weights this chunk was sampled with, then back to the newest
                    worker.set_weights.remote(*weights)  # type: ignore[misc]
                ref = worker.collect_chunk.remote(chunk, seed, greedy, own_rule)
                if stale:
                    worker.set_weights.remote(*newest)  # type: ignore[misc]
        raise AssertionError("unreachable")

    def pids(self) -> list[int]:
        """The workers' process ids."""
        return list(ray.get([w.pid.remote() for w in self.workers]))

    def shutdown(self) -> None:
        for w in self.workers:
            ray.kill(w)


class _LearnerActor(Learner):
    """The learner as a Ray actor: the same class, plus where it runs."""

    def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())


class RemoteLearner:
    """A :class:`~agentrl.learner.Learner` in a Ray actor, with the same (blocking) methods.

    ``save``/``load`` take a path on the *driver's* disk: when the learner runs on another
    node (or ``transfer_files`` is set), the checkpoint files travel through Ray
    (:meth:`Learner.save_files` / :meth:`Learner.load_files`), so a multi-node run never
    leaves part of a checkpoint on a worker machine.
    """

    def __init__(
        self,
        num_gpus: float,
        num_cpus: float,
        placement: Any = None,
        transfer_files: bool | None = None,
        **kwargs: Any,
    ):
        check_resources(num_cpus, num_gpus, what="the learner")
        # model.device=auto: the GPU this actor reserved, or the CPU without one
        model = kwargs["model"]
        kwargs["model"] = dataclasses.replace(model, device=actor_device(model.device, num_gpus))
        options: dict[str, Any] = dict(num_gpus=num_gpus, num_cpus=num_cpus)
        if placement is not None:  # bundle 0 of the run's placement group
            options["scheduling_strategy"] = placement.learner_strategy()
        cls = ray.remote(_LearnerActor).options(**options)
        self.actor: Any = cls.remote(**kwargs)
        if transfer_files is None:  # the driver's node vs the learner's
            here = ray.get_runtime_context().get_node_id()
            transfer_files = self._call("node_id") != here
        self.transfer_files = transfer_files

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return ray.get(getattr(self.actor, name).remote(*args, **kwargs))
        except ray.exceptions.RayActorError as e:  # the process is gone, not a bug in it
            raise LearnerLost(f"learner actor lost during {name}(): {type(e).__name__}") from e

    def save(self, directory: str) -> None:
        if not self.transfer_files:
            return self._call("save", directory)
        root = Path(directory)
        for rel, data in self._call("save_files").items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)

    def load(self, directory: str, weights_only: bool = False) -> None:
        if not self.transfer_files:
            return self._call("load", directory, weights_only=weights_only)
        root = Path(directory)
        files = {str(f.relative_to(root)): f.read_bytes() for f in root.rglob("*") if f.is_file()}
        self._call("load_files", files, weights_only=weights_only)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._call(name, *args, **kwargs)

    def shutdown(self) -> None:
        ray.kill(self.actor)
