"""Learning actually improves a metric (a short PPO run on GuessTheNumber)."""

import pytest

from agentrl.config import load_config
from agentrl.trainer import Trainer

SMALL_GAME = ["env=guess_the_number", "env.kwargs.high=4", "+env.kwargs.max_turns=2"]


def test_ppo_improves_guess_the_number(tiny_overrides):
    # A weak BC start (2 epochs on a random guesser) still emits unparseable guesses about a
    # quarter of the time; PPO must cut those and raise the success rate on the fixed eval
    # seeds (sampled with a fixed RNG seed; 128 episodes keep the estimate's noise ~0.04).
    cfg = load_config([
        *tiny_overrides, *SMALL_GAME, "algorithm=ppo", "algorithm.lr=1e-3", "iterations=16",
        "rollout.episodes_per_iter=64", "eval.episodes=128", "eval.every=0", "eval.greedy=false",
        "warm_start.enabled=true", "warm_start.policy=random", "warm_start.episodes=100",
        "warm_start.epochs=2", "warm_start.lr=3e-3",
    ])
    trainer = Trainer(cfg, console=False)
    summary = trainer.run()
    before, after = summary["initial_eval_sample_success"], summary["final_eval_sample_success"]
    rows = [r for r in _rows(summary["run_dir"]) if "eval_sample/invalid_actions" in r]
    invalid_before, invalid_after = rows[0]["eval_sample/invalid_actions"], rows[-1]["eval_sample/invalid_actions"]
    print(f"sampled eval success {before:.3f} -> {after:.3f}; invalid {invalid_before:.3f} -> {invalid_after:.3f}")
    # Measured: 0.312 -> 0.383, invalid cut by more than half (earlier machine); 0.312 -> 0.406,
    # invalid 0.277 -> 0.140, a 49% cut (2026-12-06, another CPU: float paths differ across
    # machines, so the bounds keep a margin below what one machine measures).
    assert invalid_after < 0.6 * invalid_before
    assert after > before + 0.07


def _rows(run_dir):
    from pathlib import Path

    from agentrl.metrics import read_metrics

    return read_metrics(Path(run_dir) / "metrics.jsonl")


@pytest.mark.parametrize(
    "algorithm", ["grpo", pytest.param("rloo", marks=pytest.mark.slow)]  # ~35 s each
)
def test_group_relative_methods_improve_guess_the_number(tiny_overrides, algorithm):
    # The PPO test's game and start; 8 targets a step, each played by a group of 8.
    cfg = load_config([
        *tiny_overrides, *SMALL_GAME, f"algorithm={algorithm}", "algorithm.lr=1e-3",
        "algorithm.group_size=8", "iterations=16", "rollout.episodes_per_iter=64",
        "eval.episodes=128", "eval.every=0", "eval.greedy=false",
        "warm_start.enabled=true", "warm_start.policy=random", "warm_start.episodes=100",
        "warm_start.epochs=2", "warm_start.lr=3e-3",
    ])
    summary = Trainer(cfg, console=False).run()
    before, after = summary["initial_eval_sample_success"], summary["final_eval_sample_success"]
    rows = [r for r in _rows(summary["run_dir"]) if "eval_sample/invalid_actions" in r]
    invalid_before, invalid_after = rows[0]["eval_sample/invalid_actions"], rows[-1]["eval_sample/invalid_actions"]
    print(f"{algorithm}: sampled eval success {before:.3f} -> {after:.3f}; invalid {invalid_before:.3f} -> {invalid_after:.3f}")
    # measured: grpo 0.312 -> 0.391, rloo 0.312 -> 0.367 (ppo's test: 0.312 -> 0.383)
    assert invalid_after < 0.5 * invalid_before
    assert after > before + 0.04
