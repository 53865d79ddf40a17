"""Where one ArCHer iteration's time goes with SmolLM2-135M-Instruct on conversations.

Times, on 8 TwentyQuestions conversations (``env.conversation=true``, the ``model=smollm2``
preset, ArCHer's default config): collecting the 8 sampled episodes, sampling the fresh actions
of one critic step (``batch_size`` replayed states, each a whole conversation prefix; each
conversation prefilled once, :meth:`~agentrl.policy.Policy.generate_shared`), one whole critic
step and one actor step; then the default update (``critic_epochs`` critic steps and
``actor_epochs`` actor steps) extrapolated from them. Numbers in docs/conversations.md. Usage::

    python benchmarks/archer_smollm2_profile.py
"""

from __future__ import annotations

import time

from agentrl.algorithm import build_algorithm
from agentrl.config import load_config
from agentrl.policy import Policy, SamplingConfig
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker


def main() -> None:
    cfg = load_config(["model=smollm2", "env=twenty_questions", "env.conversation=true"])
    policy = Policy.from_config(cfg.model, device="cpu")
    sampling = SamplingConfig(max_new_tokens=cfg.env.max_new_tokens, stop=tuple(cfg.env.stop))
    worker = RolloutWorker(cfg.env.id, cfg.env.kwargs, 8, sampling, policy=policy, conversation=True)
    t = time.perf_counter()
    eps = worker.collect([EpisodeJob(i, i) for i in range(8)], rng_seed=0)
    collect_s = time.perf_counter() - t
    ctx = [len(c) for e in eps for c in e.contexts()]
    print(
        f"collect 8 episodes: {collect_s:.1f} s, {sum(e.num_turns for e in eps)} turns, "
        f"contexts mean {sum(ctx) / len(ctx):.0f} max {max(ctx)} tokens",
        flush=True,
    )
    algo = build_algorithm("archer", dict(cfg.algorithm), policy, seed=0)
    algo.core.add_episodes(eps)
    batch = algo.core.buffer.sample(cfg.algorithm["batch_size"])
    t = time.perf_counter()
    algo.core.sample_actions(batch)
    print(f"fresh actions for one critic step ({len(batch)} states): {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    algo.core.step()
    step_s = time.perf_counter() - t
    steps = int(cfg.algorithm["critic_epochs"])
    print(f"one critic step: {step_s:.1f} s; {steps} steps: {steps * step_s / 60:.1f} min", flush=True)
    t = time.perf_counter()
    algo._actor_step(algo._actor_batch())
    actor_s = time.perf_counter() - t
    actor_steps = int(cfg.algorithm["actor_epochs"])
    print(
        f"one actor step (fresh actions, advantages, forward + backward): {actor_s:.1f} s; "
        f"update of {steps} critic + {actor_steps} actor steps: "
        f"{(steps * step_s + actor_steps * actor_s) / 60:.1f} min",
        flush=True,
    )


if __name__ == "__main__":
    main()
