"""A reward-model checkpoint records the response format it was trained on (env id and env
kwargs), ``learned_rm`` scores in that format and refuses another, and ``agentrl plan`` takes
the format from the checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import pytest

import agentrl.envs  # noqa: F401
from agentrl.config import make_dataclass_config
from agentrl.envs.scripted import make_scripted, run_scripted_episode
from agentrl.reward_cli import parse_args
from agentrl.rewards import RewardModelError, build_reward
from agentrl.rewards.armap import (
    CollectConfig,
    SynthesizeConfig,
    TrainRMConfig,
    collect,
    synthesize,
    train_reward_model,
)
from agentrl.rewards.armap.jsonl import read_jsonl
from agentrl.rewards.armap.plan import PlanConfig, run_plan
from agentrl.rewards.armap.train import triplets_format
from agentrl.rewards.model import ResponseFormat, RewardModelScorer, RMBackboneConfig, read_meta
from agentrl.rewards.trajectory import intent_and_response

ID = "agentrl/Game24-v0"
HIDDEN = ResponseFormat(ID, {"hide_results": True})
TINY_RM = RMBackboneConfig(hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32)


@pytest.fixture(scope="module")
def hidden_rm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny reward model trained (one short epoch) on plan-only (``hide_results``) triplets."""
    d = tmp_path_factory.mktemp("format")
    kw = {"hide_results": True}
    collect(CollectConfig(out=str(d / "traj.jsonl"), episodes=24, policy="mix", env_kwargs=kw))
    synthesize(
        SynthesizeConfig(trajectories=str(d / "traj.jsonl"), out=str(d / "t.jsonl"), env_kwargs=kw)
    )
    res = train_reward_model(
        TrainRMConfig(data=str(d / "t.jsonl"), out=str(d / "rm"), backbone=TINY_RM, epochs=1)
    )
    return Path(res["path"])


def _episode(env_id: str = ID, seed: int = 0):
    return run_scripted_episode(gym.make(env_id), make_scripted(env_id, "good"), seed=seed)


def _legacy_copy(rm: Path, dest: Path) -> Path:
    """``rm`` as a checkpoint saved before the format was recorded (no ``response_format``)."""
    shutil.copytree(rm, dest)
    meta_file = dest / "reward_model.json"
    meta = json.loads(meta_file.read_text())
    del meta["response_format"]
    meta_file.write_text(json.dumps(meta))
    return dest


def test_the_format_round_trips_through_synthesize_train_and_load(hidden_rm):
    rows = list(read_jsonl(hidden_rm.parents[1] / "t.jsonl"))
    assert rows and all(
        r["response_format"] == {"env": ID, "env_kwargs": {"hide_results": True}} for r in rows
    )
    assert read_meta(hidden_rm)["response_format"] == {
        "env": ID,
        "env_kwargs": {"hide_results": True},
    }
    assert RewardModelScorer(hidden_rm).response_format == HIDDEN
    assert RewardModelScorer(hidden_rm.parent).response_format == HIDDEN  # the root, via latest


def test_learned_rm_scores_in_the_recorded_format_by_default(hidden_rm):
    reward = build_reward({"name": "learned_rm", "path": str(hidden_rm), "transform": "raw"})
    assert reward.env_kwargs == {"hide_results": True}
    ep = _episode()
    intent, plan = intent_and_response(ep, env_kwargs={"hide_results": True})
    _, full = intent_and_response(ep, env_kwargs={})
    assert "=" not in plan and "= 24" in full
    [score] = reward.score([ep])
    assert score == pytest.approx(reward.scorer.score([intent], [plan])[0], abs=1e-6)
    assert score != pytest.approx(reward.scorer.score([intent], [full])[0], abs=1e-6)
    # restating the recorded kwargs is allowed
    same = {"name": "learned_rm", "path": str(hidden_rm), "env_kwargs": {"hide_results": True}}
    assert build_reward(same).env_kwargs == {"hide_results": True}


def test_a_format_mismatch_is_refused_naming_both_formats(hidden_rm):
    with pytest.raises(RewardModelError) as err:
        build_reward({"name": "learned_rm", "path": str(hidden_rm), "env_kwargs": {}})
    msg = str(err.value)
    assert f'{ID} with env_kwargs={{"hide_results": true}}' in msg  # what the model learned
    assert f"{ID} with env_kwargs={{}}" in msg  # what was asked for
    reward = build_reward({"name": "learned_rm", "path": str(hidden_rm)})
    with pytest.raises(RewardModelError, match="agentrl/GuessTheNumber-v0") as err:
        reward.score([_episode("agentrl/GuessTheNumber-v0")])
    assert HIDDEN.describe() in str(err.value)


def test_a_checkpoint_without_a_recorded_format_loads_as_the_default_kwargs(hidden_rm, tmp_path):
    old = _legacy_copy(hidden_rm, tmp_path / "v001")
    assert RewardModelScorer(old).response_format is None
    reward = build_reward({"name": "learned_rm", "path": str(old), "transform": "raw"})
    assert reward.env_kwargs == {}
    ep = _episode()
    intent, full = intent_and_response(ep, env_kwargs={})
    assert reward.score([ep])[0] == pytest.approx(
        reward.scorer.score([intent], [full])[0], abs=1e-6
    )
    # nothing recorded to contradict: explicit kwargs are taken as given
    given = {"name": "learned_rm", "path": str(old), "env_kwargs": {"hide_results": True}}
    assert build_reward(given).env_kwargs == {"hide_results": True}
    assert len(reward.score([_episode("agentrl/GuessTheNumber-v0")])) == 1  # no env to check


