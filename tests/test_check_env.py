"""``agentrl check-env``, the env-author API (docs/howto_env.md), and env errors in training."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import gymnasium as gym
import pytest

import agentrl.envs
from agentrl.cli import main
from agentrl.envs import TextEnv, make_scripted, register_env, run_scripted_episode
from agentrl.envs.check import EnvCheckError, assert_env_ok, check_text_env

ROOT = Path(__file__).resolve().parents[1]
AGENTRL_IDS = sorted(i for i in gym.registry if i.startswith("agentrl/"))


@pytest.mark.parametrize("env_id", AGENTRL_IDS)
def test_every_registered_env_passes_check_env(env_id):
    results = check_text_env(env_id)
    assert [r.name for r in results] == [
        "make", "gymnasium", "text spaces", "printable", "info keys", "determinism",
        "bad actions", "episode ends", "step after done",
    ]  # fmt: skip
    assert all(r.ok for r in results), [str(r) for r in results if not r.ok]


def test_cli_check_env(capsys):
    assert main(["check-env", "maze", "size=3", "max_turns=5"]) == 0
    out = capsys.readouterr().out
    assert "PASS  episode ends: 5 steps" in out and "maze: 9/9 checks passed" in out
    assert main(["check-env", "chess"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  make" in out and "guess_my_city" in out  # the valid names are listed
    assert main(["check-env"]) == 2
    assert main(["check-env", "maze", "size"]) == 2
    assert "key=value" in capsys.readouterr().err


# --- broken envs: each check catches its fault ---------------------------------------------


class _Base(TextEnv):
    max_turns = 3

    def _reset(self, task):
        return "start\n"

    def _step(self, action):
        return "again\n", 0.0, False


class Unprintable(_Base):
    def _step(self, action):
        return "bell \x07\n", 0.0, False


class Nondeterministic(_Base):
    calls = 0

    def _reset(self, task):
        Nondeterministic.calls += 1
        return f"start {Nondeterministic.calls % 2}\n"


class Crashes(_Base):
    def _step(self, action):
        if not action:
            raise ValueError("empty action")
        return "again\n", 0.0, False


class NeverEnds(_Base):
    max_turns = 10**9


class NoInfoKeys(gym.Env):
    observation_space = gym.spaces.Text(100, charset=" abcdefghijklmnopqrstuvwxyz\n")
    action_space = gym.spaces.Text(100)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return "start\n", {}

    def step(self, action):
        return "over\n", 0.0, True, False, {}  # and steps after the end are silently fine


@pytest.mark.parametrize(
    "cls, failing",
    [
        (Unprintable, {"printable", "gymnasium"}),
        (Nondeterministic, {"determinism"}),
        (Crashes, {"bad actions"}),
        (NeverEnds, {"episode ends"}),
        (NoInfoKeys, {"step after done"}),
    ],
)
def test_checks_catch_broken_envs(cls, failing):
    env_id = f"agentrl-test/{cls.__name__}-v0"
    register_env(env_id, cls)
    results = check_text_env(env_id, max_steps=50)
    failed = {r.name for r in results if not r.ok}
    assert failing <= failed and "make" not in failed, [str(r) for r in results]
    with pytest.raises(EnvCheckError, match=cls.__name__):
        assert_env_ok(env_id, max_steps=50)


def test_a_plain_gymnasium_env_without_agentrl_info_keys_passes_them_with_a_note():
    env_id = "agentrl-test/NoInfoKeysNote-v0"
    register_env(env_id, NoInfoKeys)
    (info,) = [r for r in check_text_env(env_id, max_steps=50) if r.name == "info keys"]
    assert info.ok and "optional keys absent: invalid_action, success, task_id" in info.detail

    class WrongType(NoInfoKeys):
        def step(self, action):
            return "over\n", 0.0, True, False, {"success": "yes"}

    register_env("agentrl-test/WrongType-v0", WrongType)
    (info,) = [r for r in check_text_env("agentrl-test/WrongType-v0", max_steps=50) if r.name == "info keys"]
    assert not info.ok and "step info['success'] is a str, not a bool" in info.detail


def test_register_env_alias_and_short_forms():
    env_id = register_env("agentrl-test/Short-v0", _Base, alias="short_test")
    assert (
        agentrl.envs.ENV_ALIASES["short_test"] == env_id and register_env(env_id, _Base) == env_id
    )
    with pytest.raises(ValueError, match="already names"):
        register_env("agentrl-test/Other-v0", _Base, alias="short_test")
    env = gym.make("agentrl-test/Short-v0")
    obs, info = env.reset(seed=0)
    assert obs == "start\n" and info == {"success": False, "task_id": ""}
    _, reward, term, trunc, info = env.step("x")
    assert info == {"success": False, "invalid_action": False, "task_id": "", "turn": 1}
    del agentrl.envs.ENV_ALIASES["short_test"]


# --- the how-to page -------------------------------------------------------------------------


def _howto_code() -> str:
    text = (ROOT / "docs" / "howto_env.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, re.S)[0]


def test_howto_example_runs_and_passes_check_env(tmp_path, monkeypatch, capsys):
    code = _howto_code()
    assert 25 <= len(code.strip().splitlines()) <= 35  # "a complete ~30-line example"
    (tmp_path / "my_envs.py").write_text(code)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert main(["check-env", "--import", "my_envs", "reverse"]) == 0
        assert "reverse: 9/9 checks passed" in capsys.readouterr().out
        env = gym.make(agentrl.envs.ENV_ALIASES["reverse"])
        obs, _ = env.reset(seed=0, options={"task": {"word": "river"}})
        assert obs == "Reverse the word: river\n"
        obs, r, term, _, info = env.step("42")
        assert (r, term, info["invalid_action"]) == (-0.1, False, True)
        obs, r, term, _, info = env.step("revir")
        assert (r, term, info["success"]) == (1.0, True, True)
        assert main(["check-env", "--import", "no_such_module_xyz", "reverse"]) == 2
    finally:
        agentrl.envs.ENV_ALIASES.pop("reverse", None)
        sys.modules.pop("my_envs", None)


# --- robustness: an env that raises inside a rollout -------------------------------------------


class Flaky(TextEnv):
    """Raises on the second step of every episode."""

    max_turns = 4

    def _reset(self, task):
        return "Say something.\n"

    def _step(self, action):
        if self._turn == 2:
            raise RuntimeError("flaky env")
        return "Go on.\n", 0.0, False


def test_env_errors_are_recorded_and_logged_by_the_trainer(tiny_overrides, tmp_path):
    from agentrl.config import load_config
    from agentrl.metrics import read_metrics
    from agentrl.trainer import Trainer

    register_env("agentrl-test/Flaky-v0", Flaky)
    summary = Trainer(
        load_config(
            [*tiny_overrides, "env=twenty_questions", "env.id=agentrl-test/Flaky-v0", "env.max_new_tokens=4",
             "iterations=1", "eval.episodes=2", "eval.sample=false", "checkpoint.every=100"]
        ),
        console=False,
    ).run()  # fmt: skip
    rows = read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")
    assert rows[0]["eval/errors"] == 2.0  # every eval episode hit the error
    assert rows[1]["train/errors"] == 4.0 and rows[1]["train/turns"] == 2.0
    assert "ppo/loss" in rows[1]  # the run went on and trained on the truncated episodes


def test_worker_records_the_error_in_info():
    from agentrl.policy import ModelConfig, Policy, SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

    register_env("agentrl-test/Flaky-v0", Flaky)
    policy = Policy.from_config(
        ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    )
    worker = RolloutWorker(
        "agentrl-test/Flaky-v0", {}, 2, SamplingConfig(max_new_tokens=4), policy=policy
    )
    eps = worker.collect([EpisodeJob(i, i) for i in range(3)], rng_seed=0)
    for ep in eps:
        last = ep.turns[-1]
        assert last.truncated and not last.terminated and ep.num_turns == 2
        assert last.info["error"] == "RuntimeError: flaky env" == ep.error
        assert "Traceback" in last.info["traceback"]


def test_scripted_episode_with_the_example_policy_kinds():
    # every built-in env has both scripted kinds and they play to the end
    for alias in ("guess_my_city", "wordle", "maze"):
        for kind in ("random", "good"):
            ep = run_scripted_episode(
                gym.make(agentrl.envs.ENV_ALIASES[alias]), make_scripted(alias, kind), seed=5
            )
            assert ep.turns[-1].terminated or ep.turns[-1].truncated


class DiscreteActions(NoInfoKeys):
    """Gymnasium-valid but not a text env: agentrl cannot act in it (a requirement)."""

    action_space = gym.spaces.Discrete(3)


def test_requirements_fail_and_conventions_warn_with_their_fix(capsys):
    register_env("agentrl-test/NeverEndsCli-v0", NeverEnds)
    results = {r.name: r for r in check_text_env("agentrl-test/NeverEndsCli-v0", max_steps=50)}
    ends = results["episode ends"]
    assert ends.status == "WARN" and not ends.required and "max_episode_steps" in ends.fix
    assert "fix: truncate after a maximum number of turns" in str(ends)
    assert all(r.status == "PASS" for n, r in results.items() if n != "episode ends")
    # a convention's warning keeps the exit status 0 and is counted as a warning
    register_env("agentrl-test/Crashes2-v0", Crashes)
    assert main(["check-env", "agentrl-test/Crashes2-v0"]) == 0
    out = capsys.readouterr().out
    assert "WARN  bad actions: step('') raised ValueError: empty action" in out
    assert "info['invalid_action'] = True" in out and "1 warnings" in out and "0 failures" in out
    assert_env_ok("agentrl-test/Crashes2-v0", conventions=False)  # requirements only: fine
    with pytest.raises(EnvCheckError, match="bad actions"):
        assert_env_ok("agentrl-test/Crashes2-v0")
    # a requirement's failure is a FAIL and exit status 1
    register_env("agentrl-test/DiscreteActions-v0", DiscreteActions)
    assert main(["check-env", "agentrl-test/DiscreteActions-v0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  text spaces" in out and "1 failures" in out
