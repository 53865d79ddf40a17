"""End-to-end behaviour of the training loop (inline: no Ray)."""

import json
import os
import shutil
from pathlib import Path

import pytest

from agentrl.checkpoint import CheckpointError
from agentrl.config import ConfigError, load_config
from agentrl.metrics import read_metrics
from agentrl.registry import RegistryError
from agentrl.trainer import Trainer


def _run(overrides):
    return Trainer(load_config(overrides), console=False).run()


def _rows(run_dir):
    return read_metrics(Path(run_dir) / "metrics.jsonl")


DETERMINISTIC_KEYS = ("train/return", "train/success", "train/turns", "ppo/loss", "ppo/approx_kl", "eval/return")


def test_train_writes_outputs(tiny_overrides, tmp_path):
    s = _run([*tiny_overrides, "env=guess_the_number", "iterations=2", "logging.plot=true",
              "logging.tensorboard=true", "checkpoint.every=1", "checkpoint.keep=1"])
    run = Path(s["run_dir"])
    rows = _rows(run)
    assert [r["iteration"] for r in rows] == [0, 1, 2]
    assert rows[1]["perf/tokens_per_s"] > 0 and "ppo/loss" in rows[1]
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert list((run / "tb").iterdir())
    ckpts = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert ckpts == ["latest", "step_000002"]  # keep=1 pruned step 1
    manifest = json.loads((run / "checkpoints" / "step_000002" / "manifest.json").read_text())
    assert manifest["step"] == 2 and manifest["components"]["algorithm"] == "ppo"
    assert "policy/model.safetensors" in manifest["files"]
    assert s["final_eval_success"] is not None


SMALL_ARCHER = ["algorithm.critic_epochs=2", "algorithm.batch_size=8", "algorithm.warmup_iters=1",
                "algorithm.critic_model.hidden_size=32", "algorithm.critic_model.num_layers=1"]


@pytest.mark.parametrize("algorithm", ["ppo", "filtered_bc", "archer"])
def test_resume_equals_uninterrupted(tiny_overrides, tmp_path, algorithm):
    extra = SMALL_ARCHER if algorithm == "archer" else []
    base = [*tiny_overrides, "env=guess_the_number", f"algorithm={algorithm}", *extra, "eval.every=1",
            "checkpoint.every=2"]
    full = _run([*base, "iterations=4", f"run_dir={tmp_path / 'full'}"])
    # "kill" a run after iteration 2 (its checkpoint), then resume it to 4
    _run([*base, "iterations=2", f"run_dir={tmp_path / 'part'}"])
    resumed = _run([*base, "iterations=4", f"run_dir={tmp_path / 'part'}", "resume=latest"])
    a, b = _rows(full["run_dir"]), _rows(resumed["run_dir"])
    assert [r["iteration"] for r in b] == [0, 1, 2, 3, 4]
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            if k.startswith(("train/", "eval/", "eval_sample/", "ppo/loss", "filtered_bc/nll", "archer/q_loss",
                             "archer/v_loss", "archer/actor_loss")) or k in DETERMINISTIC_KEYS:
                assert ra[k] == pytest.approx(rb[k], abs=1e-6), (ra["iteration"], k)


def test_unknown_algorithm_fails_before_work(tiny_overrides):
    with pytest.raises(ConfigError, match="ppo"):
        load_config([*tiny_overrides, "algorithm=foo"])
    with pytest.raises(RegistryError, match="valid names: .*ppo"):
        Trainer(load_config([*tiny_overrides, "algorithm.name=foo"]), console=False)


def test_bad_algorithm_key_fails_before_work(tiny_overrides):
    with pytest.raises(ConfigError, match="unknown key.*lrr"):
        Trainer(load_config([*tiny_overrides, "+algorithm.lrr=1"]), console=False)


