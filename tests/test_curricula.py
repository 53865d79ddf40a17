"""Curricula: OMNI's learning progress on hand-computed values, sampling weights, the models
of interestingness (rule, LLM with its cache), and state surviving a checkpoint round trip."""

import json
from pathlib import Path

import numpy as np
import pytest

from agentrl.config import ConfigError
from agentrl.curricula import (
    LearningProgressConfig,
    LearningProgressCurriculum,
    LLMInterestingness,
    OmniConfig,
    OmniCurriculum,
    RuleInterestingness,
    build_curriculum,
)
from agentrl.curricula.learning_progress import learning_progress, lp_weights, normalise, reweight
from agentrl.curricula.omni import label_tasks
from agentrl.types import Episode

TASKS = [{"skill": s, "count": c} for s in ("a", "b") for c in (1, 2)] + [
    {"skill": "x", "count": 1}
]


def ep(task, success):
    return Episode(env_id="t", task=dict(task), seed=0, success=success)


def test_uniform_draws_from_tasks_from_or_leaves_the_task_to_the_env():
    from agentrl.envs.ruleworld import task_list

    cur = build_curriculum({"name": "uniform", "tasks_from": "agentrl.envs.ruleworld:task_list"}, 0)
    drawn = cur.sample(400)
    assert all(t in task_list() for t in drawn)
    assert {t["depth"] for t in drawn} == {1, 2, 3, 4}  # 25 worlds per depth, all drawn
    assert build_curriculum({"name": "uniform"}, 0).sample(2) == [{}, {}]


# --- learning progress ------------------------------------------------------------------------


def test_lp_formula_by_hand():
    assert normalise(0.75, 0.5) == 0.5 and normalise(0.2, 0.5) == 0.0
    assert reweight(0.0) == 0.0 and reweight(1.0) == pytest.approx(1.0)
    assert reweight(0.1) == pytest.approx(0.5)  # f(t) = 1/2
    assert reweight(0.01) == pytest.approx(0.009 / 0.108)
    # one success measurement 1.0 from zero: p_fast = 0.1, p_slow = 0.01
    assert learning_progress(0.1, 0.01) == pytest.approx(0.5 - 0.009 / 0.108)
    with pytest.raises(ValueError, match="random_rate"):
        normalise(0.5, 1.0)


def test_ema_updates_by_hand():
    cur = LearningProgressCurriculum(LearningProgressConfig(tasks=TASKS, random_success=0.5))
    cur.update([ep(TASKS[0], True), ep(TASKS[0], True), ep(TASKS[0], False), ep(TASKS[0], True)])
    # raw 0.75 -> norm 0.5 -> p_fast 0.05 -> p_slow 0.005
    assert cur.p_fast[0] == pytest.approx(0.05) and cur.p_slow[0] == pytest.approx(0.005)
    cur.update([ep(TASKS[0], True)])  # norm 1: p_fast = 0.1 + 0.045, p_slow = 0.0145 + 0.0045
    assert cur.p_fast[0] == pytest.approx(0.145) and cur.p_slow[0] == pytest.approx(0.019)
    assert cur.learning_progress()[0] == pytest.approx(abs(reweight(0.145) - reweight(0.019)))
    assert cur.measured.tolist() == [2, 0, 0, 0, 0]


def test_weights_sum_to_one_and_are_zero_where_they_must_be():
    w = lp_weights(np.array([0.4, 0.0, 0.0]), np.array([0.1, 0.0, 0.0]))
    assert w.tolist() == [1.0, 0.0, 0.0]
    w = lp_weights(np.array([0.4, 0.2, 0.0, 0.0]), np.array([0.1, 0.1, 0.3, 0.0]))
    # z-scores of [0.4, 0.2, 0.0] are [1.2247, 0, -1.2247]; the unmeasured task gets 0
    s = 1 / (1 + np.exp(-np.array([1.5**0.5, 0.0, -(1.5**0.5)])))
    assert w[:3] == pytest.approx(s / s.sum()) and w[3] == 0.0 and w.sum() == pytest.approx(1.0)
    assert lp_weights(np.zeros(4), np.zeros(4)).tolist() == [0.25] * 4  # nothing measured: uniform


