"""The reward registry: losses, rule functions, combinations, the judge, swapping by name."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest
import torch

from agentrl.config import ConfigError, load_config
from agentrl.registry import REWARDS, RegistryError
from agentrl.rewards import apply_reward, build_reward
from agentrl.rewards.losses import bradley_terry_loss, pairwise_accuracy
from agentrl.types import Episode, Turn


def _ep(
    success: bool, turns: int = 2, invalid: int = 0, env_id: str = "agentrl/GuessTheNumber-v0"
) -> Episode:
    ts = [
        Turn(
            observation="Guess the number between 1 and 16.\n",
            action="8",
            prompt_ids=[],
            action_ids=[],
            action_logprobs=[],
            reward=0.0,
            terminated=False,
            truncated=False,
            info={"invalid_action": k < invalid},
        )
        for k in range(turns)
    ]
    ts[-1].reward = 1.0 if success else 0.0
    return Episode(
        env_id=env_id,
        task={"target": 8},
        seed=0,
        turns=ts,
        success=success,
        env_reward=1.0 if success else 0.0,
    )


def test_bradley_terry_loss_hand_computed():
    r_pos, r_neg = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 1.0])
    # -log sigmoid(2) = log(1 + e^-2) = 0.126928; -log sigmoid(-1) = log(1 + e) = 1.313262
    bt = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(1.0))) / 2
    # centring: |mean(r_pos + r_neg)| = |(2 + 1) / 2| = 1.5
    assert bradley_terry_loss(r_pos, r_neg, 0.0).item() == pytest.approx(bt, abs=1e-6)
    assert bradley_terry_loss(r_pos, r_neg, 1e-3).item() == pytest.approx(bt + 1.5e-3, abs=1e-6)
    assert bradley_terry_loss(torch.zeros(3), torch.zeros(3), 0.0).item() == pytest.approx(
        math.log(2)
    )
    assert pairwise_accuracy(r_pos, r_neg) == 0.5
    with pytest.raises(ValueError, match="same shape"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_bradley_terry_gradient_prefers_positive():
    r = torch.tensor([0.0, 0.0], requires_grad=True)
    bradley_terry_loss(r[:1], r[1:], 0.0).backward()
    assert r.grad is not None and r.grad[0] < 0 < r.grad[1]  # descent raises r_pos, lowers r_neg


def test_builtin_rules():
    eps = [_ep(True, turns=2), _ep(False, turns=3, invalid=2)]
    assert build_reward({"name": "rule", "fn": "success"}).score(eps) == [1.0, 0.0]
    assert build_reward({"name": "rule", "fn": "turn_penalty"}).score(eps) == [-2.0, -3.0]
    assert build_reward({"name": "rule", "fn": "invalid_action_penalty"}).score(eps) == [0.0, -2.0]
    length = build_reward({"name": "rule", "fn": "action_length_penalty", "kwargs": {"scale": 1.0}})
    assert length.score(eps) == [-1.0, -1.0]


def test_user_rule_by_dotted_path(tmp_path, monkeypatch):
    (tmp_path / "my_rewards.py").write_text(
        textwrap.dedent("""
        def by_turns(episodes, bonus=0.0):
            return [10.0 * ep.num_turns + bonus for ep in episodes]

        def wrong_length(episodes):
            return [1.0]
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_rewards", None)
    reward = build_reward({"name": "rule", "fn": "my_rewards:by_turns", "kwargs": {"bonus": 1.0}})
    assert reward.score([_ep(True, 2), _ep(True, 4)]) == [21.0, 41.0]
    bad = build_reward({"name": "rule", "fn": "my_rewards:wrong_length"})
    with pytest.raises(ValueError, match="one per episode"):
        bad.score([_ep(True), _ep(False)])
    with pytest.raises(RegistryError, match="success"):  # unknown names list the valid ones
        build_reward({"name": "rule", "fn": "no_such_rule"})


