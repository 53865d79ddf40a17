"""End-to-end behaviour of the training loop (inline: no Ray)."""

import json
import os
import shutil
from contextlib import nullcontext
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


DETERMINISTIC_KEYS = (
    "train/return",
    "train/success",
    "train/turns",
    "ppo/loss",
    "ppo/approx_kl",
    "eval/return",
)


def test_train_writes_outputs(tiny_overrides, tmp_path):
    s = _run(
        [
            *tiny_overrides,
            "env=guess_the_number",
            "iterations=2",
            "logging.plot=true",
            "logging.tensorboard=true",
            "checkpoint.every=1",
            "checkpoint.keep=1",
        ]
    )
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


SMALL_ARCHER = [
    "algorithm.critic_epochs=2",
    "algorithm.batch_size=8",
    "algorithm.warmup_iters=1",
    "algorithm.critic_model.hidden_size=32",
    "algorithm.critic_model.num_layers=1",
]


@pytest.mark.parametrize("algorithm", ["ppo", "filtered_bc", "archer"])
def test_resume_equals_uninterrupted(tiny_overrides, tmp_path, algorithm):
    extra = SMALL_ARCHER if algorithm == "archer" else []
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        f"algorithm={algorithm}",
        *extra,
        "eval.every=1",
        "checkpoint.every=2",
    ]
    full = _run([*base, "iterations=4", f"run_dir={tmp_path / 'full'}"])
    # "kill" a run after iteration 2 (its checkpoint), then resume it to 4
    _run([*base, "iterations=2", f"run_dir={tmp_path / 'part'}"])
    resumed = _run([*base, "iterations=4", f"run_dir={tmp_path / 'part'}", "resume=latest"])
    a, b = _rows(full["run_dir"]), _rows(resumed["run_dir"])
    assert [r["iteration"] for r in b] == [0, 1, 2, 3, 4]
    for ra, rb in zip(a, b, strict=True):
        for k in ra:
            if (
                k.startswith(
                    (
                        "train/",
                        "eval/",
                        "eval_sample/",
                        "ppo/loss",
                        "filtered_bc/nll",
                        "archer/q_loss",
                        "archer/v_loss",
                        "archer/actor_loss",
                    )
                )
                or k in DETERMINISTIC_KEYS
            ):
                assert ra[k] == pytest.approx(rb[k], abs=1e-6), (ra["iteration"], k)


def test_callbacks_see_every_logged_row_and_resume_continues(tiny_overrides, tmp_path):
    seen: list[tuple[int, dict]] = []

    def callback(trainer, it, row):
        assert isinstance(trainer, Trainer) and trainer.learner is not None
        # the row is already in metrics.jsonl when the callback runs; its checkpoint is not yet
        assert _rows(trainer.run_dir)[-1]["iteration"] == it
        assert trainer.ckpt.latest() is None or trainer.ckpt.latest().name < f"step_{it:06d}"
        seen.append((it, row))

    base = [*tiny_overrides, "env=guess_the_number", "checkpoint.every=1", f"run_dir={tmp_path}"]
    Trainer(load_config([*base, "iterations=2"]), console=False, callbacks=[callback]).run()
    assert [it for it, _ in seen] == [0, 1, 2]
    assert "eval/success" in seen[0][1] and "ppo/loss" in seen[1][1]
    assert seen[2][1]["train/return"] == _rows(tmp_path)[2]["train/return"]
    seen.clear()  # a resumed run does not repeat iteration 0 or the iterations it restored
    Trainer(
        load_config([*base, "iterations=3", "resume=latest"]), console=False, callbacks=[callback]
    ).run()
    assert [it for it, _ in seen] == [3]


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
        Trainer(
            load_config([*tiny_overrides, "env=guess_the_number", "iterations=2", "resume=latest"]),
            console=False,
        )
    assert weights.read_bytes() == before  # nothing was overwritten
    (ckpt / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest.json is missing"):
        Trainer(load_config([*tiny_overrides, "iterations=2", f"resume={ckpt}"]), console=False)


def test_interrupted_save_keeps_latest(tiny_overrides, tmp_path, monkeypatch):
    s = _run([*tiny_overrides, "env=guess_the_number", "iterations=1"])
    root = Path(s["run_dir"]) / "checkpoints"
    latest = os.readlink(root / "latest")
    from agentrl.checkpoint import CheckpointManager

    def boom(d):
        (d / "partial").write_text("x")
        raise OSError("disk full")

    from agentrl.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="disk full.*nothing was replaced.*step_000001"):
        CheckpointManager(root).save(5, boom, {})
    assert os.readlink(root / "latest") == latest == "step_000001"
    assert not (root / "step_000005").exists()
    assert not (root / "step_000005.tmp").exists()  # the partial write is cleaned up