def test_sampling_follows_the_weights_plus_round_robin_exploration():
    cur = LearningProgressCurriculum(LearningProgressConfig(tasks=TASKS, explore=0.2), seed=0)
    cur.update([ep(TASKS[2], True)])
    assert cur.weights().tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    tasks = cur.sample(10)
    assert tasks[:2] == TASKS[:2]  # ceil(0.2 * 10) round-robin picks
    assert tasks[2:] == [TASKS[2]] * 8
    assert cur.sample(10)[:2] == TASKS[2:4]  # the round robin goes on


def test_state_survives_a_json_round_trip_and_resumes_identically():
    cfg = OmniConfig(tasks=TASKS, learned_threshold=0.1)
    a = OmniCurriculum(cfg, seed=3)
    for _ in range(3):
        a.update([ep(TASKS[0], True), ep(TASKS[2], True), ep(TASKS[3], False)])
    a.sample(7)
    b = OmniCurriculum(cfg, seed=99)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert b.weights().tolist() == a.weights().tolist() and b.labels == a.labels
    assert b.sample(20) == a.sample(20)
    other = OmniCurriculum(OmniConfig(tasks=TASKS[:3]))
    with pytest.raises(ValueError, match="task list"):
        other.load_state_dict(a.state_dict())


def test_build_by_name_with_clear_errors():
    cur = build_curriculum(
        {"name": "learning_progress", "tasks_from": "agentrl.envs.textcraft:task_list"}, seed=0
    )
    assert len(cur.tasks) == 105
    with pytest.raises(ValueError, match="tasks_from"):
        build_curriculum({"name": "learning_progress"}, seed=0)
    with pytest.raises(ConfigError, match="valid: rule, llm, none"):
        build_curriculum({"name": "omni", "tasks": TASKS, "moi": "magic"}, seed=0)
    with pytest.raises(ConfigError, match="has no Config dataclass"):  # the contract, by name
        build_curriculum({"name": f"{__name__}:_NoConfigCurriculum"}, seed=0)


class _NoConfigCurriculum:
    def __init__(self, config: object, seed: int = 0):
        self.config = config


# --- models of interestingness ------------------------------------------------------------------


def test_rule_moi_and_labelling_sweep():
    moi = RuleInterestingness(("count",))
    assert moi.boring({"skill": "a", "count": 2}, {"skill": "a", "count": 1})
    assert not moi.boring({"skill": "b", "count": 1}, {"skill": "a", "count": 1})
    assert not moi.boring(TASKS[0], TASKS[0])
    # b/2 is best learned, then a/1; a/2 and b/1 are their repeat variants
    labels = label_tasks(TASKS, np.array([0.6, 0.0, 0.1, 0.9, 0.0]), 0.5, moi)
    assert labels == ["interesting", "boring", "boring", "interesting", ""]


def test_omni_downweights_boring_tasks_by_a_thousand():
    cfg = OmniConfig(tasks=TASKS, learned_threshold=0.15, explore=0.0)
    lp, omni = LearningProgressCurriculum(cfg), OmniCurriculum(cfg)
    for cur in (lp, omni):
        cur.update(
            [ep(TASKS[0], True)]
        )  # a/1 learned (p_fast 0.19); a/2 and b/1 on their way (0.1)
        cur.update([ep(TASKS[0], True), ep(TASKS[1], True), ep(TASKS[2], True)])
    assert omni.labels == ["interesting", "boring", "", "", ""]
    w_lp, w = lp.weights(), omni.weights()
    raw = w_lp * np.array([1, 0.001, 1, 1, 1])
    assert w == pytest.approx(raw / raw.sum()) and w.sum() == pytest.approx(1.0)
    assert w[3] == w[4] == 0.0


def tiny_policy():
    from agentrl.policy import ModelConfig, Policy

    return Policy.from_config(
        ModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    )


