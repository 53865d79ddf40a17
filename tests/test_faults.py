"""Fault injection: each failure ends or stops the run cleanly and loses no data.

Covered: a hung env step, an env that raises, a rollout worker killed mid-collection, the
learner killed mid-run, NaN losses, ``kill -9`` during a checkpoint save, a corrupted
manifest, and a checkpoint whose config names code to import (docs/faults.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import faulty_envs  # noqa: F401  (registers agentrl-test/Faulty-v0 here)
import pytest
import torch

from agentrl.checkpoint import CheckpointError, CheckpointManager, verify_checkpoint
from agentrl.config import ConfigError, load_config
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.registry import REWARDS
from agentrl.rewards import Reward
from agentrl.rollouts.group import InlineWorkerGroup
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
from agentrl.trainer import Trainer

pytestmark = pytest.mark.fault

TESTS = str(Path(__file__).parent)
TINY = ModelConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128)
SAMPLING = SamplingConfig(max_new_tokens=6)
FAULTY = "agentrl-test/Faulty-v0"


def _jobs(n: int) -> list[EpisodeJob]:
    return [EpisodeJob(i, 100 + i) for i in range(n)]


def _key(episodes):
    return [
        (e.seed, e.policy_version, [t.action for t in e.turns], e.total_reward, e.error)
        for e in episodes
    ]


def _rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


# --- envs -------------------------------------------------------------------------------------
def test_hung_env_step_ends_only_its_episode():
    worker = RolloutWorker(
        FAULTY,
        {"fault": "hang", "fault_seeds": (102,), "hang_s": 60.0},
        3,
        SAMPLING,
        policy=Policy.from_config(TINY),
        step_timeout_s=0.5,
    )
    start = time.perf_counter()
    eps = worker.collect(_jobs(6), rng_seed=0)
    assert time.perf_counter() - start < 30  # did not wait for the 60 s hang
    assert [e.seed for e in eps] == [100 + i for i in range(6)]  # none lost, order kept
    hung = eps[2]
    assert hung.turns[-1].truncated and hung.num_turns == 2
    assert "EnvTimeout" in hung.error and "did not return within" in hung.error
    assert all(
        e.success and e.error is None and e.num_turns == 3 for i, e in enumerate(eps) if i != 2
    )
    # the hung env was replaced: the worker keeps collecting with every slot
    again = worker.collect([EpisodeJob(i, 200 + i) for i in range(3)], rng_seed=1)
    assert [e.success for e in again] == [True, True, True]


def test_env_exception_in_a_training_run_is_logged_and_the_run_finishes(tiny_overrides):
    cfg = load_config(
        [
            *tiny_overrides,
            "env.id=agentrl-test/Faulty-v0",
            "+env.kwargs.fault=raise",
            "+env.kwargs.fault_seeds=[]",
            "iterations=2",
            "eval.every=0",
        ]
    )
    # every training seed of iteration 1 fails on its second step
    from agentrl.collect import iteration_seeds

    cfg.env.kwargs["fault_seeds"] = iteration_seeds(cfg.seed, 1, cfg.rollout.episodes_per_iter)
    summary = Trainer(cfg, console=False).run()
    rows = _rows(summary["run_dir"])
    assert summary["iterations"] == 2
    assert rows[1]["train/errors"] == cfg.rollout.episodes_per_iter  # all 4 logged as errors
    assert rows[2]["train/errors"] == 0


# --- rollout workers ---------------------------------------------------------------------------
@pytest.mark.ray
def test_killed_rollout_worker_recollects_its_episodes(ray_cluster):
    from agentrl.rollouts.ray_actors import RayWorkerGroup

    torch.manual_seed(5)
    learner_policy = Policy.from_config(TINY)
    with torch.no_grad():
        for p in learner_policy.model.parameters():
            p.add_(0.05 * torch.randn_like(p))  # weights the workers can only have from us
    weights = learner_policy.get_weights()
    env_kwargs = {"step_sleep": 0.05}
    group = RayWorkerGroup(
        2, FAULTY, env_kwargs, 4, SAMPLING, TINY, num_cpus=1.0,
        imports=["faulty_envs"], import_path=TESTS, worker_retries=2,
    )  # fmt: skip
    try:
        group.set_weights(weights, 7)
        victim = group.pids()[0]
        pending = group.start_collect(_jobs(16), rng_seed=3)
        time.sleep(0.6)  # worker 0 is in the middle of its 8 episodes (~1.2 s of env steps)
        os.kill(victim, signal.SIGKILL)
        episodes = pending.result()
        assert group.recoveries == 1
        assert group.pids()[0] != victim  # restarted
    finally:
        group.shutdown()
    # exactly the batch an undisturbed collection with the same weights gives: no episode
    # lost, none duplicated, and the restarted worker got weights version 7 back
    worker = RolloutWorker(FAULTY, env_kwargs, 4, SAMPLING, policy=Policy.from_config(TINY))
    reference = InlineWorkerGroup(worker, 2)
    reference.set_weights(weights, 7)
    expected = reference.collect(_jobs(16), rng_seed=3)
    assert [e.seed for e in episodes] == [100 + i for i in range(16)]
    assert _key(episodes) == _key(expected)
    assert {e.policy_version for e in episodes} == {7}


# --- learner -------------------------------------------------------------------------------------
def _learner_kill_config(tiny_overrides, run_dir, cluster):
    return load_config(
        [
            *[o for o in tiny_overrides if not o.startswith(("cluster=", "run_dir="))],
            f"cluster={cluster}",
            f"run_dir={run_dir}",
            "env=guess_the_number",
            "iterations=5",
            "checkpoint.every=1",
            "eval.every=1",
            "rollout.num_cpus_per_worker=0.5",
            "cluster.learner_num_cpus=0.5",
        ]
    )


@pytest.mark.ray
def test_killed_learner_resumes_from_last_checkpoint_and_matches_uninterrupted(
    ray_cluster, tiny_overrides, tmp_path, capsys
):
    trainer = Trainer(
        _learner_kill_config(tiny_overrides, tmp_path / "killed", "local"), console=False
    )
    killed: list[int] = []

    def kill_learner_after_second_checkpoint() -> None:
        ckpt = tmp_path / "killed" / "checkpoints" / "step_000002"
        deadline = time.monotonic() + 600  # generous: a loaded CI machine is slow to get there
        while not ckpt.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        pid = trainer.learner.pid()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=kill_learner_after_second_checkpoint, daemon=True)
    thread.start()
    summary = trainer.run()
    thread.join(5)
    assert killed, "the learner was not killed"
    assert "the learner died" in capsys.readouterr().err
    rows = _rows(summary["run_dir"])
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3, 4, 5]  # each iteration once
    reference = Trainer(
        _learner_kill_config(tiny_overrides, tmp_path / "ref", "inline"), console=False
    ).run()
    ref_rows = _rows(reference["run_dir"])
    for key in ("train/return", "eval/return", "eval_sample/return", "episodes_total"):
        assert [r.get(key) for r in rows] == pytest.approx([r.get(key) for r in ref_rows]), key


# --- NaN losses ----------------------------------------------------------------------------------
@REWARDS.register("test_nan_after_two")
class NanAfterTwo(Reward):
    """The env's reward for two iterations, then NaN (a broken reward model)."""

    def __init__(self, config=None):
        super().__init__(config)
        self.calls = 0

    def score(self, episodes):
        self.calls += 1
        return [e.env_reward if self.calls <= 2 else math.nan for e in episodes]


