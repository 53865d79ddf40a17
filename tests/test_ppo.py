import math

import pytest
import torch

from agentrl.algorithms.ppo.losses import clipped_policy_loss, turn_advantages
from agentrl.types import Episode, Turn


def test_clipped_loss_hand_computed():
    # two utterances; first has 2 tokens, second has 1
    old = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    new = torch.tensor([[math.log(1.5), math.log(0.9)], [math.log(0.5), 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    adv = torch.tensor([2.0, -1.0])
    loss, stats = clipped_policy_loss(new, old, adv, mask, clip=0.2)
    # token 1: ratio 1.5, A=2 -> min(3.0, 1.2*2=2.4) = 2.4
    # token 2: ratio 0.9, A=2 -> min(1.8, 1.8) = 1.8
    # token 3: ratio 0.5, A=-1 -> min(-0.5, 0.8*-1=-0.8) = -0.8
    expected = -(2.4 + 1.8 - 0.8) / 3
    assert float(loss) == pytest.approx(expected, abs=1e-6)
    assert stats["clip_frac"] == pytest.approx(2 / 3)


def test_clipped_loss_gradient_zero_when_clipped():
    new = torch.tensor([[math.log(1.5)]], requires_grad=True)
    loss, _ = clipped_policy_loss(new, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), clip=0.2)
    loss.backward()
    assert float(new.grad) == 0.0


def test_turn_advantages_mean_baseline():
    returns = torch.tensor([1.0, 3.0, 5.0, 5.0])
    turn = torch.tensor([0, 0, 1, 1])
    adv = turn_advantages(returns, turn, baseline="mean", normalize=False)
    assert adv.tolist() == [-1.0, 1.0, 0.0, 0.0]
    norm = turn_advantages(returns, turn, baseline="mean", normalize=True)
    assert float(norm.std()) == pytest.approx(1.0, abs=1e-5)


def _episode(prompt_len: int, turns: int, continues: bool) -> Episode:
    return Episode(
        env_id="e",
        task={},
        seed=0,
        turns=[
            Turn("o", "a", [1] * prompt_len, [2], [0.0], 0.0, t == turns - 1, False, continues=continues and t > 0)
            for t in range(turns)
        ],
    )


def test_segment_minibatches_cover_every_row_once_grouped_by_length():
    from agentrl.batch import build_turn_batch, segment_minibatches

    # transcript episodes: one segment per turn, grouped by length
    lengths = [5, 50, 6, 48, 7, 52, 4, 49]
    batch = build_turn_batch([_episode(n, 1, False) for n in lengths])
    mbs = segment_minibatches(batch, 4, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(mbs).tolist()) == list(range(8))
    seg_len = torch.tensor([len(s) for s in batch.segments])
    spans = sorted(int(seg_len[mb].max() - seg_len[mb].min()) for mb in mbs)
    assert spans == [3, 4]  # short rows together, long rows together
    # conversations: a minibatch holds whole conversations (every turn of its segments)
    batch = build_turn_batch([_episode(3, 4, True) for _ in range(6)])
    assert len(batch.segments) == 6 and len(batch) == 24
    mbs = segment_minibatches(batch, 8, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(mbs).tolist()) == list(range(24))
    for mb in mbs:
        segs = set(batch.segment_index[mb].tolist())
        assert len(mb) == 4 * len(segs) == 8


# --- GAE, value loss and the other pure cores (hand-computed) ---------------------------

from agentrl.algorithms.ppo.losses import (  # noqa: E402
    adaptive_kl_coef,
    episode_returns,
    explained_variance,
    gae,
    masked_normalize,
    value_loss,
)


def test_gae_two_turn_conversation_with_env_tokens_by_hand():
    # one conversation: env, a1, a2, env, env, b1, b2 (turn 1 = a1 a2, turn 2 = b1 b2)
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 1]], dtype=torch.float32)
    junk = 9.0  # env positions: their rewards and values must never be read
    rewards = torch.tensor([[junk, 0.0, 0.5, junk, junk, 0.0, 1.0]])
    values = torch.tensor([[junk, 0.1, 0.2, junk, junk, 0.3, 0.4]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # b2: last agent token, nothing after it:    delta = 1 - 0.4 = 0.6;   A = 0.6
    # b1: b2 follows directly (discount 1):       delta = 0 + 0.4 - 0.3 = 0.1;   A = 0.1 + 0.8 * 0.6 = 0.58
    # a2: env tokens before b1 (discount gamma):  delta = 0.5 + 0.9 * 0.3 - 0.2 = 0.57;  A = 0.57 + 0.9 * 0.8 * 0.58 = 0.9876
    # a1: a2 follows directly:                    delta = 0 + 0.2 - 0.1 = 0.1;   A = 0.1 + 0.8 * 0.9876 = 0.89008
    expected = [0.0, 0.89008, 0.9876, 0.0, 0.0, 0.58, 0.6]
    assert adv[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert ret[0].tolist() == pytest.approx([0.0, 0.99008, 1.1876, 0.0, 0.0, 0.88, 1.0], abs=1e-6)
    # lam = 1: the discounted Monte-Carlo return minus V (gamma across the turn boundary only)
    adv1, _ = gae(rewards, values, mask, gamma=0.9, lam=1.0)
    mc = [0.5 + 0.9 * 1.0, 0.5 + 0.9 * 1.0, 1.0, 1.0]
    assert adv1[0, [1, 2, 5, 6]].tolist() == pytest.approx([g - v for g, v in zip(mc, [0.1, 0.2, 0.3, 0.4], strict=True)], abs=1e-6)
    # a second row, padded, is independent of the first
    two = gae(torch.cat([rewards, torch.zeros(1, 7)]), torch.cat([values, torch.zeros(1, 7)]),
              torch.cat([mask, torch.tensor([[1.0, 1.0, 0, 0, 0, 0, 0]])]), 0.9, 0.8)[0]
    assert two[0].tolist() == pytest.approx(expected, abs=1e-6) and two[1].abs().sum() == 0


def test_gae_with_vtrace_traces_by_hand():
    # a1 a2 | env | b1: two turns; token ratios c = 0.5, 1 and 0.25 (b1 sampled by a much older policy)
    mask = torch.tensor([[1, 1, 0, 1]], dtype=torch.float32)
    rewards = torch.tensor([[0.0, 1.0, 9.0, 2.0]])
    values = torch.tensor([[0.5, 0.2, 9.0, 0.4]])
    traces = torch.tensor([[0.5, 1.0, 7.0, 0.25]])  # the env position's value must not be read
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8, traces=traces)
    # b1: delta = 2 - 0.4 = 1.6; A = 1.6; D = 0.25 * 1.6 = 0.4
    # a2: delta = 1 + 0.9 * 0.4 - 0.2 = 1.16; A = 1.16 + 0.9 * 0.8 * 0.4 = 1.448; D = 1.448
    # a1: delta = 0.2 - 0.5 = -0.3; A = -0.3 + 0.8 * 1.448 = 0.8584; D = 0.5 * 0.8584 = 0.4292
    assert adv[0].tolist() == pytest.approx([0.8584, 1.448, 0.0, 1.6], abs=1e-6)
    assert ret[0].tolist() == pytest.approx([0.9292, 1.648, 0.0, 0.8], abs=1e-6)
    # a1's target by IMPALA's sum: V + rho0 d0 + c0 rho1 d1 + c0 c1 gamma rho3 d3, c = lam * min(1, ratio)
    impala = 0.5 + 0.5 * -0.3 + (0.8 * 0.5) * 1.16 + (0.8 * 0.5) * (0.8 * 1.0) * 0.9 * 0.25 * 1.6
    assert ret[0, 0].item() == pytest.approx(impala, abs=1e-6)
    # all traces 1: plain GAE, exactly
    r = torch.rand(3, 6)
    v = torch.rand(3, 6)
    m = (torch.rand(3, 6) > 0.3).float()
    plain, traced = gae(r, v, m, 0.9, 0.8), gae(r, v, m, 0.9, 0.8, traces=torch.ones(3, 6))
    assert torch.equal(plain[0], traced[0]) and torch.equal(plain[1], traced[1])


def test_value_loss_plain_and_clipped_by_hand():
    values = torch.tensor([[1.0, 0.9]], requires_grad=True)
    old = torch.tensor([[0.5, 0.5]])
    ret = torch.tensor([[0.0, 1.0]])
    mask = torch.ones(1, 2)
    # plain: 0.5 * mean((1 - 0)^2, (0.9 - 1)^2) = 0.5 * (1 + 0.01) / 2
    assert value_loss(values, old, ret, mask).item() == pytest.approx(0.2525)
    # clipped at 0.2: token 1 max(1, (0.7 - 0)^2 = 0.49) = 1; token 2 max(0.01, (0.7 - 1)^2 = 0.09) = 0.09
    loss = value_loss(values, old, ret, mask, clip=0.2)
    assert loss.item() == pytest.approx(0.5 * (1.0 + 0.09) / 2)
    loss.backward()
    # token 2's clipped term wins and is flat in V: no gradient; token 1: d/dV 0.25 (V - R)^2 = 0.5
    assert values.grad[0].tolist() == pytest.approx([0.5, 0.0])
    # masked tokens do not count
    assert value_loss(values, old, ret, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(0.5)


def test_normalize_explained_variance_returns_and_adaptive_kl():
    x = torch.tensor([[1.0, 3.0, 100.0]])
    m = torch.tensor([[1.0, 1.0, 0.0]])
    out = masked_normalize(x, m)
    assert out[0, :2].tolist() == pytest.approx([-1 / math.sqrt(2), 1 / math.sqrt(2)], abs=1e-6)
    assert float(out[0, 2]) == 0.0
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert explained_variance(r, r, torch.ones(1, 4)) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 4), 2.5), r, torch.ones(1, 4)) == pytest.approx(0.0)
    # two episodes, gamma 0.5: [1, 2] -> [2, 2]; [4] -> [4]
    assert episode_returns(torch.tensor([1.0, 2.0, 4.0]), torch.tensor([0, 0, 1]), 0.5).tolist() == [2.0, 2.0, 4.0]
    # KL above target by more than 20%: the error is clipped at 0.2 -> coef * (1 + 0.1 * 0.2)
    assert adaptive_kl_coef(0.1, kl=0.5, target=0.1) == pytest.approx(0.102)
    assert adaptive_kl_coef(0.1, kl=0.09, target=0.1) == pytest.approx(0.1 * (1 - 0.1 * 0.1))


