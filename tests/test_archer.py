"""ArCHer and CHAI: hand-computed losses, replay, critic passes, update behaviour, resume."""

from __future__ import annotations

import dataclasses
import io
import json
import math

import pytest
import torch

from agentrl.algorithms.archer import (  # importing registers "archer", "archer_offline", "chai"
    Archer,
    ArcherConfig,
    ArcherOffline,
    ArcherOfflineConfig,
    Chai,
    ChaiConfig,
    ReplayBuffer,
    Transition,
    build_critic,
    episode_transitions,
)
from agentrl.algorithms.archer.losses import (
    actor_loss,
    advantage,
    awr_weights,
    expectile_loss,
    polyak_update_,
    q_loss,
    v_loss,
)
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.types import Episode, Turn

OBS = "Pick A or B"
TINY_CRITIC = {
    "name": "tiny_encoder",
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 128,
}


def tiny_policy() -> Policy:
    torch.manual_seed(0)
    return Policy.from_config(
        ModelConfig(name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128)
    )


def lora_policy() -> Policy:
    torch.manual_seed(0)
    return Policy.from_config(
        ModelConfig(
            name="tiny", hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128, lora=True
        )
    )


def small_config(**kw) -> ArcherConfig:
    base = dict(
        critic_lr=1e-3,
        actor_lr=1e-4,
        batch_size=8,
        grad_accum=2,
        critic_epochs=2,
        actor_epochs=1,
        warmup_iters=0,
        max_new_tokens=6,
        critic_head_hidden=32,
        critic_model=dict(TINY_CRITIC),
        critic_max_length=64,
    )
    base.update(kw)
    return ArcherConfig(**base)


def turn(policy, obs, action, reward, done=True, next_obs="", truncated=False) -> Turn:
    return Turn(
        observation=obs,
        action=action,
        prompt_ids=policy.encode_prompts([obs])[0],
        action_ids=policy.tokenizer.encode(action + "\n", add_special_tokens=False),
        action_logprobs=[],
        reward=reward,
        terminated=done and not truncated,
        truncated=truncated,
        next_observation=next_obs,
    )


def toy_episodes(policy) -> list[Episode]:
    """Same observation; "A" earns 1, "B" earns 0; plus a two-turn episode (bootstrapping)."""
    two = [turn(policy, "start", "go", 0.0, done=False, next_obs=OBS), turn(policy, OBS, "A", 1.0)]
    return [
        Episode(env_id="toy", task={}, seed=0, turns=[turn(policy, OBS, "A", 1.0)]),
        Episode(env_id="toy", task={}, seed=1, turns=[turn(policy, OBS, "B", 0.0)]),
        Episode(env_id="toy", task={}, seed=2, turns=two),
    ]


def no_time(stats: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in stats.items() if not k.endswith("_s")}


# --------------------------------------------------------------------------- losses


def test_q_loss_hand_computed():
    q1, q2 = torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0])
    r, done = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    v1n, v2n = torch.tensor([2.0, 5.0]), torch.tensor([4.0, 5.0])
    # y1 = [1 + 0.5*2, 0] = [2, 0]    -> mean((1-2)^2, (2-0)^2) = (1 + 4)/2 = 2.5
    # y2 = [1 + 0.5*4, 0] = [3, 0]    -> mean((0-3)^2, (1-0)^2) = (9 + 1)/2 = 5.0
    assert q_loss(q1, q2, r, done, v1n, v2n, gamma=0.5).item() == pytest.approx(7.5)


def test_v_loss_hand_computed_and_targets_detached():
    v1 = torch.tensor([0.0, 1.0], requires_grad=True)
    v2 = torch.tensor([2.0, 2.0])
    q1t = torch.tensor([1.0, 1.0], requires_grad=True)
    q2t = torch.tensor([0.0, 4.0])
    loss = v_loss(v1, v2, q1t, q2t)
    # mean(1, 0) + mean(4, 4) = 0.5 + 4 = 4.5
    assert loss.item() == pytest.approx(4.5)
    loss.backward()
    assert q1t.grad is None
    # d/dv1 mean((v1 - t)^2) = 2 (v1 - t) / 2 = [-1, 0]
    assert torch.allclose(v1.grad, torch.tensor([-1.0, 0.0]))


