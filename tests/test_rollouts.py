"""Rollout workers: lock-step collection, error handling, and the 2-worker Ray group."""

import gymnasium as gym
import pytest

from agentrl.envs.base import TextEnv
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.rollouts.group import InlineWorkerGroup, split_jobs
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

TINY = ModelConfig(hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128)
SAMPLING = SamplingConfig(max_new_tokens=8)
GTN = "agentrl/GuessTheNumber-v0"


class Exploding(TextEnv):
    max_turns = 5

    def _reset(self, task):
        return "Say anything.", {}

    def _step(self, action):
        if self._turn == 2:
            raise ValueError("boom")
        return "again", 0.5, False, {}


if "agentrl-test/Exploding-v0" not in gym.registry:
    gym.register("agentrl-test/Exploding-v0", entry_point=Exploding)


def _jobs(n, offset=0):
    return [EpisodeJob(i, 100 + offset + i) for i in range(n)]


def test_split_jobs():
    chunks = split_jobs(_jobs(5), 2)
    assert [len(c) for c in chunks] == [3, 2]
    assert [j.job_id for c in chunks for j in c] == list(range(5))


def test_worker_collects_complete_episodes_in_order():
    policy = Policy.from_config(TINY)
    worker = RolloutWorker(GTN, {"low": 1, "high": 16}, 3, SAMPLING, policy=policy)
    eps = worker.collect(_jobs(7), rng_seed=1)
    assert [e.seed for e in eps] == [100 + i for i in range(7)]
    for e in eps:
        assert 1 <= e.num_turns <= 6
        assert e.turns[-1].terminated or e.turns[-1].truncated
        assert all(not t.done for t in e.turns[:-1])
        assert "target" in e.task
        for t in e.turns:
            assert len(t.action_ids) == len(t.action_logprobs) > 0
            assert t.prompt_ids
    again = worker.collect(_jobs(7), rng_seed=1)
    assert [[t.action for t in e.turns] for e in eps] == [[t.action for t in e.turns] for e in again]


def test_env_exception_ends_only_that_episode():
    policy = Policy.from_config(TINY)
    worker = RolloutWorker("agentrl-test/Exploding-v0", {}, 2, SAMPLING, policy=policy)
    eps = worker.collect(_jobs(3), rng_seed=0)
    assert len(eps) == 3
    for e in eps:
        assert e.num_turns == 2 and e.turns[-1].truncated
        assert "ValueError: boom" in e.error
        assert e.turns[0].reward == 0.5


@pytest.mark.ray
def test_two_ray_workers_match_inline(ray_cluster):
    from agentrl.rollouts.ray_actors import RayWorkerGroup

    policy = Policy.from_config(TINY)
    inline = InlineWorkerGroup(RolloutWorker(GTN, {}, 4, SAMPLING, policy=policy), num_chunks=2)
    group = RayWorkerGroup(2, GTN, {}, 4, SAMPLING, TINY, num_cpus=1)
    try:
        weights = policy.get_weights()
        group.set_weights(weights, version=3)
        inline.set_weights(None, 3)
        jobs = _jobs(10)
        remote = group.collect(jobs, rng_seed=5)
        local = inline.collect(jobs, rng_seed=5)
        assert len(remote) == 10 and [e.seed for e in remote] == [j.seed for j in jobs]
        assert {e.policy_version for e in remote} == {3}
        assert [[t.action for t in e.turns] for e in remote] == [[t.action for t in e.turns] for e in local]
        assert group.last_stats["gen_tokens"] > 0
    finally:
        group.shutdown()
