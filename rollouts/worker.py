"""The rollout worker: K text envs stepped in lock-step around one batched policy.

Each turn, every live env's observation is formatted and the policy generates all
utterances in one batched call; finished envs immediately take the next queued job, so
the batch stays full until the queue drains. The worker is a plain class; the Ray actor
wrapper lives in :mod:`agentrl.rollouts.ray_actors`.
"""

from __future__ import annotations

import functools
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import torch

from agentrl.policy import Policy, SamplingConfig
from agentrl.types import Episode, Generation, TaskSpec, Turn


@dataclass(frozen=True)
class EpisodeJob:
    """What to play: a task spec and the env reset seed. ``job_id`` orders the results."""

    job_id: int
    seed: int
    task: TaskSpec = field(default_factory=dict)


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None) -> gym.Env:
    """``gymnasium.make`` with agentrl's envs registered and a clear unknown-id error."""
    import agentrl.envs  # noqa: F401  (registers the built-in envs)

    if env_id not in gym.registry:
        valid = ", ".join(sorted(k for k in gym.registry if k.startswith("agentrl/")))
        raise gym.error.NameNotFound(
            f"unknown env id {env_id!r}; agentrl envs: {valid} (or any registered Gymnasium id)"
        )
    return gym.make(env_id, disable_env_checker=True, **(env_kwargs or {}))


class EnvTimeout(RuntimeError):
    """An env ``reset``/``step`` did not return within ``fault.step_timeout_s``."""


