"""Game of 24: rules, solver, invalid steps, scripted players, determinism, ARMAP hooks."""

from __future__ import annotations

import warnings
from fractions import Fraction

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import agentrl.envs  # noqa: F401
from agentrl.envs import game24 as g24
from agentrl.envs import make_scripted, resolve_env_id, run_scripted_episode

ID = "agentrl/Game24-v0"


def _env(numbers):
    env = gym.make(ID)
    obs, _ = env.reset(seed=0, options={"task": {"numbers": numbers}})
    return env, obs


def test_registered_and_check_env():
    assert resolve_env_id("game24") == ID
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(ID).unwrapped)


def test_solver_known_puzzles():
    assert g24.solve([4, 6, 1, 1]) is not None
    assert g24.solve([1, 1, 1, 1]) is None  # max is (1+1)*(1+1) = 4
    steps = g24.solve([3, 3, 8, 8])  # needs fractions: 8 / (3 - 8/3) = 24
    assert steps is not None and any("/" in s.split("=")[1] for s in steps)
    assert g24.score_response({"numbers": [3, 3, 8, 8]}, "\n".join(steps)) == 1.0


def test_valid_solution_rewarded():
    env, obs = _env([4, 6, 1, 1])
    assert "4 6 1 1" in obs
    _, r1, term1, _, _ = env.step("1 * 1 = 1")
    _, r2, term2, _, _ = env.step("4 x 6 = 24")
    _, r3, term3, trunc3, info = env.step("24 * 1 = 24")
    assert (r1, r2, term1, term2) == (0.0, 0.0, False, False)
    assert r3 == 1.0 and term3 and not trunc3 and info["success"]


def test_wrong_final_number_is_not_success():
    env, _ = _env([4, 6, 1, 1])
    env.step("4 + 6 = 10")
    env.step("10 + 1 = 11")
    _, r, term, _, info = env.step("11 + 1 = 12")
    assert r == 0.0 and term and not info["success"] and not info["invalid_action"]


@pytest.mark.parametrize(
    "action,why",
    [
        ("4 * 6 = 25", "wrong result"),
        ("5 * 6 = 30", "number not left"),
        ("banana", "format"),
        ("4 / 0 = 1", "number not left"),
        ("", "format"),
        ("4 * 6 24", "format"),
    ],
)
def test_invalid_step_penalised_and_terminates(action, why):
    env, _ = _env([4, 6, 1, 1])
    obs, r, term, trunc, info = env.step(action)
    assert r == pytest.approx(-0.1) and term and not trunc
    assert info["invalid_action"] and info["error_kind"] == why and "invalid" in obs
    with pytest.raises(RuntimeError):
        env.step("1 + 1 = 2")


def test_division_by_zero_is_invalid_not_a_crash():
    env, _ = _env([0, 5, 1, 1])
    _, r, term, _, info = env.step("5 / 0 = 1")
    assert term and info["error_kind"] == "division by zero"


def test_fraction_steps():
    env, obs = _env([3, 3, 8, 8])
    obs, *_ = env.step("8 / 3 = 8/3")
    assert "8/3" in obs.splitlines()[-1]
    env.step("3 - 8/3 = 1/3")
    _, r, *_ = env.step("8 / 1/3 = 24")
    assert r == 1.0


def test_sampled_puzzles_solvable_and_seeded():
    env = gym.make(ID)
    tasks = []
    for seed in range(30):
        env.reset(seed=seed)
        tasks.append(env.unwrapped.task)
        assert g24.solve(env.unwrapped.task["numbers"]) is not None
    again = []
    for seed in range(30):
        env.reset(seed=seed)
        again.append(env.unwrapped.task)
    assert tasks == again and len({tuple(t["numbers"]) for t in tasks}) > 15


