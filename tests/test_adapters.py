"""Adapters: TextWorld, TextArena and BabyAI/MiniGrid games played to the end offline."""

from __future__ import annotations

import shutil
import socket
import sys
import urllib.request
import warnings
from enum import Enum

import gymnasium as gym
import numpy as np
import pytest
from packaging.version import Version

import agentrl.envs  # noqa: F401  (registers the adapter ids)
from agentrl.envs import make_scripted, run_scripted_episode
from agentrl.envs.adapters import ADAPTER_ENVS, TEXTARENA_GAMES, require
from agentrl.envs.adapters import policies as ap
from agentrl.envs.adapters.minigrid_env import ACTION_NAMES, describe_view, parse_action
from agentrl.envs.adapters.offline import NetworkBlocked, no_network
from agentrl.envs.adapters.textarena_env import message_parts
from agentrl.envs.adapters.textarena_games import (
    TEXTARENA_OFFLINE_GAMES,
    TextArenaGameError,
    final_reward,
    game_ids,
)
from agentrl.envs.adapters.textworld_env import check_game_file


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
    assert len(ADAPTER_ENVS) == 8
    for env_id in ADAPTER_ENVS:
        assert env_id in gym.registry
    assert "agentrl/TextArena-v0" in ADAPTER_ENVS  # any single-player game, game=...


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


QUEST = ["take apple", "go east", "put apple on table"]


class Fixed:
    """A scripted policy whose move is a fixed function of the observation."""

    def __init__(self, act):
        self.act = act

    def reset(self, task, rng):
        pass


@pytest.fixture(scope="module")
def own_game(tmp_path_factory):
    """A game of the user's own, built with TextWorld's API (what tw-make does) into a folder."""
    textworld = pytest.importorskip("textworld")
    maker = textworld.GameMaker()
    kitchen, garden = maker.new_room("Kitchen"), maker.new_room("Garden")
    maker.connect(kitchen.east, garden.west)
    maker.set_player(kitchen)
    kitchen.add(maker.new(type="o", name="apple"))
    garden.add(maker.new(type="s", name="table"))
    with warnings.catch_warnings():  # jericho's note on the quest-recording game it runs
        warnings.simplefilter("ignore")
        maker.set_quest_from_commands(QUEST)
        path = maker.compile(str(tmp_path_factory.mktemp("own") / "orchard.z8"))
    return textworld, path


def test_textworld_plays_a_game_file_by_path_to_a_win(own_game):
    _, path = own_game
    env = gym.make("agentrl/TextWorld-v0", game_file=path)
    obs, info = env.reset(seed=0)  # the default task is the file
    assert info["game_file"] == path and env.unwrapped.task == {"game_file": path}
    assert info["walkthrough"] == QUEST and info["max_score"] == 1
    assert "Kitchen" in obs and "take apple" in ap.admissible(obs)
    for turn, command in enumerate(QUEST, 1):
        obs, reward, terminated, truncated, info = env.step(command)
        assert not info["invalid_action"] and terminated == (turn == len(QUEST))
    assert info["success"] and reward == 1.0 and info["score"] == 1 and not truncated
    # a fixed policy that never solves it is truncated at max_turns, without success
    env = gym.make("agentrl/TextWorld-v0", game_file=path, max_turns=4)
    ep = run_scripted_episode(env, Fixed(lambda o: "go west" if "Garden" in o else "look"), seed=0)
    assert ep.turns[-1].truncated and not ep.success and ep.num_turns == 4


def test_textworld_game_file_as_a_task_and_without_textworld_metadata(own_game, tmp_path):
    textworld, path = own_game
    env = gym.make("agentrl/TextWorld-v0", games_dir=str(tmp_path))  # a generated-games env
    obs, info = env.reset(seed=0, options={"task": {"game_file": path}})
    assert info["walkthrough"] == QUEST
    # the same story file without its .json: a Z-machine game Jericho does not know, so
    # only its text (no score, no admissible list, no end): played until max_turns
    bare = tmp_path / "bare.z8"
    shutil.copy(path, bare)
    env = gym.make("agentrl/TextWorld-v0", game_file=str(bare), max_turns=3)
    obs, info = env.reset(seed=0)
    assert info["walkthrough"] == [] and obs.strip() and "Admissible commands" not in obs
    for command in QUEST:
        obs, reward, terminated, truncated, info = env.step(command)
        assert not info["invalid_action"] and reward == 0.0
    assert "table" in obs.lower() and truncated and not terminated and not info["success"]
    with pytest.raises(ValueError, match="'game_seed' or 'game_file'"):
        env.reset(options={"task": {"level": 1}})


