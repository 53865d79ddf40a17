"""The rollout worker: K text envs stepped in lock-step around one batched policy.

Each turn, every live env's new message joins its conversation and the policy generates all
utterances in one batched call (each conversation's KV cache kept across turns); finished
envs immediately take the next queued job, so the batch stays full until the queue drains. The worker is a plain class; the Ray actor
wrapper lives in :mod:`agentrl.rollouts.ray_actors`.
"""

from __future__ import annotations

import functools
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch

from agentrl.policy import Policy, SamplingConfig
from agentrl.policy.chat import ToolSpec
from agentrl.policy.kv import KVCache
from agentrl.types import Episode, Generation, TaskSpec, Turn

if TYPE_CHECKING:
    from agentrl.algorithm import ActingRule, ActingRuleSpec, ActingState

ActFn = Callable[[list[str], list[list[int]]], list[Generation]]
"""An acting rule other than sampling the policy: ``(state texts, prompt ids) -> generations``
(CHAI's critic-ranked choice, RLTF's candidate choice)."""


@dataclass(frozen=True)
class EpisodeJob:
    """What to play: a task spec and the env reset seed. ``job_id`` orders the results."""

    job_id: int
    seed: int
    task: TaskSpec = field(default_factory=dict)


def make_env(
    env_id: str, env_kwargs: dict[str, Any] | None = None, conversation: bool = False
) -> gym.Env:
    """``gymnasium.make`` with agentrl's envs registered and a clear unknown-id error;
    ``conversation`` wraps a transcript env in
    :class:`~agentrl.envs.conversation.MessageView` (a natively conversational env is not
    wrapped)."""
    import agentrl.envs  # noqa: F401  (registers the built-in envs)
    from agentrl.envs.conversation import MessageView

    if env_id not in gym.registry:
        valid = ", ".join(sorted(k for k in gym.registry if k.startswith("agentrl/")))
        raise gym.error.NameNotFound(
            f"unknown env id {env_id!r}; agentrl envs: {valid} (or any registered Gymnasium id)"
        )
    env = gym.make(env_id, disable_env_checker=True, **(env_kwargs or {}))
    return MessageView(env) if conversation and not is_conversational(env) else env


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


def env_tools(env: gym.Env) -> list[ToolSpec]:
    """The tools ``env`` offers the agent (:attr:`TextEnv.tools`; none for other envs)."""
    from agentrl.envs.base import TextEnv

    inner = env.unwrapped
    return list(inner.tools) if isinstance(inner, TextEnv) else []