def test_advantage_hand_computed():
    q1, q2 = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0])
    v1, v2 = torch.tensor([0.5, 1.0]), torch.tensor([1.0, -1.0])
    # min Q = [1, 0]; min V = [0.5, -1]; A = [0.5, 1]
    assert torch.allclose(advantage(q1, q2, v1, v2), torch.tensor([0.5, 1.0]))


def test_actor_loss_reinforce_hand_computed():
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    adv = torch.tensor([2.0, 1.0])
    loss = actor_loss(logp, adv)
    # -mean(2 * -1, 1 * -2) = -mean(-2, -2) = 2; dL/dlogp = -A / B = [-1, -0.5]
    assert loss.item() == pytest.approx(2.0)
    loss.backward()
    assert torch.allclose(logp.grad, torch.tensor([-1.0, -0.5]))


def test_actor_loss_clipped_hand_computed():
    logp = torch.tensor([0.0, math.log(2.0)])
    old = torch.tensor([math.log(2.0), 0.0])
    # ratio = [0.5, 2]; clipped to [0.8, 1.2]
    # A = +1: min(0.5, 0.8) = 0.5, min(2, 1.2) = 1.2 -> loss = -(0.5 + 1.2)/2 = -0.85
    assert actor_loss(logp, torch.ones(2), old, clip=0.2).item() == pytest.approx(-0.85)
    # A = -1: min(-0.5, -0.8) = -0.8, min(-2, -1.2) = -2 -> loss = (0.8 + 2)/2 = 1.4
    assert actor_loss(logp, -torch.ones(2), old, clip=0.2).item() == pytest.approx(1.4)
    with pytest.raises(ValueError, match="old_logprobs"):
        actor_loss(logp, torch.ones(2), None, clip=0.2)


def test_polyak_update_hand_computed():
    target = [torch.tensor([0.0, 10.0]), torch.tensor([[2.0]])]
    online = [torch.tensor([1.0, 20.0]), torch.tensor([[4.0]])]
    polyak_update_(target, online, tau=0.1)
    # 0.9 * 0 + 0.1 * 1 = 0.1; 0.9 * 10 + 0.1 * 20 = 11; 0.9 * 2 + 0.1 * 4 = 2.2
    assert torch.allclose(target[0], torch.tensor([0.1, 11.0]))
    assert torch.allclose(target[1], torch.tensor([[2.2]]))
    assert torch.equal(online[0], torch.tensor([1.0, 20.0]))


def test_expectile_and_awr_hand_computed():
    # weights [0.9, 0.1] -> (0.9 * 1 + 0.1 * 4) / 2 = 0.65
    assert expectile_loss(torch.tensor([1.0, -2.0]), 0.9).item() == pytest.approx(0.65)
    w = awr_weights(torch.tensor([0.0, math.log(2.0), 10.0]), beta=1.0, max_weight=100.0)
    assert torch.allclose(w, torch.tensor([1.0, 2.0, 100.0]))  # exp(10) is capped


# --------------------------------------------------------------------------- config


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="gamma must be in"):
        ArcherConfig(gamma=1.5)
    with pytest.raises(ValueError, match="tau must be in"):
        ArcherConfig(tau=0.0)
    with pytest.raises(ValueError, match="batch_size .* multiple of grad_accum"):
        ArcherConfig(batch_size=10, grad_accum=4)
    with pytest.raises(ValueError, match="critic_encoder must be one of"):
        ArcherConfig(critic_encoder="shared")
    with pytest.raises(ValueError, match="critic_epochs must be an integer >= 0"):
        ArcherConfig(critic_epochs=-1)
    with pytest.raises(ValueError, match="num_candidates"):
        ChaiConfig(num_candidates=0)
    with pytest.raises(ValueError, match="expectile must be in"):
        ArcherOfflineConfig(expectile=1.0)
    with pytest.raises(ValueError, match="ppo_clip must be None"):
        ArcherOfflineConfig(ppo_clip=0.2)
    with pytest.raises(ValueError, match="actor_lr_end must be in"):
        ArcherConfig(actor_lr=1e-5, actor_lr_end=1e-4)
    with pytest.raises(ValueError, match="actor_lr_decay_iters must be an integer >= 0"):
        ArcherConfig(actor_lr_decay_iters=-2)
    assert ArcherConfig().micro_batch_size == 64
    assert ArcherConfig(batch_size=256, grad_accum=32).micro_batch_size == 8


