"""Adapters: TextWorld, TextArena and BabyAI/MiniGrid games played to the end offline."""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import pytest

import agentrl.envs  # noqa: F401  (registers the adapter ids)
from agentrl.envs import make_scripted, run_scripted_episode
from agentrl.envs.adapters import ADAPTER_ENVS, TEXTARENA_GAMES, require
from agentrl.envs.adapters import policies as ap
from agentrl.envs.adapters.minigrid_env import ACTION_NAMES, describe_view, parse_action


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "textworld", None)  # makes `import textworld` fail
    with pytest.raises(ImportError, match=r"pip install 'agentrl\[textworld\]'"):
        require("textworld", "textworld")
    with pytest.raises(ImportError, match=r"agentrl\[textworld\]"):
        gym.make("agentrl/TextWorld-v0")
    monkeypatch.setitem(sys.modules, "textarena", None)
    with pytest.raises(ImportError, match=r"agentrl\[textarena\]"):
        gym.make("agentrl/TextArena-Sokoban-v0")


def test_adapter_ids_are_registered():
    assert len(ADAPTER_ENVS) == 7
    for env_id in ADAPTER_ENVS:
        assert env_id in gym.registry
    with pytest.raises(ValueError, match="offline single-player games"):
        gym.make("agentrl/TextArena-GuessTheNumber-v0", game="Wordle-v0")


# --- TextWorld ---------------------------------------------------------------------------------


def test_textworld_generated_game_played_to_a_win_and_scored(tmp_path):
    env = gym.make("agentrl/TextWorld-v0", games_dir=str(tmp_path), quest_length=3)
    obs, info = env.reset(seed=0, options={"task": {"game_seed": 7}})
    assert "Admissible commands:" in obs and list(tmp_path.glob("*.z8"))
    walkthrough, max_score = info["walkthrough"], info["max_score"]
    assert len(walkthrough) >= 2 and max_score >= 1
    total, steps = 0.0, 0
    for command in walkthrough:
        assert command in ap.admissible(obs)  # the walkthrough only uses listed commands
        obs, reward, terminated, truncated, info = env.step(command)
        total, steps = total + reward, steps + 1
        assert not info["invalid_action"]
        if terminated:
            break
    assert terminated and info["success"] and steps == len(walkthrough)
    assert total == info["score"] == max_score  # the game's own score is the return
    # same seed -> same game (cached file), and a wrong command is invalid, not a crash
    obs2, info2 = env.reset(seed=1, options={"task": {"game_seed": 7}})
    assert info2["walkthrough"] == walkthrough
    obs3, r, term, _, info3 = env.step("fly to the moon")
    assert info3["invalid_action"] and r == 0.0 and not term and obs3.strip()


def test_textworld_random_policy_plays_to_the_end(tmp_path):
    env = gym.make("agentrl/TextWorld-v0", games_dir=str(tmp_path), max_turns=15)
    ep = run_scripted_episode(env, make_scripted("agentrl/TextWorld-v0", "random"), seed=3)
    assert ep.turns[-1].terminated or ep.turns[-1].truncated
    assert ep.num_turns <= 15 and not any(t.info["invalid_action"] for t in ep.turns)


# --- TextArena ---------------------------------------------------------------------------------


@pytest.mark.parametrize("game", TEXTARENA_GAMES)
def test_textarena_good_policy_wins(game):
    env_id = f"agentrl/TextArena-{game}-v0"
    wins = []
    for seed in range(3):
        ep = run_scripted_episode(gym.make(env_id), make_scripted(env_id, "good"), seed=seed)
        last = ep.turns[-1]
        assert last.terminated and "reason" in last.info  # the game itself ended it
        wins.append(ep.success and ep.total_reward == 1.0)
        assert not any(t.info["invalid_action"] for t in ep.turns)
    assert all(wins), game


@pytest.mark.parametrize("game", TEXTARENA_GAMES)
def test_textarena_random_policy_plays_to_the_end(game):
    env_id = f"agentrl/TextArena-{game}-v0"
    ep = run_scripted_episode(gym.make(env_id), make_scripted(env_id, "random"), seed=0)
    assert ep.turns[-1].terminated and ep.turns[-1].info["reason"]
    assert set("".join(t.observation for t in ep.turns)) <= set(__import__("string").printable)


