"""The LLM model of interestingness: prefix-cached answer scoring, prompts, surprisal,
calibration, batching in omni's sweep, config errors (tiny models, no download)."""

import numpy as np
import pytest
import torch

from agentrl.config import ConfigError
from agentrl.curricula import LLMInterestingness, OmniConfig, build_curriculum
from agentrl.curricula.llm_score import answer_logprobs
from agentrl.curricula.moi_llm import (
    FEW_SHOT_EXAMPLES,
    SURPRISAL_CONTEXT,
    SURPRISAL_NULL,
    build_answer_prompts,
)
from agentrl.curricula.omni import label_tasks

WOOD = [{"achievement": "collect_wood", "count": c} for c in (1, 2, 3)]
STONE = {"achievement": "collect_stone", "count": 1}


@pytest.fixture(scope="module")
def policy():
    from agentrl.policy import ModelConfig, Policy

    torch.manual_seed(0)
    p = Policy.from_config(
        ModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64)
    )
    p.model.eval()
    return p


def full_next_logp(model, ids):
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)


def test_prefix_cached_scores_equal_full_forward_passes(policy):
    prefix = [5, 9, 12, 7]
    suffixes = [[3], [8, 4, 11], [6, 6]]  # different lengths: right padding must not leak
    answers = [10, 20, 30]
    got = answer_logprobs(policy.model, prefix, suffixes, answers, batch_size=2)
    assert got.shape == (3, 3)
    for row, s in zip(got, suffixes, strict=True):
        want = full_next_logp(policy.model, prefix + s)[answers]
        assert torch.allclose(row, want, atol=1e-5)
    with pytest.raises(ValueError, match="at least one token"):
        answer_logprobs(policy.model, prefix, [[1], []], answers)


def test_answer_prompt_is_prefix_plus_question_with_examples(policy):
    tok = policy.tokenizer
    prefix, suffixes, answers = build_answer_prompts(
        tok, "few_shot", "collect wood", ["collect 3 wood", "collect stone"]
    )
    head = tok.decode(prefix)
    for learned, cand, _ in FEW_SHOT_EXAMPLES:  # every in-context judgement is in the prefix
        assert f"Learned: {learned}\nNew: {cand}" in head
    assert "collect" not in head  # the evaluated tasks are not among the examples
    assert tok.decode(suffixes[1]).startswith("Learned: collect wood\nNew: collect stone")
    assert len(set(answers)) == 2
    zero, _, _ = build_answer_prompts(tok, "zero_shot", "collect wood", ["collect stone"])
    assert len(zero) < len(prefix)


def test_chat_template_split_keeps_examples_as_turns(policy):
    import copy

    tok = copy.deepcopy(policy.tokenizer)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    prefix, suffixes, _ = build_answer_prompts(tok, "few_shot", "collect wood", ["collect stone"])
    full = tok.decode(prefix + suffixes[0])
    assert full.startswith("<system>You judge")
    assert full.count("<assistant>") == len(FEW_SHOT_EXAMPLES) + 1  # examples + the reply
    assert full.endswith(
        "New: collect stone\nIs the new task interesting? Answer Yes or No.\n<assistant>"
    )


def test_surprisal_is_the_pmi_of_the_candidate_with_the_learned_task(policy):
    from agentrl.envs.textcraft import describe_task

    moi = LLMInterestingness(policy=policy, describe=describe_task, score="surprisal")
    got = moi.scores([WOOD[2]], WOOD[0])[0]
    tok = policy.tokenizer

    def logp(context, text):
        c = tok(context, add_special_tokens=False)["input_ids"]
        t = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            lp = torch.log_softmax(policy.model(input_ids=torch.tensor([c + t])).logits[0], -1)
        return sum(lp[len(c) - 1 + i, t[i]].item() for i in range(len(t)))

    want = logp(SURPRISAL_CONTEXT.format(learned="collect wood"), "collect 3 wood\n") - logp(
        SURPRISAL_NULL, "collect 3 wood\n"
    )
    assert got == pytest.approx(want, abs=1e-4)
    # the null-context log-prob of a candidate is computed once and reused for another learned task
    again = moi.scores([WOOD[2]], STONE)[0]
    assert set(moi._null) == {"collect 3 wood"}
    want2 = logp(SURPRISAL_CONTEXT.format(learned="collect stone"), "collect 3 wood\n") - logp(
        SURPRISAL_NULL, "collect 3 wood\n"
    )
    assert again == pytest.approx(want2, abs=1e-4)