def test_init_from_starts_new_run_with_weights(tiny_overrides, tmp_path):
    s = _run([*tiny_overrides, "env=guess_the_number", "iterations=1"])
    new = _run(
        [
            *tiny_overrides,
            "env=guess_the_number",
            "iterations=1",
            f"init_from={s['checkpoint']}",
            f"run_dir={tmp_path / 'new'}",
        ]
    )
    rows = _rows(new["run_dir"])
    assert rows[0]["iteration"] == 0
    # the new run's initial eval is the old run's final eval: same weights, same seeds
    assert rows[0]["eval/return"] == pytest.approx(s["final_eval_return"])


def test_sigint_saves_and_exits(tiny_overrides, tmp_path):
    import signal
    import threading

    cfg = load_config(
        [*tiny_overrides, "env=guess_the_number", "iterations=50", "checkpoint.every=0"]
    )
    trainer = Trainer(cfg, console=False)
    original = trainer._iteration

    def slow_iteration(it, counters):
        if it == 2:
            threading.Timer(0.01, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        return original(it, counters)

    trainer._iteration = slow_iteration
    summary = trainer.run()
    assert summary["interrupted"] is True
    assert 2 <= summary["iterations"] < 50
    assert Path(summary["checkpoint"]).name == f"step_{summary['iterations']:06d}"


def test_warm_start_improves_over_random_init(tiny_overrides, tmp_path):
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        "iterations=0",
        "eval.episodes=16",
        "model.hidden_size=64",
    ]
    cold = _run([*base, f"run_dir={tmp_path / 'cold'}"])
    warm = _run(
        [
            *base,
            f"run_dir={tmp_path / 'warm'}",
            "warm_start.enabled=true",
            "warm_start.policy=good",
            "warm_start.episodes=60",
            "warm_start.epochs=3",
            "warm_start.lr=3e-3",
        ]
    )
    assert warm["initial_eval_success"] > cold["initial_eval_success"] + 0.3


def test_warm_start_is_checkpointed_and_a_resume_does_not_redo_it(tiny_overrides, tmp_path, monkeypatch):
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        "checkpoint.every=1",
        "warm_start.enabled=true",
        "warm_start.policy=good",
        "warm_start.episodes=8",
        "warm_start.epochs=1",
    ]
    full = _run([*base, "iterations=1", f"run_dir={tmp_path / 'full'}"])
    # a run stopped right after its warm start keeps it as step 0 ...
    _run([*base, "iterations=0", f"run_dir={tmp_path / 'part'}"])
    step0 = tmp_path / "part" / "checkpoints" / "step_000000"
    assert "warm_start/rows" in json.loads((step0 / "counters.json").read_text())["warm_start"]

    def fail(*args, **kwargs):
        raise AssertionError("the warm start ran again")

    import agentrl.warmstart

    monkeypatch.setattr(agentrl.warmstart, "warm_start_learner", fail)
    # ... and resuming from it continues exactly as the uninterrupted run, without redoing it
    resumed = _run([*base, "iterations=1", f"run_dir={tmp_path / 'part'}", "resume=latest"])
    a, b = _rows(full["run_dir"]), _rows(resumed["run_dir"])
    assert [r["iteration"] for r in b] == [0, 1]
    for k in ("warm_start/rows", "eval/return", "train/return", "ppo/loss"):
        assert a[-1 if k.startswith(("train", "ppo")) else 0][k] == pytest.approx(
            b[-1 if k.startswith(("train", "ppo")) else 0][k], abs=1e-6
        ), k


