"""RLTF and constrained decoding: the plan grammar, the decoder never emits an invalid plan,
constrained log-probs agree between sampling and scoring, the REINFORCE pieces on
hand-computed cases, a short run that learns, and the Trainer smoke run."""

from __future__ import annotations

import json

import pytest
import torch

from agentrl.algorithms.rltf import RLTF, RLTFConfig
from agentrl.algorithms.rltf.losses import (
    epsilon_at,
    epsilon_greedy,
    kl_k3,
    reinforce_loss,
    running_baseline,
)
from agentrl.config import ConfigError, load_config
from agentrl.envs.toolchain import parse_plan
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.constraints import (
    PlanGrammar,
    TokenConstraint,
    resolve_grammar,
    toolchain_grammar,
)
from agentrl.policy.tokenizer import build_char_tokenizer, build_word_tokenizer
from agentrl.types import Episode, Turn

TINY = dict(hidden_size=64, num_layers=1, intermediate_size=128, num_heads=2)
TINY_MODEL = [f"model.{k}={v}" for k, v in TINY.items()]


def _policy(seed: int = 0, tokenizer: str = "word") -> Policy:
    torch.manual_seed(seed)
    return Policy.from_config(ModelConfig(init_seed=seed, tokenizer=tokenizer, **TINY))


# --- the grammar -----------------------------------------------------------------------------


def test_grammar_prefixes_by_hand():
    g = PlanGrammar(names=("ab", "abc", "d"), separator=", ", max_items=2)
    for text in ["", "a", "ab", "abc", "ab,", "ab, ", "ab, d", "abc, ab\n", "d\n"]:
        assert g.is_prefix(text), text
    for text in ["x", "abd", "ab,,", "ab, d, d", "ab, d,", "d\nd", ",", "ab, d\n "]:
        assert not g.is_prefix(text), text
    assert g.is_complete("ab") and g.is_complete("abc, d") and not g.is_complete("ab, ")
    assert g.valid_plan("d, abc\n") and not g.valid_plan("d, ab, d")
    with pytest.raises(ValueError):
        PlanGrammar(names=("a b",), separator=" ")


def test_unknown_constraint_lists_the_valid_ones():
    with pytest.raises(ValueError, match="toolchain"):
        resolve_grammar("json")
    assert resolve_grammar("agentrl.policy.constraints:toolchain_grammar") == toolchain_grammar()
    with pytest.raises(ConfigError, match="rollout.sampling.constraint.*toolchain"):
        from agentrl.validate import validate_components

        validate_components(load_config(["env=toolchain", "rollout.sampling.constraint=json"]))


# --- property: the constrained decoder never emits an invalid plan ---------------------------


@pytest.mark.parametrize("name", ["toolchain", "toolchain_step"])
@pytest.mark.parametrize(
    "tokenizer", [build_word_tokenizer(), build_char_tokenizer()], ids=["word", "char"]
)
def test_random_logits_always_decode_a_valid_plan(tokenizer, name):
    """Drive the mask with random (often adversarial) logits: every finished text is a valid plan."""
    grammar = resolve_grammar(name)
    eos = tokenizer.eos_token_id
    vocab = len(tokenizer) + 7  # padded embedding rows must never be emitted
    tc = TokenConstraint(grammar, tokenizer, vocab, eos_ids=[eos])
    gen = torch.Generator().manual_seed(0)
    newline = tokenizer.convert_tokens_to_ids("\n")
    for trial in range(300):
        logits = torch.randn(vocab, generator=gen) * float(torch.rand(1, generator=gen) * 20)
        if trial % 3 == 0:  # push towards stopping early, eos, and the padded ids
            logits[[eos, newline]] += 30.0
            logits[-7:] += 50.0
        text, ended = "", False
        for _ in range(64):
            masked = tc.apply(
                logits.unsqueeze(0) + torch.randn(1, vocab, generator=gen) * 3, [text]
            )[0]
            tok = int(torch.multinomial(torch.softmax(masked, -1), 1, generator=gen))
            assert tc.allowed(text)[tok], (text, tok)
            if tok == eos:
                ended = True
                break
            text += tc.token_text[tok]
            if text.endswith("\n"):
                ended = True
                break
        assert ended, text
        assert grammar.valid_plan(text), repr(text)
        assert parse_plan(text, max_modules=grammar.max_items) is not None, repr(text)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_policy_generate_with_constraint_emits_only_valid_plans(seed):
    policy = _policy(seed, "word" if seed != 2 else "char")
    with torch.no_grad():  # a random model made sharper: adversarial preferences
        policy.model.lm_head.weight.mul_(20.0)
    observations = [f"Task: plan number {i}." for i in range(12)]
    for greedy in (False, True):
        sampling = SamplingConfig(
            max_new_tokens=48, constraint="toolchain", greedy=greedy, temperature=1.5
        )
        gens = policy.generate_text(
            observations * 3, sampling, generator=torch.Generator().manual_seed(seed)
        )
        for g in gens:
            assert g.finish_reason == "stop" and parse_plan(g.text) is not None, g.text
    plain = policy.generate_text(
        observations, SamplingConfig(max_new_tokens=48), torch.Generator().manual_seed(0)
    )
    assert sum(parse_plan(g.text) is not None for g in plain) < len(plain)  # the constraint matters