def test_textworld_game_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.z8"):
        gym.make("agentrl/TextWorld-v0", game_file=str(tmp_path / "nowhere.z8"))
    (tmp_path / "notes.txt").write_text("not a game")
    with pytest.raises(ValueError, match=r"'\.txt'.*valid extensions: \['\.z1'.*'\.z8', '\.ulx'\]"):
        gym.make("agentrl/TextWorld-v0", game_file=str(tmp_path / "notes.txt"))
    (tmp_path / "junk.z5").write_bytes(bytes([200]) + bytes(100))
    with pytest.raises(ValueError, match="junk.z5.*version byte 200"):
        gym.make("agentrl/TextWorld-v0", game_file=str(tmp_path / "junk.z5"))
    (tmp_path / "short.z8").write_bytes(bytes([8]) + bytes(63))
    (tmp_path / "short.z8").write_bytes(bytes([8]) + bytes(25) + bytes([0, 100]) + bytes(36))
    with pytest.raises(ValueError, match="64 bytes, shorter than the 800 its header states"):
        check_game_file(tmp_path / "short.z8")
    (tmp_path / "old.ulx").write_bytes(b"Glul" + bytes(60))
    textworld = pytest.importorskip("textworld")
    if Version(textworld.__version__) >= Version("1.7"):  # Glulx support removed in 1.7
        with pytest.raises(ValueError, match=r"cannot load the game file .*old\.ulx.*Glulx"):
            gym.make("agentrl/TextWorld-v0", game_file=str(tmp_path / "old.ulx"))


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


def test_textarena_any_offline_single_player_game_plays_to_the_end():
    assert "Bandit" not in TEXTARENA_GAMES and "Blackjack" not in TEXTARENA_GAMES
    # Bandit: 20 presses, then the 21st names the best button; Blackjack: 5 hands
    for game, move, turns in (("Bandit-v0", "[red]", 21), ("Blackjack-v0", "[Stand]", 5)):
        env = gym.make("agentrl/TextArena-v0", game=game)
        obs, info = env.reset(seed=0)
        assert info["game"] == game and obs.startswith("[GAME] ")
        for turn in range(1, turns + 1):
            obs, reward, terminated, truncated, info = env.step(move)
            assert not info["invalid_action"] and terminated == (turn == turns), (game, turn)
        assert info["reason"] and 0.0 <= reward <= 1.0 and info["success"] == (reward == 1.0)
        assert f"[Player] {move}" in obs
    env = gym.make("agentrl/TextArena-v0", game="Bandit-v0-raw", max_turns=3)  # -raw accepted
    ep = run_scripted_episode(env, Fixed(lambda obs: "[blue]"), seed=1)
    assert ep.turns[-1].truncated and ep.num_turns == 3


def test_textarena_refuses_unknown_and_multi_player_games_with_the_reason():
    with pytest.raises(TextArenaGameError, match=r"unknown TextArena game 'Sokoban-v9' \(did "
                       r"you mean \['Sokoban-v0'.*\]\?\)\. .*include \['GuessTheNumber-v0'"):  # fmt: skip
        gym.make("agentrl/TextArena-v0", game="Sokoban-v9")
    with pytest.raises(TextArenaGameError, match=r"unknown TextArena game 'Zzzz'\. .*'Bandit-v0'"):
        gym.make("agentrl/TextArena-v0", game="Zzzz")
    with pytest.raises(TextArenaGameError, match=r"'TicTacToe-v0' is not a single-player game "
                       r"\(it resets for 2 players"):  # fmt: skip
        gym.make("agentrl/TextArena-v0", game="TicTacToe-v0")
    with pytest.raises(TextArenaGameError, match="'Snake-v0' is not a single-player game"):
        gym.make("agentrl/TextArena-Sokoban-v0", game="Snake-v0")  # any id takes game=