def _jsonable(info: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in info.items():
        if isinstance(v, str | int | float | bool) or v is None:
            out[k] = v
        else:
            out[k] = repr(v)
    return out


def is_conversational(env: gym.Env) -> bool:
    """Whether ``env``'s observations are new messages of a conversation (a
    :class:`~agentrl.envs.base.TextEnv` with ``conversational = True``) rather than whole
    transcripts (every other env)."""
    from agentrl.envs.base import TextEnv
    from agentrl.envs.conversation import MessageView

    if isinstance(env, MessageView):
        return True
    inner = env.unwrapped
    return isinstance(inner, TextEnv) and inner.conversational


@dataclass
class _Slot:
    """One env's episode in progress."""

    job: EpisodeJob
    episode: Episode
    obs: str
    role: str = "user"
    context: list[int] = field(default_factory=list)  # ids of the last prompt and its action
    cache: KVCache | None = None  # KV cache of ``context`` minus its last token


class RolloutWorker:
    """Collects episodes with an inference copy of the policy.

    Each episode is a conversation (:mod:`agentrl.policy.chat`): with a conversational env
    every turn appends the env's new message to the context, and the context's KV cache is
    kept between turns (``keep_kv_cache``), so a turn prefills only the new tokens. With a
    transcript env (every observation holds the whole state) each turn starts a fresh
    context ``[system, user=observation]``.

    Args:
        env_id: the Gymnasium id of the env to play.
        env_kwargs: keyword arguments of its constructor.
        num_envs: how many envs are stepped in lock-step (the generation batch size).
        policy: an inference :class:`~agentrl.policy.Policy` (``policy_factory`` builds one
            lazily instead, which Ray actors use so that the model is built in the actor).
        sampling: generation settings.
        worker_index: used in the per-collect RNG seed.
        step_timeout_s: an env ``reset``/``step`` slower than this ends its episode
            (truncated, with ``error`` set) and the env is rebuilt; 0 = no timeout.
        keep_kv_cache: keep each conversation's KV cache across turns (the same samples up
            to float summation order; False re-prefills the whole context every turn).
        max_context_tokens: a conversation whose next prompt plus ``max_new_tokens`` would
            exceed this ends truncated (``info["context_full"]``) before that turn; default
            the model's ``max_position_embeddings``.
        conversation: play a transcript env as a conversation
            (:class:`~agentrl.envs.conversation.MessageView`).
        acting_rule: the algorithm's acting rule to build around this worker's policy (a Ray
            worker: :meth:`acting_fn`); ``None`` for an algorithm that samples the policy, or
            inline, where the algorithm acts itself.
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
        keep_kv_cache: bool = True,
        max_context_tokens: int | None = None,
        conversation: bool = False,
        acting_rule: ActingRuleSpec | None = None,
    ):
        if policy is None and policy_factory is None:
            raise ValueError("RolloutWorker needs a policy or a policy_factory")
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        self.step_timeout_s = float(step_timeout_s)
        self.conversation = conversation
        self.envs = [make_env(env_id, env_kwargs, conversation) for _ in range(num_envs)]
        self.policy = policy if policy is not None else policy_factory()  # type: ignore[misc]
        self.sampling = sampling
        self.worker_index = worker_index
        self.policy_version = 0
        self.keep_kv_cache = keep_kv_cache
        self.max_context_tokens = max_context_tokens or self.policy.max_context_tokens
        self.conversational = is_conversational(self.envs[0])
        self.chat = self.policy.chat_format(env_tools(self.envs[0]))
        self.last_stats: dict[str, float] = {}
        self.acting_rule: ActingRule | None = (
            acting_rule.build(self.policy) if acting_rule else None
        )
        self.acting_version: int | None = None  # the version of the acting state it holds

    def set_weights(
        self,
        weights: dict[str, torch.Tensor],
        version: int,
        acting_state: ActingState | None = None,
    ) -> None:
        """Load new policy weights; episodes record ``version``. ``acting_state`` (the
        learner's :meth:`~agentrl.algorithm.AlgorithmBase.acting_state` of the same version)
        goes to this worker's acting rule."""
        self.policy.set_weights(weights)
        self.policy_version = version
        if acting_state is not None:
            if self.acting_rule is None:
                raise ValueError(
                    "this rollout worker got an acting state but was built without acting_rule"
                )
            self.acting_rule.load_state(acting_state)
            self.acting_version = version

    def acting_fn(self, rng_seed: int) -> ActFn:
        """This worker's acting rule as :meth:`collect`'s ``act``, re-seeded with the collect's
        ``rng_seed`` and acting with this worker's sampling settings.

        Raises:
            RuntimeError: built without ``acting_rule``, or its acting state is not of the
                policy weights' version (:meth:`set_weights` gives both).
        """
        rule = self.acting_rule
        if rule is None:
            raise RuntimeError(
                "this rollout worker was built without acting_rule: it can only sample the policy"
            )
        if self.acting_version != self.policy_version:
            raise RuntimeError(
                f"the acting rule holds the learner's acting state of version "
                f"{self.acting_version} but the policy weights are of version "
                f"{self.policy_version}: pass acting_state to set_weights with the weights"
            )
        rule.reseed(rng_seed)
        sampling = self.sampling
        return lambda states, prompts: rule(states, prompts, sampling)

    def collect(
        self,
        jobs: Sequence[EpisodeJob],
        rng_seed: int,
        greedy: bool = False,
        act: ActFn | None = None,
        on_episode: Callable[[], None] | None = None,
    ) -> list[Episode]:
        """Play every job to the end; returns episodes in ``jobs`` order.

        Args:
            jobs: episodes to play.
            rng_seed: seeds the sampling generator, so a collect call is reproducible.
            greedy: argmax decoding (evaluation).
            act: optional acting rule replacing policy sampling: ``(states, prompts) ->
                generations`` for the live envs' state texts and prompt ids.
            on_episode: called once per finished episode (a progress bar's advance).
        """
        start = time.perf_counter()
        sampling = SamplingConfig(**{**self.sampling.__dict__, "greedy": greedy})
        generator = torch.Generator().manual_seed(int(rng_seed))
        queue = list(jobs)[::-1]
        slots: list[_Slot | None] = [None] * len(self.envs)
        results: dict[int, Episode] = {}
        counts = {"gen_tokens": 0, "prefill_tokens": 0, "context_tokens": 0}

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
                    if on_episode is not None:
                        on_episode()
                    continue
                played = getattr(self.envs[slot].unwrapped, "task", None)
                if isinstance(played, dict) and played:
                    episode.task = dict(played)  # the task the env actually sampled
                slots[slot] = _Slot(job=job, episode=episode, obs=obs)
                return
            slots[slot] = None

        def finish(i: int, slot: _Slot, success: bool, error: str | None) -> None:
            episode = slot.episode
            episode.success = success
            episode.env_reward = episode.total_reward
            episode.error = error
            results[slot.job.job_id] = episode
            if on_episode is not None:
                on_episode()
            start_job(i)

        for i in range(len(self.envs)):
            start_job(i)
        while any(s is not None for s in slots):
            live: list[int] = []
            prompts: list[list[int]] = []
            deltas: list[list[int]] = []
            for i, slot in enumerate(slots):
                if slot is None:
                    continue
                delta, continues = self._next_prompt(slot)
                prompt = slot.context + delta if continues else delta
                if continues and len(prompt) + sampling.max_new_tokens > self.max_context_tokens:
                    last = slot.episode.turns[-1]  # the context is full: end before this turn
                    last.truncated, last.next_observation = True, ""
                    last.info["context_full"] = True
                    finish(i, slot, bool(last.info.get("success", False)), None)
                    continue
                if not continues:
                    slot.cache = None
                live.append(i)
                prompts.append(prompt)
                deltas.append(delta)
            if not live:
                continue
            live_slots = [s for s in (slots[i] for i in live) if s is not None]
            if act is not None:
                gens = act([self._state_text(s) for s in live_slots], prompts)
                counts["prefill_tokens"] += sum(len(p) for p in prompts)
            elif self.keep_kv_cache and self.conversational:  # a transcript never continues
                caches = [s.cache for s in live_slots]
                counts["prefill_tokens"] += sum(
                    len(p) - (c.length if c is not None else 0) for p, c in zip(prompts, caches, strict=True)
                )
                gens, new_caches = self.policy.generate_continue(prompts, caches, sampling, generator)
                for s, c in zip(live_slots, new_caches, strict=True):
                    s.cache = c
            else:
                counts["prefill_tokens"] += sum(len(p) for p in prompts)
                gens = self.policy.generate(prompts, sampling, generator=generator)
            counts["context_tokens"] += sum(len(p) for p in prompts)
            for i, prompt, delta, gen in zip(live, prompts, deltas, gens, strict=True):
                slot = slots[i]
                assert slot is not None
                episode = slot.episode
                counts["gen_tokens"] += len(gen.token_ids)
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
                        observation=slot.obs,
                        action=gen.text,
                        prompt_ids=list(delta),
                        action_ids=list(gen.token_ids),
                        action_logprobs=[float(x) for x in gen.logprobs],
                        reward=float(reward),
                        terminated=bool(terminated),
                        truncated=bool(truncated),
                        next_observation="" if done else obs,
                        info=_jsonable(info),
                        continues=len(prompt) != len(delta),
                        role=slot.role,
                        policy_version=self.policy_version,
                    )
                )
                if done:
                    finish(i, slot, bool(info.get("success", False)), error)
                else:
                    slot.obs = obs
                    slot.role = str(info.get("role", "user"))
                    slot.context = prompt + list(gen.token_ids)
        elapsed = time.perf_counter() - start
        self.last_stats = {"collect_s": elapsed, **{k: float(v) for k, v in counts.items()}}
        return [results[j.job_id] for j in jobs]

    def _next_prompt(self, slot: _Slot) -> tuple[list[int], bool]:
        """The ids this turn adds, and whether they extend the slot's context."""
        message = {"role": slot.role, "content": slot.obs}
        if self.conversational and slot.episode.turns:
            last = slot.episode.turns[-1].action_ids
            return self.chat.continuation(last, [message]), True
        return self.chat.start([message]), False

    def _state_text(self, slot: _Slot) -> str:
        """The slot's state as text (``Episode.states`` of its next turn)."""
        turns = slot.episode.turns
        if self.conversational and turns:
            return f"{slot.episode.states()[-1]}\n{turns[-1].action}\n{slot.obs}"
        return slot.obs

    def _replace_env(self, slot: int) -> None:
        """A fresh env for ``slot``: the old one is still busy in an abandoned thread."""
        self.envs[slot] = make_env(self.env_id, self.env_kwargs, self.conversation)

    def get_last_stats(self) -> dict[str, float]:
        return dict(self.last_stats)
