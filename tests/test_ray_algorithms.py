"""Every registered algorithm trains on Ray, and an algorithm's own acting rule (CHAI, RLTF)
runs in the Ray rollout workers with the learner's state (issue 19)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import agentrl.algorithms  # noqa: F401  (registers the built-in algorithms)
from agentrl.algorithm import (
    ActingRuleSpec,
    AlgorithmBase,
    acting_rule_spec,
    algorithm_class,
    episodes_per_task,
    rule_seed,
)
from agentrl.algorithms.archer.chai import Chai, ChaiConfig, CriticChoice
from agentrl.algorithms.rltf.config import RLTFConfig
from agentrl.algorithms.rltf.learner import RLTF, EpsilonGreedyChoice
from agentrl.config import load_config
from agentrl.learner import Learner
from agentrl.metrics import read_metrics
from agentrl.play import acting_rule
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.registry import ALGORITHMS
from agentrl.rollouts.group import chunk_seed
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
from agentrl.trainer import Trainer
from agentrl.types import Episode, Turn
from agentrl.validate import algorithm_section

TINY = dict(name="tiny", hidden_size=64, num_layers=1, num_heads=2, intermediate_size=128)
SMALL_CRITIC = dict(
    critic_epochs=2,
    batch_size=8,
    critic_head_hidden=32,
    critic_max_length=64,
    critic_model=dict(
        name="tiny_encoder",
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        tokenizer="policy",
    ),
)
SMALL_ARCHER = [
    "algorithm.critic_epochs=2",
    "algorithm.batch_size=8",
    "algorithm.critic_model.hidden_size=32",
    "algorithm.critic_model.num_layers=1",
]
GUESS = ["env=guess_the_number", "env.kwargs.high=4", "+env.kwargs.max_turns=3"]
# the env and settings of a fast run; an algorithm not named here runs GUESS with its defaults
FAST_SETTINGS: dict[str, list[str]] = {
    "archer": [*GUESS, *SMALL_ARCHER],
    "archer_offline": [*GUESS, *SMALL_ARCHER],
    "chai": [*GUESS, *SMALL_ARCHER, "algorithm.num_candidates=2"],
    "rltf": [
        "env=toolchain",
        "rollout.sampling.constraint=toolchain",
        "algorithm.num_candidates=2",
    ],
}


def _registry() -> list[object]:
    """Every registered algorithm; those with an acting rule (CHAI, RLTF) in the default suite."""
    return [
        pytest.param(n, marks=() if algorithm_class(n).has_acting_rule else pytest.mark.slow)
        for n in sorted(ALGORITHMS.names())
    ]


def _offline_data(path: Path) -> Path:
    """Scripted GuessTheNumber games (as tests/test_trainer.py gives archer_offline)."""
    from agentrl.types import save_episodes
    from agentrl.warmstart import scripted_episodes

    save_episodes(
        str(path),
        scripted_episodes(
            "agentrl/GuessTheNumber-v0", {"high": 4, "max_turns": 3}, "good", 16, seed=3
        ),
    )
    return path


def _nbytes(tensors: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors.values())


@pytest.mark.ray
@pytest.mark.parametrize("name", _registry())
def test_every_registered_algorithm_trains_on_ray(ray_cluster, tiny_overrides, tmp_path, name):
    overrides = [
        *tiny_overrides,
        "cluster=local",
        f"algorithm={name}",
        "iterations=2",
        "rollout.num_workers=1",
        "rollout.envs_per_worker=4",
        "rollout.num_cpus_per_worker=0.5",
        "cluster.learner_num_cpus=0.5",
        "eval.every=2",
        "eval.episodes=2",
        "eval.greedy=false",  # the sampled mode acts with the algorithm's rule
        "logging.transcripts=0",
        *FAST_SETTINGS.get(name, GUESS),
    ]
    if algorithm_class(name).offline:  # learns from a dataset: give it one, as its tests do
        overrides.append(f"data={_offline_data(tmp_path / 'episodes.jsonl')}")
    group = episodes_per_task(name, algorithm_section(load_config(overrides)))  # GRPO's groups
    cfg = load_config([*overrides, f"rollout.episodes_per_iter={group * max(1, 4 // group)}"])
    summary = Trainer(cfg, console=False).run()

    rows = read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")
    assert [r["iteration"] for r in rows if r["iteration"] > 0] == [1, 2]
    assert summary["iterations"] == 2 and summary["checkpoint"].endswith("step_000002")
    checkpoint = Path(summary["checkpoint"])
    assert (checkpoint / "algorithm" / "state.pt").is_file() and (checkpoint / "policy").is_dir()
    # every sync sent the policy weights and the acting rule's state (CHAI's critic, RLTF's epsilon)
    local = Learner(cfg.model, algorithm_section(cfg), seed=cfg.seed)
    state = _nbytes(local.acting_state())
    assert rows[-1]["perf/sync_mb"] * 2**20 == pytest.approx(
        _nbytes(local.policy.get_weights()) + state
    )
    assert (state > 0) == algorithm_class(name).has_acting_rule


# --- the acting rule on a worker ---------------------------------------------------------------


def _policy(lora: bool = False) -> Policy:
    torch.manual_seed(0)
    return Policy.from_config(ModelConfig(**TINY, lora=lora))


def _chai(policy: Policy, **kw: object) -> tuple[Chai, dict[str, object]]:
    """A CHAI whose critic has learned from a few toy turns, and its config section."""
    config = ChaiConfig(**{**SMALL_CRITIC, "num_candidates": 4, "critic_lr": 1e-2, **kw})  # type: ignore[arg-type]
    chai = Chai(config, policy, seed=0)
    obs = "Guess a number between 1 and 4."
    episodes = []
    for seed, (action, reward) in enumerate([("1", 0.0), ("2", 1.0), ("3", 0.0), ("4", 0.0)]):
        turn = Turn(
            observation=obs,
            action=action,
            prompt_ids=policy.encode_prompts([obs])[0],
            action_ids=policy.tokenizer.encode(action, add_special_tokens=False),
            action_logprobs=[],
            reward=reward,
            terminated=True,
            truncated=False,
        )
        episodes.append(Episode(env_id="toy", task={}, seed=seed, turns=[turn]))
    chai.update(episodes)
    return chai, {"name": "chai", **dataclasses.asdict(config)}


def _texts() -> tuple[list[str], list[str]]:
    return ["Guess a number between 1 and 4."] * 4 + ["higher"] * 2, ["1", "2", "3", "4", "2", "3"]


@pytest.mark.parametrize("lora", [False, True], ids=["separate_encoder", "policy_lora"])
def test_a_workers_chai_rule_scores_with_the_learners_critic(lora):
    """After a sync, the worker-side rule's critic scores equal the learner's critic's; before
    it they do not; under ``critic_encoder=policy_lora`` the sync sends LoRA tensors and heads."""
    policy = _policy(lora)
    chai, section = _chai(policy, **({"critic_encoder": "policy_lora"} if lora else {}))
    # a worker's copy: under LoRA the same base model (only the adapter travels)
    worker_policy = Policy.from_config(ModelConfig(**TINY, lora=lora, init_seed=0 if lora else 5))
    worker_policy.set_weights(policy.get_weights())
    rule = ActingRuleSpec("chai", section).build(worker_policy)
    assert isinstance(rule, CriticChoice) and rule.critic is not chai.critic
    obs, actions = _texts()
    with torch.no_grad():
        learner_scores = chai.critic.min_q(obs, actions)
        assert not torch.allclose(rule.critic.min_q(obs, actions), learner_scores)  # not synced yet
        state = chai.acting_state()
        rule.load_state(state)
        torch.testing.assert_close(rule.critic.min_q(obs, actions), learner_scores)
    if lora:  # the critic's adapter and heads only: none of the policy's own weights travel
        assert all(
            k.startswith("encoder.lora.") or k.split(".")[0] in ("q1", "q2", "v1", "v2")
            for k in state
        )
        assert _nbytes(state) < _nbytes(policy.model.state_dict()) / 4
    assert not any(p.requires_grad for p in rule.critic.parameters())


def test_a_workers_rltf_rule_picks_as_the_learners_with_its_epsilon():
    """The worker-side epsilon-greedy choice with the learner's epsilon and the same generator
    states picks the plans the learner's rule picks; with epsilon 0 it does not."""
    policy = _policy()
    sampling = SamplingConfig(max_new_tokens=8)
    algo = RLTF(RLTFConfig(num_candidates=4, epsilon=0.9), policy, seed=0)
    algo.num_updates = 1
    rule = ActingRuleSpec("rltf", {"name": "rltf", "num_candidates": 4, "epsilon": 0.9}).build(
        policy
    )
    assert isinstance(rule, EpsilonGreedyChoice)
    obs = [f"Task: number {i}." for i in range(12)]
    prompts = policy.encode_prompts(obs)

    def worker_picks(epsilon: float) -> list[str]:
        rule.load_state({"epsilon": torch.tensor(epsilon, dtype=torch.float64)})
        rule.reseed(11)
        return [g.text for g in rule(obs, prompts, sampling)]

    algo.act_generator.manual_seed(rule_seed(11, 0))
    algo.choice_generator.manual_seed(rule_seed(11, 1))
    learner = [g.text for g in algo.act(obs, prompts, sampling)]
    assert worker_picks(float(algo.acting_state()["epsilon"])) == learner
    assert algo.acting_state()["epsilon"].item() == pytest.approx(0.81)
    assert worker_picks(0.0) != learner  # the synced epsilon decides the picks