def test_constrained_logprobs_match_between_sampling_and_scoring():
    policy = _policy(0)
    sampling = SamplingConfig(max_new_tokens=48, constraint="toolchain")
    gens = policy.generate_text(["Task: sort it."] * 8, sampling, torch.Generator().manual_seed(1))
    prompts, actions = [g.prompt_ids for g in gens], [g.token_ids for g in gens]
    with torch.no_grad():
        sums, per_token, mask = policy.action_logprobs(prompts, actions, constraint="toolchain")
        plain, _, _ = policy.action_logprobs(prompts, actions)
        policy.default_constraint = "toolchain"
        default, _, _ = policy.action_logprobs(prompts, actions)
    sampled = torch.tensor([g.logprob for g in gens])
    torch.testing.assert_close(sums, sampled, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(default, sums)
    assert torch.all(plain < sums)  # the constrained distribution is renormalised over fewer tokens
    for g, row in zip(gens, per_token, strict=True):
        torch.testing.assert_close(
            row[: len(g.logprobs)], torch.tensor(g.logprobs), atol=1e-4, rtol=1e-4
        )
    # the default constraint also governs sampling that names none (e.g. ArCHer's fresh actions)
    own = policy.generate_text(
        ["Task: sort it."] * 8, SamplingConfig(max_new_tokens=48), torch.Generator().manual_seed(1)
    )
    assert [g.token_ids for g in own] == actions
    policy.default_constraint = None
    free = policy.generate_text(
        ["Task: sort it."] * 8, SamplingConfig(max_new_tokens=48), torch.Generator().manual_seed(1)
    )
    assert [g.token_ids for g in free] != actions


# --- REINFORCE pieces, by hand -----------------------------------------------------------------


def test_reinforce_loss_and_gradient_by_hand():
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    adv = torch.tensor([0.5, -0.5])
    loss = reinforce_loss(logp, adv)
    assert loss.item() == pytest.approx(-0.25)  # -(0.5 * -1 + -0.5 * -2) / 2
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([-0.25, 0.25]))


def test_running_baseline_by_hand():
    used, kept = running_baseline(None, torch.tensor([1.0, 0.0, 0.0, 1.0]), momentum=0.9)
    assert (used, kept) == (0.5, pytest.approx(0.5))
    used, kept = running_baseline(0.5, torch.tensor([1.0, 1.0]), momentum=0.9)
    assert used == 0.5 and kept == pytest.approx(0.9 * 0.5 + 0.1 * 1.0)


def test_epsilon_schedule_and_choice():
    assert epsilon_at(0, 0.2, 0.9) == 0.2
    assert epsilon_at(2, 0.2, 0.9) == pytest.approx(0.162)
    assert epsilon_at(100, 0.2, 0.9, floor=0.05) == 0.05
    scores = torch.tensor([[0.0, 3.0, 1.0], [5.0, -1.0, 0.0]])
    assert epsilon_greedy(scores, 0.0).tolist() == [1, 0]
    assert epsilon_greedy(scores, 0.0, greedy_index=torch.tensor([2, 2])).tolist() == [2, 2]
    picks = epsilon_greedy(scores.repeat(500, 1), 1.0, torch.Generator().manual_seed(0))
    assert set(picks.tolist()) == {0, 1, 2}


