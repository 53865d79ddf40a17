"""Where one ArCHer iteration's time goes with SmolLM2-135M-Instruct on conversations.

Times, on 8 TwentyQuestions conversations (``env.conversation=true``, the ``model=smollm2``
preset, ArCHer's default config): collecting the 8 sampled episodes, sampling the fresh actions
of one critic step (``batch_size`` replayed states, each a whole conversation prefix; each
conversation prefilled once, :meth:`~agentrl.policy.Policy.generate_shared`), one whole critic
step and one actor step; then the default update (``critic_epochs`` critic steps and
``actor_epochs`` actor steps) extrapolated from them. Numbers in docs/conversations.md.

``--critic-phase`` instead times the critic phase (``--critic-steps`` steps, default the
config's ``critic_epochs``) twice from the same state, side by side: with the prefill store
(each conversation's KV cache is kept for the whole phase,
:meth:`~agentrl.algorithms.archer.learner.CriticLearner.critic_phase`) and without it (every
step prefills its conversations again, as before the store), wall and CPU seconds, and checks
that both phases give the same losses. ``--critic-phase --action-samples K`` compares the
phase with the store against the store plus a pool of at most K fresh actions per state
(``algorithm.critic_action_samples=K``: later steps reuse them; other draws, so the losses
differ). ``--model tiny`` runs either on the tiny random policy (a quick check of the
script, not a SmolLM2 figure). Usage::

    python benchmarks/archer_smollm2_profile.py
    python benchmarks/archer_smollm2_profile.py --critic-phase --critic-steps 5
    python benchmarks/archer_smollm2_profile.py --critic-phase --critic-steps 20 --action-samples 2
    python benchmarks/archer_smollm2_profile.py --critic-phase --critic-steps 20 --action-samples 2 --pool-only
    python benchmarks/archer_smollm2_profile.py --model tiny --critic-phase --critic-steps 3
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from agentrl.algorithm import build_algorithm
from agentrl.algorithms.archer.learner import Archer
from agentrl.config import EnvConfig, load_config
from agentrl.policy import Policy, SamplingConfig
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
from agentrl.types import Episode, Generation

MODELS = {
    "smollm2": ["model=smollm2"],
    # the tiny random Llama, one layer shorter than the preset (a check of the script)
    "tiny": ["model=tiny", "model.num_layers=1"],
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    parser.add_argument("--episodes", type=int, default=8, help="conversations collected")
    parser.add_argument(
        "--critic-phase",
        action="store_true",
        help="time the critic phase without and with the prefill store, side by side",
    )
    parser.add_argument(
        "--critic-steps",
        type=int,
        default=None,
        help="critic steps of each timed phase (default: the config's critic_epochs)",
    )
    parser.add_argument(
        "--action-samples",
        type=int,
        default=0,
        help="--critic-phase: compare the store against the store plus a pool of at most this "
        "many fresh actions per state (critic_action_samples), instead of against no store",
    )
    parser.add_argument(
        "--pool-only",
        action="store_true",
        help="--critic-phase --action-samples K: time only the phase with the pool (its steps "
        "and decoded actions; compare with an earlier run of the store alone)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="--critic-phase: time each phase this many times (alternating), keep the best",
    )
    return parser.parse_args(argv)


def collect(policy: Policy, env: EnvConfig, episodes: int) -> list[Episode]:
    """``episodes`` sampled conversations of ``env``, their time and context lengths printed."""
    sampling = SamplingConfig(max_new_tokens=env.max_new_tokens, stop=tuple(env.stop))
    worker = RolloutWorker(env.id, env.kwargs, episodes, sampling, policy=policy, conversation=True)
    t = time.perf_counter()
    eps = worker.collect([EpisodeJob(i, i) for i in range(episodes)], rng_seed=0)
    ctx = [len(c) for e in eps for c in e.contexts()]
    print(
        f"collect {episodes} episodes: {time.perf_counter() - t:.1f} s, "
        f"{sum(e.num_turns for e in eps)} turns, "
        f"contexts mean {sum(ctx) / len(ctx):.0f} max {max(ctx)} tokens",
        flush=True,
    )
    return eps


def profile_pieces(algo: Archer) -> None:
    """Fresh actions of one critic step, one critic step, one actor step; the update extrapolated."""
    batch = algo.core.buffer.sample(algo.config.batch_size)
    t = time.perf_counter()
    algo.core.sample_actions(batch)
    print(
        f"fresh actions for one critic step ({len(batch)} states): {time.perf_counter() - t:.1f} s",
        flush=True,
    )
    t = time.perf_counter()
    algo.core.step()
    step_s = time.perf_counter() - t
    steps = algo.config.critic_epochs
    print(
        f"one critic step: {step_s:.1f} s; {steps} steps: {steps * step_s / 60:.1f} min", flush=True
    )
    t = time.perf_counter()
    algo._actor_step(algo._actor_batch())
    actor_s = time.perf_counter() - t
    actor_steps = algo.config.actor_epochs
    print(
        f"one actor step (fresh actions, advantages, forward + backward): {actor_s:.1f} s; "
        f"update of {steps} critic + {actor_steps} actor steps: "
        f"{(steps * step_s + actor_steps * actor_s) / 60:.1f} min",
        flush=True,
    )


@dataclass
class PhaseTiming:
    """One timed critic phase: wall and CPU seconds (CPU of this process: the machine may be
    shared), the fresh actions' share of the wall time, the per-step stats, the store's note."""

    seconds: float
    cpu: float
    sampling: float
    stats: list[dict[str, float]]
    note: str

    @property
    def decoded(self) -> float:
        """Fresh actions decoded over the phase's steps."""
        return sum(s.get("actions_decoded", 0.0) for s in self.stats)