def test_nan_losses_are_skipped_then_the_run_stops_with_last_good_checkpoint(tiny_overrides):
    cfg = load_config(
        [*tiny_overrides, "env=guess_the_number", "iterations=10", "checkpoint.every=1",
         "reward.name=test_nan_after_two", "fault.max_nonfinite_iters=3", "eval.every=0"]
    )  # fmt: skip
    trainer = Trainer(cfg, console=False)
    summary = trainer.run()
    rows = _rows(summary["run_dir"])
    assert summary["iterations"] == 5 and "3 iterations in a row" in summary["stopped"]
    assert [r["fault/skipped_steps"] > 0 for r in rows[1:]] == [False, False, True, True, True]
    latest = Path(summary["checkpoint"])
    assert latest.name == "step_000002"  # nothing saved from the failing iterations
    verify_checkpoint(latest)
    # skipped steps never touched the weights: the live policy equals the last good checkpoint
    saved = Policy.load(latest / "policy", model_config=cfg.model).get_weights()
    live = trainer.learner.policy.get_weights()
    assert all(torch.isfinite(v).all() for v in live.values())
    assert all(torch.equal(saved[k], live[k]) for k in saved)


def test_guarded_step_skips_nonfinite_gradients():
    from agentrl.optim import guarded_step, pop_skipped_steps

    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    pop_skipped_steps()
    (w * torch.tensor([math.inf, 1.0])).sum().backward()
    norm, stepped = guarded_step(opt, [w], grad_clip=1.0)
    assert not stepped and math.isinf(norm) and w.grad is None
    assert w.tolist() == [1.0, 2.0] and pop_skipped_steps() == 1
    (w * torch.tensor([3.0, 4.0])).sum().backward()
    norm, stepped = guarded_step(opt, [w], grad_clip=1.0)  # clipped to norm 1: (0.6, 0.8)
    assert stepped and norm == pytest.approx(5.0)
    assert w.tolist() == pytest.approx([1.0 - 0.06, 2.0 - 0.08])
    assert pop_skipped_steps() == 0