def test_textarena_invalid_moves_follow_the_game_rule():
    env = gym.make("agentrl/TextArena-TowerOfHanoi-v0")
    env.reset(seed=0)
    obs, r, term, _, info = env.step("move the small disk please")
    assert info["invalid_action"] and not term and r == 0.0
    obs, r, term, _, info = env.step("[B C]")  # B is empty: a second invalid move in a row
    assert obs.splitlines()[-1].startswith("[GAME]") and "[Player] [B C]" in obs
    assert info["invalid_action"] and term and not info["success"] and r == 0.0


def test_textarena_policies_on_hand_made_text():
    board = "Current Board: \nA: [3]\nB: [2, 1]\nC: []\n."
    assert ap.hanoi_board(board) == {"A": [3], "B": [2, 1], "C": []}
    assert ap.hanoi_next_move(ap.hanoi_board(board), "C") == ("A", "C")
    assert ap.hanoi_next_move({"A": [], "B": [], "C": [3, 2, 1]}, "C") is None
    assert ap.hanoi_next_move({"A": [3, 2, 1], "B": [], "C": []}, "C") == ("A", "C")
    assert ap.pegs((1, 2, 3, 4), (1, 3, 2, 5)) == (1, 2)
    mm = ap.MastermindGood()
    mm.reset({}, np.random.default_rng(0))
    guess = mm.act(
        "4 digits long, each digit from 1 to 6, with no duplicates\n"
        "[GAME] Submitted [1 2 3 4]. Feedback: 4 black peg(s), 0 white peg(s)."
    )
    assert guess == "[1 2 3 4]"
    board = "Current Board:\n\n# # # # #\n# P X O #\n# # # # #\n"
    assert ap.sokoban_plan(board) == ["right"]  # push the box onto the goal
    assert ap.sokoban_plan("Current Board:\n\n# # # # #\n# X P O #\n# # # # #\n") == []


# --- BabyAI / MiniGrid -------------------------------------------------------------------------


def test_babyai_bot_plays_a_level_to_a_win_through_text_actions():
    from minigrid.utils.baby_ai_bot import BabyAIBot

    for level_seed in range(3):
        env = gym.make("agentrl/BabyAI-v0", env_name="BabyAI-GoToLocal-v0")
        obs, info = env.reset(seed=0, options={"task": {"level_seed": level_seed}})
        assert obs.startswith(f"Mission: {info['mission']}\n") and "You see:" in obs
        bot = BabyAIBot(env.unwrapped.level.unwrapped)
        done, total = False, 0.0
        while not done:
            action = ACTION_NAMES[int(bot.replan())]
            obs, reward, terminated, truncated, info = env.step(action)
            total, done = total + reward, terminated or truncated
        assert terminated and info["success"] and 0.0 < total <= 1.0


def test_babyai_text_actions_and_view():
    assert parse_action("I will Turn Left now") == 0 and parse_action("go forward") == 2
    assert parse_action("pick up the key") == 3 and parse_action("open the door") == 5
    assert parse_action("dance") is None
    image = np.zeros((7, 7, 3), dtype=np.uint8)
    image[:, :, 0] = 1  # empty floor everywhere
    image[3, 4] = (6, 0, 0)  # a red ball two steps ahead
    image[1, 6] = (5, 4, 0)  # a yellow key two steps to the left
    image[3, 5] = (2, 5, 0)  # a wall right in front
    lines = describe_view(image, "a blue box")
    assert lines == [
        "You see: a red ball, 2 steps forward; a yellow key, 2 steps left.",
        "In front of you: a wall.",
        "You are carrying: a blue box.",
    ]
    env = gym.make("agentrl/BabyAI-v0")
    obs, _ = env.reset(seed=0)
    obs2, r, term, _, info = env.step("sing a song")
    assert info["invalid_action"] and r == -0.1 and not term
    assert obs2.splitlines()[:-1] == obs.splitlines()[:-1]  # nothing moved
    ep = run_scripted_episode(env, make_scripted("agentrl/BabyAI-v0", "random"), seed=1)
    assert ep.turns[-1].terminated or ep.turns[-1].truncated  # played to the level's end
    good = [
        run_scripted_episode(env, make_scripted("agentrl/BabyAI-v0", "good"), seed=s)
        for s in range(10)
    ]
    assert np.mean([e.success for e in good]) >= 0.9  # the text alone is enough to find the ball
