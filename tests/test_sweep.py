"""Hydra multirun sweeps: ``agentrl train -m`` (agentrl/sweep.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentrl.cli import main
from agentrl.config import ConfigError
from agentrl.sweep import expand, job_name, plan


def test_expand_is_hydras_cartesian_product_in_override_order():
    jobs, swept = expand(["a=1,2", "b=x,y", "c=3"])
    assert jobs == [
        ["a=1", "b=x", "c=3"],
        ["a=1", "b=y", "c=3"],
        ["a=2", "b=x", "c=3"],
        ["a=2", "b=y", "c=3"],
    ]
    assert swept == [["a=1", "b=x"], ["a=1", "b=y"], ["a=2", "b=x"], ["a=2", "b=y"]]
    # Hydra's sweep functions and config groups, and a quoted comma that is not a sweep
    jobs, swept = expand(["curriculum=uniform,xland", "iterations=range(1,3)", "x='a,b'"])
    assert [j[:2] for j in jobs] == [
        ["curriculum=uniform", "iterations=1"],
        ["curriculum=uniform", "iterations=2"],
        ["curriculum=xland", "iterations=1"],
        ["curriculum=xland", "iterations=2"],
    ]
    assert all(j[2] == "x='a,b'" for j in jobs) and all(len(s) == 2 for s in swept)
    assert expand(["a=1"]) == ([["a=1"]], [[]])


def test_sweep_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="invalid sweep override"):
        expand(["a=(1"])
    with pytest.raises(ConfigError, match="run_dir cannot be swept"):
        plan([f"run_dir={tmp_path}/a,{tmp_path}/b", "iterations=1"])
    with pytest.raises(ConfigError, match="resume cannot be given"):
        plan(["resume=latest", "iterations=1,2"])
    # every job is validated before any runs: the second job's bad value names the job
    with pytest.raises(ConfigError, match=r"sweep job 1 \(iterations=-1\).*iterations"):
        plan([f"run_dir={tmp_path / 'bad'}", "cluster=inline", "iterations=1,-1"])
    assert not (tmp_path / "bad").exists()


def test_job_names_are_index_and_swept_overrides_safe_for_paths():
    assert job_name(3, ["curriculum.max_success=0.6", "curriculum=xland"]) == (
        "3_curriculum.max_success=0.6,curriculum=xland"
    )
    assert (
        job_name(0, ["env.id=agentrl/TextCraft-v0", "x='a b'"])
        == "0_env.id=agentrl_TextCraft-v0,x=_a_b_"
    )
    assert job_name(1, []) == "1_job"
    assert len(job_name(12, ["k=" + "v" * 500])) == 120


TINY = [
    "model.hidden_size=64",
    "model.num_layers=1",
    "model.intermediate_size=128",
    "model.num_heads=2",
    "cluster=inline",
    "logging.tensorboard=false",
    "logging.plot=false",
    "logging.progress=false",
    "warm_start.enabled=false",
    "rollout.episodes_per_iter=4",
    "rollout.envs_per_worker=4",
    "eval.episodes=2",
    "eval.sample=false",
    "iterations=1",
]


def test_train_multirun_runs_each_job_in_its_own_run_dir_and_writes_a_summary(tmp_path, capsys):
    root = tmp_path / "sweep"
    args = ["train", "-m", *TINY, f"run_dir={root}", "env=textcraft", "++env.kwargs.max_turns=2",
            "curriculum=xland", "curriculum.max_success=0.6,0.8", "curriculum.min_nonzero=0.05"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    jobs = json.loads((root / "multirun.json").read_text())
    assert [j["status"] for j in jobs] == ["done", "done"]
    for job, ms in zip(jobs, (0.6, 0.8), strict=True):
        run_dir = Path(job["run_dir"])
        assert run_dir == root / f"{job['index']}_curriculum.max_success={ms}"
        config = json.loads((run_dir / "config.json").read_text())
        assert config["curriculum"]["max_success"] == ms  # the job ran its own value
        assert config["curriculum"]["min_nonzero"] == 0.05
        summary = json.loads((run_dir / "summary.json").read_text())
        assert job["final_eval_success"] == summary["final_eval_success"] is not None
        assert job["iterations"] == 1
    table = (root / "multirun.md").read_text()
    assert "| 0 | curriculum.max_success=0.6 | done | 1 |" in table
    assert "| 1 | curriculum.max_success=0.8 | done | 1 |" in table
    assert table in out  # printed too
    # the same command again reuses the finished jobs instead of refusing their run dirs
    assert main(args) == 0
    assert [j["status"] for j in json.loads((root / "multirun.json").read_text())] == [
        "reused",
        "reused",
    ]


def test_a_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    root = tmp_path / "sweep"
    args = ["train", "--multirun", *TINY, f"run_dir={root}",
            "env.id=agentrl/NoSuchEnv-v0,agentrl/NoSuchEnvEither-v0"]  # fmt: skip
    assert main(args) == 1
    jobs = json.loads((root / "multirun.json").read_text())
    assert len(jobs) == 2 and all(j["status"].startswith("failed") for j in jobs)
    assert "NoSuchEnvEither" in jobs[1]["status"]  # the second job ran after the first failed
    assert "sweep job 1 failed" in capsys.readouterr().err