def test_llm_moi_caches_answers_on_disk_and_in_checkpoints(tmp_path):
    from agentrl.envs.textcraft import describe_task

    path = tmp_path / "moi.json"
    policy = tiny_policy()
    moi = LLMInterestingness(
        policy=policy, describe=describe_task, cache_path=str(path), calibration="fixed"
    )
    wood1, wood3 = (
        {"achievement": "collect_wood", "count": 1},
        {"achievement": "collect_wood", "count": 3},
    )
    first = moi.boring(wood3, wood1)
    key = "surprisal | collect wood || collect 3 wood"
    assert moi.calls == 1 and isinstance(first, bool) and first == (moi.cache[key] > 0.0)
    assert moi.boring(wood3, wood1) == first and moi.calls == 1  # cache hit: the model is not run
    assert json.loads(path.read_text()) == {key: moi.cache[key]}
    # a new process reads the disk cache; a model that must not be called proves it
    again = LLMInterestingness(
        policy=None,
        model={"name": "no-such-model"},
        describe=describe_task,
        cache_path=str(path),
        calibration="fixed",
    )
    assert again.boring(wood3, wood1) == first and again.calls == 0
    # and the scores travel in the curriculum's checkpoint state
    cfg = OmniConfig(
        tasks=[wood1, wood3],
        moi="llm",
        learned_threshold=0.05,
        describe="agentrl.envs.textcraft:describe_task",
        llm_calibration="fixed",
    )
    cur = OmniCurriculum(cfg, moi=moi)
    cur.update([ep(wood1, True)])
    state = json.loads(json.dumps(cur.state_dict()))
    assert state["moi_cache"][key] == moi.cache[key]
    fresh = OmniCurriculum(OmniConfig(**{**vars(cfg), "model": {"name": "no-such-model"}}))
    fresh.load_state_dict(state)
    assert fresh.moi.boring(wood3, wood1) == first and fresh.moi.calls == 0


# --- the synthetic task bandit: the paper's ordering ----------------------------------------------


def test_task_bandit_rules():
    from agentrl.curricula.bandit import BanditConfig, TaskBandit

    b = TaskBandit(BanditConfig(families=2, counts=(1, 2), impossible=1, difficulty=(10.0, 10.0)))
    assert [b.key(t) for t in b.tasks] == ["s00/1", "s00/2", "s01/1", "s01/2", "never_000/1"]
    assert b.success_prob(0) == pytest.approx(
        1 / (1 + np.exp(2.0))
    )  # unpractised: sigmoid(-d / (d/2))
    b.practice[0] = 10
    assert b.success_prob(0) == 0.5 and b.learned(0.4) == (1, 1)  # s00/2 (d = 11) lags behind
    assert b.success_prob(4) == 0.0


def test_bandit_ordering_omni_oracle_over_lp_over_uniform():
    from agentrl.curricula.bandit import CURRICULA_COMPARED, BanditConfig, run_bandit

    cfg = BanditConfig()
    final = {
        name: np.mean([run_bandit(name, cfg, seed)[-1]["skills@0.4"] for seed in range(3)])
        for name in CURRICULA_COMPARED
    }
    # measured: uniform 1.0, learning_progress 17.3, omni (rule MoI) 19.0 of 25 skills
    assert final["omni_oracle"] > final["learning_progress"] > final["uniform"] + 10
    rows = run_bandit("uniform", cfg, 0)
    assert rows[-1]["impossible_share"] > 0.4  # uniform wastes its budget on impossible tasks
    assert run_bandit("learning_progress", cfg, 0)[-1]["impossible_share"] < 0.15


# --- in the trainer -----------------------------------------------------------------------------


def test_trainer_runs_omni_on_textcraft_and_checkpoints_its_state(tiny_overrides):
    from pathlib import Path

    from agentrl.config import load_config
    from agentrl.trainer import Trainer

    overrides = [*tiny_overrides, "env=textcraft", "++env.kwargs.max_turns=3", "curriculum=omni",
                 "iterations=2", "eval.episodes=2", "eval.sample=false", "checkpoint.every=1"]  # fmt: skip
    summary = Trainer(load_config(overrides), console=False).run()
    from agentrl.metrics import read_metrics

    rows = read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")
    assert (
        rows[-1]["curriculum/tasks_with_success"] >= 0 and "curriculum/boring" in rows[-1]
    )  # logged
    state = json.loads((Path(summary["checkpoint"]) / "curriculum.json").read_text())
    assert len(state["keys"]) == 105 and sum(state["measured"]) >= 1
    assert state["cursor"] == 2  # ceil(0.2 * 4) round-robin tasks per iteration, twice


def test_benchmark_script_writes_table_plot_and_doc_section(tmp_path):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import curricula as bench

    doc = tmp_path / "doc.md"
    doc.write_text(f"intro\n{bench.START}\nold\n{bench.END}\noutro\n")
    out = bench.main(
        ["--seeds", "1", "--episodes", "300", "--out", str(tmp_path / "r.md"), "--doc", str(doc)]
    )
    assert set(out["final"]) == {"uniform", "learning_progress", "omni_noisy", "omni_oracle"}
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "| omni_oracle |" in text and "| xland |" in text and "| curriculum |" in text
    assert (tmp_path / "curricula_bandit.png").stat().st_size > 1000