def test_actor_lr_decays_linearly_after_the_warmup_then_holds():
    cfg = small_config(actor_lr=1e-3, actor_lr_decay_iters=4, actor_lr_end=2e-4, warmup_iters=1)
    expected = [1e-3, 8e-4, 6e-4, 4e-4, 2e-4, 2e-4]  # 1e-3 + (2e-4 - 1e-3) * k / 4
    assert [cfg.actor_lr_at(k) for k in range(6)] == pytest.approx(expected)
    assert small_config(actor_lr=1e-3).actor_lr_at(50) == 1e-3  # off by default: constant
    policy = tiny_policy()
    algo = Archer(dataclasses.replace(cfg, critic_epochs=1), policy, seed=0)
    first = algo.update(toy_episodes(policy))  # warm-up: critic only, no lr logged
    assert "archer/actor_lr" not in first
    lrs = [algo.update([])["archer/actor_lr"] for _ in range(3)]
    assert lrs == pytest.approx(expected[:3])
    assert algo.actor_optimizer.param_groups[0]["lr"] == pytest.approx(expected[2])


def test_build_from_registry_with_overrides():
    from agentrl.algorithm import build_algorithm

    policy = tiny_policy()
    algo = build_algorithm(
        "archer", {"name": "archer", "critic_lr": 1e-4, "critic_model": {"hidden_size": 32}}, policy
    )
    assert isinstance(algo, Archer) and algo.config.critic_lr == 1e-4
    assert algo.config.critic_model["name"] == "tiny_encoder"
    assert algo.critic.encoder.config.hidden_size == 32
    assert isinstance(build_algorithm("chai", {"name": "chai"}, policy), Chai)


def test_policy_lora_critic_needs_a_lora_policy():
    with pytest.raises(ValueError, match="needs a LoRA policy"):
        build_critic(ArcherConfig(critic_encoder="policy_lora"), tiny_policy())


# --------------------------------------------------------------------------- replay


def test_replay_fifo_rows_round_trip_and_sampling():
    buf = ReplayBuffer(capacity=3, seed=7)
    for i in range(5):
        buf.add(Transition(observation=f"s{i}", action=f"a{i}", reward=float(i)))
    assert len(buf) == 3 and [buf[i].observation for i in range(3)] == ["s2", "s3", "s4"]
    rows = buf.rows()
    rows = json.loads(json.dumps(rows))
    copy = ReplayBuffer.from_rows(rows, capacity=3)
    copy.load_state_dict(buf.state_dict())
    assert copy.rows() == buf.rows()
    assert [t.observation for t in copy.sample(20)] == [t.observation for t in buf.sample(20)]
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(2).sample(1)


def test_episode_transitions_done_flags():
    def ep(truncated_next):
        t = Turn(
            "s",
            "a",
            [],
            [],
            [],
            1.0,
            terminated=False,
            truncated=True,
            next_observation=truncated_next,
        )
        return Episode(env_id="e", task={}, seed=0, turns=[t])

    assert episode_transitions(ep("s2"), timeout_is_terminal=True)[0].done
    assert not episode_transitions(ep("s2"), timeout_is_terminal=False)[0].done
    assert episode_transitions(ep(""), timeout_is_terminal=False)[0].done  # nothing to bootstrap


# --------------------------------------------------------------------------- critic


def test_critic_dedupes_texts_and_caches_tokens():
    critic = build_critic(small_config(), tiny_policy(), seed=0)
    h = critic.embed(["abc", "xy", "abc", "abc"])
    assert critic.encoder_passes == 1 and len(critic.tokens) == 2
    assert torch.equal(h[0], h[2]) and not torch.equal(h[0], h[1])
    solo = critic.embed(["abc"])  # padding and batch make no difference
    assert torch.allclose(solo[0], h[0], atol=1e-5)
    target = critic.target_copy()
    assert target.tokens is critic.tokens
    assert not any(p.requires_grad for p in target.parameters())
    q1, q2, v1, v2 = critic(["s", "s"], ["", "a"])  # an empty utterance still encodes
    assert q1.shape == (2,) and torch.isfinite(torch.stack([q1, q2, v1, v2])).all()


def test_critic_step_uses_four_encoder_passes_per_micro_batch():
    policy = tiny_policy()
    algo = Archer(small_config(critic_epochs=1, actor_epochs=0), policy, seed=0)
    algo.update(toy_episodes(policy))
    # grad_accum = 2 micro-batches: online (states, actions) + target (states+next, fresh a')
    assert algo.critic.encoder_passes == 4
    assert algo.target_critic.encoder_passes == 4


