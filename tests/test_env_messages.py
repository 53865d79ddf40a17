"""Built-in envs as conversations: ``info["instructions"]`` and ``info["message"]``.

Every built-in env is played by its scripted policies through
:class:`~agentrl.envs.conversation.MessageView`; the conversation (instructions, the
agent's replies, the env's messages) must carry what the transcript carries.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentrl.envs import (
    ENV_ALIASES,
    TextEnv,
    make_scripted,
    maze,
    register_env,
    ruleworld,
    run_scripted_episode,
    textcraft,
    wordle,
)
from agentrl.envs import guess_my_city as gmc
from agentrl.envs import guess_the_number as gtn
from agentrl.envs import toolchain as tc
from agentrl.envs import twenty_questions as tq
from agentrl.envs.check import check_text_env
from agentrl.envs.conversation import MessageView
from agentrl.envs.lm_oracle import LMOracle
from agentrl.envs.scripted import policy_rng
from rollouts.worker import is_conversational, make_env

ROOT = Path(__file__).resolve().parents[1]
TQ, GTN = "agentrl/TwentyQuestions-v0", "agentrl/GuessTheNumber-v0"


def _config_kwargs(alias: str) -> dict[str, Any]:
    cfg = yaml.safe_load((ROOT / "configs" / "env" / f"{alias}.yaml").read_text())
    return dict(cfg.get("kwargs") or {})


def _transcript_env(env_id: str) -> bool:
    return not is_conversational(make_env(env_id))  # conversational envs need no MessageView


TRANSCRIPT_ALIASES = {a: i for a, i in sorted(ENV_ALIASES.items()) if _transcript_env(i)}
# (env id, kwargs) for every built-in transcript env: its config, plus the variants that
# change the instructions or the messages.
CASES = [(env_id, _config_kwargs(alias)) for alias, env_id in TRANSCRIPT_ALIASES.items()] + [
    (TQ, {"word_list": "classic"}),
    (TQ, {"word_list": "full"}),
    (GTN, {"low": 1, "high": 50, "max_turns": 8}),
    ("agentrl/Game24-v0", {"require_result": False}),
    ("agentrl/Game24-v0", {"letters": True}),
    ("agentrl/ToolChain-v0", {"multi_turn": True}),
    ("agentrl/RuleWorld-v0", {"show_rules": False, "depth": 3}),
    ("agentrl/Maze-v0", {"size": 3, "max_turns": 4}),
]
SEEDS = (0, 1, 2)


def test_every_builtin_transcript_env_is_covered():
    assert set(TRANSCRIPT_ALIASES) >= {
        "twenty_questions", "guess_the_number", "guess_my_city", "wordle", "maze",
        "textcraft", "ruleworld", "game24", "toolchain",
    }  # fmt: skip


def _play(env_id: str, kwargs: dict[str, Any], kind: str, seed: int) -> dict[str, Any]:
    """One scripted episode in conversation mode: the policy reads the transcript (as in a
    transcript run), the conversation is recorded."""
    env = make_env(env_id, kwargs, conversation=True)
    assert isinstance(env, MessageView)
    first, info = env.reset(seed=seed)
    policy = make_scripted(env_id, kind)
    policy.reset(dict(env.unwrapped.task), policy_rng(seed))
    rec: dict[str, Any] = {
        "first": first,
        "instructions": info.get("instructions"),
        "transcripts": [env.transcript],
        "actions": [],
        "messages": [],
        "infos": [],
    }
    done = False
    while not done:
        action = policy.act(env.transcript)
        message, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        rec["actions"].append(action)
        rec["messages"].append(message)
        rec["infos"].append(info)
        rec["transcripts"].append(env.transcript)
    return rec


def _kinds(env_id: str) -> list[str]:
    return [k for k in ("random", "good") if _has_kind(env_id, k)]


def _has_kind(env_id: str, kind: str) -> bool:
    try:
        make_scripted(env_id, kind)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(("env_id", "kwargs"), CASES, ids=lambda x: str(x))
def test_conversation_keys_of_every_builtin_env(env_id, kwargs):
    for kind in _kinds(env_id):
        for seed in SEEDS:
            rec = _play(env_id, kwargs, kind, seed)
            text = rec["instructions"]
            assert isinstance(text, str) and text.strip(), (env_id, kind, seed)
            # the first message is the instructions, a blank line, and the first observation
            assert rec["first"] == f"{text}\n\n{rec['transcripts'][0]}"
            assert "single line" in text  # every built-in action is one line
            assert set(text) <= set(string.printable)
            for message, info in zip(rec["messages"], rec["infos"], strict=True):
                assert isinstance(message, str) and message.strip(), (env_id, kind, seed)
                assert message == info["message"]
            # conversation mode plays the same game: same actions and transcripts as a
            # transcript run of the same seed
            plain = run_scripted_episode(
                make_env(env_id, kwargs), make_scripted(env_id, kind), seed=seed
            )
            assert [t.action for t in plain.turns] == rec["actions"]
            assert [t.observation for t in plain.turns] == rec["transcripts"][:-1]
            assert [t.info for t in plain.turns] == rec["infos"]
            _check_information(env_id, kwargs, rec)


def _check_information(env_id: str, kwargs: dict[str, Any], rec: dict[str, Any]) -> None:
    """The messages carry the turn's news: the transcript follows from the conversation."""
    actions, messages, obs = rec["actions"], rec["messages"], rec["transcripts"]
    if env_id == TQ:
        assert obs[-1] == _tq_transcript(actions, messages)
    elif env_id == GTN:
        assert obs[-1] == _gtn_transcript(obs[0], actions, messages)
    elif env_id == "agentrl/GuessMyCity-v0":
        # the message starts with the answer the transcript shows
        for (_, answer), message in zip(gmc.parse_observation(obs[-1]), messages, strict=True):
            assert message.startswith(answer)
    elif env_id == "agentrl/Wordle-v0":
        lines = obs[-1].splitlines()[1:]
        for line, message in zip(lines, messages, strict=True):
            assert (
                message.startswith("Invalid guess")
                if line.endswith(" invalid")
                else (message.startswith(line))
            )
    elif env_id == "agentrl/Maze-v0":
        for o, message in zip(obs[1:], messages, strict=True):
            assert maze.parse_grid(message) == maze.parse_grid(o)  # the maze as it is now
            feedback = o.splitlines()[-1].rstrip(".")
            assert message.startswith(feedback.replace("Invalid move", "Invalid move:"))
    elif env_id == "agentrl/Game24-v0":
        for o, message, info in zip(obs[1:], messages, rec["infos"], strict=True):
            if info["invalid_action"]:
                assert message.startswith("Invalid step") and "Game over" in message
            else:
                assert message.startswith(info["step"])
                assert o.splitlines()[-1] in message  # "Numbers left: ..."
    elif env_id == "agentrl/ToolChain-v0":
        for o, message, info in zip(obs[1:], messages, rec["infos"], strict=True):
            if o:  # multi-turn: the progress lines of the next observation
                assert o.endswith(message) and message.startswith("Now: ")
            elif info["invalid_action"]:
                assert message.startswith("Invalid")
            else:
                n = len(re.findall(" => ", obs[0]))
                solved = round(info["score"] * n)
                assert (f"all {n} examples" if solved == n else f"{solved} of {n}") in message
    elif env_id == "agentrl/TextCraft-v0":
        for o, message in zip(obs[1:], messages, strict=True):
            state = [ln for ln in o.splitlines() if ln.split(":")[0] in _TEXTCRAFT_STATE]
            last = next(ln for ln in o.splitlines() if ln.startswith("Last: "))[len("Last: ") :]
            assert message.startswith(last)
            assert all(ln in message.splitlines() for ln in state)
            assert textcraft.parse_state(message) == textcraft.parse_state(o)
    elif env_id == "agentrl/RuleWorld-v0":
        for o, message in zip(obs[1:], messages, strict=True):
            objects, _, _ = ruleworld.parse_observation(o)
            room = next(ln for ln in o.splitlines() if ln.startswith("Room: "))
            last = next(ln for ln in o.splitlines() if ln.startswith("Last: "))[len("Last: ") :]
            assert room in message.splitlines() and message.startswith(last.rstrip("."))
            assert ruleworld.parse_observation(message)[0] == objects
    else:  # pragma: no cover - a new built-in env needs its check here
        raise AssertionError(f"no information check for {env_id}")


