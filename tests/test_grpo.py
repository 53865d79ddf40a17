"""GRPO / RLOO: hand-computed advantages and KL, grouped rollouts, learning on a small game."""

from __future__ import annotations

import math

import pytest
import torch

from agentrl.algorithms.grpo.losses import (
    episode_advantages,
    group_index,
    kl_penalty,
    turn_advantages,
)
from agentrl.config import ConfigError, load_config
from agentrl.trainer import Trainer
from agentrl.types import Episode, Turn


def _ep(task: dict, seed: int, rewards: list[float]) -> Episode:
    turns = [
        Turn("o", "a", [1], [2], [-0.5], r, terminated=i == len(rewards) - 1, truncated=False)
        for i, r in enumerate(rewards)
    ]
    return Episode(env_id="x", task=task, seed=seed, turns=turns)


def test_groups_are_episodes_of_one_task_and_seed() -> None:
    eps = [_ep({"w": 1}, 5, [0]), _ep({"w": 2}, 5, [0]), _ep({"w": 1}, 5, [1]), _ep({"w": 1}, 6, [0])]
    assert group_index(eps).tolist() == [0, 1, 0, 2]


def test_episode_advantages_by_hand() -> None:
    returns = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 3.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 2])
    std = math.sqrt((4 * 0.25) / 3)  # unbiased, group 0
    grpo = episode_advantages(returns, groups, "grpo")
    assert torch.allclose(grpo[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-6))
    assert grpo[4:].tolist() == [0.0, 0.0, 0.0]  # equal returns; a group of one
    assert torch.allclose(episode_advantages(returns, groups, "grpo", scale_by_std=False)[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]))
    rloo = episode_advantages(returns, groups, "rloo")
    # R_i - mean of the other three: 1 - 1/3, 0 - 2/3, ...
    assert torch.allclose(rloo[:4], torch.tensor([2 / 3, -2 / 3, -2 / 3, 2 / 3]))
    assert rloo[4:].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="valid: grpo, rloo"):
        episode_advantages(returns, groups, "gae")


def test_turn_advantages_compare_turns_at_the_same_index_of_a_group() -> None:
    # group 0: episodes with returns-to-go [3, 1] and [1]; group 1: [5]
    rtg = torch.tensor([3.0, 1.0, 1.0, 5.0])
    groups = torch.tensor([0, 0, 0, 1])
    turn = torch.tensor([0, 1, 0, 0])
    adv = turn_advantages(rtg, groups, turn, scale_by_std=False)
    assert adv.tolist() == [1.0, 0.0, -1.0, 0.0]  # turn 1 and group 1 have no peers
    std = math.sqrt(2.0)  # peers 3 and 1: unbiased std
    assert torch.allclose(turn_advantages(rtg, groups, turn)[[0, 2]], torch.tensor([1.0, -1.0]) / (std + 1e-6))


def test_kl_penalty_by_hand() -> None:
    logp = torch.tensor([[-1.0, -2.0, -5.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    assert kl_penalty(logp, logp.clone(), mask).item() == 0.0
    ref = torch.tensor([[-1.5, -2.0, 0.0]])
    r = -0.5
    assert kl_penalty(logp, ref, mask).item() == pytest.approx((math.exp(r) - r - 1) / 2)


def test_trainer_plays_each_task_group_size_times(tiny_overrides, tmp_path, monkeypatch) -> None:
    from agentrl.algorithms.grpo import GRPO

    seen: list[list[Episode]] = []
    original = GRPO.update

    def spy(self, episodes):
        seen.append(list(episodes))
        return original(self, episodes)

    monkeypatch.setattr(GRPO, "update", spy)
    cfg = load_config([
        *tiny_overrides, "env=guess_the_number", "algorithm=grpo", "algorithm.group_size=4",
        "rollout.episodes_per_iter=8", "iterations=1", "eval.every=0", "eval.episodes=2",
        f"run_dir={tmp_path}",
    ])
    Trainer(cfg, console=False).run()
    (eps,) = seen
    keys = [(e.seed, e.task["target"]) for e in eps]
    assert len(set(keys)) == 2 and all(keys.count(k) == 4 for k in keys)
    assert keys[:4] == [keys[0]] * 4
    with pytest.raises(ConfigError, match="episodes_per_iter=6 must be a multiple of algorithm.group_size=4"):
        Trainer(load_config([*tiny_overrides, "algorithm=grpo", "algorithm.group_size=4", "rollout.episodes_per_iter=6"]), console=False)
    with pytest.raises(ConfigError, match="group_size must be >= 2"):
        Trainer(load_config([*tiny_overrides, "algorithm=grpo", "algorithm.group_size=1"]), console=False)


def test_kl_reference_of_a_lora_policy_is_the_base_model() -> None:
    from agentrl.algorithm import build_algorithm
    from agentrl.policy import ModelConfig, Policy

    policy = Policy.from_config(ModelConfig(name="tiny", lora=True, lora_r=4), device="cpu")
    seq, spans = [[5, 6, 7, 8, 9]], [(0, 2, 5)]
    base = policy.reference_logprobs(seq, spans)
    with torch.no_grad():
        for p in policy.trainable_parameters():
            p.add_(0.5)  # move the adapter
    moved = policy.span_logprobs(seq, spans)[1]
    assert torch.allclose(policy.reference_logprobs(seq, spans), base)
    assert not torch.allclose(moved, base)
    algo = build_algorithm("grpo", {"kl_coef": 0.1, "group_size": 2}, policy, seed=0)
    assert algo.reference is None  # LoRA: the adapter switched off, no copy
    with pytest.raises(ValueError, match="needs a LoRA policy"):
        Policy.from_config(ModelConfig(name="tiny"), device="cpu").reference_logprobs(seq, spans)