# --------------------------------------------------------------------------- learner


def test_every_trainable_parameter_changes_after_one_update():
    policy = tiny_policy()
    algo = Archer(small_config(), policy, seed=0)
    actor_before = {
        n: p.detach().clone() for n, p in policy.model.named_parameters() if p.requires_grad
    }
    critic_before = {n: p.detach().clone() for n, p in algo.critic.named_parameters()}
    target_before = {n: p.detach().clone() for n, p in algo.target_critic.named_parameters()}
    stats = algo.update(toy_episodes(policy))
    assert stats["archer/actor_trained"] == 1.0 and stats["archer/buffer_size"] == 4.0
    for name, p in policy.model.named_parameters():
        if p.requires_grad:
            assert not torch.equal(p, actor_before[name]), f"actor {name} unchanged"
    for name, p in algo.critic.named_parameters():
        assert not torch.equal(p, critic_before[name]), f"critic {name} unchanged"
    for name, p in algo.target_critic.named_parameters():
        assert not torch.equal(p, target_before[name]), f"target {name} unchanged"
    assert all(p.grad is None for p in algo.critic.parameters())
    assert all(p.grad is None for p in policy.trainable_parameters())
    for key in (
        "q_loss",
        "v_loss",
        "actor_loss",
        "advantage_mean",
        "advantage_std",
        "q_mean",
        "critic_steps",
        "actor_steps",
        "critic_s",
        "actor_s",
    ):
        assert math.isfinite(stats[f"archer/{key}"]), key


def test_warmup_skips_the_actor():
    policy = tiny_policy()
    algo = Archer(small_config(warmup_iters=1, critic_epochs=1), policy, seed=0)
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    stats = algo.update(toy_episodes(policy))
    assert stats["archer/actor_trained"] == 0.0 and "archer/actor_loss" not in stats
    assert all(
        torch.equal(a, b) for a, b in zip(before, policy.trainable_parameters(), strict=True)
    )
    assert algo.update([])["archer/actor_trained"] == 1.0


def test_same_seed_same_stats():
    runs = []
    for _ in range(2):
        policy = tiny_policy()
        algo = Archer(small_config(), policy, seed=3)
        runs.append([no_time(algo.update(toy_episodes(policy))) for _ in range(2)])
    assert runs[0] == runs[1]
    policy = tiny_policy()
    other = Archer(small_config(), policy, seed=4)
    assert no_time(other.update(toy_episodes(policy))) != runs[0][0]


@pytest.mark.parametrize("encoder", ["separate", "policy_lora", "policy_copy"])
def test_state_dict_round_trip_resumes_exactly(encoder):
    kw: dict = {"critic_encoder": encoder}
    if encoder == "policy_copy":  # a separate encoder copied from the policy body
        kw = {"critic_model": {"name": "policy"}}
    cfg = small_config(
        ppo_clip=0.2, normalize_advantage=True, actor_epochs=2, actor_lr_decay_iters=3, **kw
    )
    make_policy = lora_policy if encoder == "policy_lora" else tiny_policy
    policy = make_policy()
    algo = Archer(cfg, policy, seed=5)
    algo.update(toy_episodes(policy))
    blob = io.BytesIO()
    torch.save(algo.state_dict(), blob)
    weights = policy.get_weights()
    rows = algo.replay_rows()
    expected = [no_time(algo.update(toy_episodes(policy))) for _ in range(2)]

    policy2 = make_policy()
    policy2.set_weights(weights)
    algo2 = Archer(cfg, policy2, seed=99)  # every seeded state comes from the checkpoint
    blob.seek(0)
    algo2.load_state_dict(torch.load(blob, weights_only=True))
    algo2.load_replay_rows(rows)
    got = [no_time(algo2.update(toy_episodes(policy2))) for _ in range(2)]
    assert got == expected


def test_critic_learns_that_a_beats_b():
    policy = tiny_policy()
    cfg = small_config(
        critic_epochs=40,
        batch_size=16,
        grad_accum=1,
        warmup_iters=10**6,
        max_new_tokens=3,
        gamma=0.9,
    )
    algo = Archer(cfg, policy, seed=0)
    stats = algo.update(toy_episodes(policy))
    with torch.no_grad():
        q = algo.critic.min_q([OBS, OBS], ["A", "B"])
    assert q[0] > 0.7 and q[1] < 0.3, q
    assert q[0] - q[1] > 0.5
    assert stats["archer/q_loss"] < 1.0