class Fixed(LLMInterestingness):
    """Scores from a table instead of a model: ``(learned text, candidate text) -> score``."""

    def __init__(self, table, **kw):
        super().__init__(policy=object(), describe=lambda t: f"{t['s']}{t.get('n', '')}", **kw)
        self.table = table
        self.batches = []

    def _compute(self, candidates, learned):
        self.batches.append(len(candidates))
        return [self.table.get((self.describe(learned), self.describe(c)), 0.0) for c in candidates]


TASKS = [{"s": s, "n": n} for s in "abcde" for n in (1, 2)]


def test_relative_calibration_cuts_at_mean_plus_z_std_by_hand():
    # given a1 the other 9 tasks score 0 except a2 (9.0): mean 1, std sqrt(8) -> cut 1 + 2.83
    table = {("a1", "a2"): 9.0, ("a1", "b1"): 3.0}
    rel = Fixed(table, calibration="relative", z=1.0, reference=TASKS)
    s = np.array([table.get(("a1", f"{t['s']}{t['n']}"), 0.0) for t in TASKS[1:]])
    cut = s.mean() + s.std()
    assert rel.cut(TASKS[0]) == pytest.approx(cut) and 3.0 < cut < 9.0
    assert rel.boring_many(TASKS[1:3], TASKS[0]) == [True, False]  # a2 boring, b1 not
    fixed = Fixed(table, calibration="fixed", threshold=2.5)
    assert fixed.boring_many(TASKS[1:3], TASKS[0]) == [True, True]
    assert fixed.boring(TASKS[3], TASKS[0]) is False


def test_sweep_asks_each_learned_task_once_in_one_batch_and_caches():
    table = {("a1", "a2"): 9.0, ("c1", "c2"): 9.0}
    moi = Fixed(table, calibration="fixed", threshold=1.0)
    success = np.array([1.0 if t["n"] == 1 and t["s"] in "ac" else 0.0 for t in TASKS])
    labels = label_tasks(TASKS, success, 0.5, moi)
    assert labels[:4] == ["interesting", "boring", "", ""] and labels[4:6] == [
        "interesting",
        "boring",
    ]
    assert moi.batches == [9, 7] and moi.calls == 16  # a1: 9 candidates; c1: 9 - a1,a2 labelled
    label_tasks(TASKS, success, 0.5, moi)
    assert moi.calls == 16  # the second sweep is answered from the cache


def test_llm_options_are_validated_with_the_valid_choices():
    with pytest.raises(ValueError, match="unknown llm_score 'magic'; valid: answer, surprisal"):
        OmniConfig(moi="llm", llm_score="magic")
    with pytest.raises(ValueError, match="valid: zero_shot, few_shot"):
        OmniConfig(llm_prompt="many_shot")
    with pytest.raises(ConfigError, match="valid: fixed, relative"):
        build_curriculum({"name": "omni", "tasks": WOOD, "llm_calibration": "auto"}, seed=0)
    with pytest.raises(ConfigError, match="llm_z must be >= 0"):
        build_curriculum({"name": "omni", "tasks": WOOD, "llm_z": -1.0}, seed=0)
    with pytest.raises(ConfigError, match="unknown key"):
        build_curriculum({"name": "omni", "tasks": WOOD, "llm_temperature": 1.0}, seed=0)