def test_clipped_loss_takes_per_token_advantages():
    new = torch.tensor([[math.log(1.5), math.log(0.9)]])
    old = torch.zeros(1, 2)
    mask = torch.ones(1, 2)
    per_token, _ = clipped_policy_loss(new, old, torch.tensor([[2.0, -1.0]]), mask, clip=0.2)
    # token 1: min(3.0, 2.4) = 2.4; token 2: ratio 0.9, A=-1: min(-0.9, -0.9) = -0.9
    assert float(per_token) == pytest.approx(-(2.4 - 0.9) / 2)
    shared, _ = clipped_policy_loss(new, old, torch.tensor([2.0]), mask, clip=0.2)
    same, _ = clipped_policy_loss(new, old, torch.tensor([[2.0, 2.0]]), mask, clip=0.2)
    assert float(shared) == pytest.approx(float(same))


def test_episode_layout_puts_env_gaps_between_turns_and_rewards_on_last_tokens():
    from agentrl.algorithms.ppo.layout import episode_tokens, segment_chunks, turn_end_rewards
    from agentrl.batch import build_turn_batch

    def turn(n_act, reward, cont, done=False):
        return Turn("o", "a", [1, 1], [2] * n_act, [0.0] * n_act, reward, done, False, continues=cont)

    eps = [
        Episode("e", {}, 0, [turn(2, 0.5, False), turn(1, 1.0, True, True)]),  # a conversation
        Episode("e", {}, 1, [turn(3, -1.0, False, True)]),
    ]
    batch = build_turn_batch(eps)
    layout = episode_tokens(batch)
    # episode 0: gap a a gap b; episode 1: gap c c c
    assert layout.mask.tolist() == [[0, 1, 1, 0, 1], [0, 1, 1, 1, 0]]
    rewards = turn_end_rewards(batch)
    assert rewards.tolist() == [[0.0, 0.5, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]
    seq = layout.to_episodes(rewards)
    assert seq.tolist() == [[0, 0, 0.5, 0, 1.0], [0, 0, 0, -1.0, 0]]
    assert torch.equal(layout.to_turns(seq), rewards)
    assert [c.tolist() for c in segment_chunks(batch, 1)] == [[0, 1], [2]]  # whole conversations
    empty = build_turn_batch([Episode("e", {}, 0, [turn(0, 1.0, False, True)])])
    with pytest.raises(ValueError, match="turn 0 of episode 0 has no action tokens"):
        turn_end_rewards(empty)


def test_config_names_bad_values_and_the_valid_choices():
    from agentrl.algorithms.ppo import PPOConfig

    with pytest.raises(ValueError, match="value_head must be one of policy, separate, none; got 'critic'"):
        PPOConfig(value_head="critic")
    with pytest.raises(ValueError, match="kl_target=0.1 needs .* kl_coef > 0"):
        PPOConfig(kl_target=0.1)
    with pytest.raises(ValueError, match="vf_clip must be > 0 or null"):
        PPOConfig(vf_clip=0.0)


# --- the value functions on the tiny model ------------------------------------------------

TINY_MODEL = dict(hidden_size=64, num_layers=1, intermediate_size=128, num_heads=2)


def _tiny_learner(section, lora=False):
    from agentrl.learner import Learner
    from agentrl.policy import ModelConfig

    return Learner(ModelConfig(**TINY_MODEL, lora=lora), {"name": "ppo", **section}, seed=0)


def _collect(policy, n=8):
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

    worker = RolloutWorker(
        "agentrl/GuessTheNumber-v0", {"high": 4, "max_turns": 2}, n, SamplingConfig(max_new_tokens=8), policy=policy
    )
    return worker.collect([EpisodeJob(i, 100 + i) for i in range(n)], rng_seed=0)


def test_span_logprobs_hidden_matches_span_logprobs_and_the_body():
    from agentrl.policy.lean import lean_parts

    policy = _tiny_learner({"value_head": "none"}).policy
    seqs = [[5, 6, 7, 8, 9, 10], [11, 12, 13]]
    spans = [(0, 2, 4), (0, 5, 6), (1, 1, 3)]
    with torch.no_grad():
        _, logp, mask = policy.span_logprobs(seqs, spans)
        logp2, mask2, hidden = policy.span_logprobs_hidden(seqs, spans)
        body, _ = lean_parts(policy.model)
        h0 = body(input_ids=torch.tensor([seqs[0]])).last_hidden_state[0]
    assert torch.equal(mask, mask2) and torch.allclose(logp, logp2, atol=1e-6)
    # token 2 of sequence 0 is predicted from position 1, token 3 from position 2
    assert torch.allclose(hidden[0, :2], h0[1:3], atol=1e-5)
    assert torch.allclose(hidden[1, 0], h0[4], atol=1e-5) and hidden[1, 1].abs().sum() == 0


@pytest.mark.parametrize("head", ["policy", "separate"])
def test_value_loss_falls_on_a_fixed_batch(head):
    learner = _tiny_learner({"value_head": head, "lr": 1e-3})
    episodes = _collect(learner.policy)
    stats = [learner.update(episodes) for _ in range(4)]
    losses = [s["ppo/value_loss"] for s in stats]
    explained = [s["ppo/explained_var"] for s in stats]
    assert losses[-1] < losses[0] and explained[-1] > explained[1] > 0, (losses, explained)


def test_separate_value_adapter_leaves_the_policy_adapter_alone():
    learner = _tiny_learner({"value_head": "separate"}, lora=True)
    algo = learner.algorithm
    policy_params = {id(p) for p in algo.optimizer.param_groups[0]["params"]}
    value_params = list(algo.optimizer.param_groups[1]["params"])
    assert value_params and not policy_params & {id(p) for p in value_params}
    names = [n for n, _ in learner.policy.model.named_parameters()]
    assert any(".value." in n for n in names)  # the critic's own adapter exists ...
    assert len(learner.policy.get_weights()) == sum(".default." in n for n in names)  # ... and is never synced
    before = {k: v.clone() for k, v in learner.policy.get_weights().items()}
    learner.update(_collect(learner.policy))
    after = learner.policy.get_weights()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the policy adapter moved


RESUME_CASES = {
    "policy_head_adaptive_kl": (["algorithm.value_head=policy", "algorithm.kl_coef=0.05", "algorithm.kl_target=0.001"], False),
    "separate_copy": (["algorithm.value_head=separate", "algorithm.vf_clip=0.2"], False),
    "separate_lora": (["algorithm.value_head=separate"], True),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_restores_the_value_function_and_kl_coefficient(tiny_overrides, tmp_path, case):
    from pathlib import Path

    from agentrl.config import load_config
    from agentrl.metrics import read_metrics
    from agentrl.trainer import Trainer

    extra, lora = RESUME_CASES[case]
    base = [*tiny_overrides, "env=guess_the_number", *extra, "algorithm.epochs=2", "algorithm.minibatch_size=4",
            "checkpoint.every=1", "eval.every=1", f"model.lora={str(lora).lower()}"]

    def run(*more):
        summary = Trainer(load_config([*base, *more]), console=False).run()
        return read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")

    full = run("iterations=3", f"run_dir={tmp_path / 'full'}")
    run("iterations=1", f"run_dir={tmp_path / 'part'}")
    resumed = run("iterations=3", f"run_dir={tmp_path / 'part'}", "resume=latest")
    assert [r["iteration"] for r in resumed] == [0, 1, 2, 3]
    keys = ["ppo/loss", "ppo/value_loss", "ppo/explained_var", "train/return", "eval/return"]
    if "kl_coef" in " ".join(extra):
        keys += ["ppo/kl_coef", "ppo/kl_ref"]
    for a, b in zip(full[2:], resumed[2:], strict=True):
        for k in keys:
            assert a[k] == pytest.approx(b[k], abs=1e-6), (a["iteration"], k)
    if "kl_coef" in " ".join(extra):  # the coefficient moved and was carried over
        assert full[-1]["ppo/kl_coef"] != pytest.approx(0.05)


def test_critic_free_config_and_the_smollm2_presets_keep_the_measured_ppo():
    from agentrl.config import load_config

    free = load_config(["algorithm=ppo_critic_free"]).algorithm
    assert (free["name"], free["value_head"], free["epochs"]) == ("ppo", "none", 1)
    assert load_config(["algorithm=ppo"]).algorithm["value_head"] == "policy"
    preset = load_config(["+experiment=smollm2_guess_the_number"]).algorithm
    assert (preset["name"], preset["value_head"], preset["epochs"], preset["lr"]) == ("ppo", "none", 1, 1e-3)
    # another algorithm over the preset gets no PPO-only key
    grpo = load_config(["+experiment=smollm2_guess_the_number", "algorithm=grpo"]).algorithm
    assert grpo["name"] == "grpo" and "value_head" not in grpo


@pytest.mark.slow  # ~16 s; the default value head learns in tests/test_learning.py (default suite)
def test_separate_critic_improves_guess_the_number(tiny_overrides):
    from pathlib import Path

    from agentrl.config import load_config
    from agentrl.metrics import read_metrics
    from agentrl.trainer import Trainer

    # tests/test_learning.py's PPO setting; measured (one seed): 0.312 -> 0.461, invalid 0.28 -> 0.09
    cfg = load_config([
        *tiny_overrides, "env=guess_the_number", "env.kwargs.high=4", "+env.kwargs.max_turns=2",
        "algorithm.value_head=separate", "algorithm.epochs=2", "algorithm.lr=1e-3", "iterations=16",
        "rollout.episodes_per_iter=64", "eval.episodes=128", "eval.every=0", "eval.greedy=false",
        "warm_start.enabled=true", "warm_start.policy=random", "warm_start.episodes=100",
        "warm_start.epochs=2", "warm_start.lr=3e-3",
    ])
    summary = Trainer(cfg, console=False).run()
    rows = [r for r in read_metrics(Path(summary["run_dir"]) / "metrics.jsonl") if "eval_sample/invalid_actions" in r]
    assert rows[-1]["eval_sample/invalid_actions"] < 0.5 * rows[0]["eval_sample/invalid_actions"]
    assert summary["final_eval_sample_success"] > summary["initial_eval_sample_success"] + 0.07


def test_value_head_policy_with_a_decoding_constraint_is_refused_before_any_work(tmp_path):
    from agentrl.config import ConfigError, load_config
    from agentrl.validate import validate_components

    base = ["algorithm=ppo", "env=toolchain", "rollout.sampling.constraint=toolchain"]
    with pytest.raises(ConfigError, match="value_head=policy .* use algorithm.value_head=separate or none"):
        validate_components(load_config(base))
    validate_components(load_config([*base, "algorithm.value_head=none"]))  # fine


def test_behaviour_weights_truncate_stale_tokens_and_leave_fresh_ones_at_one():
    from agentrl.algorithms.ppo.losses import behaviour_weights

    prox = torch.tensor([[-1.0, -2.0], [-1.0, -2.0]])
    behav = torch.tensor([[-1.5, -1.0], [-3.0, -3.0]])
    w = behaviour_weights(prox, behav, torch.tensor([True, False]), cap=1.5)
    assert torch.allclose(w[0], torch.tensor([min(math.exp(0.5), 1.5), math.exp(-1.0)]))
    assert torch.equal(w[1], torch.ones(2))
    # weights scale each token's surrogate; all-ones weights are the plain loss
    logp = torch.tensor([[-0.9, -2.1], [-1.1, -1.9]], requires_grad=True)
    adv, mask = torch.tensor([1.0, -1.0]), torch.ones(2, 2)
    plain, _ = clipped_policy_loss(logp, prox, adv, mask, 0.2)
    ones, _ = clipped_policy_loss(logp, prox, adv, mask, 0.2, torch.ones(2, 2))
    assert torch.equal(plain, ones)
    halved, _ = clipped_policy_loss(logp, prox, adv, mask, 0.2, torch.full((2, 2), 0.5))
    assert torch.allclose(halved, plain / 2)


@pytest.mark.parametrize("section", [{"value_head": "none"}, {"value_head": "policy"}])
def test_stale_turns_get_decoupled_ppo_and_equal_weights_give_the_fresh_update(section):
    """Turns sampled by older weights are trained with decoupled PPO: the ratio against the
    current policy and a truncated weight pi_prox/mu. When the old weights equal the current
    ones (pi_prox == mu) that is the fresh update; when mu was much less likely the weight
    is the cap."""
    import copy

    from agentrl.batch import build_turn_batch

    fresh = _tiny_learner(section)
    stale = copy.deepcopy(fresh)
    episodes = _collect(fresh.policy)
    assert all(t.policy_version == 0 for e in episodes for t in e.turns)
    stale.policy.version = 3  # the same weights, labelled 3 updates newer than the turns'
    batch = build_turn_batch(episodes, gamma=0.95)
    targets, stats = stale.algorithm.prepare(episodes, batch)
    assert targets.weights is not None and stats["stale_frac"] == 1.0
    assert stats["stale_weight_mean"] == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(targets.old_logprobs.cpu(), batch.old_logprobs, atol=1e-4)
    out_fresh, out_stale = fresh.update(episodes), stale.update(episodes)
    for k in ("ppo/loss", "ppo/approx_kl"):
        assert out_stale[k] == pytest.approx(out_fresh[k], abs=1e-4)
    for a, b in zip(fresh.policy.model.parameters(), stale.policy.model.parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # a behaviour policy that made every sampled token e times less likely: weight = cap
    unlikely = copy.deepcopy(episodes)
    for e in unlikely:
        for t in e.turns:
            t.action_logprobs = [x - 1.0 for x in t.action_logprobs]
    _, stats = stale.algorithm.prepare(unlikely, build_turn_batch(unlikely, gamma=0.95))
    assert stats["stale_weight_capped_frac"] == 1.0
    assert stats["stale_weight_mean"] == pytest.approx(stale.algorithm.config.stale_weight_cap)


def test_update_logs_the_largest_minibatch_kl():
    """``approx_kl`` is the mean over the update's minibatches, whose first has ratio 1 (no step
    yet); ``approx_kl_max`` is the largest, so one large step is not averaged away."""
    learner = _tiny_learner({"value_head": "none", "lr": 1e-2, "minibatch_size": 2, "epochs": 2})
    out = learner.algorithm.update(_collect(learner.policy))
    assert out["ppo/approx_kl_max"] > 0
    assert out["ppo/approx_kl_max"] > out["ppo/approx_kl"] * 1.5  # the mean includes the step-free first minibatch


def test_vtrace_changes_only_the_targets_of_stale_turns_with_weights_below_one():
    """``vtrace=true``: fresh batches and stale turns whose policy moved toward them (weight >= 1)
    keep plain GAE's targets; turns the current policy finds less likely than the behaviour
    policy did (weight < 1) get V-trace's smaller corrections."""
    import copy

    from agentrl.batch import build_turn_batch

    plain = _tiny_learner({"lr": 1e-2})
    traced = _tiny_learner({"lr": 1e-2, "vtrace": True})
    episodes = _collect(plain.policy)
    torch.manual_seed(0)  # a non-zero value head (it starts at 0), so the targets depend on V
    torch.nn.init.normal_(plain.algorithm.value_model.head.weight, std=0.5)
    traced.algorithm.value_model.load_state_dict(plain.algorithm.value_model.state_dict())

    def targets(learner, eps, version):
        learner.policy.version = version
        learner.algorithm.rl_started = True
        return learner.algorithm.prepare(eps, build_turn_batch(eps, gamma=0.95))

    # turns sampled by the current weights (version 0 = the turns' version): no difference
    (tp, _), (tt, _) = targets(plain, episodes, 0), targets(traced, episodes, 0)
    assert torch.equal(tp.returns, tt.returns) and torch.equal(tp.advantages, tt.advantages)
    # stale, and the behaviour policy made each sampled token e times more likely: c = 1/e
    likely = copy.deepcopy(episodes)
    for e in likely:
        for t in e.turns:
            t.action_logprobs = [x + 1.0 for x in t.action_logprobs]
    (tp, _), (tt, st) = targets(plain, likely, 3), targets(traced, likely, 3)
    assert st["stale_weight_mean"] == pytest.approx(math.exp(-1.0), rel=1e-3)
    mask = build_turn_batch(likely, gamma=0.95).action_mask.bool()
    assert not torch.allclose(tp.returns[mask], tt.returns[mask], atol=1e-4)
    # each target moves toward V: |R - V| shrinks by at least the last token's factor 1/e
    assert (tt.returns - tt.old_values)[mask].abs().sum() < (tp.returns - tp.old_values)[mask].abs().sum()
    # stale, but the behaviour policy found the tokens less likely (weight capped, c = 1): plain GAE
    unlikely = copy.deepcopy(episodes)
    for e in unlikely:
        for t in e.turns:
            t.action_logprobs = [x - 1.0 for x in t.action_logprobs]
    (tp, _), (tt, _) = targets(plain, unlikely, 3), targets(traced, unlikely, 3)
    assert torch.allclose(tp.returns, tt.returns, atol=1e-6)


def test_vtrace_without_a_value_function_is_refused():
    from agentrl.algorithms.ppo.config import PPOConfig

    with pytest.raises(ValueError, match="value_head=none has none"):
        PPOConfig(value_head="none", vtrace=True)
    assert PPOConfig(value_head="separate", vtrace=True).vtrace