# --- checkpoints ---------------------------------------------------------------------------------
_SAVER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentrl.checkpoint import CheckpointManager

    manager = CheckpointManager(sys.argv[1])
    manager.save(1, lambda d: (d / "weights.bin").write_bytes(b"good" * 1000), {"config": {}})

    def slow(d):
        (d / "weights.bin").write_bytes(b"half")
        print("writing", flush=True)
        time.sleep(60)

    manager.save(2, slow, {"config": {}})
    """
)


def test_kill_9_during_checkpoint_save_keeps_latest(tmp_path):
    root = tmp_path / "checkpoints"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVER, str(root)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    manager = CheckpointManager(root)
    assert manager.latest() == root / "step_000001"
    verify_checkpoint(manager.latest())
    assert (root / "step_000002.tmp").exists()  # the half-written one never became a checkpoint
    assert manager.latest_valid() == root / "step_000001"
    manager.save(2, lambda d: (d / "weights.bin").write_bytes(b"new"), {"config": {}})
    assert not (root / "step_000002.tmp").exists()  # cleaned up by the next save
    verify_checkpoint(manager.latest())


def test_corrupted_manifest_is_refused_and_the_intact_one_named(tiny_overrides, tmp_path):
    cfg = load_config(
        [*tiny_overrides, "env=guess_the_number", "iterations=2", "checkpoint.every=1"]
    )
    summary = Trainer(cfg, console=False).run()
    root = Path(summary["run_dir"]) / "checkpoints"
    manifest = root / "step_000002" / "manifest.json"
    manifest.write_text(manifest.read_text()[:-40])  # truncated: not JSON any more
    before = sorted(p.name for p in root.rglob("*"))
    resume = load_config([*tiny_overrides, "env=guess_the_number", "iterations=3", "resume=latest"])
    with pytest.raises(CheckpointError, match="step_000002.*not valid JSON"):
        Trainer(resume, console=False)
    assert sorted(p.name for p in root.rglob("*")) == before  # nothing deleted or rewritten
    assert CheckpointManager(root).latest_valid() == root / "step_000001"
    # the intact checkpoint continues the run
    ok = load_config(
        [*tiny_overrides, "env=guess_the_number", "iterations=3", f"resume={root / 'step_000001'}"]
    )
    assert Trainer(ok, console=False).run()["iterations"] == 3


# --- security ------------------------------------------------------------------------------------
def test_eval_never_imports_code_named_by_a_checkpoint(tiny_overrides, tmp_path):
    from agentrl.evaluate import checkpoint_config

    manifest = {
        "config": {
            "imports": ["evil_module"],
            "algorithm": {"name": "evil.module:Algorithm"},
            "run_dir": "runs/x",
            "cluster": {"address": "ray://127.0.0.1:10001"},
        }
    }
    with pytest.raises(ConfigError) as e:
        checkpoint_config(manifest, [])
    msg = str(e.value)
    assert "imports=['evil_module']" in msg and "algorithm.name=evil.module:Algorithm" in msg
    assert "cluster.address" not in msg  # a URL is not code
    assert "evil_module" not in sys.modules
    # passing them yourself is the explicit act of trust
    cfg = checkpoint_config(
        manifest, ["imports=[evil_module]", "algorithm.name=evil.module:Algorithm"]
    )
    assert list(cfg.imports) == ["evil_module"]
    # and without code references the saved config is used as it is, minus nothing
    plain = checkpoint_config({"config": {"imports": [], "seed": 3}}, ["seed=4"])
    assert plain.seed == 4 and list(plain.imports) == []


@pytest.mark.ray
def test_learner_on_another_node_sends_checkpoint_files_to_the_driver(ray_cluster, tmp_path):
    """With ``transfer_files`` (automatic when the learner's node is not the driver's), the
    driver writes every checkpoint file itself and loads them back the same way."""
    from agentrl.rollouts.ray_actors import RemoteLearner

    kwargs = dict(model=TINY, algorithm={"name": "ppo"}, seed=3)
    probe = RemoteLearner(0.0, 0.25, **kwargs)
    assert probe.transfer_files is False  # the driver and the learner share the one node here
    probe.shutdown()
    direct = RemoteLearner(0.0, 0.25, transfer_files=False, **kwargs)
    moved = RemoteLearner(0.0, 0.25, transfer_files=True, **kwargs)
    other = RemoteLearner(
        0.0,
        0.25,
        transfer_files=True,
        **{**kwargs, "model": dataclasses.replace(TINY, init_seed=9)},
    )
    try:
        direct.save(str(tmp_path / "direct"))
        moved.save(str(tmp_path / "moved"))

        def listing(root):
            return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())

        files = listing(tmp_path / "direct")
        assert files and files == listing(tmp_path / "moved")
        for f in (f for f in files if f.parts[0] == "policy"):  # same weights, byte for byte
            assert (tmp_path / "direct" / f).read_bytes() == (tmp_path / "moved" / f).read_bytes()
        # loaded through Ray into a learner with other weights, it gets the saved ones
        before = other.get_weights()[0]
        other.load(str(tmp_path / "moved"), weights_only=True)
        after, saved = other.get_weights()[0], direct.get_weights()[0]
        assert any(not torch.equal(before[k], saved[k]) for k in saved)
        assert all(torch.equal(after[k], saved[k]) for k in saved)
    finally:
        for learner in (direct, moved, other):
            learner.shutdown()


def test_learner_lost_before_any_checkpoint_restarts_from_scratch(
    tiny_overrides, tmp_path, monkeypatch, capsys
):
    """The recovery path without Ray: a learner lost in its first update (no checkpoint yet)
    restarts the run from the start; each metrics row appears once and equals a clean run."""
    from agentrl.errors import LearnerLost
    from agentrl.learner import Learner

    base = [o for o in tiny_overrides if not o.startswith("run_dir=")]
    base += ["env=guess_the_number", "iterations=3", "checkpoint.every=0", "eval.every=1"]
    reference = Trainer(load_config([*base, f"run_dir={tmp_path / 'ref'}"]), console=False).run()
    update, lost = Learner.update, []

    def update_once_lost(self, episodes):
        if not lost:
            lost.append(True)
            raise LearnerLost("injected")
        return update(self, episodes)

    monkeypatch.setattr(Learner, "update", update_once_lost)
    summary = Trainer(load_config([*base, f"run_dir={tmp_path / 'lost'}"]), console=False).run()
    assert lost and "resuming from the start" in capsys.readouterr().err
    rows, ref_rows = _rows(summary["run_dir"]), _rows(reference["run_dir"])
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    for key in ("train/return", "eval/return", "eval_sample/return"):
        assert [r.get(key) for r in rows] == pytest.approx([r.get(key) for r in ref_rows]), key