def call_with_timeout(fn: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """``fn()``, or :class:`EnvTimeout` when it has not returned after ``timeout_s`` seconds.

    The call runs in a daemon thread, so a hung env is abandoned (the thread never blocks
    the worker or interpreter exit); its env must not be used again. ``timeout_s <= 0``
    calls ``fn`` directly. Exceptions from ``fn`` are re-raised with their traceback.
    """
    if timeout_s <= 0:
        return fn()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    thread = threading.Thread(target=run, name="agentrl-env-call", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise EnvTimeout(f"{what} did not return within fault.step_timeout_s={timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in info.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[k] = v
        else:
            out[k] = repr(v)
    return out


class RolloutWorker:
    """Collects episodes with an inference copy of the policy.

    Args:
        env_id / env_kwargs: the Gymnasium env to play.
        num_envs: how many envs are stepped in lock-step (the generation batch size).
        policy: an inference :class:`~agentrl.policy.Policy` (``policy_factory`` builds one
            lazily instead, which Ray actors use so that the model is built in the actor).
        sampling: generation settings.
        worker_index: used in the per-collect RNG seed.
        step_timeout_s: an env ``reset``/``step`` slower than this ends its episode
            (truncated, with ``error`` set) and the env is rebuilt; 0 = no timeout.
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None,
        num_envs: int,
        sampling: SamplingConfig,
        policy: Policy | None = None,
        policy_factory: Callable[[], Policy] | None = None,
        worker_index: int = 0,
        step_timeout_s: float = 0.0,
    ):
        if policy is None and policy_factory is None:
            raise ValueError("RolloutWorker needs a policy or a policy_factory")
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.step_timeout_s = float(step_timeout_s)
        self.envs = [make_env(env_id, env_kwargs) for _ in range(num_envs)]
        self.policy = policy if policy is not None else policy_factory()  # type: ignore[misc]
        self.sampling = sampling
        self.worker_index = worker_index
        self.policy_version = 0
        self.last_stats: dict[str, float] = {}

    def set_weights(self, weights: dict[str, torch.Tensor], version: int) -> None:
        """Load new policy weights; episodes record ``version``."""
        self.policy.set_weights(weights)
        self.policy_version = version

    def collect(
        self,
        jobs: Sequence[EpisodeJob],
        rng_seed: int,
        greedy: bool = False,
        act: Callable[[list[str]], list[Generation]] | None = None,
    ) -> list[Episode]:
        """Play every job to the end; returns episodes in ``jobs`` order.

        Args:
            jobs: episodes to play.
            rng_seed: seeds the sampling generator, so a collect call is reproducible.
            greedy: argmax decoding (evaluation).
            act: optional acting rule replacing policy sampling (observations -> generations).
        """
        start = time.perf_counter()
        sampling = SamplingConfig(**{**self.sampling.__dict__, "greedy": greedy})
        generator = torch.Generator().manual_seed(int(rng_seed))
        queue = list(jobs)[::-1]
        slots: list[dict[str, Any] | None] = [None] * len(self.envs)
        results: dict[int, Episode] = {}
        gen_tokens = 0

        def start_job(slot: int) -> None:
            while queue:
                job = queue.pop()
                episode = Episode(
                    env_id=self.env_id,
                    task=dict(job.task),
                    seed=job.seed,
                    policy_version=self.policy_version,
                )
                env = self.envs[slot]
                options = {"task": dict(job.task)} if job.task else None
                try:
                    obs, _info = call_with_timeout(
                        functools.partial(env.reset, seed=job.seed, options=options),
                        self.step_timeout_s,
                        f"{self.env_id} reset(seed={job.seed})",
                    )
                except Exception as e:  # an env that cannot reset ends only this episode
                    episode.error = f"reset failed: {type(e).__name__}: {e}"
                    if isinstance(e, EnvTimeout):
                        self._replace_env(slot)
                    results[job.job_id] = episode
                    continue
                played = getattr(self.envs[slot].unwrapped, "task", None)
                if isinstance(played, dict) and played:
                    episode.task = dict(played)  # the task the env actually sampled
                slots[slot] = {"job": job, "episode": episode, "obs": obs}
                return
            slots[slot] = None

        for i in range(len(self.envs)):
            start_job(i)
        while any(s is not None for s in slots):
            live = [i for i, s in enumerate(slots) if s is not None]
            observations = [slots[i]["obs"] for i in live]  # type: ignore[index]
            if act is not None:
                gens = act(observations)
            else:
                gens = self.policy.generate_text(observations, sampling, generator=generator)
            for i, gen in zip(live, gens, strict=True):
                slot = slots[i]
                assert slot is not None
                episode: Episode = slot["episode"]
                gen_tokens += len(gen.token_ids)
                env = self.envs[i]
                try:
                    obs, reward, terminated, truncated, info = call_with_timeout(
                        functools.partial(env.step, gen.text),
                        self.step_timeout_s,
                        f"{self.env_id} step (seed {episode.seed}, turn {len(episode.turns) + 1})",
                    )
                    error = None
                except Exception as e:  # the env's bug or hang ends this episode, not the worker
                    obs, reward, terminated, truncated = "", 0.0, False, True
                    error = f"{type(e).__name__}: {e}"
                    info = {"error": error, "traceback": traceback.format_exc(limit=3)}
                    if isinstance(e, EnvTimeout):
                        self._replace_env(i)
                done = terminated or truncated
                episode.turns.append(
                    Turn(
                        observation=slot["obs"],
                        action=gen.text,
                        prompt_ids=list(gen.prompt_ids),
                        action_ids=list(gen.token_ids),
                        action_logprobs=[float(x) for x in gen.logprobs],
                        reward=float(reward),
                        terminated=bool(terminated),
                        truncated=bool(truncated),
                        next_observation="" if done else obs,
                        info=_jsonable(info),
                    )
                )
                if done:
                    episode.success = bool(info.get("success", False))
                    episode.env_reward = episode.total_reward
                    episode.error = error
                    results[slot["job"].job_id] = episode
                    start_job(i)
                else:
                    slot["obs"] = obs
        elapsed = time.perf_counter() - start
        self.last_stats = {"collect_s": elapsed, "gen_tokens": float(gen_tokens)}
        return [results[j.job_id] for j in jobs]

    def _replace_env(self, slot: int) -> None:
        """A fresh env for ``slot``: the old one is still busy in an abandoned thread."""
        self.envs[slot] = make_env(self.env_id, self.env_kwargs)

    def get_last_stats(self) -> dict[str, float]:
        return dict(self.last_stats)