def test_damaged_checkpoint_is_refused(tiny_overrides, tmp_path):
    s = _run([*tiny_overrides, "env=guess_the_number", "iterations=1"])
    ckpt = Path(s["checkpoint"])
    weights = ckpt / "policy" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    before = weights.read_bytes()
    with pytest.raises(CheckpointError, match="checksum mismatch in policy/model.safetensors"):
        Trainer(load_config([*tiny_overrides, "env=guess_the_number", "iterations=2", "resume=latest"]), console=False)
    assert weights.read_bytes() == before  # nothing was overwritten
    (ckpt / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        Trainer(load_config([*tiny_overrides, "iterations=2", f"resume={ckpt}"]), console=False)


def test_interrupted_save_keeps_latest(tiny_overrides, tmp_path, monkeypatch):
    s = _run([*tiny_overrides, "env=guess_the_number", "iterations=1"])
    root = Path(s["run_dir"]) / "checkpoints"
    latest = (root / "latest").read_text()
    from agentrl.checkpoint import CheckpointManager

    def boom(d):
        (d / "partial").write_text("x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        CheckpointManager(root).save(5, boom, {})
    assert (root / "latest").read_text() == latest
    assert not (root / "step_000005").exists()


def test_init_from_starts_new_run_with_weights(tiny_overrides, tmp_path):
    s = _run([*tiny_overrides, "env=guess_the_number", "iterations=1"])
    new = _run([*tiny_overrides, "env=guess_the_number", "iterations=1", f"init_from={s['checkpoint']}",
                f"run_dir={tmp_path / 'new'}"])
    rows = _rows(new["run_dir"])
    assert rows[0]["iteration"] == 0
    # the new run's initial eval is the old run's final eval: same weights, same seeds
    assert rows[0]["eval/return"] == pytest.approx(s["final_eval_return"])


def test_sigint_saves_and_exits(tiny_overrides, tmp_path):
    import signal
    import threading

    cfg = load_config([*tiny_overrides, "env=guess_the_number", "iterations=50", "checkpoint.every=0"])
    trainer = Trainer(cfg, console=False)
    original = trainer._iteration

    def slow_iteration(it, counters, job_cls):
        if it == 2:
            threading.Timer(0.01, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        return original(it, counters, job_cls)

    trainer._iteration = slow_iteration
    summary = trainer.run()
    assert summary["interrupted"] is True
    assert 2 <= summary["iterations"] < 50
    assert Path(summary["checkpoint"]).name == f"step_{summary['iterations']:06d}"


def test_warm_start_improves_over_random_init(tiny_overrides, tmp_path):
    base = [*tiny_overrides, "env=guess_the_number", "iterations=0", "eval.episodes=16", "model.hidden_size=64"]
    cold = _run([*base, f"run_dir={tmp_path / 'cold'}"])
    warm = _run([*base, f"run_dir={tmp_path / 'warm'}", "warm_start.enabled=true", "warm_start.policy=good",
                 "warm_start.episodes=60", "warm_start.epochs=3", "warm_start.lr=3e-3"])
    assert warm["initial_eval_success"] > cold["initial_eval_success"] + 0.3


def test_unknown_env_id_is_clear(tiny_overrides):
    import gymnasium

    with pytest.raises(gymnasium.error.Error, match="agentrl/TwentyQuestions-v0"):
        Trainer(load_config([*tiny_overrides, "env.id=agentrl/Nope-v0"]), console=False)


@pytest.fixture(autouse=True)
def _cleanup_runs():
    yield
    shutil.rmtree("runs", ignore_errors=True) if os.path.isdir("runs") and not os.listdir("runs") else None


def test_lora_run_checkpoints_adapter_and_resumes(tiny_overrides, tmp_path):
    base = [*tiny_overrides, "env=guess_the_number", "model.lora=true", "checkpoint.every=1", "eval.every=1"]
    full = _run([*base, "iterations=2", f"run_dir={tmp_path / 'full'}"])
    policy_dir = Path(full["checkpoint"]) / "policy"
    assert (policy_dir / "adapter_model.safetensors").exists()
    assert not (policy_dir / "model.safetensors").exists()  # only the adapter is saved
    _run([*base, "iterations=1", f"run_dir={tmp_path / 'part'}"])
    resumed = _run([*base, "iterations=2", f"run_dir={tmp_path / 'part'}", "resume=latest"])
    assert _rows(resumed["run_dir"])[-1]["ppo/loss"] == pytest.approx(_rows(full["run_dir"])[-1]["ppo/loss"], abs=1e-6)


def test_chai_acts_with_its_critic_inline(tiny_overrides, monkeypatch):
    from agentrl.algorithms.archer.chai import Chai

    calls = []
    original = Chai.act

    def spy(self, observations, sampling=None):
        calls.append(len(observations))
        return original(self, observations, sampling)

    monkeypatch.setattr(Chai, "act", spy)
    s = _run([*tiny_overrides, "env=guess_the_number", "algorithm=chai", *SMALL_ARCHER[:2],
              "algorithm.critic_model.hidden_size=32", "algorithm.critic_model.num_layers=1",
              "algorithm.num_candidates=2", "iterations=1"])
    assert calls, "CHAI's best-of-k acting rule was not used in rollouts"
    assert any(k.startswith("chai/") for k in _rows(s["run_dir"])[-1])
    with pytest.raises(ConfigError, match="cluster=inline"):
        Trainer(load_config([*tiny_overrides, "algorithm=chai", "cluster=local"]), console=False)