def test_policy_lora_critic_trains_its_own_adapter_only():
    policy = lora_policy()
    weight_keys = set(policy.get_weights())
    algo = Archer(small_config(critic_encoder="policy_lora", actor_epochs=2), policy, seed=0)
    assert set(policy.model.peft_config) == {"default", "critic", "critic_target"}
    assert len(algo.actor_params) == len(weight_keys)  # the policy adapter only
    critic_before = {n: p.detach().clone() for n, p in algo.critic.named_parameters()}
    actor_before = [p.detach().clone() for p in algo.actor_params]
    algo.update(toy_episodes(policy))
    for name, p in algo.critic.named_parameters():
        assert not torch.equal(p, critic_before[name]), f"critic {name} unchanged"
    for before, p in zip(actor_before, algo.actor_params, strict=True):
        assert not torch.equal(p, before)
    assert policy.model.active_adapter == "default"
    assert set(policy.get_weights()) == weight_keys  # the critic never travels to workers
    # Sampling is untouched by the critic adapters: a policy with the same weights and no
    # critic samples the same tokens.
    fresh = lora_policy()
    fresh.set_weights(policy.get_weights())
    sampling = SamplingConfig(max_new_tokens=8)
    a = policy.generate_text([OBS], sampling, torch.Generator().manual_seed(1))
    b = fresh.generate_text([OBS], sampling, torch.Generator().manual_seed(1))
    assert a[0].token_ids == b[0].token_ids


# --------------------------------------------------------------------------- offline


def test_offline_iql_critic_and_awr_actor(tmp_path):
    """Dataset: A earns 1, B earns 0 from the same state, half each.

    The tau-expectile of {0, 1} (equal weights) solves tau (1 - v) = (1 - tau) v, so v = tau:
    V(s) ~ 0.9 at tau = 0.9 and ~ 0.5 at tau = 0.5. AWR weights A above B, so the policy's
    log-prob gap log pi(A|s) - log pi(B|s) grows.
    """
    policy = tiny_policy()
    path = tmp_path / "episodes.jsonl"
    with open(path, "w") as f:
        for ep in toy_episodes(policy)[:2]:
            f.write(json.dumps(ep.to_dict()) + "\n")
    base = dataclasses.asdict(
        small_config(critic_epochs=30, batch_size=16, grad_accum=1, actor_epochs=5, actor_lr=1e-3)
    )

    def gap(p: Policy) -> float:
        acts = [p.tokenizer.encode(a, add_special_tokens=False) for a in ("A\n", "B\n")]
        with torch.no_grad():
            sums, _, _ = p.action_logprobs(p.encode_prompts([OBS, OBS]), acts)
        return float(sums[0] - sums[1])

    values = {}
    for tau in (0.5, 0.9):
        policy = tiny_policy()
        cfg = ArcherOfflineConfig(**base, dataset=str(path), expectile=tau, awr_beta=0.5)
        algo = ArcherOffline(cfg, policy, seed=0)
        assert len(algo.buffer) == 2
        before = gap(policy)
        for _ in range(2):
            stats = algo.update([])
        assert stats["archer/actor_trained"] == 1.0 and stats["archer/awr_weight_mean"] > 0
        with torch.no_grad():
            v1, v2 = algo.critic.v_heads(algo.critic.embed([OBS]))
            values[tau] = float(torch.minimum(v1, v2))
        assert gap(policy) > before + 0.5
    assert values[0.9] > 0.75 and values[0.9] > values[0.5] + 0.2


# --------------------------------------------------------------------------- CHAI