_TEXTCRAFT_STATE = ("Inventory", "Placed", "Achievements", "Hint")


def _tq_transcript(actions: list[str], messages: list[str]) -> str:
    """Twenty Questions' transcript rebuilt from the conversation alone."""
    lines = []
    for action, message in zip(actions, messages, strict=True):
        answer = next(a for a in tq.ANSWERS if message.startswith(a))
        lines.append(f"{tq.sanitize(action)} {answer}\n")
    return tq.HEADER + "".join(lines)


_GTN_FEEDBACK = {"Higher.": "higher", "Lower.": "lower", "Correct!": "correct"}


def _gtn_transcript(first: str, actions: list[str], messages: list[str]) -> str:
    """Guess the Number's transcript rebuilt from the conversation alone."""
    out = first
    for action, message in zip(actions, messages, strict=True):
        word = message.split()[0]
        if word == "Invalid":
            out += f"{gtn._echo(action)}: invalid\n"
        else:
            out += f"{gtn.parse_guess(action)}: {_GTN_FEEDBACK[word]}\n"
    return out


# --- the instructions state the rules -------------------------------------------------------


def _instructions(env_id: str, seed: int = 0, **kwargs: Any) -> str:
    env = make_env(env_id, kwargs)
    return env.reset(seed=seed)[1]["instructions"]