def test_a_worker_acts_only_with_the_acting_state_of_its_weights():
    policy = _policy()
    sampling = SamplingConfig(max_new_tokens=4)
    spec = acting_rule_spec("rltf", {"name": "rltf", "num_candidates": 2})
    assert spec is not None and acting_rule_spec("ppo", {"name": "ppo"}) is None
    worker = RolloutWorker(
        "agentrl/GuessTheNumber-v0", {}, 2, sampling, policy=policy, acting_rule=spec
    )
    with pytest.raises(RuntimeError, match="acting state of version None"):
        worker.acting_fn(0)
    worker.set_weights(policy.get_weights(), 3, {"epsilon": torch.tensor(0.5, dtype=torch.float64)})
    (episode,) = worker.collect([EpisodeJob(0, 0)], rng_seed=0, act=worker.acting_fn(0))
    assert episode.turns and episode.policy_version == 3
    worker.set_weights(policy.get_weights(), 4)  # weights without the acting state
    with pytest.raises(RuntimeError, match="version 3 but the policy weights are of version 4"):
        worker.acting_fn(0)
    plain = RolloutWorker("agentrl/GuessTheNumber-v0", {}, 1, sampling, policy=policy)
    with pytest.raises(ValueError, match="without acting_rule"):
        plain.set_weights(policy.get_weights(), 1, {"epsilon": torch.tensor(0.5)})