def test_user_reward_class_by_dotted_path_and_its_contract(tmp_path, monkeypatch):
    """A user's Reward subclass works by dotted path with its own Config; a class that is
    not a Reward, or a config of another reward, is refused by name."""
    (tmp_path / "my_reward_cls.py").write_text(
        textwrap.dedent("""
        from dataclasses import dataclass
        from agentrl.rewards import Reward, RewardConfig

        @dataclass
        class LengthConfig(RewardConfig):
            per_turn: float = 1.0

        class ByLength(Reward):
            Config = LengthConfig

            def score(self, episodes):
                return [self.config.per_turn * ep.num_turns for ep in episodes]

        class NotAReward:
            def score(self, episodes):
                return [0.0 for _ in episodes]
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_reward_cls", None)
    reward = build_reward({"name": "my_reward_cls:ByLength", "per_turn": 0.5, "mode": "add"})
    out = apply_reward(reward, [_ep(True, turns=2), _ep(False, turns=4)])
    assert [e.total_reward for e in out] == pytest.approx([1.0 + 1.0, 0.0 + 2.0])
    with pytest.raises(ConfigError, match=r"not a subclass of agentrl.rewards.Reward.*reward=rule"):
        build_reward({"name": "my_reward_cls:NotAReward"})
    from agentrl.rewards import LLMJudge, RewardConfig
    from agentrl.rewards.functions import RuleReward

    with pytest.raises(TypeError, match="RuleReward takes a RuleRewardConfig, got LLMJudgeConfig"):
        RuleReward(LLMJudge.Config())
    assert isinstance(RuleReward(None).config, RewardConfig)  # None: the defaults


def test_add_mode_is_env_plus_weighted_shaping():
    eps = [_ep(True, turns=2), _ep(False, turns=4)]
    reward = build_reward({"name": "rule", "fn": "turn_penalty", "mode": "add", "weight": 0.1})
    out = apply_reward(reward, eps)
    assert [e.total_reward for e in out] == pytest.approx([1.0 - 0.2, 0.0 - 0.4])
    assert [e.env_reward for e in out] == [1.0, 0.0]  # the true return stays visible
    assert eps[0].turns[-1].reward == 1.0  # inputs are not mutated


def test_combined():
    eps = [_ep(True, turns=2), _ep(False, turns=3)]
    reward = build_reward(
        {
            "name": "combined",
            "terms": [
                {"name": "env", "weight": 2.0},
                {"name": "rule", "fn": "turn_penalty", "weight": 0.5},
            ],
        }
    )
    assert reward.score(eps) == pytest.approx([2.0 - 1.0, 0.0 - 1.5])
    with pytest.raises(ValueError, match="name"):
        build_reward({"name": "combined", "terms": [{"weight": 1.0}]})


def test_llm_judge_scores_log_odds_of_yes():
    from agentrl.policy.models import ModelConfig, load_model_and_tokenizer
    from agentrl.rewards.judge import LLMJudge, LLMJudgeConfig

    model, tok = load_model_and_tokenizer(
        ModelConfig(name="tiny", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    )
    cfg = LLMJudgeConfig(model="tiny", yes_token="Yes", no_token="No", transform="raw")
    judge = LLMJudge(cfg, model=model, tokenizer=tok)
    eps = [_ep(True), _ep(False, turns=3)]
    prompts = judge.prompts(eps)
    assert "Guess the number" in prompts[0] and prompts[0].endswith("Answer:")
    scores = judge.score(eps)
    with torch.no_grad():  # recompute the first one by hand
        ids = tok(prompts[0], return_tensors="pt")["input_ids"]
        logp = torch.log_softmax(model(ids).logits[0, -1], -1)
    assert scores[0] == pytest.approx(float(logp[judge.yes_id] - logp[judge.no_id]), abs=1e-4)
    sig = LLMJudge(
        LLMJudgeConfig(model="tiny", yes_token="Yes", no_token="No"), model=model, tokenizer=tok
    )
    assert sig.score(eps)[0] == pytest.approx(1 / (1 + math.exp(-scores[0])), abs=1e-5)
    with pytest.raises(ValueError, match="response"):
        LLMJudge(LLMJudgeConfig(template="{intent} only"), model=model, tokenizer=tok)


def test_rewards_swap_by_name_from_the_command_line():
    assert {"env", "rule", "learned_rm", "llm_judge", "combined"} <= set(REWARDS.names())
    for name in ("env", "rule", "combined", "learned_rm", "llm_judge"):
        cfg = load_config([f"reward={name}"])
        assert cfg.reward["name"] == name
    cfg = load_config(
        ["reward=rule", "reward.fn=turn_penalty", "reward.mode=add", "reward.weight=0.05"]
    )
    reward = build_reward(cfg.reward)
    assert type(reward).__name__ == "RuleReward" and reward.config.weight == 0.05
    with pytest.raises(ConfigError, match="learned_rm"):  # the config group lists the valid options
        load_config(["reward=nope"])
    with pytest.raises(ConfigError, match="mode"):
        build_reward({"name": "rule", "mode": "multiply"})


def test_rewards_package_imports_no_ray():
    import subprocess

    code = "import sys, agentrl.rewards, agentrl.rewards.armap, agentrl.rewards.armap.plan; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("reward", ["env", "rule"])
def test_agentrl_train_swaps_reward_by_name(tiny_overrides, tmp_path, reward):
    from agentrl.cli import main
    from agentrl.metrics import read_metrics

    args = [
        *tiny_overrides,
        "env=guess_the_number",
        "iterations=1",
        "eval.every=0",
        "eval.sample=false",
        f"reward={reward}",
    ]
    if reward == "rule":
        args += ["reward.fn=turn_penalty", "reward.weight=0.5"]
    assert main(["train", *args]) == 0
    row = read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]
    if reward == "rule":  # the learner saw 0.5 * (-turns); the true env return is logged apart
        assert row["train/relabelled_return"] == pytest.approx(-0.5 * row["train/turns"])
    else:
        assert row["train/relabelled_return"] == pytest.approx(row["train/return"])


def test_default_response_replays_the_final_observation():
    import gymnasium as gym

    from agentrl.envs import make_scripted, run_scripted_episode
    from agentrl.rewards.trajectory import intent_and_response

    env = gym.make("agentrl/GuessTheNumber-v0")
    ep = run_scripted_episode(env, make_scripted("guess_the_number", "good"), seed=4)
    # rollout workers keep no final observation: the response replays the episode
    assert ep.success and "final_observation" not in ep.turns[-1].info
    intent, response = intent_and_response(ep)
    assert intent == "Guess the number between 1 and 16."
    assert response.rstrip().endswith(f"{ep.turns[-1].action}: correct")


def test_an_env_says_how_reward_models_read_its_episodes_by_overriding_hooks():
    """``TextEnv.intent`` / ``response_text`` are the contract: an override is used (also
    under gymnasium's wrappers); returning ``None`` keeps the generic texts."""
    import gymnasium as gym

    from agentrl.envs import make_scripted, run_scripted_episode
    from agentrl.envs.guess_the_number import GuessTheNumberEnv
    from agentrl.rewards.trajectory import intent_and_response

    class Terse(GuessTheNumberEnv):
        def intent(self, task):
            return f"find {task['target']}"

        def response_text(self, episode):
            return " ".join(t.action for t in episode.turns)

    env = gym.make("agentrl/GuessTheNumber-v0")
    ep = run_scripted_episode(env, make_scripted("guess_the_number", "good"), seed=4)
    generic = intent_and_response(ep, env)
    assert generic[0] == "Guess the number between 1 and 16."
    terse = intent_and_response(ep, gym.wrappers.OrderEnforcing(Terse()))
    assert terse == (f"find {ep.task['target']}", " ".join(t.action for t in ep.turns))