def test_old_yes_no_cache_entries_are_ignored(tmp_path):
    path = tmp_path / "moi.json"
    path.write_text('{"collect wood || collect 3 wood": true, "surprisal | x || y": 1.5}')
    moi = LLMInterestingness(policy=None, cache_path=str(path))
    assert moi.cache == {"surprisal | x || y": 1.5}


def test_llm_moi_builds_the_named_model(monkeypatch):
    from agentrl.policy import Policy

    built = []
    monkeypatch.setattr(Policy, "from_config", staticmethod(lambda cfg: built.append(cfg) or "p"))
    assert LLMInterestingness(policy=None).policy == "p"  # the default: SmolLM2
    section = {
        "name": "omni",
        "moi": "llm",
        "tasks": WOOD,
        "model": {"name": "some/model", "dtype": "bfloat16"},
    }
    assert build_curriculum(section, seed=0).moi.policy == "p"
    assert [(c.name, c.dtype) for c in built] == [
        ("smollm2", "float32"),
        ("some/model", "bfloat16"),
    ]


# --- the benchmark scripts' metrics and plots ----------------------------------------------------


def _bench():
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import curricula_textcraft, moi_agreement

    return moi_agreement, curricula_textcraft


def test_agreement_metrics_and_auc_by_hand():
    agree, _ = _bench()
    truth = np.array([True, True, False, False, False])
    pred = np.array([True, False, True, False, False])
    m = agree.agreement(truth, pred)
    assert m["boring_precision"] == 0.5 and m["boring_recall"] == 0.5
    assert m["interesting_precision"] == 2 / 3 and m["interesting_recall"] == 2 / 3
    assert m["accuracy"] == 0.6 and m["balanced_accuracy"] == pytest.approx(7 / 12)
    # positives 3, 1; negatives 2, 1, 0: pairs won 3/3 and 1/3 with one tie -> (3 + 1.5) / 6
    assert agree.auc(truth, np.array([3.0, 1.0, 2.0, 1.0, 0.0])) == pytest.approx(4.5 / 6)