def test_kl_k3_by_hand():
    logp = torch.tensor([[-1.0, -2.0, 0.0]])
    ref = torch.tensor([[-1.0, -1.0, 5.0]])
    mask = torch.tensor([[True, True, False]])
    # token 1: r = 0 -> 0; token 2: r = 1 -> e - 2; token 3 masked
    torch.testing.assert_close(kl_k3(logp, ref, mask), torch.tensor([torch.e - 2.0]))


def _episode(policy: Policy, observation: str, plan: str, reward: float) -> Episode:
    prompt = policy.encode_prompts([observation])[0]
    action = policy.tokenizer(plan + "\n", add_special_tokens=False)["input_ids"]
    turn = Turn(observation, plan, prompt, action, [0.0] * len(action), reward, True, False)
    return Episode("agentrl/ToolChain-v0", {}, 0, [turn], env_reward=reward)


def test_update_follows_the_hand_computed_gradient():
    """One RLTF update equals one Adam step on -mean((R - b) log pi), b = first batch mean."""
    policy = _policy(0)
    policy.default_constraint = "toolchain"
    eps = [
        _episode(policy, "Task: sort it.", "sort", 1.0),
        _episode(policy, "Task: sort it.", "reverse sum", 0.0),
    ]
    algo = RLTF(RLTFConfig(lr=1e-3, grad_clip=1e9), policy, seed=0)
    before = {k: v.detach().clone() for k, v in policy.model.named_parameters()}
    # the expected gradient, by hand: advantages +0.5 and -0.5
    sums, _, _ = policy.action_logprobs(
        [e.turns[0].prompt_ids for e in eps], [e.turns[0].action_ids for e in eps]
    )
    (-(0.5 * sums[0] - 0.5 * sums[1]) / 2).backward()
    grads = {k: p.grad.detach().clone() for k, p in policy.model.named_parameters()}
    policy.model.zero_grad(set_to_none=True)
    stats = algo.update(eps)
    assert (
        stats["rltf/baseline"] == 0.5
        and stats["rltf/reward"] == 0.5
        and stats["rltf/advantage_abs"] == 0.5
    )
    assert stats["rltf/loss"] == pytest.approx(
        (-(0.5 * sums[0] - 0.5 * sums[1]) / 2).item(), rel=1e-5
    )
    assert algo.baseline == pytest.approx(0.5) and algo.num_updates == 1
    checked = 0
    for k, p in policy.model.named_parameters():
        big = grads[k].abs() > 1e-5  # Adam's first step is lr * sign(g) (up to eps)
        delta = p.detach() - before[k]
        torch.testing.assert_close(delta[big], -1e-3 * grads[k][big].sign(), atol=2e-5, rtol=0.05)
        checked += int(big.sum())
    assert checked > 100
    # the plan the env liked is now more likely, the other less
    with torch.no_grad():
        after, _, _ = policy.action_logprobs(
            [e.turns[0].prompt_ids for e in eps], [e.turns[0].action_ids for e in eps]
        )
    assert after[0] > sums[0] and after[1] < sums[1]


def test_act_picks_epsilon_greedily_among_k_candidates():
    policy = _policy(0)
    sampling = SamplingConfig(max_new_tokens=48, constraint="toolchain")
    algo = RLTF(RLTFConfig(num_candidates=6, epsilon=0.0), policy, seed=0)
    obs = ["Task: sort it.", "Task: add one."]
    gens = algo.act(obs, policy.encode_prompts(obs), sampling)
    assert len(gens) == 2 and all(parse_plan(g.text) for g in gens)
    # with epsilon 0 the executed plan is the most probable of the k samples: on average
    # more probable than a plain sample
    algo_best = RLTF(RLTFConfig(num_candidates=6, epsilon=0.0), policy, seed=1)
    algo_first = RLTF(RLTFConfig(num_candidates=6, epsilon=0.0, choice="first"), policy, seed=1)
    obs = [f"Task: number {i}." for i in range(16)]
    best = sum(g.logprob for g in algo_best.act(obs, policy.encode_prompts(obs), sampling))
    first = sum(g.logprob for g in algo_first.act(obs, policy.encode_prompts(obs), sampling))
    assert best > first
    algo.num_updates = 3
    assert algo.epsilon == 0.0 and RLTF(RLTFConfig(), policy).epsilon == 0.2
    with pytest.raises(ValueError, match="choice"):
        RLTFConfig(choice="beam")