def time_critic_phase(algo: Archer, steps: int, reuse: bool, pool: int = 0) -> PhaseTiming:
    """``steps`` critic steps in one critic phase, with or without the prefill store, with a
    pool of at most ``pool`` fresh actions per state (0: fresh every step)."""
    core = algo.core
    saved, saved_config = core.prefill_cache_bytes, core.config
    core.config = dataclasses.replace(core.config, critic_action_samples=pool)
    decode = core.decode  # every fresh action of the critic goes through it
    sampling = [0.0]

    def timed_decode(
        prompts: list[list[int]], generator: torch.Generator | None = None
    ) -> list[Generation]:
        t = time.perf_counter()
        try:
            return decode(prompts, generator)
        finally:
            sampling[0] += time.perf_counter() - t

    core.decode = timed_decode  # type: ignore[method-assign]
    if not reuse:
        core.prefill_cache_bytes = 0
    try:
        t, cpu = time.perf_counter(), time.process_time()
        with core.critic_phase() as store:
            stats = []
            for i in range(steps):
                stats.append(core.step())
                print(f"  step {i + 1}/{steps}: {time.perf_counter() - t:.1f} s", flush=True)
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    finally:
        core.prefill_cache_bytes, core.config = saved, saved_config
        del core.decode  # the method again
    note = f"; actions decoded {int(sum(s.get('actions_decoded', 0.0) for s in stats))}"
    if store is not None:
        total = store.stats.prefilled_tokens + store.stats.reused_tokens
        note += (
            f"; context ids run {store.stats.prefilled_tokens}, reused {store.stats.reused_tokens} "
            f"(without the store: {total} run), evictions {store.stats.evictions}"
        )
    return PhaseTiming(seconds, cpu, sampling[0], stats, note)