# --- xland ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "success, nonzero, control, expected",
    [
        (0.5, 0.5, 0.0, (True, "ok")),
        (0.8, 0.8, 0.0, (False, "too easy")),  # success must stay below m_s = 0.8
        (0.0, 0.1, 0.0, (False, "too hard")),  # P(reward > 0) must exceed m_nz = 0.1
        (0.5, 0.5, 0.46, (False, "no better than control")),  # margin 0.04 < m_c = 0.05
        (0.5, 0.5, 0.45, (True, "ok")),
    ],
)
def test_xland_filters(success, nonzero, control, expected):
    from agentrl.curricula import passes_filters

    assert passes_filters(success, nonzero, control, 0.8, 0.1, 0.05) == expected


def test_xland_pool_keeps_only_tasks_in_the_band_and_retires_mastered_ones():
    from agentrl.curricula import XLandConfig, XLandCurriculum

    tasks = [{"t": name} for name in ("easy", "band", "hard", "copycat", "band2")]
    rate = {"easy": 1.0, "band": 0.5, "hard": 0.0, "copycat": 0.5, "band2": 0.5}
    cfg = XLandConfig(
        tasks=tasks, probe_episodes=4, concurrent=2, control_success_by_task={"t=copycat": 0.5}
    )
    cur = XLandCurriculum(cfg, seed=0)
    played = {t["t"]: 0 for t in tasks}

    def play(task):  # deterministic: success on every 1/rate-th play
        played[task["t"]] += 1
        return played[task["t"]] * rate[task["t"]] % 1 == 0 and rate[task["t"]] > 0

    for _ in range(20):
        cur.update([ep(t, play(t)) for t in cur.sample(8)])
    assert sorted(cur.pool) == ["t=band", "t=band2"]
    assert (
        cur.counts["too easy"] >= 1
        and cur.counts["too hard"] >= 1
        and cur.counts["no better than control"] >= 1
    )
    assert all(
        t["t"] in ("band", "band2") for t in cur.sample(8)[2:]
    )  # 8 - ceil(0.25 * 8) from the pool
    rate["band"] = 1.0  # mastered: retired after probe_episodes more
    for _ in range(3):
        cur.update([ep(t, play(t)) for t in cur.sample(8)])
    assert "t=band" not in cur.pool and cur.counts["retired"] >= 1
    twin = XLandCurriculum(cfg, seed=5)
    twin.load_state_dict(json.loads(json.dumps(cur.state_dict())))
    assert twin.sample(8) == cur.sample(8) and twin.pool == cur.pool


def test_xland_control_policy_plays_the_env():
    from agentrl.curricula import XLandConfig, XLandCurriculum

    cfg = XLandConfig(
        tasks_from="agentrl.envs.textcraft:task_list",
        control_policy="random",
        control_env="textcraft",
    )
    cur = XLandCurriculum(cfg)
    assert cur.control_rate("achievement=collect_wood,count=1") >= 0.8  # a random player finds wood
    assert cur.control_rate("achievement=make_iron_pickaxe,count=5") == 0.0
    assert set(cur.state_dict()["control"]) == {
        "achievement=collect_wood,count=1",
        "achievement=make_iron_pickaxe,count=5",
    }
    with pytest.raises(ConfigError, match="control_env"):
        build_curriculum({"name": "xland", "tasks": TASKS, "control_policy": "random"}, seed=0)


# --- privileged ---------------------------------------------------------------------------------


def test_privilege_schedule_by_hand():
    from agentrl.curricula.privileged import next_level

    assert next_level(2, [1, 1, 1, 0], threshold=0.75, window=4) == 1  # 3/4 >= 0.75
    assert next_level(2, [1, 1, 0, 0], threshold=0.75, window=4) == 2
    assert next_level(2, [1, 1, 1], threshold=0.75, window=4) == 2  # window not full yet
    assert next_level(0, [1, 1, 1, 1], threshold=0.75, window=4) == 0  # level 0 is the floor


