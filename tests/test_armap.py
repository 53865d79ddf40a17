"""The ARMAP pipeline end to end on a tiny model, the planners, and reward-model checkpoints."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

import agentrl.envs  # noqa: F401
from agentrl.cli import main
from agentrl.envs.base import TextEnv
from agentrl.envs.scripted import make_scripted
from agentrl.rewards import RewardModelError, build_reward
from agentrl.rewards.armap import (
    CollectConfig,
    SynthesizeConfig,
    TrainRMConfig,
    collect,
    parse_llm_output,
    synthesize,
    train_reward_model,
)
from agentrl.rewards.armap.jsonl import read_jsonl
from agentrl.rewards.armap.plan import PlanConfig, run_plan
from agentrl.rewards.armap.planners import (
    best_of_n,
    best_of_n_report,
    mcts,
    reflexion,
    rollout,
    select,
)
from agentrl.rewards.model import RewardModelScorer, RMBackboneConfig
from agentrl.types import Episode

TINY_RM = RMBackboneConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """collect -> synthesize -> train on Game of 24 with a tiny RM (shared by the tests below)."""
    d = tmp_path_factory.mktemp("armap")
    c = collect(
        CollectConfig(
            out=str(d / "traj.jsonl"), episodes=240, policy="mix", epsilon=0.8, chunk_size=50
        )
    )
    s = synthesize(
        SynthesizeConfig(trajectories=str(d / "traj.jsonl"), out=str(d / "triplets.jsonl"))
    )
    t = train_reward_model(
        TrainRMConfig(
            data=str(d / "triplets.jsonl"),
            out=str(d / "rm"),
            backbone=TINY_RM,
            epochs=4,
            lr=2e-3,
            batch_size=16,
        )
    )
    return d, c, s, t


def test_collect_is_resumable_and_deterministic(tmp_path):
    cfg = CollectConfig(out=str(tmp_path / "a.jsonl"), episodes=30, policy="random", chunk_size=7)
    full = collect(cfg)
    assert full["written"] == 30 and full["episodes"] == 30
    rows = {r["id"]: r for r in read_jsonl(cfg.out)}
    # interrupt: keep 11 rows and a torn last line, then resume
    part = tmp_path / "b.jsonl"
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    part.write_text("\n".join(lines[:11]) + "\n" + lines[11][:20])
    again = collect(CollectConfig(out=str(part), episodes=30, policy="random", chunk_size=7))
    assert again["skipped"] == 11 and again["written"] == 19
    assert {r["id"]: r for r in read_jsonl(part)} == rows
    ep = Episode.from_dict(rows[0]["episode"])
    assert ep.env_id == "agentrl/Game24-v0" and "final_observation" in ep.turns[-1].info


def test_collect_repeats_share_tasks(tmp_path):
    collect(
        CollectConfig(env="guess_the_number", out=str(tmp_path / "g.jsonl"), episodes=12, repeats=4)
    )
    tasks = [
        r["episode"]["task"]["target"]
        for r in sorted(read_jsonl(tmp_path / "g.jsonl"), key=lambda r: r["id"])
    ]
    assert tasks[0:4] == [tasks[0]] * 4 and tasks[4:8] == [tasks[4]] * 4


def test_synthesize_env_scorer_and_corruptions(pipeline):
    d, c, s, _ = pipeline
    rows = list(read_jsonl(d / "triplets.jsonl"))
    assert s["written"] == len(rows) > 200
    from agentrl.envs.game24 import score_response

    for r in rows:
        assert score_response(r["task"], r["positive"]) == 1.0
        assert score_response(r["task"], r["negative"]) == 0.0
    assert {r["kind"] for r in rows} >= {
        "corruption",
        "reference_corruption",
        "reference_vs_trajectory",
    }


def test_synthesize_ranked_pairs_for_env_without_scorer(tmp_path):
    collect(
        CollectConfig(env="guess_the_number", out=str(tmp_path / "g.jsonl"), episodes=48, repeats=6)
    )
    out = synthesize(
        SynthesizeConfig(trajectories=str(tmp_path / "g.jsonl"), out=str(tmp_path / "s.jsonl"))
    )
    rows = list(read_jsonl(tmp_path / "s.jsonl"))
    assert out["written"] == len(rows) > 0
    for r in rows:
        assert (
            r["kind"] == "ranked" and "correct" in r["positive"] and "correct" not in r["negative"]
        )
        assert r["intent"].startswith("Guess the number between")


def test_synthesize_llm_drops_and_counts_malformed(tmp_path):
    collect(CollectConfig(out=str(tmp_path / "t.jsonl"), episodes=6))
    answers = iter(
        [
            " make 24\nPositive: 4 * 6 = 24\nNegative: 4 * 6 = 25",  # good
            " make 24\nPositive: 4 * 6 = 24",  # no negative
            "garbage",  # nothing
            " x\nPositive: same\nNegative: same",  # positive == negative
            " make 24\nNegative: 1 + 1 = 2\nPositive: 3 * 8 = 24",  # good, other order
            "",  # empty
        ]
    )

    def fake_llm(prompts):
        assert all(p.endswith("Intent:") for p in prompts)
        return [next(answers) for _ in prompts]

    out = synthesize(
        SynthesizeConfig(
            trajectories=str(tmp_path / "t.jsonl"), out=str(tmp_path / "s.jsonl"), method="llm"
        ),
        generate=fake_llm,
    )
    assert out["written"] == 2 and out["malformed"] == 4
    rows = list(read_jsonl(tmp_path / "s.jsonl"))
    assert rows[1]["positive"] == "3 * 8 = 24" and rows[1]["negative"] == "1 + 1 = 2"
    assert parse_llm_output(" a\nPositive: b\nNegative: c") == ("a", "b", "c")
    assert parse_llm_output(" <task>\nPositive: <good response>\nNegative: <bad response>") is None
    assert parse_llm_output(" a\nPositive: b\nNegative: c\n\nThe task is to ...") == ("a", "b", "c")


def test_synthesize_llm_with_a_real_tiny_model(tmp_path):
    collect(CollectConfig(out=str(tmp_path / "t.jsonl"), episodes=3))
    out = synthesize(
        SynthesizeConfig(
            trajectories=str(tmp_path / "t.jsonl"),
            out=str(tmp_path / "s.jsonl"),
            method="llm",
            model="tiny",
            max_new_tokens=8,
        )
    )
    assert (
        out["trajectories"] == 3 and out["written"] + out["malformed"] == 3
    )  # random model: no crash


def test_train_reward_model_learns_and_versions(pipeline):
    d, _, _, t = pipeline
    assert t["heldout_pairs"] > 20
    assert t["heldout_accuracy"] > 0.7, t  # chance is 0.5
    assert t["path"].endswith("v001") and (d / "rm" / "latest").read_text() == "v001"
    held = list(read_jsonl(d / "rm" / "v001" / "heldout.jsonl"))
    assert len(held) == t["heldout_pairs"]
    meta = json.loads((d / "rm" / "v001" / "reward_model.json").read_text())
    assert meta["metrics"]["heldout_accuracy"] == t["heldout_accuracy"]
    # the held-out pairs are from puzzles the model never trained on
    from agentrl.rewards.armap.train import split_by_task

    train, test = split_by_task(list(read_jsonl(d / "triplets.jsonl")), 0.2, 0)
    assert {r["task_id"] for r in train}.isdisjoint({r["task_id"] for r in test})


def test_bad_reward_model_checkpoint_is_a_clear_error(pipeline, tmp_path):
    import shutil

    d, *_ = pipeline
    with pytest.raises(RewardModelError, match="does not exist"):
        RewardModelScorer(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RewardModelError, match="not a reward-model checkpoint"):
        RewardModelScorer(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(d / "rm", broken)
    weights = next((broken / "v001" / "model").glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(RewardModelError, match="damaged"):
        RewardModelScorer(broken)
    (broken / "v001" / "reward_model.json").write_text("{not json")
    with pytest.raises(RewardModelError, match="damaged"):
        RewardModelScorer(broken)
    (broken / "latest").write_text("v009")
    with pytest.raises(RewardModelError, match="v009"):
        build_reward({"name": "learned_rm", "path": str(broken)})
    with pytest.raises(RewardModelError, match="reward.path"):
        build_reward({"name": "learned_rm"})
    assert (
        main(["train", "reward=learned_rm", f"reward.path={tmp_path / 'empty'}", "cluster=inline"])
        == 2
    )


def test_learned_rm_scores_episodes(pipeline):
    d, *_ = pipeline
    reward = build_reward({"name": "learned_rm", "path": str(d / "rm")})
    env = gym.make("agentrl/Game24-v0")
    good = [
        rollout(env, make_scripted("game24", "good"), s, None, np.random.default_rng(s))
        for s in range(900, 920)
    ]
    bad = [
        rollout(env, make_scripted("game24", "random"), s, None, np.random.default_rng(s))
        for s in range(900, 920)
    ]
    bad = [e for e in bad if not e.success]
    g, b = reward.score(good), reward.score(bad)
    assert all(0.0 < x < 1.0 for x in g + b)  # sigmoid transform
    assert np.mean(g) > np.mean(b)


# --- planners ------------------------------------------------------------------------------------


class FixedProposer:
    """Plays the i-th fixed solution on the i-th call to reset (known candidates)."""

    def __init__(self, plans):
        self.plans, self.k = plans, -1

    def reset(self, task, rng):
        self.k += 1
        self.plan = list(self.plans[self.k % len(self.plans)])

    def act(self, observation):
        return self.plan.pop(0) if self.plan else "1 + 1 = 2"


TASK = {"numbers": [4, 6, 1, 1]}
PLANS = [
    ["4 + 6 = 10", "10 + 1 = 11", "11 + 1 = 12"],
    ["4 * 6 = 24", "24 * 1 = 24", "24 * 1 = 24"],  # the only solution
    ["4 * 6 = 25"],
    ["1 + 1 = 2", "2 * 4 = 8", "8 + 6 = 14"],
]


def oracle_like(episodes):
    """A fixed scorer: 0.9 for the solution, small distinct values otherwise."""
    return [0.9 if e.success else 0.1 * len(e.turns) / 10 for e in episodes]


def test_select_and_report():
    assert select([0.1, 0.7, 0.7, 0.2]) == 1
    rep = best_of_n_report([False, True, False, False], [0.2, 0.1, 0.9, 0.0], [1, 4])
    assert rep[1] == {"avg": 0.0, "max": 0.0, "sel": 0.0}
    assert rep[4] == {"avg": 0.25, "max": 1.0, "sel": 0.0}  # the pick (0.9) fails: sel != max
    with pytest.raises(ValueError):
        select([])


def test_best_of_n_picks_the_known_best_candidate():
    env = gym.make("agentrl/Game24-v0")
    res = best_of_n(
        env, FixedProposer(PLANS), oracle_like, 0, TASK, n=4, rng=np.random.default_rng(0)
    )
    assert res["pick"] == 1 and res["episode"].success
    assert [e.success for e in res["candidates"]] == [False, True, False, False]


def test_reflexion_retries_until_the_score_passes():
    env = gym.make("agentrl/Game24-v0")
    seen = []

    class Recording(FixedProposer):
        def act(self, observation):
            seen.append(observation)
            return super().act(observation)

    res = reflexion(
        env,
        Recording(PLANS),
        oracle_like,
        0,
        TASK,
        np.random.default_rng(0),
        max_attempts=4,
        threshold=0.5,
        show_reflections=True,
    )
    assert res["attempts"] == 2 and res["episode"].success
    assert any(
        o.startswith("Reflection 1: the attempt [4 + 6 = 10 | 10 + 1 = 11 | 11 + 1 = 12]")
        for o in seen
    )


def test_mcts_beats_its_own_first_rollout_with_the_oracle():
    env = gym.make("agentrl/Game24-v0")
    oracle = build_reward({"name": "env"}).score
    wins = first = 0
    for seed in range(10):
        proposer = make_scripted("game24", "mix", epsilon=0.8)
        res = mcts(
            env,
            proposer,
            oracle,
            700 + seed,
            None,
            np.random.default_rng(seed),
            simulations=40,
            expansions=4,
        )
        assert res["root_visits"] == 40 and len(res["candidates"]) == 40
        wins += res["episode"].success
        first += res["candidates"][0].success
    assert wins >= 4 and wins > first


def test_mcts_needs_a_cloneable_env():
    from agentrl.rewards.armap.planners import clone_env

    env = gym.make("agentrl/Game24-v0")
    env.reset(seed=0, options={"task": TASK})
    twin = clone_env(env)
    twin.step("4 * 6 = 24")
    assert env.unwrapped.get_state()["history"] == []  # the original is untouched

    class Unclonable(TextEnv):  # a user's env whose state deepcopy cannot copy
        def __deepcopy__(self, memo):
            raise TypeError("no")

    with pytest.raises(TypeError, match="cloneable env: Unclonable cannot be deep-copied"):
        clone_env(Unclonable())
    with pytest.raises(TypeError, match="cloneable env: Unclonable cannot be deep-copied"):
        clone_env(gym.wrappers.PassiveEnvChecker(Unclonable()))


def test_plan_stage_best_of_n_sel_beats_avg(pipeline, tmp_path):
    d, *_ = pipeline
    out = run_plan(
        PlanConfig(
            reward={"name": "learned_rm", "path": str(d / "rm")},
            tasks=12,
            ns=[1, 16],
            exclude=str(d / "triplets.jsonl"),
            out=str(tmp_path / "p.jsonl"),
        )
    )
    assert out["tasks"] == 12
    assert out["N=16/sel"] > out["N=16/avg"] and out["N=16/max"] >= out["N=16/sel"]
    again = run_plan(
        PlanConfig(
            reward={"name": "learned_rm", "path": str(d / "rm")},
            tasks=12,
            ns=[1, 16],
            exclude=str(d / "triplets.jsonl"),
            out=str(tmp_path / "p.jsonl"),
        )
    )
    assert again == out  # resumed: nothing re-planned


# --- the command line ---------------------------------------------------------------------------


def test_cli_pipeline_end_to_end(tmp_path, capsys):
    d = tmp_path
    assert (
        main(
            [
                "reward",
                "collect",
                "episodes=60",
                "policy=mix",
                "epsilon=0.8",
                f"out={d / 't.jsonl'}",
            ]
        )
        == 0
    )
    assert (
        main(["reward", "synthesize", f"trajectories={d / 't.jsonl'}", f"out={d / 's.jsonl'}"]) == 0
    )
    assert (
        main(
            [
                "reward",
                "train",
                f"data={d / 's.jsonl'}",
                f"out={d / 'rm'}",
                "epochs=1",
                "backbone.name=tiny_encoder",
                "backbone.hidden_size=32",
                "backbone.num_layers=1",
            ]
        )
        == 0
    )
    capsys.readouterr()
    for planner in ("best_of_n", "reflexion", "mcts"):
        assert (
            main(
                [
                    "plan",
                    f"planner={planner}",
                    f"rm={d / 'rm'}",
                    "tasks=2",
                    "ns=[1,4]",
                    "simulations=6",
                    f"out={d / planner}.jsonl",
                ]
            )
            == 0
        )
    summary = json.loads((d / "mcts.jsonl.summary.json").read_text())
    assert summary["tasks"] == 2 and summary["mean_candidates"] == 6
    assert main(["plan", "reward=env", "tasks=2", "ns=[2]", f"out={d / 'o.jsonl'}"]) == 0
    assert main(["reward", "fly"]) == 2
    assert main(["plan", "planner=astar"]) == 2
    assert main(["reward", "train", f"data={d / 'missing.jsonl'}"]) == 2
    assert main(["reward", "collect", "policy=genius"]) == 2
    err = capsys.readouterr().err
    assert (
        "valid stages" in err
        and "valid planners" in err
        and "reward synthesize" in err
        and "valid kinds" in err
    )


def test_train_with_lora_and_an_encoder_backbone(pipeline, tmp_path):
    d, *_ = pipeline
    for backbone in (
        RMBackboneConfig(
            hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, lora=True
        ),
        RMBackboneConfig(
            name="tiny_encoder",
            hidden_size=32,
            num_layers=1,
            num_heads=2,
            intermediate_size=64,
            lora=True,
            lora_target_modules=["query", "value"],
        ),
    ):
        out = tmp_path / backbone.name
        res = train_reward_model(
            TrainRMConfig(
                data=str(d / "triplets.jsonl"),
                out=str(out),
                backbone=backbone,
                epochs=1,
                batch_size=32,
            )
        )
        scorer = RewardModelScorer(out)  # saved merged: loads as a plain model
        assert scorer.meta["backbone"]["lora"] is True and 0.0 <= res["heldout_accuracy"] <= 1.0
        assert len(scorer.score(["a"], ["b"])) == 1
    # retraining the same data makes a new version next to the old one
    again = train_reward_model(
        TrainRMConfig(
            data=str(d / "triplets.jsonl"),
            out=str(tmp_path / "tiny"),
            backbone=RMBackboneConfig(
                hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64
            ),
            epochs=1,
        )
    )
    assert again["path"].endswith("v002") and (tmp_path / "tiny" / "latest").read_text() == "v002"


def test_reflexion_with_a_scripted_player_retries_without_touching_its_observations():
    env = gym.make("agentrl/GuessTheNumber-v0")
    oracle = build_reward({"name": "env"}).score
    res = reflexion(
        env,
        make_scripted("guess_the_number", "random"),
        oracle,
        3,
        None,
        np.random.default_rng(0),
        max_attempts=8,
        threshold=0.5,
    )
    assert res["episode"].success and res["attempts"] == 1 + res["scores"].index(1.0)


def test_train_resumes_from_its_work_checkpoint(pipeline, tmp_path, monkeypatch):
    import agentrl.rewards.armap.train as train_mod

    d, *_ = pipeline
    cfg = TrainRMConfig(
        data=str(d / "triplets.jsonl"), out=str(tmp_path / "rm"), backbone=TINY_RM, epochs=1
    )
    monkeypatch.setattr(
        train_mod.shutil, "rmtree", lambda *a, **k: None
    )  # as if killed before cleanup
    first = train_reward_model(cfg)
    work = next((tmp_path / "rm").glob(".work-*"))
    assert any(work.glob("checkpoint-*"))
    import transformers

    calls = []
    real_train = transformers.Trainer.train

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("resume_from_checkpoint"))
        return real_train(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "train", spy)
    resumed = train_reward_model(cfg)  # picks the finished checkpoint up: no step is redone
    assert calls == [True] and resumed["path"].endswith("v002")
    assert resumed["heldout_accuracy"] == pytest.approx(first["heldout_accuracy"])


def test_collect_with_a_checkpoint_policy(tmp_path, tiny_overrides):
    """Exploration by a trained (weak) LM policy: rows carry its sampled token ids; resumable."""
    from agentrl.checkpoint import CheckpointError
    from agentrl.config import load_config
    from agentrl.trainer import Trainer

    s = Trainer(load_config([*tiny_overrides, "env=game24", "iterations=1"]), console=False).run()
    cfg = CollectConfig(
        env="game24",
        out=str(tmp_path / "lm.jsonl"),
        episodes=6,
        checkpoint=s["run_dir"],
        chunk_size=4,
    )
    first = collect(cfg)
    assert first["written"] == 6 and first["episodes"] == 6
    rows = sorted(read_jsonl(cfg.out), key=lambda r: r["id"])
    eps = [Episode.from_dict(r["episode"]) for r in rows]
    assert all(ep.turns and ep.turns[0].action_ids and ep.turns[0].action_logprobs for ep in eps)
    assert collect(cfg)["written"] == 0  # resumed: nothing left to do
    with pytest.raises(CheckpointError):
        collect(
            CollectConfig(
                env="game24", out=str(tmp_path / "x.jsonl"), checkpoint=str(tmp_path / "nope")
            )
        )


def test_plan_reports_progress_per_task_and_resumes_without_redoing(tmp_path, capsys):
    cfg = PlanConfig(
        env="game24", reward={"name": "env"}, ns=[1, 4], tasks=10, out=str(tmp_path / "p.jsonl")
    )
    first = run_plan(cfg)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("planning")]
    assert lines[0].startswith("planning (best_of_n): task 1/10, ")
    assert lines[-1].startswith("planning (best_of_n): task 10/10, ") and len(lines) == 10
    again = run_plan(cfg)  # every task is done: nothing is replayed, the summary is the same
    assert "planning (best_of_n): task" not in capsys.readouterr().out
    assert again == first
    quiet = PlanConfig(**{**cfg.__dict__, "out": str(tmp_path / "q.jsonl"), "progress": False})
    run_plan(quiet)
    assert "planning" not in capsys.readouterr().out