def test_scripted_players():
    env = gym.make(ID)
    good = make_scripted("game24", "good")
    rnd = make_scripted("game24", "random")
    good_eps = [run_scripted_episode(env, good, seed=s) for s in range(40)]
    rnd_eps = [run_scripted_episode(env, rnd, seed=s) for s in range(40)]
    assert all(e.success for e in good_eps)
    assert sum(e.success for e in rnd_eps) < 20
    assert all(not t.info["invalid_action"] for e in rnd_eps for t in e.turns)  # random but valid
    again = [run_scripted_episode(env, rnd, seed=s) for s in range(40)]
    assert [e.to_dict() for e in again] == [e.to_dict() for e in rnd_eps]


def test_corruptions_are_wrong_and_scorer_agrees_with_env():
    rng = np.random.default_rng(0)
    env = gym.make(ID)
    for seed in range(20):
        ep = run_scripted_episode(env, make_scripted(ID, "good"), seed=seed)
        response = env.unwrapped.response_text(ep)
        assert g24.score_response(ep.task, response) == 1.0
        for kind in g24.CORRUPTIONS:
            bad = g24.corrupt_response(ep.task, response, rng, kind=kind)
            assert bad != response and g24.score_response(ep.task, bad) == 0.0, (kind, bad)
    assert env.unwrapped.reference_response({"numbers": [1, 1, 1, 1]}) is None


def test_clone_and_set_state():
    env, _ = _env([4, 6, 1, 1])
    env.step("4 * 6 = 24")
    base = env.unwrapped
    twin = base.clone()
    state = base.get_state()
    _, r, *_ = twin.step("24 * 1 = 24")
    assert base.numbers == [Fraction(1), Fraction(1), Fraction(24)]  # the original is untouched
    obs = base.set_state(state)
    assert "Numbers left: 1 1 24" in obs
    _, _, _, _, _ = base.step("1 * 1 = 1")
    _, r, term, _, info = base.step("24 * 1 = 24")
    assert r == 1.0 and info["success"]


def test_short_form_when_results_are_not_required():
    env = gym.make(ID, require_result=False)
    obs, _ = env.reset(seed=0, options={"task": {"numbers": [4, 6, 1, 1]}})
    assert 'like "4 * 6" (the result is computed for you)' in obs
    obs, _, _, _, info = env.step("4 * 6")
    assert info["step"] == "4 * 6 = 24" and "4 * 6 = 24 | left: 1 1 24" in obs
    _, _, term, _, info = env.step("1 * 1 = 3")  # a written result must still be right
    assert term and info["error_kind"] == "wrong result"
    strict = gym.make(ID)
    strict.reset(seed=0, options={"task": {"numbers": [4, 6, 1, 1]}})
    assert strict.step("4 * 6")[4]["error_kind"] == "format"
    # the scripted players write the short form when asked, and the response is written in full
    ep = run_scripted_episode(env, make_scripted(ID, "good"), seed=3)
    assert ep.success and all("=" not in t.action for t in ep.turns)
    response = env.unwrapped.response_text(ep)
    assert g24.score_response(ep.task, response) == 1.0
    assert env.unwrapped.clone().require_result is False


def test_letters_form():
    env = gym.make(ID, letters=True)
    obs, _ = env.reset(seed=0, options={"task": {"numbers": [4, 6, 1, 1]}})
    assert obs.endswith("Numbers left: a=4 b=6 c=1 d=1\n") and 'like "a * b"' in obs
    obs, _, _, _, info = env.step("a * b")
    assert info["step"] == "4 * 6 = 24" and obs.endswith("Numbers left: a=1 b=1 c=24\n")
    obs, _, _, _, info = env.step("a * b")
    _, r, term, _, info = env.step("b x a")
    assert r == 1.0 and info["success"] and info["step"] == "1 * 24 = 24"
    env.reset(seed=0, options={"task": {"numbers": [4, 6, 1, 1]}})
    assert env.step("a * e")[4]["error_kind"] == "format"  # no number e
    env.reset(seed=0, options={"task": {"numbers": [4, 6, 1, 1]}})
    assert env.step("a * a")[4]["invalid_action"]
    for kind in ("good", "random"):
        ep = run_scripted_episode(env, make_scripted(ID, kind), seed=5)
        assert all(t.action[0] in "abcd" for t in ep.turns) and not any(
            t.info["invalid_action"] for t in ep.turns
        )
        assert ep.success or kind == "random"