def test_twenty_questions_instructions_list_words_and_the_accepted_forms():
    text = _instructions(TQ)
    assert all(w in text for w in tq.SUBSET)
    # every canonical question of the game is one of the listed forms
    for q in tq.valid_questions(tq.SUBSET):
        parsed = tq.parse_question(q)
        assert parsed is not None and parsed.key in text, q
    assert "Is it <category>?" in text and "Does it <attribute>?" in text
    assert "Can it <attribute>?" in text and '"Is it a dog?"' in text
    assert "swim" not in text  # the subset game lists the classic questions only
    full = _instructions(TQ, word_list="full")
    assert "swim" in full and "crown" in full and "jewelry" in full
    assert "I understand only these forms" in full


def test_twenty_questions_lm_oracle_allows_free_questions():
    class Fixed(LMOracle):
        def __init__(self):  # no model: always "Yes"
            pass

        def choose(self, prompt, options):
            return 0

    text = _instructions(TQ, oracle="lm", oracle_model=Fixed())
    assert "Any yes/no question" in text and "Invalid Question" not in text
    env = make_env(TQ, {"oracle": "lm", "oracle_model": Fixed()}, conversation=True)
    env.reset(seed=0, options={"task": {"word": "dog"}})
    assert env.step("Is it furry?")[0] == "Yes."
    assert env.step("Is it a dog?")[0].startswith("Yes. You found it")
    gmc_text = _instructions("agentrl/GuessMyCity-v0", oracle="lm", oracle_model=Fixed())
    assert "any question" in gmc_text and gmc.CANT not in gmc_text


def test_twenty_questions_messages():
    env = make_env(TQ, {"max_turns": 3}, conversation=True)
    env.reset(seed=0, options={"task": {"word": "dog"}})
    assert env.step("Is it an animal?")[0] == "Yes."
    message = env.step("what is it")[0]
    assert message.startswith("Invalid Question.") and "Is it a dog?" in message
    message, _, terminated, truncated, _ = env.step("Is it a truck?")
    assert message == "No. That was your last question." and truncated and not terminated
    env.reset(seed=0, options={"task": {"word": "dog"}})
    assert env.step("is it a dog")[0] == "Yes. You found it: the word is dog, in 1 question."


def test_guess_the_number_instructions_and_messages():
    env = make_env(GTN, {}, conversation=True)
    first, info = env.reset(seed=0, options={"task": {"target": 5}})
    assert "between 1 and 16" in info["instructions"] and "6 guesses" in info["instructions"]
    assert first.endswith("\n\nGuess the number between 1 and 16.\n")
    assert [env.step(a)[0] for a in ("8", "2", "no idea", "99")] == [
        "Lower.",
        "Higher.",
        "Invalid guess: your reply has no number. Reply with a single number between 1 and 16.",
        "Invalid guess: 99 is not a possible number; guess one between 1 and 16.",
    ]
    assert env.step("5")[0] == "Correct! You found it in 5 guesses."
    _, info = env.reset(seed=0, options={"task": {"low": 1, "high": 50, "target": 40}})
    assert "between 1 and 50" in info["instructions"]  # the task's range
    for _ in range(5):
        env.step("1")
    assert env.step("1")[0] == "Higher. That was your last guess."