def test_chai_trains_only_the_critic_and_acts_by_min_q():
    policy = tiny_policy()
    cfg = ChaiConfig(**{**dataclasses.asdict(small_config()), "num_candidates": 4})
    chai = Chai(cfg, policy, seed=0)
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    critic_before = [p.detach().clone() for p in chai.critic.parameters()]
    stats = chai.update(toy_episodes(policy))
    assert stats["chai/critic_steps"] == 2.0
    assert all(
        torch.equal(a, b) for a, b in zip(before, policy.trainable_parameters(), strict=True)
    )
    assert any(
        not torch.equal(a, b) for a, b in zip(critic_before, chai.critic.parameters(), strict=True)
    )

    sampling = SamplingConfig(max_new_tokens=5)
    obs = [OBS, "another state"]
    state = chai.act_generator.get_state()
    picked = chai.act(obs, policy.encode_prompts(obs), sampling)
    assert len(picked) == 2
    chai.act_generator.set_state(state)  # regenerate the same candidates
    prompts = policy.encode_prompts(obs)
    cands = policy.generate([p for p in prompts for _ in range(4)], sampling, chai.act_generator)
    with torch.no_grad():
        scores = chai.critic.min_q([o for o in obs for _ in range(4)], [g.text for g in cands])
    for i, g in enumerate(picked):
        best = int(scores[i * 4 : i * 4 + 4].argmax())
        assert g.token_ids == cands[i * 4 + best].token_ids
    greedy = chai.act(obs, policy.encode_prompts(obs), SamplingConfig(max_new_tokens=5, greedy=True))
    assert len(greedy) == 2

    blob = io.BytesIO()
    torch.save(chai.state_dict(), blob)
    blob.seek(0)
    chai.load_state_dict(torch.load(blob, weights_only=True))


def test_bf16_critic_matches_fp32_closely_and_trains():
    policy = tiny_policy()
    fp32 = Archer(small_config(), policy, seed=0)
    bf16 = Archer(small_config(critic_precision="bf16"), policy, seed=0)
    obs, acts = [OBS, "start"], ["A", "go"]
    with torch.no_grad():
        a = fp32.critic(obs, acts)
        b = bf16.critic(obs, acts)  # same seed: same weights, only the encoder's precision differs
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype == torch.float32
        assert torch.allclose(x, y, atol=2e-2) and not torch.equal(x, y)
    before = [p.detach().clone() for p in bf16.critic.parameters()]
    bf16.core.add_episodes(toy_episodes(policy))
    stats = bf16.core.step()
    assert math.isfinite(stats["q_loss"])
    assert all(
        not torch.equal(p0, p) for p0, p in zip(before, bf16.critic.parameters(), strict=True)
    )
    with pytest.raises(ValueError, match="critic_precision must be one of"):
        small_config(critic_precision="fp16")


