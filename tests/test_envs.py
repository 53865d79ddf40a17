"""The built-in text envs: Gymnasium API, game rules, scripted policies, determinism."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agentrl.envs
from agentrl.envs import (
    ENV_ALIASES,
    ENV_IDS,
    make_scripted,
    resolve_env_id,
    run_scripted_episode,
)
from agentrl.envs import guess_the_number as gtn
from agentrl.envs import twenty_questions as tq

TQ = "agentrl/TwentyQuestions-v0"
GTN = "agentrl/GuessTheNumber-v0"
AGENTRL_IDS = sorted(i for i in gym.registry if i.startswith("agentrl/"))


def _tq(word: str, **kwargs):
    env = gym.make(TQ, **kwargs)
    obs, info = env.reset(seed=0, options={"task": {"word": word}})
    return env, obs, info


def _play(env, actions):
    return [env.step(a) for a in actions]


# --- registration and the Gymnasium API ----------------------------------------------------


@pytest.mark.parametrize("env_id", AGENTRL_IDS)
def test_check_env(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning is a failure
        check_env(gym.make(env_id).unwrapped)


def test_registration():
    assert set(ENV_IDS) <= set(AGENTRL_IDS)
    assert set(ENV_ALIASES.values()) == set(ENV_IDS)
    for env_id in ENV_IDS:
        assert gym.spec(env_id).max_episode_steps is None  # the env truncates itself
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import importlib

        importlib.reload(agentrl.envs)  # re-registering must neither warn nor fail
    assert resolve_env_id("twenty_questions") == TQ
    with pytest.raises(ValueError, match="twenty_questions"):
        resolve_env_id("chess")


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_after_done_raises(env_id):
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step("???")
        done = terminated or truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step("???")


# --- Twenty Questions rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    "word, question, expected",
    [
        ("dog", "Is it an animal?", tq.YES),
        ("truck", "Is it an animal?", tq.NO),
        ("truck", "is it a VEHICLE", tq.YES),
        ("banana", "Is it food?", tq.YES),
        ("banana", "Is it a fruit?", tq.YES),
        ("scissors", "Is it a tool?", tq.YES),
        ("scissors", "Is it an office supply?", tq.YES),
        ("truck", "Does it have wheels?", tq.YES),
        ("chair", "Does it have wheels?", tq.NO),
        ("piano", "Does it make sound?", tq.YES),
        ("pen", "  Is it used for writing  ", tq.YES),
        ("computer", "Is it electronic?", tq.YES),
        ("computer", "Is it an electronic device?", tq.YES),
        ("dog", "Is it alive?", tq.YES),
        ("dog", "Is it a cat?", tq.INVALID),  # unknown word
        ("dog", "Is it a truck?", tq.NO),  # a wrong guess
        ("dog", "Is it a bird?", tq.NO),  # a guess outside the subset is still valid
        ("dog", "Is it purple?", tq.INVALID),  # unknown attribute
        ("dog", "Does it alive?", tq.INVALID),  # wrong verb for the attribute
        ("dog", "", tq.INVALID),
        ("dog", "asdf qwerty", tq.INVALID),
    ],
)
def test_oracle(word, question, expected):
    assert tq.answer(word, question) == expected


def test_every_word_has_a_unique_answer_signature():
    qs = [tq.parse_question(q) for q in tq.ALL_QUESTIONS]
    assert None not in qs and len(qs) == 63 and len(tq.QUESTIONS) == 25
    assert len(tq.WORDS) == 157 and len(tq.CATEGORIES) == 17
    classic = [tq.parse_question(q) for q in tq.QUESTIONS]  # the classic game needs only these
    assert len({tuple(tq.holds(w, q) for q in classic) for w in tq.CLASSIC}) == len(tq.CLASSIC)
    for categories, attributes in tq.WORDS.values():  # no typos in the table
        assert categories and categories <= set(tq.CATEGORIES) and attributes <= set(tq.ATTRIBUTES)
    signatures = {tuple(tq.holds(w, q) for q in qs) for w in tq.WORDS}
    assert len(signatures) == len(tq.WORDS)
    assert set(tq.SUBSET) <= set(tq.WORDS) and len(tq.SUBSET) == 10


def test_twenty_questions_turns_and_win():
    env, obs, info = _tq("dog")
    assert obs == "Questions:\n" and info["success"] is False
    obs, r, term, trunc, info = env.step("Is it an animal?")
    assert (obs, r, term, trunc) == ("Questions:\nIs it an animal? Yes.\n", -1.0, False, False)
    assert info["answer"] == "Yes." and not info["invalid_action"] and not info["success"]
    obs, r, term, trunc, info = env.step("garbage\nwith a newline")
    assert obs.endswith("garbage with a newline Invalid Question.\n")
    assert r == -1.0 and info["invalid_action"] and not term
    obs, r, term, trunc, info = env.step("Is it a dog")
    assert (r, term, trunc, info["success"]) == (0.0, True, False, True)
    assert obs.splitlines()[-1] == "Is it a dog Yes."


def test_twenty_questions_truncates_at_20_turns():
    env, *_ = _tq("dog")
    steps = _play(env, ["Is it a truck?"] * 20)
    assert sum(s[1] for s in steps) == -20.0
    assert [s[3] for s in steps] == [False] * 19 + [True]
    assert not any(s[2] for s in steps) and not steps[-1][4]["success"]


def test_twenty_questions_word_lists():
    sub = gym.make(TQ).unwrapped
    full = gym.make(TQ, word_list="full").unwrapped
    words_sub = {sub.reset(seed=s)[1]["task_id"] for s in range(200)}
    words_full = {full.reset(seed=s)[1]["task_id"] for s in range(400)}
    assert words_sub == {f"word={w}" for w in tq.SUBSET}
    assert len(words_full) > 20
    with pytest.raises(ValueError, match="word_list"):
        gym.make(TQ, word_list="huge")
    with pytest.raises(ValueError, match="not in the table"):
        sub.reset(options={"task": {"word": "unicorn"}})


# --- Guess the Number rules ----------------------------------------------------------------


def test_guess_the_number_rules():
    assert gym.make(GTN).unwrapped.max_turns == 6
    env = gym.make(GTN, max_turns=10)
    obs, _ = env.reset(seed=0, options={"task": {"target": 7}})
    assert obs == "Guess the number between 1 and 16.\n"
    obs, r, term, _, info = env.step("12")
    assert obs.endswith("12: lower\n") and r == 0.0 and not term and not info["invalid_action"]
    obs, r, term, _, info = env.step("Guess: 3")
    assert obs.endswith("3: higher\n") and r == 0.0
    for bad in ("seven", "99", "-2", ""):
        obs, r, term, _, info = env.step(bad)
        assert info["invalid_action"] and r == 0.0 and not term
        assert obs.endswith(f"{bad}: invalid\n")
    obs, r, term, trunc, info = env.step("I say 7.")
    assert (r, term, info["success"]) == (1.0, True, True) and obs.endswith("7: correct\n")


def test_guess_the_number_truncation_and_ranges():
    env = gym.make(GTN, low=1, high=50, max_turns=3)
    env.reset(seed=0, options={"task": {"target": 40}})
    steps = _play(env, ["1", "2", "3"])
    assert [s[3] for s in steps] == [False, False, True] and sum(s[1] for s in steps) == 0.0
    obs, _ = env.reset(seed=1, options={"task": {"low": 100, "high": 200}})
    assert obs == "Guess the number between 100 and 200.\n"
    assert 100 <= env.unwrapped.task["target"] <= 200
    assert gtn.parse_guess("Guess: 7, no 8") == 7 and gtn.parse_guess("none") is None


def test_guess_the_number_invalid_penalty():
    env = gym.make(GTN, invalid_penalty=-0.1)
    env.reset(seed=0, options={"task": {"target": 7}})
    rewards = [s[1] for s in _play(env, ["seven", "99", "3", "7"])]
    assert rewards == [-0.1, -0.1, 0.0, 1.0]


# --- scripted policies ---------------------------------------------------------------------


def _stats(env_id, kind, seeds=range(50), epsilon=None, **kw):
    env = gym.make(env_id, **kw)
    extra = {} if epsilon is None else {"epsilon": epsilon}
    policy = make_scripted(env_id, kind, **kw, **extra)
    eps = [run_scripted_episode(env, policy, seed=s) for s in seeds]
    return eps, np.mean([e.success for e in eps]), np.mean([e.total_reward for e in eps])


def test_twenty_questions_good_beats_random():
    good, good_success, good_return = _stats(TQ, "good")
    _, random_success, random_return = _stats(TQ, "random")
    assert good_success == 1.0 and max(e.num_turns for e in good) <= 6
    assert {e.task["word"] for e in good} == set(tq.SUBSET)
    assert good_return > -5.0
    assert random_success < 0.8 and good_return > random_return + 8.0
    for word in tq.SUBSET:  # every word, not only those the seeds happen to draw
        ep = run_scripted_episode(
            gym.make(TQ), make_scripted(TQ, "good"), seed=0, task={"word": word}
        )
        assert ep.success and ep.turns[-1].action == tq.guess_text(word)
    _, full_success, _ = _stats(TQ, "good", word_list="full")
    assert full_success == 1.0


def test_guess_the_number_binary_search_always_wins():
    env = gym.make(GTN)
    for target in range(1, 17):
        ep = run_scripted_episode(env, make_scripted(GTN, "good"), seed=0, task={"target": target})
        assert ep.success and ep.num_turns <= 5 and ep.total_reward == 1.0
    _, random_success, _ = _stats(GTN, "random")
    assert random_success < 0.7


def test_mix_policy_is_in_between():
    _, mix_success, mix_return = _stats(TQ, "mix", epsilon=0.5)
    _, _, good_return = _stats(TQ, "good")
    _, _, random_return = _stats(TQ, "random")
    assert random_return < mix_return < good_return and mix_success > 0.5
    with pytest.raises(ValueError, match="epsilon"):
        make_scripted(TQ, "mix", epsilon=2.0)


def test_episode_record():
    ep = run_scripted_episode(gym.make(GTN), make_scripted("guess_the_number", "good"), seed=3)
    assert ep.env_id == GTN and ep.seed == 3 and "target" in ep.task
    assert ep.env_reward == ep.total_reward == 1.0 and ep.success
    for prev, turn in zip(ep.turns, ep.turns[1:], strict=False):
        assert turn.observation == prev.next_observation
    last = ep.turns[-1]
    assert last.terminated and last.next_observation == ""
    assert last.action_ids == [] and last.action_logprobs == [] and last.prompt_ids == []
    assert type(ep).from_dict(ep.to_dict()) == ep


def test_scripted_policies_read_only_the_observation():
    class Sealed(dict):
        def __getitem__(self, key):
            raise AssertionError("a scripted policy peeked at the task")

        get = __getitem__

    for env_id in ENV_IDS:
        for kind in ("random", "good", "mix"):
            policy = make_scripted(env_id, kind)
            policy.reset(Sealed(), np.random.default_rng(0))
            env = gym.make(env_id)
            obs, _ = env.reset(seed=0)
            assert isinstance(policy.act(obs), str)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("kind", ["random", "mix"])
def test_determinism(env_id, kind):
    def run(seed):
        ep = run_scripted_episode(gym.make(env_id), make_scripted(env_id, kind), seed=seed)
        return ep.task, [(t.observation, t.action, t.reward) for t in ep.turns]

    assert run(7) == run(7)
    assert len({str(run(s)) for s in range(6)}) > 1


def test_make_scripted_errors_name_the_choices():
    with pytest.raises(ValueError, match=r"random.*good.*mix"):
        make_scripted(TQ, "clever")
    with pytest.raises(ValueError, match="TwentyQuestions-v0"):
        make_scripted("CartPole-v1", "good")
    assert make_scripted("twenty_questions", "good") is not None