def test_messages_of_the_other_envs():
    env = make_env("agentrl/Wordle-v0", {}, conversation=True)
    env.reset(seed=0, options={"task": {"word": "CRANE"}})
    assert env.step("heart")[0] == (
        "HEART -YGY-: H not in the word, E elsewhere, A right place, R elsewhere, "
        "T not in the word."
    )
    assert env.step("crane")[0] == "CRANE GGGGG: correct! You found the word in 2 guesses."
    assert wordle.describe_feedback("ABBEY", "G-Y--").endswith(
        "E not in the word, Y not in the word."
    )

    env = make_env("agentrl/Game24-v0", {}, conversation=True)
    env.reset(seed=0, options={"task": {"numbers": [4, 6, 1, 1]}})
    assert env.step("4 * 6 = 24")[0] == "4 * 6 = 24. Numbers left: 1 1 24."
    assert env.step("1 * 1 = 2")[0] == "Invalid step: the result is wrong. Game over."

    env = make_env("agentrl/ToolChain-v0", {}, conversation=True)
    env.reset(seed=0, options={"task": {"chain": "sort", "seed": 1}})
    assert env.step("sort")[0] == "Your plan solves all 3 examples!"
    env.reset(seed=0, options={"task": {"chain": "sort", "seed": 1}})
    assert env.step("bogus")[0].startswith("Invalid plan")

    env = make_env("agentrl/TextCraft-v0", {}, conversation=True)
    env.reset(seed=0, options={"task": {"achievement": "collect_wood", "count": 2}})
    assert env.step("collect wood")[0].splitlines()[:2] == [
        "You collect wood.",
        "Inventory: wood 1",
    ]
    assert env.step("collect wood")[0].startswith("You collect wood. Task complete!")
    _, info = env.reset(
        seed=0, options={"task": {"achievement": "make_wood_sword", "privilege": 2}}
    )
    assert '"next"' in info["instructions"] and "Hint:" in info["instructions"]
    assert "Hint: next, collect wood" in env.step("hello")[0]

    for kw, fragment in (({}, "listed under"), ({"show_rules": False}, "hidden")):
        text = _instructions("agentrl/RuleWorld-v0", **kw)
        assert fragment in text and "touch <object> with <object>" in text

    text = _instructions("agentrl/Maze-v0", size=3)
    assert "north, south, east or west" in text and "18 moves" in text


def test_toolchain_instructions_describe_every_module():
    assert set(tc.MODULE_HELP) == set(tc.MODULE_NAMES)
    text = _instructions("agentrl/ToolChain-v0")
    assert all(f"- {name}: " in text for name in tc.MODULE_NAMES)
    assert "1 to 4 module names" in text
    multi = _instructions("agentrl/ToolChain-v0", multi_turn=True)
    assert "exactly one module name" in multi


def test_instructions_and_messages_are_deterministic():
    for env_id, kwargs in CASES:
        kind = _kinds(env_id)[0]
        a, b = _play(env_id, kwargs, kind, 5), _play(env_id, kwargs, kind, 5)
        assert (a["instructions"], a["messages"]) == (b["instructions"], b["messages"])


# --- an env without the keys ------------------------------------------------------------------


class _NoMessage(TextEnv):
    max_turns = 2

    def _reset(self, task):
        return "start\n"

    def _step(self, action):
        return "start\nmore\n", 0.0, False


NO_MESSAGE = register_env("agentrl-test/NoMessage-v0", _NoMessage)


def test_an_env_without_message_raises_a_key_error_naming_the_key():
    env = make_env(NO_MESSAGE, conversation=True)
    first, info = env.reset(seed=0)
    assert first == "start\n" and "instructions" not in info  # no instructions: the observation
    with pytest.raises(KeyError, match=r"NoMessage-v0.*info\['message'\]"):
        env.step("hi")
    bare = MessageView(_NoMessage())  # not made by gymnasium: the class names the env
    bare.reset(seed=0)
    with pytest.raises(KeyError, match=r"_NoMessage.*message"):
        bare.step("hi")


def test_check_env_conversation_keys():
    for env_id, kwargs in CASES:
        results = check_text_env(env_id, kwargs, gym_checker=False, conversation=True)
        names = [r.name for r in results]
        assert names[names.index("info keys") + 1] == "conversation keys"
        assert all(r.ok for r in results), (env_id, [str(r) for r in results if not r.ok])
    assert "conversation keys" not in [r.name for r in check_text_env("maze", gym_checker=False)]
    bad = {r.name: r for r in check_text_env(NO_MESSAGE, gym_checker=False, conversation=True)}
    assert not bad["conversation keys"].ok and "'message'" in bad["conversation keys"].detail
    assert bad["info keys"].ok
