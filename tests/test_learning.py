"""Learning actually improves a metric (short runs on GuessTheNumber)."""

from agentrl.config import load_config
from agentrl.trainer import Trainer

SMALL_GAME = ["env=guess_the_number", "env.kwargs.high=4", "+env.kwargs.max_turns=2"]


def test_ppo_improves_guess_the_number(tiny_overrides):
    # A weak BC start (2 epochs on a random guesser) still emits junk half the time;
    # PPO must raise the success rate on the fixed eval seeds (sampled, fixed RNG seed).
    cfg = load_config([
        *tiny_overrides, *SMALL_GAME, "algorithm=ppo", "algorithm.lr=1e-3", "iterations=12",
        "rollout.episodes_per_iter=64", "eval.episodes=64", "eval.every=0",
        "warm_start.enabled=true", "warm_start.policy=random", "warm_start.episodes=100",
        "warm_start.epochs=2", "warm_start.lr=3e-3",
    ])
    summary = Trainer(cfg, console=False).run()
    before, after = summary["initial_eval_sample_success"], summary["final_eval_sample_success"]
    print(f"sampled eval success {before:.3f} -> {after:.3f}")
    assert after > before + 0.15, (before, after)