def test_fp32_critic_leaves_a_callers_autocast_on():
    """fp32 precision adds no autocast of its own, as the actor's: the learner's
    ``model.autocast`` (bf16 on CUDA by default) still reaches the critic's encoder."""
    algo = Archer(small_config(), tiny_policy(), seed=0)
    dtypes: list[torch.dtype] = []
    linear = next(m for m in algo.critic.encoder.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    with torch.no_grad():
        algo.critic([OBS], ["A"])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            algo.critic([OBS], ["A"])
    assert dtypes[0] == torch.float32 and torch.bfloat16 in dtypes[1:]


# --------------------------------------------------------------------------- policy-copied critic


def test_policy_copied_critic_starts_from_the_policy_body_when_rl_starts():
    policy = tiny_policy()
    cfg = small_config(critic_model={"name": "policy"}, critic_pooling="last")
    algo = Archer(cfg, policy, seed=0)
    backbone = policy.model.model
    assert type(algo.critic.encoder) is type(backbone)
    assert algo.critic.encoder.config.hidden_size == 64  # the policy's width, not TINY_CRITIC's
    with torch.no_grad():  # the BC warm start moves the policy after the algorithm was built
        for p in backbone.parameters():
            p.add_(0.01)
    warm = {n: p.detach().clone() for n, p in backbone.state_dict().items()}
    algo.update([])  # no data yet: nothing trains, but RL has started
    for critic in (algo.critic, algo.target_critic):
        enc = critic.encoder.state_dict()
        assert enc.keys() == warm.keys()
        assert all(torch.equal(enc[n], warm[n]) for n in warm), "encoder != policy body"
    own = {id(p) for p in algo.critic.parameters()}
    assert not own & {id(p) for p in policy.model.parameters()}  # a copy, never shared
    assert not algo.core.encoder_pending and algo.state_dict()["encoder_pending"] is False
    # Training moves the critic's copy and the policy independently; no second re-copy.
    critic_before = {n: p.detach().clone() for n, p in algo.critic.named_parameters()}
    algo.update(toy_episodes(policy))
    for name, p in algo.critic.named_parameters():
        assert not torch.equal(p, critic_before[name]), f"critic {name} unchanged"
    changed = algo.critic.encoder.state_dict()
    assert not all(torch.equal(changed[n], backbone.state_dict()[n]) for n in warm)


def test_policy_copied_critic_needs_a_policy_and_last_pooling_reads_the_last_token():
    with pytest.raises(ValueError, match="needs a policy"):
        build_critic(small_config(critic_model={"name": "policy"}))
    policy = tiny_policy()
    critic = build_critic(
        small_config(critic_model={"name": "policy"}, critic_pooling="last"), policy
    )
    texts = ["Is it an animal?", "yes"]
    ids = critic.tokens(texts)
    with torch.no_grad():
        pooled = critic.embed(texts)
        for i, x in enumerate(ids):
            alone = critic.encoder(input_ids=torch.tensor([x])).last_hidden_state[0, -1]
            torch.testing.assert_close(pooled[i], alone, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- lean sampling, bf16 actor


def _prompts(policy) -> list[list[int]]:
    return policy.encode_prompts([OBS, "start", "a much longer observation: is it red?", "x"])


def test_bf16_actor_samples_close_to_fp32_and_trains():
    policy = tiny_policy()
    prompts = _prompts(policy)
    core = Archer(small_config(actor_precision="bf16", max_new_tokens=8), policy, seed=0).core
    batch = [
        Transition(observation=o, action="", prompt_ids=p)
        for o, p in zip("abcd", prompts, strict=True)
    ]
    gens = core.sample_actions(batch, torch.Generator().manual_seed(0))
    with torch.no_grad():  # exact fp32 samples of the same draws differ only slightly
        exact = Archer(small_config(max_new_tokens=8), policy, seed=0).core.sample_actions(
            batch, torch.Generator().manual_seed(0)
        )
    assert [g.logprobs for g in gens] != [g.logprobs for g in exact]
    with torch.no_grad():  # the bf16 sampling log-probs, re-scored in fp32
        _, per_token, mask = policy.action_logprobs(prompts, [g.token_ids for g in gens])
    for g, lp, m in zip(gens, per_token, mask, strict=True):
        exact = lp[m]
        assert torch.allclose(torch.tensor(g.logprobs), exact, atol=5e-2)
    # one actor step on the same data in fp32 and in bf16: close losses; bf16 moves every weight
    losses = {}
    for precision in ("fp32", "bf16"):
        policy = tiny_policy()
        algo = Archer(small_config(actor_precision=precision), policy, seed=0)
        algo.core.add_episodes(toy_episodes(policy))
        data = algo._actor_batch()
        data["adv"] = torch.tensor([1.0, -0.5, 0.25, 2.0, -1.0, 0.5, 0.0, 1.5])
        data["prompts"], data["actions"] = prompts * 2, [g.token_ids for g in gens] * 2
        before = [p.detach().clone() for p in policy.trainable_parameters()]
        losses[precision] = algo._actor_step(data)["actor_loss"]
        after = list(policy.trainable_parameters())
        assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert math.isfinite(losses["bf16"]) and losses["bf16"] != losses["fp32"]
    assert abs(losses["bf16"] - losses["fp32"]) < 5e-2 * max(1.0, abs(losses["fp32"]))
    with pytest.raises(ValueError, match="actor_precision must be one of"):
        small_config(actor_precision="fp16")


def test_sparse_embedding_gradient_equals_the_dense_one():
    from agentrl.algorithms.archer.critic import densify_grads_

    policy = tiny_policy()
    critic = Archer(small_config(), policy, seed=0).critic
    emb = critic.encoder.get_input_embeddings()
    assert emb.sparse  # a separate encoder's token embedding gets a sparse gradient
    grads = {}
    for sparse in (True, False):
        emb.sparse = sparse
        critic.zero_grad(set_to_none=True)
        q1, q2, v1, v2 = critic([OBS, "start", OBS], ["A", "go", "B"])  # two passes, shared rows
        (q1.sum() - 2 * q2.sum() + v1.sum() * v2.sum()).backward()
        assert emb.weight.grad.is_sparse == sparse
        params = list(critic.parameters())
        densify_grads_(params)
        grads[sparse] = [p.grad.clone() for p in params]
    for a, b in zip(grads[True], grads[False], strict=True):
        assert not a.is_sparse and torch.allclose(a, b, atol=1e-6)
    assert grads[True][0].abs().sum() > 0
    lora = Archer(small_config(critic_encoder="policy_lora"), lora_policy(), seed=0)
    assert not lora.policy.model.get_input_embeddings().sparse  # the policy's own: untouched
