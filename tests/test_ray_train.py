"""A short training run through Ray actors (learner + 2 rollout workers)."""

import pytest

from agentrl.config import load_config
from agentrl.metrics import read_metrics
from agentrl.trainer import Trainer


@pytest.mark.ray
@pytest.mark.parametrize("async_collection", [False, True])
def test_ray_training_matches_inline(ray_cluster, tiny_overrides, tmp_path, async_collection):
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        "iterations=2",
        "rollout.num_workers=2",
        f"rollout.async_collection={str(async_collection).lower()}",
        "algorithm.lr=1e-2",
        "eval.every=1",
        "rollout.episodes_per_iter=6",
        "rollout.envs_per_worker=3",
        "rollout.num_cpus_per_worker=0.5",
        "cluster.learner_num_cpus=0.5",
    ]
    ray_run = Trainer(
        load_config([*base, "cluster=local", f"run_dir={tmp_path / 'ray'}"]), console=False
    ).run()
    inline = Trainer(
        load_config([*base, "cluster=inline", f"run_dir={tmp_path / 'inline'}"]), console=False
    ).run()
    a = read_metrics(tmp_path / "ray" / "metrics.jsonl")
    b = read_metrics(tmp_path / "inline" / "metrics.jsonl")
    assert [r["iteration"] for r in a] == [0, 1, 2]
    assert [r["eval/policy_version"] for r in a] == [
        0.0,
        1.0,
        2.0,
    ]  # eval sees the freshest weights
    for ra, rb in zip(a, b, strict=True):
        for key in (
            "train/return",
            "train/turns",
            "ppo/loss",
            "eval/return",
            "eval_sample/return",
            "async/staleness",
            "eval/policy_version",
        ):
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], abs=1e-5), key
    assert ray_run["checkpoint"].endswith("step_000002") and inline["iterations"] == 2


@pytest.mark.ray
def test_too_many_workers_fail_fast(ray_cluster, tiny_overrides):
    cfg = load_config([*tiny_overrides, "cluster=local", "rollout.num_workers=5"])
    with pytest.raises(RuntimeError, match="need 6 CPU .* has 2 CPU"):
        Trainer(cfg, console=False).run()
