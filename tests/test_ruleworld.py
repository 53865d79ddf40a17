"""RuleWorld: procedural worlds, the rules by hand, the planner and the scripted players."""

import gymnasium as gym
import numpy as np
import pytest

from agentrl.envs import make_scripted, run_scripted_episode
from agentrl.envs.ruleworld import generate_world, parse_observation, parse_touch, plan, task_list


def test_worlds_are_pure_functions_of_the_spec_and_depth_is_the_chain_length():
    assert generate_world(3, 2, 2) == generate_world(3, 2, 2) != generate_world(4, 2, 2)
    for depth in (1, 3, 5):
        objects, rules, goal = generate_world(0, depth, 3)
        assert len(plan(objects, rules, goal)) == depth and goal not in objects
    with pytest.raises(ValueError, match="depth"):
        generate_world(0, 0, 1)
    assert len(task_list()) == 100


def test_rules_by_hand():
    env = gym.make("agentrl/RuleWorld-v0")
    obs, info = env.reset(seed=0, options={"task": {"world_seed": 1, "depth": 1, "distractors": 0}})
    objects, rules, goal = parse_observation(obs)
    (a, b, product), = rules  # fmt: skip
    assert (
        product == goal
        and sorted(objects) == sorted([a, b])
        and info["task_id"].startswith("depth=1")
    )
    obs, r, term, _, info = env.step("dance")
    assert (r, term, info["invalid_action"]) == (-0.1, False, True)
    obs, r, term, _, info = env.step(f"touch {b} with {a}")  # either order
    assert (r, term, info["success"]) == (1.0, True, True) and parse_observation(obs)[0] == [goal]
    assert parse_touch("combine the Red Ball and the blue key!") == ("red ball", "blue key")


def test_good_player_solves_every_depth_random_fails_deep_worlds():
    env = gym.make("agentrl/RuleWorld-v0")
    for kind, depth, lo, hi in (
        ("good", 1, 1.0, 1.0),
        ("good", 5, 1.0, 1.0),
        ("random", 1, 0.2, 0.8),
        ("random", 5, 0.0, 0.05),
    ):
        policy = make_scripted("ruleworld", kind)
        wins = [
            run_scripted_episode(
                env, policy, s, {"world_seed": s, "depth": depth, "distractors": 2}
            ).success
            for s in range(20)
        ]
        assert lo <= np.mean(wins) <= hi, (kind, depth)