def test_plan_scores_in_the_checkpoint_format_whatever_it_plays_with(
    hidden_rm, tmp_path, monkeypatch
):
    seen: list[str] = []
    original = RewardModelScorer.score

    def spy(self, intents, responses):
        seen.extend(responses)
        return original(self, intents, responses)

    monkeypatch.setattr(RewardModelScorer, "score", spy)
    cfg = PlanConfig(
        reward={"name": "learned_rm", "path": str(hidden_rm)},
        tasks=2,
        ns=[1, 3],
        proposer="good",
        out=str(tmp_path / "p.jsonl"),
    )
    assert cfg.env_kwargs == {}  # the plan plays the full form
    assert run_plan(cfg)["tasks"] == 2
    assert len(seen) == 6 and all(r and "=" not in r for r in seen)
    bad = PlanConfig(
        reward={
            "name": "learned_rm",
            "path": str(hidden_rm),
            "env_kwargs": {"hide_results": False},
        },
        tasks=1,
        out=str(tmp_path / "q.jsonl"),
    )
    with pytest.raises(RewardModelError, match="hide_results"):
        run_plan(bad)


def _row(fmt: dict | None) -> dict:
    row = {"id": 0, "intent": "i", "positive": "p", "negative": "n"}
    return row if fmt is None else {**row, "response_format": fmt}


def test_train_takes_the_triplets_format_or_a_declared_one():
    hidden = {"env": ID, "env_kwargs": {"hide_results": True}}
    assert triplets_format([_row(hidden)] * 2, None, "t") == HIDDEN
    assert (
        triplets_format([_row(hidden)], ResponseFormat("game24", {"hide_results": True}), "t")
        == HIDDEN
    )
    assert triplets_format([_row(None)], None, "t") is None  # old triplets, nothing declared
    declared = ResponseFormat("game24", {"hide_results": True})
    assert triplets_format([_row(None)], declared, "t") == HIDDEN  # alias resolved
    with pytest.raises(ValueError, match="mixes response formats"):
        triplets_format([_row(hidden), _row({"env": ID, "env_kwargs": {}})], None, "t")
    with pytest.raises(ValueError, match="mixes response formats"):
        triplets_format([_row(hidden), _row(None)], None, "t")
    with pytest.raises(ValueError, match=r"env_kwargs=\{\}.*asked for") as err:
        triplets_format([_row({"env": ID, "env_kwargs": {}})], declared, "t")
    assert HIDDEN.describe() in str(err.value)
    with pytest.raises(ValueError, match="response_format must be"):
        triplets_format([_row({"env": ID})], None, "t")
    # the CLI form: reward train response_format.env=game24 response_format.env_kwargs.hide_results=true
    cfg = make_dataclass_config(
        TrainRMConfig,
        parse_args(["response_format.env=game24", "response_format.env_kwargs.hide_results=true"]),
        "reward train",
    )
    assert cfg.response_format == declared


def test_old_triplets_give_a_checkpoint_without_a_format_unless_declared(hidden_rm, tmp_path):
    rows = list(read_jsonl(hidden_rm.parents[1] / "t.jsonl"))
    old = tmp_path / "old.jsonl"
    old.write_text(
        "".join(
            json.dumps({k: v for k, v in r.items() if k != "response_format"}) + "\n" for r in rows
        )
    )
    small = {"backbone": TINY_RM, "epochs": 0.2, "data": str(old)}
    res = train_reward_model(TrainRMConfig(out=str(tmp_path / "a"), **small))
    assert read_meta(res["path"])["response_format"] is None
    assert RewardModelScorer(res["path"]).response_format is None
    res = train_reward_model(
        TrainRMConfig(
            out=str(tmp_path / "b"),
            response_format=ResponseFormat("game24", {"hide_results": True}),
            **small,
        )
    )
    assert RewardModelScorer(res["path"]).response_format == HIDDEN


def test_reward_model_training_reports_its_progress(hidden_rm, tmp_path, capsys):
    data = str(hidden_rm.parents[1] / "t.jsonl")
    cfg = TrainRMConfig(data=data, out=str(tmp_path / "rm"), backbone=TINY_RM, epochs=1)
    train_reward_model(cfg)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("reward model")]
    total = int(lines[-1].split("/")[1].split(",")[0])
    assert total > 0 and 1 <= len(lines) <= 11
    assert lines[-1].startswith("reward model (tiny): ") and f"step {total}/{total}, " in lines[-1]
    quiet = TrainRMConfig(**{**cfg.__dict__, "out": str(tmp_path / "q"), "progress": False})
    train_reward_model(quiet)
    assert "reward model" not in capsys.readouterr().out


def test_lora_reward_model_training_prints_no_deprecations_and_restores_hf_state(
    hidden_rm, tmp_path
):
    """Newer transformers warn about names TRL and peft use (``gradient_checkpointing``);
    users cannot act on them, so training filters exactly those and leaves transformers'
    progress bars and verbosity as it found them."""
    import warnings

    from transformers.utils import logging as hf_logging

    data = str(hidden_rm.parents[1] / "t.jsonl")
    lora = RMBackboneConfig(**{**TINY_RM.__dict__, "lora": True})
    before = (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_reward_model(
            TrainRMConfig(data=data, out=str(tmp_path / "rm"), backbone=lora, epochs=0.2)
        )
    assert not [w for w in caught if "checkpointing" in str(w.message)]
    assert (hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()) == before