def test_privileged_curriculum_lowers_the_level_and_logs_it():
    from agentrl.curricula.privileged import PrivilegedConfig, PrivilegedCurriculum
    from agentrl.types import Turn

    cur = PrivilegedCurriculum(
        PrivilegedConfig(tasks=TASKS[:2], start_level=2, threshold=0.5, window=4), seed=0
    )
    specs = cur.sample(6)
    assert {t["privilege"] for t in specs} == {2} and all(
        {k: t[k] for k in ("skill", "count")} in TASKS[:2] for t in specs
    )
    used = Turn("o", "a", [], [], [], 0.0, True, False, "", {"privilege_used": True})
    cur.update(
        [ep({"privilege": 2}, True), ep({"privilege": 2}, False), ep({"privilege": 2}, True)]
    )
    assert cur.level == 2
    cur.update([Episode(env_id="t", task={"privilege": 2}, seed=0, success=False, turns=[used])])
    assert cur.level == 1 and cur.history == [[0, 2], [4, 1]]  # 2 of the last 4 succeeded
    cur.update([ep({"privilege": 2}, True)] * 10)  # stale episodes of a level already left
    assert cur.level == 1 and cur.recent == []
    assert cur.stats() == {"curriculum/privilege_level": 1.0, "curriculum/privilege_use": 1 / 14}
    twin = PrivilegedCurriculum(cur.config, seed=9)
    twin.load_state_dict(json.loads(json.dumps(cur.state_dict())))
    assert twin.sample(5) == cur.sample(5) and twin.history == cur.history


def test_textcraft_privileges_hint_and_macro_but_success_is_the_real_task():
    import gymnasium as gym

    env = gym.make("agentrl/TextCraft-v0")
    obs, _ = env.reset(
        seed=0, options={"task": {"achievement": "make_wood_pickaxe", "privilege": 1}}
    )
    assert obs.endswith("Hint: next, collect wood.\n")
    obs, r, term, _, info = env.step("next")  # no macro at level 1
    assert info["invalid_action"] and info["privilege_used"]
    obs, _ = env.reset(
        seed=0, options={"task": {"achievement": "make_wood_pickaxe", "privilege": 2}}
    )
    obs, r, term, _, info = env.step("next")
    assert "Inventory: wood 1" in obs and obs.endswith("Hint: next, place table (or say: next).\n")
    for _ in range(3):  # place table, collect wood, make wood pickaxe
        obs, r, term, _, info = env.step("next please")
    assert (r, term, info["success"]) == (1.0, True, True)
    obs, info = env.reset(seed=3, options={"task": {"privilege": 0}})  # the env picks the task
    assert "Hint" not in obs and "achievement=" in info["task_id"]


def test_privileged_bandit_curriculum_reaches_privilege_zero():
    from agentrl.curricula.bandit import PRIVILEGE_MODES, PrivilegeBanditConfig, run_privileged

    final = {
        m: [run_privileged(m, PrivilegeBanditConfig(), s)[-1]["success@0"] for s in range(3)]
        for m in PRIVILEGE_MODES
    }
    # measured: none 0.00, always privileged 0.02, curriculum 1.00 (success at privilege 0)
    assert min(final["curriculum"]) > 0.9
    assert max(final["none"]) < 0.05 and max(final["always"]) < 0.1


def test_xland_bandit_filtered_generation_beats_uniform_on_held_out_tasks():
    from agentrl.curricula.bandit import XLandBanditConfig, run_xland

    cfg = XLandBanditConfig()
    final = {m: [run_xland(m, cfg, s)[-1] for s in range(3)] for m in ("uniform", "xland")}
    mean = {m: np.mean([r["held_out_mean"] for r in rows]) for m, rows in final.items()}
    p10 = {m: np.mean([r["p10"] for r in rows]) for m, rows in final.items()}
    # measured: held-out mean success uniform 0.78, xland 0.99
    assert mean["xland"] > mean["uniform"] + 0.1 and p10["xland"] > p10["uniform"]


# --- generations: the kickstart loss --------------------------------------------------------------


def test_kickstart_beta_and_token_kl_by_hand():
    import torch

    from agentrl.curricula.kickstart import kickstart_beta, token_kl

    assert [kickstart_beta(u, 2.0, 10) for u in (0, 5, 10, 20)] == [2.0, 1.0, 0.0, 0.0]
    teacher = torch.log(torch.tensor([[[0.5, 0.5], [0.2, 0.8]]]))
    student = torch.log(torch.tensor([[[0.9, 0.1], [0.7, 0.3]]]))
    expected = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)
    assert float(token_kl(teacher, student, torch.tensor([[True, False]]))) == pytest.approx(
        expected
    )
    assert float(token_kl(teacher, teacher, torch.tensor([[True, True]]))) == pytest.approx(
        0.0, abs=1e-7
    )


