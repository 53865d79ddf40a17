"""Rewards under Ray: the reward model in its own actor, and collection on Ray workers."""

from __future__ import annotations

import pytest

from agentrl.config import load_config
from agentrl.metrics import read_metrics
from agentrl.rewards.armap import CollectConfig, collect
from agentrl.rewards.armap.jsonl import read_jsonl
from agentrl.trainer import Trainer


@pytest.mark.ray
def test_reward_actor_relabels_like_inline(ray_cluster, tiny_overrides, tmp_path):
    base = [
        *tiny_overrides,
        "env=guess_the_number",
        "iterations=1",
        "eval.every=0",
        "eval.sample=false",
        "rollout.num_workers=1",
        "rollout.episodes_per_iter=4",
        "rollout.num_cpus_per_worker=0.5",
        "cluster.learner_num_cpus=0.5",
        "reward=rule",
        "reward.fn=turn_penalty",
        "reward.weight=0.5",
    ]
    trainer = Trainer(
        load_config([*base, "cluster=local", f"run_dir={tmp_path / 'ray'}"]), console=False
    )
    trainer.run()
    assert type(trainer.reward).__name__ == "RemoteReward"
    inline = Trainer(
        load_config([*base, "cluster=inline", f"run_dir={tmp_path / 'inline'}"]), console=False
    )
    inline.run()
    a = read_metrics(tmp_path / "ray" / "metrics.jsonl")[-1]
    b = read_metrics(tmp_path / "inline" / "metrics.jsonl")[-1]
    # replace mode: the final-turn reward is 0.5 * (-turns); the env return is logged apart
    assert a["train/relabelled_return"] == pytest.approx(-0.5 * a["train/turns"])
    assert a["train/relabelled_return"] == pytest.approx(b["train/relabelled_return"])
    assert a["train/return"] == pytest.approx(b["train/return"])


@pytest.mark.ray
@pytest.mark.slow  # ~1 min: Ray tasks import torch/transformers on first use
def test_collect_on_ray_workers_equals_inline(ray_cluster, tmp_path):
    from agentrl.rollouts.reward_actors import ray_map_chunks

    cfg = dict(episodes=20, policy="mix", epsilon=0.5, chunk_size=6)
    remote = collect(
        CollectConfig(out=str(tmp_path / "r.jsonl"), **cfg),
        map_chunks=ray_map_chunks(2, num_cpus=0.5),
    )
    local = collect(CollectConfig(out=str(tmp_path / "l.jsonl"), **cfg))
    assert remote["written"] == local["written"] == 20
    by_id = lambda p: {r["id"]: r for r in read_jsonl(p)}  # noqa: E731
    assert by_id(tmp_path / "r.jsonl") == by_id(tmp_path / "l.jsonl")