def test_a_subclass_warm_start_replaces_the_scripted_one_and_is_checkpointed(tiny_overrides, tmp_path, monkeypatch):
    """benchmarks/curricula_textcraft.py warm-starts on hinted tasks by overriding ``_warm_start``."""
    import agentrl.warmstart

    def fail(*args, **kwargs):
        raise AssertionError("the scripted warm start ran instead of the subclass's")

    monkeypatch.setattr(agentrl.warmstart, "warm_start_learner", fail)

    class CustomWarmStart(Trainer):
        def _warm_start(self) -> dict[str, float]:
            return {"warm_start/custom": 1.0}

    cfg = load_config([*tiny_overrides, "iterations=0", "checkpoint.every=1", "warm_start.enabled=true",
                       f"run_dir={tmp_path}"])  # fmt: skip
    CustomWarmStart(cfg, console=False).run()
    assert _rows(tmp_path)[0]["warm_start/custom"] == 1.0
    counters = json.loads((tmp_path / "checkpoints" / "step_000000" / "counters.json").read_text())
    assert counters["warm_start"] == {"warm_start/custom": 1.0}


def test_warm_start_of_a_tool_env_trains_on_rows_that_describe_its_tools(tiny_overrides, tmp_path, monkeypatch):
    from agentrl.learner import Learner

    seen: list[list[dict[str, str]]] = []
    original = Learner.warm_start

    def spy(self, rows, *args, **kwargs):
        seen.append(rows)
        return original(self, rows, *args, **kwargs)

    monkeypatch.setattr(Learner, "warm_start", spy)
    _run(
        [
            *tiny_overrides,
            "env=toolcalls",
            "iterations=0",
            "eval.episodes=2",
            "env.max_new_tokens=4",
            f"run_dir={tmp_path}",
            "warm_start.enabled=true",
            "warm_start.episodes=2",
            "warm_start.epochs=1",
        ]
    )
    (rows,) = seen
    assert rows and "You can call these tools" in rows[0]["prompt"]
    first = _rows(tmp_path)[0]
    assert first["warm_start/rows"] == len(rows)


def test_unknown_env_id_is_clear(tiny_overrides):
    import gymnasium

    with pytest.raises(gymnasium.error.Error, match="agentrl/TwentyQuestions-v0"):
        Trainer(load_config([*tiny_overrides, "env.id=agentrl/Nope-v0"]), console=False)


@pytest.fixture(autouse=True)
def _cleanup_runs():
    yield
    shutil.rmtree("runs", ignore_errors=True) if os.path.isdir("runs") and not os.listdir(
        "runs"
    ) else None


def test_lora_run_checkpoints_adapter_and_resumes(tiny_overrides, tmp_path):
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        "model.lora=true",
        "checkpoint.every=1",
        "eval.every=1",
    ]
    full = _run([*base, "iterations=2", f"run_dir={tmp_path / 'full'}"])
    policy_dir = Path(full["checkpoint"]) / "policy"
    assert (policy_dir / "adapter_model.safetensors").exists()
    assert not (policy_dir / "model.safetensors").exists()  # only the adapter is saved
    _run([*base, "iterations=1", f"run_dir={tmp_path / 'part'}"])
    resumed = _run([*base, "iterations=2", f"run_dir={tmp_path / 'part'}", "resume=latest"])
    assert _rows(resumed["run_dir"])[-1]["ppo/loss"] == pytest.approx(
        _rows(full["run_dir"])[-1]["ppo/loss"], abs=1e-6
    )


def test_chai_acts_with_its_critic_inline(tiny_overrides, monkeypatch):
    from agentrl.algorithms.archer.chai import Chai

    calls = []
    original = Chai.act

    def spy(self, observations, prompts, sampling=None):
        calls.append(len(observations))
        return original(self, observations, prompts, sampling)

    monkeypatch.setattr(Chai, "act", spy)
    s = _run(
        [
            *tiny_overrides,
            "env=guess_the_number",
            "algorithm=chai",
            *SMALL_ARCHER[:2],
            "algorithm.critic_model.hidden_size=32",
            "algorithm.critic_model.num_layers=1",
            "algorithm.num_candidates=2",
            "iterations=1",
        ]
    )
    assert calls, "CHAI's best-of-k acting rule was not used in rollouts"
    assert any(k.startswith("chai/") for k in _rows(s["run_dir"])[-1])