def test_textarena_verified_list_matches_the_registry():
    registry = require("textarena", "textarena").envs.registration.ENV_REGISTRY
    assert set(TEXTARENA_OFFLINE_GAMES) <= set(game_ids(registry))
    assert {f"{g}-v0" for g in TEXTARENA_GAMES} <= set(TEXTARENA_OFFLINE_GAMES)
    assert "Wordle-v0" not in TEXTARENA_OFFLINE_GAMES and "TicTacToe-v0" in game_ids(registry)


@pytest.mark.slow
@pytest.mark.parametrize("game", TEXTARENA_OFFLINE_GAMES)
def test_textarena_every_verified_game_plays_offline(game):
    env = gym.make("agentrl/TextArena-v0", game=game)
    with no_network() as attempts:
        ep = run_scripted_episode(env, Fixed(lambda obs: "[1]"), seed=3)
    assert ep.turns[-1].terminated or ep.turns[-1].truncated
    assert not attempts  # nothing tried to reach the network while playing


class _NetworkGame:
    """A fake TextArena game that fetches a word list from the internet in reset."""

    def reset(self, num_players, seed=None):
        urllib.request.urlopen("http://words.example.invalid/list.txt", timeout=2)


class _BuggyEndGame:
    """A fake single-player game that ends with a text where its reward should be."""

    def reset(self, num_players, seed=None):
        import textarena as ta

        self.state = ta.SinglePlayerState(num_players=num_players, seed=seed)
        self.state.reset(game_state={}, player_prompt_function=lambda **_: "Say anything.")

    def step(self, action):
        self.state.set_invalid_move("oops", reward="not a number")  # as Countdown in 0.7.4
        return self.state.step()

    def get_observation(self):
        return self.state.current_player_id, self.state.get_current_player_observation()

    def close(self):
        return self.state.close()


def test_textarena_game_that_needs_the_network_or_breaks_is_refused(monkeypatch):
    registry = require("textarena", "textarena").envs.registration
    for name, entry in (("NetTest-v0", _NetworkGame), ("BuggyEnd-v0", _BuggyEndGame)):
        for suffix in ("", "-raw"):
            spec = registry.EnvSpec(id=name + suffix, entry_point=entry, default_wrappers=None)
            monkeypatch.setitem(registry.ENV_REGISTRY, name + suffix, spec)
    with pytest.raises(
        TextArenaGameError,
        match=r"'NetTest-v0' cannot be played \(checked with the network off\): a one-player "
        r"reset failed with URLError: .*blocked.*; it tried to reach the network "
        r"\(words\.example\.invalid:80\)",
    ):
        gym.make("agentrl/TextArena-v0", game="NetTest-v0")
    with pytest.raises(TextArenaGameError, match="'BuggyEnd-v0' ended with reward 'not a number'"):
        gym.make("agentrl/TextArena-v0", game="BuggyEnd-v0")
    assert final_reward("g", {0: 1}) == 1.0 and final_reward("g", None) == 0.0


def test_no_network_blocks_connections_and_restores_them():
    connect = socket.socket.connect
    with no_network() as attempts:
        with pytest.raises(NetworkBlocked, match="example.invalid:443"):
            socket.create_connection(("example.invalid", 443))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            with pytest.raises(NetworkBlocked):
                sock.connect(("192.0.2.1", 9))  # TEST-NET-1: an outside address
        left, right = socket.socketpair(socket.AF_UNIX)  # local IPC keeps working
        left.sendall(b"ok")
        assert right.recv(2) == b"ok"
        left.close(), right.close()
        # so does loopback (another thread's local service, e.g. a tracker's)
        with socket.create_server(("127.0.0.1", 0)) as server:
            socket.create_connection(server.getsockname()).close()
    assert attempts.addresses == ["example.invalid:443", "192.0.2.1:9"]
    assert socket.socket.connect is connect


def test_textarena_messages_are_read_by_type():
    class Kind(Enum):
        PLAYER_ACTION = 1

    assert message_parts((0, "[up]", Kind.PLAYER_ACTION)) == (0, "[up]", "PLAYER_ACTION")
    assert message_parts((Kind.PLAYER_ACTION, 0, "[up]")) == (0, "[up]", "PLAYER_ACTION")
    assert message_parts((-1, "Welcome")) == (-1, "Welcome", "")


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
