"""TextCraft: the tech tree's rules, task specs, and the scripted players."""

import gymnasium as gym
import pytest

import agentrl.envs
from agentrl.envs import make_scripted, run_scripted_episode
from agentrl.envs.textcraft import (
    IMPOSSIBLE,
    RECIPES,
    describe_task,
    parse_command,
    parse_state,
    parse_task,
    task_list,
)


def make():
    return gym.make(agentrl.envs.ENV_ALIASES["textcraft"])


def test_task_list_and_descriptions():
    tasks = task_list()
    assert len(tasks) == (len(RECIPES) + len(IMPOSSIBLE)) * 5 == 105
    assert describe_task({"achievement": "collect_wood", "count": 3}) == "collect 3 wood"
    assert describe_task({"achievement": "make_wood_pickaxe", "count": 1}) == "make wood pickaxe"
    assert parse_command("I will Make Wood Pickaxe now") == "make_wood_pickaxe"
    assert parse_command("collect wood then make table") == "collect_wood"
    assert parse_command("collect ruby") is None and parse_command("dance") is None


def test_tech_tree_rules_by_hand():
    env = make()
    obs, info = env.reset(seed=0, options={"task": {"achievement": "collect_stone", "count": 2}})
    assert (
        parse_task(obs) == ("collect_stone", 2)
        and info["task_id"] == "achievement=collect_stone,count=2"
    )
    obs, r, term, _, info = env.step("collect stone")  # needs a wood pickaxe: no effect
    assert (r, term, info["invalid_action"]) == (0.0, False, False)
    assert "first make wood pickaxe" in obs
    obs, r, _, _, info = env.step("hello")
    assert (r, info["invalid_action"]) == (-0.1, True)
    for action in ("collect wood", "collect wood", "place table", "make wood pickaxe"):
        obs, r, term, _, _ = env.step(action)
    assert parse_state(obs) == ({"wood_pickaxe": 1}, {"table"})  # wood used up, tool kept
    obs, r, term, _, info = env.step("collect stone")
    assert (r, term) == (0.0, False)
    obs, r, term, _, info = env.step("collect stone")
    assert (r, term, info["success"]) == (1.0, True, True)


def test_good_player_solves_every_possible_task_and_no_impossible_one():
    env, good = make(), make_scripted("textcraft", "good")
    for task in task_list():
        ep = run_scripted_episode(env, good, seed=0, task=task)
        assert ep.success == (task["achievement"] in RECIPES), task


def test_random_player_finds_easy_tasks_not_deep_ones():
    env, rand = make(), make_scripted("textcraft", "random")
    wins = {
        a: sum(
            run_scripted_episode(env, rand, seed=s, task={"achievement": a, "count": 1}).success
            for s in range(10)
        )
        for a in ("collect_wood", "make_iron_pickaxe", "collect_ruby")
    }
    assert (
        wins["collect_wood"] >= 8 and wins["make_iron_pickaxe"] <= 2 and wins["collect_ruby"] == 0
    )


def test_bad_task_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match="collect_wood"):
        make().reset(seed=0, options={"task": {"achievement": "fly"}})
