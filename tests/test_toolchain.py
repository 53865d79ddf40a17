"""ToolChain env: modules, plan parsing, scoring, held-out splits, scripted players.

(Gymnasium's ``check_env``, step-after-done and scripted determinism run on this env too,
through the parametrised tests of tests/test_envs.py.)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from agentrl.envs import make_scripted, resolve_env_id, run_scripted_episode
from agentrl.envs import toolchain as tc

TC = "agentrl/ToolChain-v0"


def _env(**kwargs):
    return gym.make(TC, **kwargs).unwrapped


def test_registered_with_alias():
    assert resolve_env_id("toolchain") == TC
    assert 10 <= len(tc.MODULES) <= 20


def test_modules_by_hand():
    assert tc.run_chain(["reverse", "sum"], [3, 1, 2]) == 6
    assert tc.run_chain(["dedup", "double"], [1, 1, 2]) == [2, 4]
    assert tc.run_chain(["novowel", "upper", "length"], "candle") == 4
    assert tc.run_chain(["sum", "digits", "max"], [9, 9, 9]) == 7  # 27 -> [2, 7] -> 7
    assert tc.run_chain(["evens", "head"], [1, 3]) == 0  # total on empty lists
    assert tc.run_chain(["upper"], [1, 2]) is None  # a module that rejects the input type


@pytest.mark.parametrize(
    ("text", "plan"),
    [
        ("reverse sum", ["reverse", "sum"]),
        ("  reverse, sum\n", ["reverse", "sum"]),
        ("reverse -> sum | max", ["reverse", "sum", "max"]),
        ("head", ["head"]),
        ("", None),
        ("   ", None),
        ("reverse bogus", None),
        ("Reverse", None),
        ("sort sort sort sort sort", None),  # more than max_modules
        ("\x00\x01 sum", None),
        ("sum" * 2000, None),
    ],
)
def test_parse_plan(text, plan):
    assert tc.parse_plan(text) == plan


def test_scoring_is_the_share_of_examples_solved():
    env = _env()
    env.reset(seed=0, options={"task": {"chain": "sort", "seed": 1}})
    env.examples = [([1, 2, 3], [1, 2, 3]), ([3, 1], [1, 3]), ([2, 2, 1], [1, 2, 2])]
    assert env.score(["sort"]) == 1.0
    assert env.score(["dedup"]) == pytest.approx(1 / 3)  # only [1, 2, 3] is unchanged
    assert env.score(["reverse"]) == pytest.approx(2 / 3)  # [3, 1] and [2, 2, 1] reversed
    assert env.score(["upper"]) == 0.0  # wrong type: examples fail, the plan is still valid
    _, reward, terminated, truncated, info = env.step("reverse")
    assert reward == pytest.approx(2 / 3) and terminated and not truncated
    assert info == {
        "success": False,
        "invalid_action": False,
        "score": pytest.approx(2 / 3),
        "message": "Your plan solves 2 of 3 examples (score 0.67).",
        "task_id": "chain=sort,seed=1",
        "turn": 1,
    }


@pytest.mark.parametrize("action", ["", "reverse bogus", "sum sum sum sum sum", "\n\n", "é" * 50])
def test_invalid_plan_gets_minus_one_and_never_crashes(action):
    env = _env()
    env.reset(seed=3)
    obs, reward, terminated, _, info = env.step(action)
    assert reward == -1.0 and terminated and info["invalid_action"] and not info["success"]
    assert obs == ""


def test_the_task_chain_solves_its_task_and_observation_is_deterministic():
    env = _env()
    obs, info = env.reset(seed=0, options={"task": {"chain": "reverse sum", "seed": 5}})
    assert obs.startswith("Task: ") and obs.count(" => ") == 3 and info["chain_length"] == 2
    obs2, _ = _env().reset(seed=99, options={"task": {"chain": "reverse sum", "seed": 5}})
    assert obs2 == obs  # the task seed, not the reset seed, fixes the examples
    assert env.step("reverse sum")[1] == 1.0
    with pytest.raises(ValueError, match="module names"):
        _env().reset(seed=0, options={"task": {"chain": "fly away"}})


def test_splits_hold_out_module_combinations():
    train = set(tc.split_chains("train", 0))
    test = set(tc.split_chains("test", 0))
    assert train and test and not train & test
    assert train | test == set(tc.all_chains())
    assert all(len(c) >= 2 for c in test)
    assert {
        (m,) for m in tc.MODULE_NAMES if (m,) in tc.all_chains()
    } <= train  # every single module
    assert set(tc.split_chains("test", 1)) != test  # the split seed picks the held-out chains
    assert len(test) == pytest.approx(0.2 * sum(len(c) >= 2 for c in tc.all_chains()), abs=1)
    env = _env(split="test", max_chain=2)
    for seed in range(20):
        env.reset(seed=seed)
        assert env.chain in set(tc.split_chains("test", 0, 0.2, 1, 2))
    with pytest.raises(ValueError, match="valid splits"):
        _env(split="validation")


def test_small_task_set():
    env = _env(num_tasks=3)
    tasks = set()
    for s in range(40):
        env.reset(seed=s)
        tasks.add(env.task_id(env.task))
    assert len(tasks) == 3
    assert env.task_list(3) == _env(num_tasks=3).task_list(3)


@pytest.mark.parametrize("split", ["train", "test"])
def test_good_player_solves_every_task_and_beats_random(split):
    env = gym.make(TC, split=split)
    good, rand = make_scripted("toolchain", "good"), make_scripted("toolchain", "random")
    good_r = [run_scripted_episode(env, good, seed=s).total_reward for s in range(40)]
    rand_r = [run_scripted_episode(env, rand, seed=s).total_reward for s in range(40)]
    assert good_r == [1.0] * 40
    assert np.mean(rand_r) < 0.3


def test_good_player_falls_back_to_search_without_the_sentence():
    env = _env()
    obs, _ = env.reset(seed=0, options={"task": {"chain": "sort max", "seed": 2}})
    garbled = "Task: do something.\n" + obs.split("\n", 1)[1]
    policy = make_scripted(TC, "good")
    policy.reset({}, np.random.default_rng(0))
    plan = tc.parse_plan(policy.act(garbled))
    assert plan is not None and env.score(plan) == 1.0 and len(plan) <= 2


def test_multi_turn_shows_intermediate_results_and_scores_the_whole_plan():
    env = _env(multi_turn=True)
    obs, _ = env.reset(seed=0, options={"task": {"chain": "sort max", "seed": 2}})
    inputs = [tc._parse_value(x) for x, _ in tc.parse_observation(obs)[1]]
    assert obs.endswith("\nStep 1 of 2: " + tc.parse_observation(obs)[0][0] + ".")
    assert "\nNow: " + " ; ".join(repr(x) for x in inputs) + "\n" in obs
    obs, reward, terminated, truncated, info = env.step("sort")
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert "\nNow: " + " ; ".join(repr(sorted(x)) for x in inputs) + "\nStep 2 of 2: " in obs
    _, reward, terminated, truncated, info = env.step("max")
    assert reward == 1.0 and terminated and not truncated and info["success"]
    env.reset(seed=0, options={"task": {"chain": "sort max", "seed": 2}})
    assert "\nNow: error ; error" in env.step("upper")[0]  # a wrong type shows as an error
    assert env.step("max")[1] == 0.0
    env.reset(seed=0, options={"task": {"chain": "sort max", "seed": 2}})
    _, reward, terminated, _, info = env.step("sort sum")  # one module per turn
    assert reward == -1.0 and terminated and info["invalid_action"]


def test_good_player_multi_turn_solves_every_task():
    env = gym.make(TC, multi_turn=True, split="test")
    good = make_scripted(TC, "good")
    episodes = [run_scripted_episode(env, good, seed=s) for s in range(30)]
    assert all(
        e.total_reward == 1.0 and e.num_turns == len(e.task["chain"].split()) for e in episodes
    )


def test_multi_turn_and_subset_pass_check_env_and_bad_modules_are_named():
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(TC, multi_turn=True, modules=["sort", "sum", "max"]).unwrapped)
    env = _env(modules=["sort", "sum"], max_chain=2, split="all")
    assert set(env.chains) == {("sort",), ("sum",), ("sort", "sum")}
    with pytest.raises(ValueError, match="unknown modules.*valid.*reverse"):
        _env(modules=["sort", "fly"])