@pytest.mark.ray
def test_chai_on_a_ray_worker_picks_the_candidates_the_inline_rule_picks(ray_cluster):
    """A Ray rollout worker given the learner's weights and critic (one sync) collects the
    episodes the inline rule collects with the same critic and generator state; with the
    critic it started with (no sync of the critic) the inline rule picks otherwise."""
    from agentrl.rollouts.ray_actors import RayWorkerGroup, WorkerActingRule

    policy = _policy()
    chai, section = _chai(policy)
    sampling = SamplingConfig(max_new_tokens=6)
    env, jobs, seed = "agentrl/GuessTheNumber-v0", [EpisodeJob(j, 100 + j) for j in range(4)], 7
    group = RayWorkerGroup(
        1,
        env,
        {"high": 4},
        4,
        sampling,
        ModelConfig(**TINY, init_seed=5),
        num_cpus=0.5,
        acting_rule=ActingRuleSpec("chai", section),
    )
    try:
        with pytest.raises(NotImplementedError, match="would run in the driver"):
            group.collect(jobs, seed, act=acting_rule(chai, sampling))
        group.set_weights(policy.get_weights(), 1, chai.acting_state())
        on_ray = group.collect(jobs, seed, act=WorkerActingRule())
    finally:
        group.shutdown()

    def inline(algorithm: Chai) -> list[list[str]]:
        worker = RolloutWorker(env, {"high": 4}, 4, sampling, policy=policy)
        algorithm.act_generator.manual_seed(rule_seed(chunk_seed(seed, 0), 0))  # the worker's draws
        return [
            [t.action for t in e.turns]
            for e in worker.collect(jobs, chunk_seed(seed, 0), act=acting_rule(algorithm, sampling))
        ]

    actions = [[t.action for t in e.turns] for e in on_ray]
    assert actions == inline(chai)
    assert actions != inline(
        Chai(chai.config, policy, seed=0)
    )  # the unsynced critic picks otherwise


class _InlineOnly(AlgorithmBase):
    """An acting rule for inline runs only (no worker_acting_rule)."""

    has_acting_rule = True

    def __init__(self, config: object, policy: Policy, seed: int = 0):
        self.policy = policy

    def update(self, episodes: object) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, object]:
        return {}

    def load_state_dict(self, state: dict[str, object]) -> None:
        return None


def test_an_acting_rule_without_a_worker_copy_is_refused_on_ray_only(monkeypatch, tiny_overrides):
    from agentrl.config import ConfigError
    from agentrl.validate import validate_components

    monkeypatch.setitem(ALGORITHMS._items, "inline_only", _InlineOnly)
    base = [o for o in tiny_overrides if not o.startswith(("algorithm=", "cluster="))]
    named = [*base, "~algorithm", "+algorithm.name=inline_only"]
    validate_components(load_config([*named, "cluster=inline"]))
    with pytest.raises(
        ConfigError, match="inline_only has an acting rule .* no worker_acting_rule"
    ):
        validate_components(load_config([*named, "cluster=local"]))
    for name in ("chai", "rltf"):  # the built-in rules run on Ray
        validate_components(load_config([*base, f"algorithm={name}", "cluster=local"]))