@pytest.mark.parametrize("depth", [1, 2])
def test_async_collection_is_max_staleness_versions_stale_and_resumes_exactly(tiny_overrides, tmp_path, depth):
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        "algorithm=archer",
        *SMALL_ARCHER,
        "eval.every=2",
        "checkpoint.every=2",
        "rollout.async_collection=true",
        f"rollout.max_staleness={depth}",
    ]
    full = _run([*base, "iterations=4", f"run_dir={tmp_path / 'full'}"])
    rows = _rows(full["run_dir"])
    # iteration 1 is collected by the initial policy, as are the `depth` launched with it;
    # every later one `depth` updates before the learner trains on it
    expected = {1: [0.0, 1.0, 1.0, 1.0], 2: [0.0, 1.0, 2.0, 2.0]}[depth]
    assert [r["async/staleness"] for r in rows[1:]] == expected
    assert [r["async/staleness_max"] for r in rows[1:]] == expected
    assert all(0.0 <= r["perf/learner_wait_frac"] <= 1.0 for r in rows[1:])
    # the next `depth` iterations' episodes are already collected and travel in the checkpoint
    pending = sorted(p.name for p in (Path(full["checkpoint"]) / "pending").glob("*.jsonl"))
    assert pending == [f"iter_{4 + k:06d}.jsonl" for k in range(1, depth + 1)]
    _run([*base, "iterations=2", f"run_dir={tmp_path / 'part'}"])
    resumed = _run([*base, "iterations=4", f"run_dir={tmp_path / 'part'}", "resume=latest"])
    for ra, rb in zip(rows, _rows(resumed["run_dir"]), strict=True):
        for k in (
            "train/return",
            "train/turns",
            "archer/q_loss",
            "archer/actor_loss",
            "eval/return",
            "async/staleness",
        ):
            if k in ra:
                assert ra[k] == pytest.approx(rb[k], abs=1e-6), (ra["iteration"], k)


def test_a_checkpoint_of_the_one_collection_layout_restores_its_collection(tmp_path):
    """Checkpoints of earlier versions kept the one collection in flight as
    ``pending_episodes.jsonl``: it comes back as the next iteration's."""
    from agentrl.pipeline import Pipeline
    from agentrl.types import save_episodes
    from agentrl.warmstart import scripted_episodes

    eps = scripted_episodes("agentrl/GuessTheNumber-v0", {"high": 4, "max_turns": 3}, "good", 3, seed=1)
    save_episodes(str(tmp_path / "pending_episodes.jsonl"), eps)
    (tmp_path / "pending_stats.json").write_text('{"gen_tokens": 7.0}')
    launched = []
    pipe = Pipeline(1, lambda it: launched.append(it), lambda: 0.0, False, lambda it: nullcontext())
    pipe.restore(tmp_path, iteration=6)
    got, stats, _ = pipe.take(7)
    assert [e.to_dict() for e in got] == [e.to_dict() for e in eps] and stats == {"gen_tokens": 7.0}
    assert launched == [8]  # the next one is launched, the restored one is not collected again


def _offline_dataset(path, n=60):
    from agentrl.types import save_episodes
    from agentrl.warmstart import scripted_episodes

    eps = scripted_episodes("agentrl/GuessTheNumber-v0", {"high": 4, "max_turns": 3}, "good", n, seed=3)
    save_episodes(str(path), eps)
    return eps


