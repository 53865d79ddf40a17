"""The greedy first-action check of benchmarks/curricula_ruleworld.py (``optimal_first``)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from agentrl.envs.ruleworld import RuleWorldEnv, RuleWorldGood, parse_touch, room_actions

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.curricula_ruleworld import held_out, optimal_first  # noqa: E402  (ROOT on path)


def test_depth1_world_by_hand() -> None:
    task = {"world_seed": 10_000, "depth": 1, "distractors": 2}
    env = RuleWorldEnv(depth=1)
    env.reset(seed=0, options={"task": dict(task)})
    (maker,) = [(a, b) for a, b, c in env.rules if c == env.goal]
    good, n = optimal_first(task)
    assert good == {maker, maker[::-1]}  # the goal's rule, in both orders
    assert n == len(room_actions(env.objects))


def test_good_player_is_always_optimal_and_random_is_not() -> None:
    env = RuleWorldEnv(depth=[1, 2, 3, 4])
    player = RuleWorldGood()
    chance = []
    for task in held_out(5):
        obs, _ = env.reset(seed=0, options={"task": dict(task)})
        player.reset(task, np.random.default_rng(0))
        good, n = optimal_first(task)
        assert parse_touch(player.act(obs)) in good
        chance.append(len(good) / n)
    assert 0.05 < float(np.mean(chance)) < 0.5  # most room actions are not a plan's first step