def test_textcraft_benchmark_plots_from_saved_results(tmp_path):
    _, tc = _bench()
    rows = [
        {
            "curriculum": c,
            "seed": s,
            **{f"{w}@{t}": s + i for w in ("skills", "tasks") for t in tc.THRESHOLDS},
        }
        for i, c in enumerate(("uniform", "omni_llm"))
        for s in range(3)
    ]
    tc.plot(rows, tmp_path / "a.png")
    priv = [
        {"mode": m, "seed": s, "warm_levels": [0], "success0": 0.1 * s, "greedy0": 0.0}
        for m in tc.PRIVILEGED
        for s in range(3)
    ]
    tc.privileged_plot(priv, tmp_path / "b.png")
    for name in ("a.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_textcraft_counts_by_hand_and_recorded_iterations():
    _, tc = _bench()
    per_task = {"wood/1": 0.5, "wood/3": 0.25, "table/1": 0.15, "plant/1": 0.1, "stone/1": 0.0}
    assert tc.task_counts(per_task) == {
        "skills@0.1": 2, "tasks@0.1": 3,  # 0.1 itself is not above 0.1
        "skills@0.2": 1, "tasks@0.2": 2,  # two variants of one skill
        "skills@0.4": 1, "tasks@0.4": 1,
    }  # fmt: skip

    recorded: list[int] = []
    for iterations, want in ((25, [0, 10, 20]), (30, [0, 10, 20]), (9, [0])):
        recorded.clear()
        callback = tc.curve_callback(10, iterations, recorded.append)
        for it in range(iterations + 1):  # the Trainer calls it at 0 (initial eval), 1, 2, ...
            callback(None, it, {})
        # iteration 0 is the warm start; k after the k-th; the last is the final eval
        assert recorded == want


def test_textcraft_curves_merge_old_rows_and_common_iterations(tmp_path):
    _, tc = _bench()

    def point(it, k):
        return {
            "iteration": it,
            **{f"{w}@{t}": k for w in ("skills", "tasks") for t in tc.THRESHOLDS},
        }

    old = {"curriculum": "uniform", "seed": 9}  # a row of a result file from before curves
    rows = [
        old,
        {"curriculum": "uniform", "seed": 0, "curve": [point(0, 1), point(10, 2), point(20, 4)]},
        {"curriculum": "uniform", "seed": 1, "curve": [point(0, 3), point(20, 6)]},
        {"curriculum": "omni_rule", "seed": 0, "curve": [point(0, 1), point(20, 5)]},
    ]
    cs = tc.curves(rows, "skills@0.4")
    assert list(cs) == ["uniform", "omni_rule"]  # CURRICULA order, the old row left out
    its, v = cs["uniform"]
    assert its == [0, 20] and v.tolist() == [[1, 4], [3, 6]]  # iterations both runs have
    text = tc.curve_table(rows)
    assert "| uniform | 2 | 2.0 (1-3) | 5.0 (4-6) | 5.00 ± 1.00 |" in text
    assert "| omni_rule | 1 | 1.0 (1-1) | 5.0 (5-5) | 5.00 ± 0.00 |" in text
    # every threshold has the same numbers here: one table for all three
    assert text.count("| curriculum | seeds | 0 | 20 | mean after 0 |") == 1
    assert "success > 0.1 and > 0.2 and > 0.4, by iteration" in text
    rows[1]["curve"][2]["skills@0.4"] = 0  # now > 0.4 differs: a table of its own
    text = tc.curve_table(rows)
    assert (
        text.count("| curriculum | seeds |") == 2
        and "| uniform | 2 | 2.0 (1-3) | 3.0 (0-6) |" in text
    )
    assert tc.plot_curves(rows, tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert not tc.plot_curves([old], tmp_path / "d.png") and tc.curve_table([old]) == ""
    warm = tc.warm_start_rows(rows)  # iteration 0 of each seed's first curve
    assert [(w["curriculum"], w["seed"], w["skills@0.4"]) for w in warm] == [
        ("warm_start_only", 0, 1),
        ("warm_start_only", 1, 3),
    ]
    assert tc.warm_start_rows([*rows, {"curriculum": "warm_start_only", "seed": 0}]) == []
    final = tc.task_counts({"wood/1": 0.5})  # every row, old or new, has the final counts
    assert "| uniform | 3 | 1.0 ± 0.0 |" in tc.table([{**final, **r} for r in rows])


def test_omni_built_from_config_labels_with_a_tiny_llm_and_checkpoints_scores():
    from agentrl.types import Episode

    tasks = [*WOOD, STONE]
    section = {"name": "omni", "tasks": tasks, "moi": "llm", "learned_threshold": 0.05,
               "describe": "agentrl.envs.textcraft:describe_task", "llm_z": 0.5,
               "model": {"name": "tiny", "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                         "intermediate_size": 64}}  # fmt: skip
    cur = build_curriculum(section, seed=0)
    assert cur.moi.reference == tasks and cur.moi.score_kind == "surprisal"
    cur.update([Episode(env_id="t", task=dict(WOOD[0]), seed=0, success=True)])
    assert cur.labels[0] == "interesting" and cur.moi.calls == 3  # the 3 other tasks, once
    scores = np.array(cur.moi.scores(tasks[1:], WOOD[0]))
    cut = scores.mean() + 0.5 * scores.std()
    assert cur.labels[1:] == ["boring" if s > cut else "" for s in scores]
    state = cur.state_dict()
    assert len(state["moi_cache"]) == 3
    again = build_curriculum({**section, "model": {"name": "no-such-model"}}, seed=0)
    again.load_state_dict(state)
    answers = again.moi.boring_many(tasks[1:], WOOD[0])
    assert answers == [lab == "boring" for lab in cur.labels[1:]]
    assert again.moi.calls == 0  # answered from the checkpointed scores (no model to run)