def test_state_dict_roundtrip_with_kl_reference():
    policy = _policy(0)
    policy.default_constraint = "toolchain"
    algo = RLTF(RLTFConfig(kl_coef=0.1), policy, seed=0)
    eps = [
        _episode(policy, "Task: sort it.", "sort", 1.0),
        _episode(policy, "Task: add one.", "inc", 0.0),
    ]
    s1 = algo.update(eps)
    assert s1["rltf/kl"] == pytest.approx(0.0, abs=1e-6)  # still the initial policy
    s2 = algo.update(eps)
    assert s2["rltf/kl"] > 0.0
    state = algo.state_dict()
    other = RLTF(RLTFConfig(kl_coef=0.1), _policy(0), seed=5)
    other.load_state_dict(state)
    assert other.baseline == algo.baseline and other.num_updates == 2
    torch.save(state, "/dev/null")  # tensors, numbers and dicts only


# --- learning ---------------------------------------------------------------------------------


def _score(policy: Policy, env_kwargs: dict, tasks: list[dict], greedy: bool = True) -> float:
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

    sampling = SamplingConfig(max_new_tokens=48, constraint="toolchain")
    worker = RolloutWorker("agentrl/ToolChain-v0", env_kwargs, len(tasks), sampling, policy=policy)
    eps = worker.collect(
        [EpisodeJob(i, i, t) for i, t in enumerate(tasks)], rng_seed=0, greedy=greedy
    )
    return sum(e.env_reward for e in eps) / len(eps)


def test_short_rltf_run_improves_the_task_score():
    """From an untrained policy, RLTF on a tiny task set (3 one-module tasks) raises the
    greedy task score."""
    from agentrl.envs.toolchain import ToolChainEnv
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

    env_kwargs = {"max_chain": 1, "num_tasks": 3}
    tasks = ToolChainEnv(**env_kwargs).task_list(3)
    policy = _policy(0)
    policy.default_constraint = "toolchain"
    before = _score(policy, env_kwargs, tasks)
    algo = RLTF(RLTFConfig(lr=3e-3, num_candidates=4, epsilon=0.5, min_epsilon=0.2), policy, seed=0)
    sampling = SamplingConfig(max_new_tokens=48, constraint="toolchain")
    worker = RolloutWorker("agentrl/ToolChain-v0", env_kwargs, 24, sampling, policy=policy)
    rewards = []
    for it in range(40):
        jobs = [EpisodeJob(j, 1000 * it + j) for j in range(24)]
        eps = worker.collect(jobs, rng_seed=it, act=lambda o, p: algo.act(o, p, sampling))
        rewards.append(algo.update(eps)["rltf/reward"])
    after = _score(policy, env_kwargs, tasks)
    assert after >= before + 0.3, (before, after, rewards)  # measured here: 0.0 -> 0.67
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.2  # measured: 0.22 -> 0.65


# --- through the Trainer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "setup",
    [
        [
            "algorithm=rltf",
            "env=toolchain",
            "cluster=inline",
            "rollout.sampling.constraint=toolchain",
        ],
        ["+experiment=rltf_toolchain"],  # multi-turn, toolchain_step constraint
    ],
    ids=["single_turn", "experiment"],
)
def test_train_rltf_on_toolchain_through_the_trainer(tmp_path, setup):
    """``agentrl train algorithm=rltf env=toolchain ...`` (the CLI, in process)."""
    from agentrl.cli import main

    overrides = [
        *TINY_MODEL,
        *setup,
        f"run_dir={tmp_path / 'run'}",
        "rollout.num_workers=1",
        "rollout.envs_per_worker=4",
        "rollout.episodes_per_iter=8",
        "iterations=2",
        "eval.every=2",
        "eval.episodes=4",
        "logging.tensorboard=false",
        "logging.plot=false",
        "logging.progress=false",
        "warm_start.enabled=true",
        "warm_start.policy=good",
        "warm_start.episodes=4",
        "warm_start.epochs=1",
        "algorithm.num_candidates=2",
    ]
    assert main(["train", *overrides]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["iterations"] == 2
    rows = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    trained = [r for r in rows if "rltf/loss" in r]
    assert len(trained) == 2 and trained[-1]["rltf/epsilon"] == pytest.approx(
        0.2 * 0.9
    )  # used while acting
    assert all(r["train/invalid_actions"] == 0.0 for r in trained)  # constrained plans are valid
    state = torch.load(
        tmp_path / "run" / "checkpoints" / "step_000002" / "algorithm" / "state.pt",
        weights_only=True,
    )
    assert state["algorithm"]["num_updates"] == 2