def compare_critic_phase(
    algo: Archer, steps: int, repeats: int = 1, action_samples: int = 0
) -> dict[str, float]:
    """The critic phase with, then without, the prefill store (or, with ``action_samples``,
    with the store alone, then with the store and a pool of that many actions per state),
    ``repeats`` times, each from the same state; the best time of each is compared (the first
    phase also pays the process's warm-up), and the largest difference of their per-step
    stats (0 expected up to float order without a pool; a pool draws other actions)."""
    state = copy.deepcopy(algo.state_dict())
    best: dict[str, PhaseTiming] = {}
    reference: list[dict[str, float]] | None = None
    diff = 0.0
    second = ("without reuse", False, 0)
    if action_samples:
        second = (f"with reuse and a pool of {action_samples}", True, action_samples)
    for _ in range(repeats):
        for label, reuse, pool in (("with reuse", True, 0), second):
            algo.load_state_dict(copy.deepcopy(state))
            print(f"critic phase, {steps} steps, {label}:", flush=True)
            run = time_critic_phase(algo, steps, reuse, pool)
            print(
                f"critic phase {label}: {run.seconds:.1f} s ({run.seconds / steps:.1f} s per step), "
                f"{run.cpu:.1f} CPU s, fresh actions {run.sampling:.1f} s{run.note}",
                flush=True,
            )
            if label not in best or run.seconds < best[label].seconds:
                best[label] = run
            reference = reference or run.stats
            diff = max(
                [
                    diff,
                    *(
                        abs(a[k] - b[k])
                        for a, b in zip(reference, run.stats, strict=True)
                        for k in a
                    ),
                ]
            )
    if action_samples:
        store, pooled = best["with reuse"], best[second[0]]
        print(
            f"critic phase ({steps} steps, best of {repeats}): {store.seconds:.1f} s with the store, "
            f"{pooled.seconds:.1f} s with the store and a pool of {action_samples} "
            f"({store.seconds / pooled.seconds:.2f}x); fresh actions {store.sampling:.1f} s and "
            f"{pooled.sampling:.1f} s",
            flush=True,
        )
        return {
            "with_reuse_s": store.seconds,
            "with_pool_s": pooled.seconds,
            "with_reuse_sampling_s": store.sampling,
            "with_pool_sampling_s": pooled.sampling,
            "with_reuse_decoded": store.decoded,
            "with_pool_decoded": pooled.decoded,
        }
    with_, without = best["with reuse"], best["without reuse"]
    print(
        f"critic phase ({steps} steps, best of {repeats}): {without.seconds:.1f} s without reuse, "
        f"{with_.seconds:.1f} s with reuse ({without.seconds / with_.seconds:.2f}x); "
        f"fresh actions {without.sampling:.1f} s and {with_.sampling:.1f} s; "
        f"largest stat difference {diff:.3g}",
        flush=True,
    )
    return {
        "without_reuse_s": without.seconds,
        "with_reuse_s": with_.seconds,
        "without_reuse_sampling_s": without.sampling,
        "with_reuse_sampling_s": with_.sampling,
        "max_stat_difference": diff,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, float] | None:
    args = parse_args(argv)
    cfg = load_config([*MODELS[args.model], "env=twenty_questions", "env.conversation=true"])
    policy = Policy.from_config(cfg.model, device="cpu")
    eps = collect(policy, cfg.env, args.episodes)
    algo = build_algorithm("archer", dict(cfg.algorithm), policy, seed=0)
    if not isinstance(algo, Archer):
        raise TypeError(f"expected an Archer, built {type(algo).__name__}")
    algo.core.add_episodes(eps)
    if args.critic_phase:
        steps = args.critic_steps if args.critic_steps is not None else algo.config.critic_epochs
        if args.pool_only:
            if args.action_samples < 1:
                raise SystemExit("--pool-only needs --action-samples K >= 1")
            run = time_critic_phase(algo, steps, True, args.action_samples)
            print(
                f"critic phase, {steps} steps, store and a pool of {args.action_samples}: "
                f"{run.seconds:.1f} s, {run.cpu:.1f} CPU s, fresh actions {run.sampling:.1f} s{run.note}",
                flush=True,
            )
            return {"with_pool_s": run.seconds, "with_pool_sampling_s": run.sampling, "with_pool_decoded": run.decoded}
        return compare_critic_phase(algo, steps, args.repeats, args.action_samples)
    profile_pieces(algo)
    return None


if __name__ == "__main__":
    main()