def test_kickstart_pulls_a_fresh_policy_toward_the_teacher_and_anneals(tmp_path):
    import torch

    from agentrl.curricula.kickstart import Kickstart, KickstartConfig
    from agentrl.policy import ModelConfig, Policy
    from agentrl.types import Turn

    small = dict(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    Policy.from_config(ModelConfig(**small, init_seed=1)).save(tmp_path / "gen1" / "policy")
    student = Policy.from_config(ModelConfig(**small, init_seed=2))
    ks = Kickstart(KickstartConfig(teacher=str(tmp_path / "gen1"), beta=1.0, anneal_updates=3))
    prompt = student.encode_prompts(["Task: collect wood."])[0]
    action = student.tokenizer("collect wood", add_special_tokens=False)["input_ids"]
    turn = Turn("o", "collect wood", prompt, action, [0.0] * len(action), 0.0, True, False, "", {})
    batch = [Episode(env_id="t", task={}, seed=0, turns=[turn])]
    assert ks.augment_batch(batch) == batch and ks.beta() == pytest.approx(2 / 3)
    teacher_calls: list[int] = []
    ks.teacher.model.register_forward_hook(lambda *_: teacher_calls.append(1))
    opt = torch.optim.Adam(student.model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        loss = ks.extra_loss(student)
        losses.append(float(loss.detach()))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.5 * losses[0]  # the student moved toward generation 1
    assert len(teacher_calls) == 1  # the frozen teacher scores an update's turns once
    stats = ks.update_stats()  # this update's beta and mean KL (the loss / beta), then reset
    assert stats["beta"] == pytest.approx(2 / 3)
    assert stats["kl"] == pytest.approx(sum(losses) / len(losses) * 1.5, rel=1e-5)
    assert ks.update_stats()["kl"] == 0.0
    ks.augment_batch(batch)
    ks.augment_batch(batch)
    assert ks.beta() == 0.0 and ks.extra_loss(student) is None  # annealed away
    with pytest.raises(ValueError, match="teacher"):
        Kickstart(KickstartConfig())


def test_generation_two_kickstarts_from_generation_one_in_the_trainer(tiny_overrides, tmp_path):
    import torch

    from agentrl.config import load_config
    from agentrl.metrics import read_metrics
    from agentrl.trainer import Trainer

    base = [*tiny_overrides, "env=textcraft", "++env.kwargs.max_turns=2", "eval.episodes=2",
            "eval.sample=false", "checkpoint.every=1"]  # fmt: skip
    gen1 = Trainer(
        load_config([*base, "iterations=1", f"run_dir={tmp_path / 'gen1'}"]), console=False
    ).run()
    entry = f"lifelong=[{{name:kickstart,teacher:'{gen1['run_dir']}',anneal_updates:2}}]"
    gen2 = Trainer(
        load_config([*base, "iterations=2", f"run_dir={tmp_path / 'gen2'}", "model.init_seed=7", entry]),
        console=False,
    ).run()  # fmt: skip
    state = torch.load(Path(gen2["checkpoint"]) / "lifelong" / "state.pt", weights_only=True)
    assert state["components"]["kickstart"] == {"updates": 2}  # ran, checkpointed
    rows = read_metrics(Path(gen2["run_dir"]) / "metrics.jsonl")[1:]
    assert [r["lifelong/kickstart/beta"] for r in rows] == [0.5, 0.0]  # logged, annealed
    assert rows[0]["lifelong/kickstart/kl"] > 0 and rows[1]["lifelong/kickstart/kl"] == 0.0


@pytest.mark.parametrize("name", ["learning_progress", "xland", "privileged"])
def test_each_curriculum_trains_on_textcraft_and_resumes_exactly(name, tiny_overrides, tmp_path):
    from agentrl.config import load_config
    from agentrl.metrics import read_metrics
    from agentrl.trainer import Trainer

    overrides = [*tiny_overrides, "env=textcraft", "++env.kwargs.max_turns=2", f"curriculum={name}",
                 "eval.episodes=2", "eval.sample=false", "checkpoint.every=1"]  # fmt: skip
    summary = Trainer(load_config([*overrides, "iterations=2"]), console=False).run()
    rows = read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")
    assert any(k.startswith("curriculum/") for k in rows[-1])
    resumed = Trainer(load_config([*overrides, "iterations=3", "resume=latest"]), console=False)
    resumed.run()
    straight = Trainer(
        load_config([*overrides, "iterations=3", f"run_dir={tmp_path / 'straight'}"]), console=False
    )
    straight.run()
    assert resumed.curriculum.state_dict() == straight.curriculum.state_dict()
