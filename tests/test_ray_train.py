"""A short training run through Ray actors (learner + 2 rollout workers)."""

import pytest

from agentrl.config import load_config
from agentrl.metrics import read_metrics
from agentrl.trainer import Trainer


@pytest.mark.ray
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_ray_training_matches_inline(ray_cluster, tiny_overrides, tmp_path, depth):
    """Synchronous (depth 0) and asynchronous collection (``rollout.max_staleness`` = depth
    iterations collected ahead, stale PPO turns trained with decoupled PPO): the same
    episodes and updates over Ray as inline."""
    iterations = max(2, depth + 1)
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        f"iterations={iterations}",
        "rollout.num_workers=2",
        f"rollout.async_collection={str(depth > 0).lower()}",
        f"rollout.max_staleness={max(depth, 1)}",
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
    assert [r["iteration"] for r in a] == list(range(iterations + 1))
    # eval sees the freshest weights
    assert [r["eval/policy_version"] for r in a] == [float(i) for i in range(iterations + 1)]
    assert [r["async/staleness"] for r in a[1:]] == [float(min(i, depth)) for i in range(iterations)]
    if depth == 2:  # the third iteration's turns are 2 versions old: decoupled PPO
        assert a[3]["ppo/stale_frac"] == 1.0 and "ppo/stale_weight_mean" in a[3]
    for ra, rb in zip(a, b, strict=True):
        for key in (
            "train/return",
            "train/turns",
            "ppo/loss",
            "eval/return",
            "eval_sample/return",
            "async/staleness",
            "eval/policy_version",
            "ppo/stale_weight_mean",
        ):
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], abs=1e-5), key
    assert ray_run["checkpoint"].endswith(f"step_{iterations:06d}") and inline["iterations"] == iterations


@pytest.mark.ray
def test_too_many_workers_fail_fast(ray_cluster, tiny_overrides):
    cfg = load_config([*tiny_overrides, "cluster=local", "rollout.num_workers=5"])
    with pytest.raises(RuntimeError, match="need 6 CPU .* has 2 CPU"):
        Trainer(cfg, console=False).run()
