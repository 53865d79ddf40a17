"""Continual learning through checkpoints: init_from carries replay, EWC anchors and Fisher
and the task history; scenarios log l2logger blocks that l2metrics reads unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from agentrl.config import ConfigError, load_config
from agentrl.learner import Learner
from agentrl.lifelong import read_lifelong_state
from agentrl.trainer import Trainer

TINY = [
    "model.hidden_size=32",
    "model.num_layers=1",
    "model.intermediate_size=64",
    "model.num_heads=2",
    "cluster=inline",
    "logging.tensorboard=false",
    "logging.plot=false",
    "logging.progress=false",
    "warm_start.enabled=false",
    "rollout.num_workers=1",
    "rollout.envs_per_worker=8",
    "rollout.episodes_per_iter=8",
    "eval.episodes=4",
    "eval.greedy=false",
    "algorithm=filtered_bc",
    "algorithm.steps=2",
    "env=guess_the_number",
    "iterations=2",
]
LIFELONG = "lifelong=[{name:replay,capacity:64},{name:online_ewc,lam:10.0,gamma:0.5}]"


def test_two_stage_run_carries_replay_and_anchors(tmp_path):
    # Stage A: range 1-4. Stop (the run ends: task end -> Fisher + anchor, saved).
    cfg_a = load_config([*TINY, LIFELONG, f"run_dir={tmp_path / 'a'}", "env.kwargs.high=4"])
    ckpt_a = Trainer(cfg_a, console=False, lifelong_task={"name": "a"}).run()["checkpoint"]
    state_a = read_lifelong_state(ckpt_a)
    replay_a = state_a["components"]["replay"]["episodes"]
    anchor_a = state_a["components"]["online_ewc"]["anchors"][0]
    fisher_a = state_a["components"]["online_ewc"]["fishers"][0]
    assert state_a["tasks"] == ["a"] and len(replay_a) == 16
    assert all(e["task"]["lifelong_task"] == "a" for e in replay_a)
    assert sum(float(f.sum()) for f in fisher_a.values()) > 0

    # What init_from loads (Trainer -> learner.load(weights_only=True)): A's buffer and anchor.
    learner = Learner(cfg_a.model, dict(cfg_a.algorithm), lifelong=list(cfg_a.lifelong))
    learner.load(ckpt_a, weights_only=True)
    replay, ewc = (c for _, c in learner.lifelong.components)
    assert [e.seed for e in replay.buffer.items] == [e["seed"] for e in replay_a]
    assert all(torch.equal(ewc.anchors[0][n], anchor_a[n]) for n in anchor_a)
    assert ewc.penalty_value(learner.policy) == pytest.approx(0.0)  # the weights are the anchor

    # Stage B: a new run on range 5-8 from A's checkpoint.
    cfg_b = load_config(
        [
            *TINY,
            LIFELONG,
            f"run_dir={tmp_path / 'b'}",
            f"init_from={ckpt_a}",
            "env.kwargs.low=5",
            "env.kwargs.high=8",
        ]
    )
    summary_b = Trainer(cfg_b, console=False, lifelong_task={"name": "b"}).run()
    rows = [json.loads(line) for line in open(tmp_path / "b" / "metrics.jsonl")]
    first = next(r for r in rows if "lifelong/batch_episodes" in r)
    assert first["lifelong/batch_episodes"] == 16  # 8 fresh + 8 replayed from stage A at once
    state_b = read_lifelong_state(summary_b["checkpoint"])
    assert state_b["tasks"] == ["a", "b"]
    tasks_in_buffer = {
        e["task"]["lifelong_task"] for e in state_b["components"]["replay"]["episodes"]
    }
    assert tasks_in_buffer == {"a", "b"}
    fisher_b = state_b["components"]["online_ewc"]["fishers"][0]
    anchor_b = state_b["components"]["online_ewc"]["anchors"][0]
    assert all(
        bool((fisher_b[n] >= 0.5 * fisher_a[n] - 1e-12).all()) for n in fisher_a
    )  # gamma * F_a + F_b
    assert any(
        not torch.equal(anchor_b[n], anchor_a[n]) for n in anchor_a
    )  # one anchor: the latest


def test_scenario_run_logs_blocks_l2metrics_reads_and_continues(tmp_path, monkeypatch):
    from agentrl.cli import main as cli_main
    from agentrl.lifelong.report import find_log_dir, report
    from agentrl.lifelong.scenario import run_scenario

    scenario = [
        "scenario=guess_ranges",
        "scenario.eval_episodes=4",
        "scenario.tasks.0.iterations=1",
        "scenario.tasks.1.iterations=1",
        "scenario.tasks.2.iterations=1",
    ]
    cfg = load_config([*TINY, "lifelong=[replay]", *scenario, f"run_dir={tmp_path / 'run'}"])
    summary = run_scenario(cfg, console=False)
    kinds = [b["type"] for b in summary["blocks"]]
    assert kinds == ["test", "train", "test", "train", "test", "train", "test"]
    state = read_lifelong_state(summary["checkpoint"])
    assert [h["position"] for h in state["history"]] == [0, 1, 2]

    result = report(tmp_path / "run")
    assert [row["after"] for row in result["test_matrix"]] == ["start", "low", "mid", "high"]
    assert set(result["tasks"]) == {"low", "mid", "high"}

    # l2metrics reads the same logs unchanged and agrees on maintenance and transfer
    monkeypatch.setattr(np, "NaN", np.nan, raising=False)  # l2metrics 3.1 still uses np.NaN
    monkeypatch.setenv("L2DATA", str(tmp_path / "l2data"))
    from l2metrics.report import MetricsReport

    theirs = MetricsReport(
        log_dir=find_log_dir(tmp_path / "run"),
        perf_measure="success",
        normalization_method="none",
        transfer_method="both",
    )
    theirs.calculate()
    life = theirs.lifetime_metrics_df.iloc[0]
    for key, their in (
        ("perf_maintenance", "perf_maintenance_mrlep"),
        ("backward_transfer_contrast", "backward_transfer_contrast"),
    ):
        mine = result["lifetime"][key]
        assert (np.isnan(mine) and np.isnan(float(life[their]))) or mine == pytest.approx(
            float(life[their])
        )

    # the CLI report prints the table and saves the plot
    assert cli_main(["lifelong", "report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "lifelong_report.png").exists()

    # init_from a scenario checkpoint continues at the next task (the position travels along)
    after_low = summary["blocks"][1]["checkpoint"]
    cont = run_scenario(
        load_config(
            [
                *TINY,
                "lifelong=[replay]",
                *scenario,
                f"run_dir={tmp_path / 'cont'}",
                f"init_from={after_low}",
            ]
        ),
        console=False,
    )
    assert [b.get("task") for b in cont["blocks"] if b["type"] == "train"] == ["mid", "high"]
    with pytest.raises(ConfigError, match="already finished every task"):
        run_scenario(
            load_config(
                [
                    *TINY,
                    "lifelong=[replay]",
                    *scenario,
                    f"run_dir={tmp_path / 'x'}",
                    f"init_from={summary['checkpoint']}",
                ]
            ),
            console=False,
        )


def test_scenario_configs_validate():
    from agentrl.config import config_dir
    from agentrl.lifelong.scenario import scenario_config

    for path in sorted((config_dir() / "scenario").glob("*.yaml")):
        sc = scenario_config(load_config([f"scenario={path.stem}"]))
        assert len(sc.tasks) == 3 and sc.name
    with pytest.raises(ConfigError, match="no scenario"):
        scenario_config(load_config([]))
    with pytest.raises(ConfigError, match="lower case"):
        scenario_config(load_config(["scenario=guess_ranges", "scenario.tasks.0.name=Low_1"]))


def test_detected_boundaries_trigger_consolidation(tmp_path):
    # The components are not told where tasks change; the detector finds the new ranges
    # (new first observations) in the first iteration of each block and EWC consolidates.
    scenario = [
        "scenario=guess_ranges",
        "scenario.boundaries=detected",
        "scenario.eval_episodes=2",
        *(f"scenario.tasks.{k}.iterations=2" for k in range(3)),
    ]
    lifelong = "lifelong=[{name:task_change,window:8},{name:online_ewc,lam:1.0}]"
    from agentrl.lifelong.scenario import run_scenario

    summary = run_scenario(
        load_config([*TINY, lifelong, *scenario, f"run_dir={tmp_path}"]), console=False
    )
    state = read_lifelong_state(summary["checkpoint"])
    assert state["tasks"] == ["low", "detected1", "detected2"]
    assert state["components"]["task_change"]["changes"] == 2
    assert len(state["components"]["online_ewc"]["anchors"]) == 1
    assert [h["position"] for h in state["history"] if "position" in h] == [
        0,
        1,
        2,
    ]  # the scenario position
    for block in ("03-train-mid", "05-train-high"):
        rows = [json.loads(line) for line in open(tmp_path / "blocks" / block / "metrics.jsonl")]
        first = next(r for r in rows if "lifelong/batch_episodes" in r)
        assert first["lifelong/task_change"] == 1.0 and first["lifelong/online_ewc/anchors"] == 1.0


def test_cli_lifelong_errors_and_list(capsys):
    from agentrl.cli import main as cli_main

    assert cli_main(["lifelong", "run", "cluster=inline"]) == 2
    assert "no scenario: pass scenario=NAME" in capsys.readouterr().err
    assert (
        cli_main(["lifelong", "run", "scenario=guess_ranges", "lifelong=[nope]", "cluster=inline"])
        == 2
    )
    assert "unknown lifelong component 'nope'" in capsys.readouterr().err
    assert cli_main(["lifelong", "report", "/nonexistent/run"]) == 2
    assert "no l2logger logs" in capsys.readouterr().err
    assert cli_main(["lifelong", "frobnicate"]) == 2
    assert "valid: run, report, list" in capsys.readouterr().err
    assert cli_main(["lifelong", "list"]) == 0
    out = capsys.readouterr().out
    assert "online_ewc" in out and "guess_ranges" in out