def test_offline_archer_trains_from_data_without_rollouts(tiny_overrides, tmp_path):
    from agentrl.cli import main

    data = tmp_path / "episodes.jsonl"
    _offline_dataset(data)
    run = tmp_path / "offline"
    args = [*tiny_overrides, "env=guess_the_number", "env.kwargs.high=4", "+env.kwargs.max_turns=3",
            "algorithm=archer_offline", f"data={data}", *SMALL_ARCHER, "algorithm.actor_lr=3e-3",
            "algorithm.actor_epochs=8", "algorithm.batch_size=32", "iterations=6", "eval.every=6",
            "eval.episodes=32", f"run_dir={run}"]
    assert main(["train", *args]) == 0
    rows = _rows(run)
    assert all("train/return" not in r for r in rows[1:])  # nothing was collected
    assert rows[-1]["episodes_total"] == 0 and rows[-1]["archer/actor_trained"] == 1.0
    # learning from the good player's games beats the untrained policy on the same eval seeds
    assert rows[-1]["eval_sample/success"] > rows[0]["eval_sample/success"] + 0.2


def test_offline_data_errors_are_clear(tiny_overrides, tmp_path, capsys):
    from agentrl.cli import main

    data = tmp_path / "episodes.jsonl"
    _offline_dataset(data, n=2)
    assert main(["train", *tiny_overrides, f"data={data}"]) == 2  # ppo learns from rollouts
    assert "offline algorithms (archer_offline)" in capsys.readouterr().err
    assert main(["train", *tiny_overrides, "algorithm=archer_offline", f"data={tmp_path / 'nope.jsonl'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    with open(data, "a") as f:
        f.write('{"turns": 3}\n')
    assert main(["train", *tiny_overrides, "algorithm=archer_offline", f"data={data}"]) == 2
    assert "episodes.jsonl:3: not an episode" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing started


def test_new_run_refuses_a_used_run_dir(tiny_overrides):
    base = [*tiny_overrides, "env=guess_the_number", "iterations=1"]
    s = _run(base)
    before = (Path(s["run_dir"]) / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already holds a run; continue it with resume=latest"):
        _run(base)
    assert (Path(s["run_dir"]) / "metrics.jsonl").read_text() == before  # untouched


def test_long_phases_print_progress(tiny_overrides, tmp_path, capsys):
    cfg = load_config([
        *tiny_overrides, "env=guess_the_number", "iterations=0", "eval.episodes=2",
        "warm_start.enabled=true", "warm_start.episodes=4", "warm_start.epochs=1",
        "logging.progress=true", f"run_dir={tmp_path}",
    ])
    Trainer(cfg, console=True).run()
    out = capsys.readouterr().out
    assert "warm start: step 1/" in out and "evaluating: 2 episodes, greedy and sampled ..." in out
    assert "evaluated in" in out


def test_eval_of_a_checkpoint_gives_the_numbers_its_run_logged(tiny_overrides, tmp_path):
    from agentrl.evaluate import evaluate_checkpoint

    run = tmp_path / "run"
    summary = _run([
        *tiny_overrides, "env=guess_the_number", "iterations=2", "eval.every=2",
        "eval.episodes=6", "rollout.sampling.temperature=0.7", f"run_dir={run}",
    ])
    last = _rows(run)[-1]
    got = evaluate_checkpoint(str(run))
    assert got["episodes"] == 6 and got["step"] == 2
    for key in ("eval/success", "eval/return", "eval_sample/success", "eval_sample/return"):
        assert got[key] == pytest.approx(last[key]), key
    greedy_only = evaluate_checkpoint(str(run), episodes=3, overrides=["eval.sample=false"])
    assert "eval/return" in greedy_only and "eval_sample/return" not in greedy_only
    assert summary["final_eval_sample_return"] == pytest.approx(last["eval_sample/return"])


def test_every_evaluation_writes_what_the_agent_said(tiny_overrides, tmp_path):
    run = tmp_path / "run"
    _run([
        *tiny_overrides, "env=guess_the_number", "iterations=1", "eval.every=1",
        "eval.episodes=3", "logging.transcripts=2", f"run_dir={run}",
    ])
    files = sorted(p.name for p in (run / "transcripts").glob("*.md"))  # (and .jsonl: test_trackers)
    assert files == ["iter_000000.md", "iter_000001.md"]
    text = (run / "transcripts" / "iter_000001.md").read_text()
    assert text.count("## greedy, seed") == 2 and text.count("## sampled, seed") == 2
    assert "**user** (turn 0)" in text and "Guess the number between 1 and 16." in text
    assert "**agent** (reward" in text
