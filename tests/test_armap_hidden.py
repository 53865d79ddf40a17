"""Game of 24 with ``hide_results``: the ARMAP response is the plan only ("4 * 6", no "= 24"),
the plumbing of env kwargs through synthesize / plan / learned_rm, the SmolLM2 RM backbone,
and the seeds study of ``benchmarks/armap.py``."""

from __future__ import annotations

import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import agentrl.envs  # noqa: F401
from agentrl.cli import main as cli_main
from agentrl.envs import game24 as g24
from agentrl.envs.scripted import make_scripted, run_scripted_episode
from agentrl.rewards.armap import CollectConfig, SynthesizeConfig, collect, synthesize
from agentrl.rewards.armap.jsonl import read_jsonl
from agentrl.rewards.armap.plan import PlanConfig, run_plan
from agentrl.rewards.model import ResponseFormat
from agentrl.rewards.trajectory import intent_and_response

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import armap as bench  # noqa: E402  (needs ROOT on sys.path)
from benchmarks import armap_seeds as study  # noqa: E402

ID = "agentrl/Game24-v0"


def _good_episodes(env: Any, seeds: range) -> list[Any]:
    return [run_scripted_episode(env, make_scripted(ID, "good"), seed=s) for s in seeds]


# --- the env --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{}, {"require_result": False}, {"letters": True}], ids=["full", "short", "letters"]
)
def test_hide_results_leaves_play_unchanged(kwargs):
    full, hidden = gym.make(ID, **kwargs), gym.make(ID, hide_results=True, **kwargs)
    for player in ("random", "mix", "good"):
        for seed in range(8):
            a = run_scripted_episode(full, make_scripted(ID, player), seed=seed)
            b = run_scripted_episode(hidden, make_scripted(ID, player), seed=seed)
            assert a.to_dict() == b.to_dict()
    # an invalid step, step by step: same observations, rewards, ends and infos
    outs = []
    for env in (full, hidden):
        first = env.reset(seed=0, options={"task": {"numbers": [4, 6, 1, 1]}})
        step = "4 * 6 = 24" if not kwargs.get("letters") else "a * b"
        outs.append([first, env.step(step), env.step("1 * 1 = 3")])
    assert outs[0] == outs[1]
    assert outs[0][2][2] is True and outs[0][2][4]["invalid_action"]
    assert hidden.unwrapped.clone().hide_results is True


def test_hidden_response_is_the_plan():
    full, hidden = gym.make(ID).unwrapped, gym.make(ID, hide_results=True).unwrapped
    for ep in _good_episodes(gym.make(ID), range(10)):
        written, plan = full.response_text(ep), hidden.response_text(ep)
        assert "=" not in plan and plan.count("\n") == written.count("\n") == 2
        assert plan.splitlines() == [ln.split(" = ")[0] for ln in written.splitlines()]
        assert written.splitlines()[-1].endswith("= 24")
        assert hidden.score_response(ep.task, plan) == 1.0
        assert full.score_response(ep.task, plan) == 0.0  # the full form needs the results
        ref = hidden.reference_response(ep.task)
        assert ref is not None and "=" not in ref and hidden.score_response(ep.task, ref) == 1.0
    assert hidden.reference_response({"numbers": [1, 1, 1, 1]}) is None
    # an invalid step is kept as the agent wrote it
    env = gym.make(ID, hide_results=True)
    ep = run_scripted_episode(env, make_scripted(ID, "good"), seed=0)
    ep.turns[-1].info.pop("step")
    ep.turns[-1].action = "7 * 7 = 50"
    assert hidden.response_text(ep).splitlines()[-1] == "7 * 7 = 50"


def _changed_line(pos: str, bad: str) -> tuple[int, tuple[Any, ...], tuple[Any, ...]]:
    a, b = pos.splitlines(), bad.splitlines()
    assert len(a) == len(b)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    assert len(diff) == 1, (pos, bad)
    i = diff[0]
    x, y = g24.plan_step(a[i]), g24.plan_step(b[i])
    assert x is not None and y is not None
    return i, x, y


def test_every_plan_corruption_is_a_wrong_plan_of_its_kind():
    hidden = gym.make(ID, hide_results=True).unwrapped
    rng = np.random.default_rng(0)
    eps = _good_episodes(gym.make(ID), range(25))
    positives = [(ep.task, hidden.response_text(ep)) for ep in eps]
    positives += [(ep.task, hidden.reference_response(ep.task)) for ep in eps]
    for task, pos in positives:
        assert hidden.score_response(task, pos) == 1.0
        numbers = [Fraction(n) for n in task["numbers"]]
        for kind in g24.PLAN_CORRUPTIONS:
            bad = g24.corrupt_plan(task, pos, rng, kind)
            assert bad != pos and "=" not in bad, (kind, bad)
            assert hidden.score_response(task, bad) == 0.0, (kind, pos, bad)
            if kind == "missing_number":
                assert bad.splitlines() == pos.splitlines()[:-1]
                continue
            i, (a, op, b), (a2, op2, b2) = _changed_line(pos, bad)
            if kind == "wrong_operator":
                assert (a, b) == (a2, b2) and op != op2
                continue
            assert op == op2 and (a == a2) != (b == b2)  # exactly one operand replaced
            new = a2 if a != a2 else b2
            left = list(numbers)  # the numbers left before step i of the positive
            for line in pos.splitlines()[:i]:
                left, _, _ = g24.apply_step(left, line, require_result=False)
                assert left is not None
            if kind == "wrong_operand":
                assert new in left
            else:  # number_not_in_puzzle
                assert new not in left and new not in numbers and 1 <= new <= 13
    # the env's hook: plan corruptions, every one wrong
    for task, pos in positives:
        bad = hidden.corrupt_response(task, pos, rng)
        assert bad != pos and "=" not in bad and hidden.score_response(task, bad) == 0.0


def test_plan_corruption_fallbacks_and_bad_kinds():
    rng = np.random.default_rng(1)
    task = {"numbers": [4, 6, 1, 1]}
    bad = g24.corrupt_plan(task, "no plan here", rng, "wrong_operator")
    assert bad != "no plan here" and g24.score_response(task, bad, hide_results=True) == 0.0
    with pytest.raises(ValueError, match="valid kinds: wrong_operator"):
        g24.corrupt_plan(task, "4 * 6", rng, "format_error")
    with pytest.raises(ValueError, match="valid kinds: hallucinated_number"):
        g24.corrupt_response(task, "4 * 6 = 24", rng, kind="wrong_operator")


# --- plumbing: synthesize, the CLI, plan and learned_rm ---------------------------------------


@pytest.fixture(scope="module")
def trajectories(tmp_path_factory):
    d = tmp_path_factory.mktemp("hidden")
    collect(
        CollectConfig(
            out=str(d / "traj.jsonl"),
            episodes=80,
            policy="mix",
            epsilon=0.5,
            env_kwargs={"hide_results": True},
        )
    )
    return d


def test_synthesize_with_hide_results_writes_plans(trajectories):
    d = trajectories
    for name, kw in (("full", {}), ("hidden", {"hide_results": True})):
        synthesize(
            SynthesizeConfig(
                trajectories=str(d / "traj.jsonl"), out=str(d / f"{name}.jsonl"), env_kwargs=kw
            )
        )
    full = {r["id"]: r for r in read_jsonl(d / "full.jsonl")}
    hidden = {r["id"]: r for r in read_jsonl(d / "hidden.jsonl")}
    assert full.keys() == hidden.keys() and len(hidden) == 80
    kinds = {r["kind"] for r in hidden.values()}
    assert kinds == {"corruption", "reference_corruption", "reference_vs_trajectory"}
    assert all("=" in r["positive"] for r in full.values())
    for i, r in hidden.items():
        assert "=" not in r["positive"] and "=" not in r["negative"]
        assert g24.score_response(r["task"], r["positive"], hide_results=True) == 1.0
        assert g24.score_response(r["task"], r["negative"], hide_results=True) == 0.0
        assert r["positive"].splitlines() == [
            g24.plan_text(ln) for ln in full[i]["positive"].splitlines()
        ]


def test_cli_synthesize_accepts_env_kwargs(trajectories, tmp_path):
    out = tmp_path / "t.jsonl"
    args = [f"trajectories={trajectories / 'traj.jsonl'}", f"out={out}"]
    assert cli_main(["reward", "synthesize", *args, "env_kwargs.hide_results=true"]) == 0
    rows = list(read_jsonl(out))
    assert rows and not any("=" in r["positive"] + r["negative"] for r in rows)


class _RecordingScorer:
    """Stands in for a reward model trained on plans (``hide_results``): records what it is
    asked to score."""

    seen: list[str] = []
    response_format = ResponseFormat(ID, {"hide_results": True})

    def __init__(self, path: str, batch_size: int = 32, max_length: int = 512):
        pass

    def score(self, intents: list[str], responses: list[str]) -> list[float]:
        _RecordingScorer.seen.extend(responses)
        return [float(len(r)) for r in responses]


@pytest.mark.parametrize("play", [{}, {"hide_results": True}], ids=["plays_full", "plays_hidden"])
def test_plan_reads_episodes_in_the_checkpoint_format(monkeypatch, tmp_path, play):
    import agentrl.rewards.learned as learned

    monkeypatch.setattr(learned, "RewardModelScorer", _RecordingScorer)
    _RecordingScorer.seen = []
    cfg = PlanConfig(
        env_kwargs=play,
        reward={"name": "learned_rm", "path": "rm"},
        tasks=2,
        ns=[1, 4],
        out=str(tmp_path / "p.jsonl"),
    )
    assert run_plan(cfg)["tasks"] == 2
    assert len(_RecordingScorer.seen) == 8 and not any("=" in r for r in _RecordingScorer.seen)
    # without the kwarg the learned reward reads the full form
    ep = run_scripted_episode(gym.make(ID), make_scripted(ID, "good"), seed=0)
    assert "= 24" in intent_and_response(ep, env_kwargs={})[1]
    assert "=" not in intent_and_response(ep, env_kwargs={"hide_results": True})[1]


# --- the SmolLM2 backbone ------------------------------------------------------------------------


def test_smollm2_backbone_loads_from_the_policy_helper_and_is_seeded(monkeypatch, tmp_path):
    """``backbone.name=smollm2`` loads the folder of ``smollm2_folder`` (here a tiny stand-in
    saved as an HF folder); the new head and the LoRA adapters follow ``init_seed``."""
    import torch

    import agentrl.policy.models as models
    from agentrl.policy.models import ModelConfig, load_model_and_tokenizer
    from agentrl.rewards.model import RMBackboneConfig, build_backbone

    model, tok = load_model_and_tokenizer(
        ModelConfig(name="tiny", hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64)
    )
    model.save_pretrained(tmp_path / "smol")
    tok.save_pretrained(tmp_path / "smol")
    asked: list[str | None] = []

    def folder(cache_dir: str | None = None) -> Path:
        asked.append(cache_dir)
        return tmp_path / "smol"

    monkeypatch.setattr(models, "smollm2_folder", folder)

    def head(seed: int) -> tuple[Any, torch.Tensor]:
        rm, _ = build_backbone(RMBackboneConfig(name="smollm2", lora=True, init_seed=seed))
        weights = {n: p.detach().clone() for n, p in rm.named_parameters() if "score" in n}
        return rm, torch.cat([w.flatten() for w in weights.values()])

    rm, w0 = head(0)
    assert asked == [None]
    trainable = {n for n, p in rm.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("score" in n for n in trainable)
    assert not any("embed_tokens" in n for n in trainable)
    assert torch.equal(w0, head(0)[1]) and not torch.equal(w0, head(1)[1])
    assert models.smollm2_folder is folder
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "config.json").write_text("{}")
    monkeypatch.undo()
    assert models.smollm2_folder(str(tmp_path / "cache")) == tmp_path / "cache"


# --- benchmarks/armap.py --seeds -----------------------------------------------------------------


def test_stage_seeds_keep_seed_zero_as_the_default_run_and_separate_collections():
    s0, s1 = study.stage_seeds(0), study.stage_seeds(1)
    assert s0["collect"] == 0 and s0["plan"] == 100_000 and s0["init"] == 0
    episodes = bench.ENVS["game24"]["collect"]["episodes"]
    assert s1["collect"] >= s0["collect"] + episodes and s1["plan"] != s0["plan"]


def test_study_config_rejects_bad_choices(tmp_path):
    ok = dict(seeds=[0], formats=["hidden"], backbones=["tiny"], envs=["game24"], work=tmp_path)
    study.StudyConfig(**ok, specs=bench.ENVS)
    with pytest.raises(ValueError, match="game24 only, not guess_the_number"):
        study.StudyConfig(**{**ok, "envs": ["guess_the_number"]}, specs=bench.ENVS)
    with pytest.raises(ValueError, match="valid: tiny, tiny_encoder, smollm2"):
        study.StudyConfig(**{**ok, "backbones": ["gpt5"]}, specs=bench.ENVS)
    with pytest.raises(SystemExit, match="single-seed"):
        bench.main(["--seeds", "0", "--rl", "--work", str(tmp_path)])


def _cell(seed: int, fmt: str, acc: float, sel: float) -> dict[str, Any]:
    bon = {f"N={n}/{k}": v for n in study.NS for k, v in (("avg", 0.1), ("sel", sel), ("max", 0.9))}
    return {
        "env": "game24",
        "format": fmt,
        "seed": seed,
        "rm": {
            "tiny": {
                "heldout_accuracy": acc,
                "heldout_pairs": 10,
                "heldout_accuracy_by_kind": {"corruption": acc - 0.1, "ranked": 1.0},
                "heldout_pairs_by_kind": {"corruption": 4, "ranked": 6},
            }
        },
        "bon": {"tiny": bon},
        "rm_config": {"tiny": {"epochs": 4.0, "lr": 1e-3, "backbone": {"lora": False}}},
        "seconds": {"collect": 1.0, "synthesize": 2.0, "train_tiny": 3.0 + seed, "bon_tiny": 4.0},
    }


def test_summary_report_splice_and_report_from(tmp_path):
    cells = [_cell(s, f, a, sel) for s, (f, a, sel) in enumerate([("full", 0.9, 0.8)] * 3)]
    cells += [_cell(s, "hidden", a, 0.3) for s, a in enumerate([0.6, 0.7, 0.8])]
    rows = {r["format"]: r for r in study.summarize(cells)}
    hid = rows["hidden"]
    assert hid["seeds"] == [0, 1, 2] and hid["heldout_accuracy"] == pytest.approx(0.7)
    lo, hi = hid["heldout_accuracy_ci"]
    assert 0.6 - 1e-9 <= lo < 0.7 < hi <= 0.8 + 1e-9
    assert rows["full"]["heldout_accuracy_ci"] == pytest.approx([0.9, 0.9])
    assert hid["heldout_accuracy_by_kind"]["corruption"] == pytest.approx(0.6)
    assert hid["bon"]["N=100/sel"] == pytest.approx(0.3) and hid["seconds"]["train"] == 4.0
    results = {
        "command": "python benchmarks/armap.py --seeds 0 1 2",
        "cells": cells,
        "summary": list(rows.values()),
    }
    doc = tmp_path / "page.md"
    doc.write_text(f"# page\n\nintro\n\n{study.START}\nold\n{study.END}\n\ntail\n")
    path = tmp_path / "r.json"
    path.write_text(json.dumps(results))
    png = tmp_path / "p.png"
    bench.main(["--report-from", str(path), "--seeds-doc", str(doc), "--seeds-png", str(png)])
    text = doc.read_text()
    assert png.stat().st_size > 10_000
    assert (
        text.startswith("# page\n\nintro\n\n") and text.endswith("\n\ntail\n") and "old" not in text
    )
    assert "| game24 | hidden | tiny | 4 epochs, lr 0.001 | 10 | 0.700 [" in text
    assert "| 0.600, 0.700, 0.800 | 0.600 (4) | 1.000 (6) |" in text
    assert "| game24 | full | tiny | 100 | 0.100 | **0.800** [0.800, 0.800] | 0.900 |" in text
    # the default invocation's rewrite of the page keeps the block
    kept = bench.keep_seeds_block(text, "# ARMAP results\n\nnew tables\n")
    assert kept.startswith("# ARMAP results\n\nnew tables\n\n" + study.START)
    assert study.END in kept and "| game24 | hidden | tiny |" in kept
    assert kept.endswith(study.END + "\n\ntail\n")  # what follows the block is kept too
    assert bench.keep_seeds_block("no block", "new") == "new"


def test_seeds_study_end_to_end_small(tmp_path):
    """Two seeds of the hidden format with a 1-layer tiny RM: every stage runs, the seeds'
    work folders are separate, and the report has the row."""
    spec = json.loads(json.dumps(bench.ENVS["game24"]))
    spec["collect"]["episodes"] = 40
    spec["backbone"] = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64}
    spec["epochs"], spec["tasks"] = 1.0, 2
    cfg = study.StudyConfig(
        seeds=[0, 1],
        formats=["hidden"],
        backbones=["tiny"],
        envs=["game24"],
        work=tmp_path,
        specs={"game24": spec},
    )
    lines: list[str] = []
    results = study.run_study(cfg, "test", log=lines.append)
    assert [c["seed"] for c in results["cells"]] == [0, 1]
    for s in (0, 1):
        d = tmp_path / f"seed{s}" / "game24_hidden"
        trip = list(read_jsonl(d / "triplets.jsonl"))
        assert trip and not any("=" in r["positive"] + r["negative"] for r in trip)
        assert (d / "rm_tiny" / "latest").is_file() and (d / "bon_tiny.jsonl").is_file()
    tasks = [
        {
            json.dumps(r["episode"]["task"])
            for r in read_jsonl(tmp_path / f"seed{s}/game24_hidden/traj.jsonl")
        }
        for s in (0, 1)
    ]
    assert tasks[0] != tasks[1]
    assert any("collect" in ln and " s)" in ln for ln in lines)
    assert any("RM tiny: held-out acc" in ln for ln in lines)
    (row,) = results["summary"]
    assert row["seeds"] == [0, 1] and 0.0 <= row["heldout_accuracy"] <= 1.0
    assert "| game24 | hidden | tiny |" in study.markdown(results)
    counts = results["cells"][0]["rm"]["tiny"]["heldout_pairs_by_kind"]
    assert sum(counts.values()) == results["cells"][0]["rm"]["tiny"]["heldout_pairs"]
    again = study.run_study(cfg, "test", log=lines.append)  # every stage resumes
    assert again["summary"][0]["heldout_accuracy_per_seed"] == row["heldout_accuracy_per_seed"]
    first, second = results["cells"][0], again["cells"][0]
    assert second["seconds_this_run"]["train_tiny"] < first["seconds"]["train_tiny"]  # reused
    assert second["seconds"]["train_tiny"] == pytest.approx(
        first["seconds"]["train_tiny"] + second["seconds_this_run"]["train_tiny"]
    )


def test_default_invocation_still_runs_and_keeps_the_seeds_block(tmp_path, capsys):
    """The single-seed invocation (Best-of-N, Reflexion, MCTS), at a small size: it rewrites
    the results page and keeps the ``--seeds`` block in it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "rewards_results.md").write_text(
        f"old page\n\n{study.START}\nseeds table\n{study.END}\n"
    )
    args = ["--envs", "game24", "--episodes", "40", "--tasks", "2", "--epochs", "1"]
    bench.main([*args, "--work", str(tmp_path / "w"), "--docs", str(docs)])
    page = (docs / "rewards_results.md").read_text()
    assert page.startswith("# ARMAP results") and "old page" not in page
    assert f"{study.START}\nseeds table\n{study.END}" in page
    assert "--episodes 40 --tasks 2 --epochs 1" in page and "| game24 | mcts |" in page
    results = json.loads((tmp_path / "w" / "results.json").read_text())["envs"]
    assert set(results) == {"game24"} and results["game24"]["collect"]["episodes"] == 40
    assert set(results["game24"]["rm"]) == {"tiny", "tiny_encoder"}
    assert (docs / "rewards_bon.png").is_file()


def test_report_from_two_studies_merges_their_cells_and_refuses_a_cell_measured_twice(tmp_path):
    """The tiny backbones and SmolLM2 run in separate invocations; one report shows both."""
    full = [_cell(s, "full", 0.9, 0.8) for s in range(3)]
    full += [_cell(s, "hidden", a, 0.2) for s, a in enumerate([0.6, 0.7, 0.8])]
    hidden = [_cell(s, "hidden", a, 0.3) for s, a in enumerate([0.8, 0.85, 0.9])]
    for c in hidden:  # another backbone, trained otherwise
        c["rm"] = {"smollm2": c["rm"].pop("tiny")}
        c["bon"] = {"smollm2": c["bon"].pop("tiny")}
        c["rm_config"] = {"smollm2": {"epochs": 1, "lr": 3e-4, "backbone": {"lora": True}}}
        c["seconds"] = {"collect": 1.0, "synthesize": 2.0, "train_smollm2": 9.0, "bon_smollm2": 5.0}
    paths = []
    for name, cells in (("a", full), ("b", hidden)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps({"command": f"run {name}", "cells": cells}))
    doc = tmp_path / "page.md"
    doc.write_text(f"{study.START}\n{study.END}\n")
    argv = ["--report-from", *map(str, paths), "--seeds-doc", str(doc), "--seeds-png", "none"]
    bench.main(argv)
    text = doc.read_text()
    assert "Commands: `run a`; `run b`" in text
    assert "| game24 | full | tiny | 4 epochs, lr 0.001 | 10 | 0.900 [" in text
    assert "| game24 | hidden | smollm2 | 1 epoch, lr 0.0003, LoRA | 10 | 0.850 [" in text
    # paired by seed against the tiny model: +0.2, +0.15, +0.1 in accuracy, +0.1 in picks
    assert "| game24 | hidden | smollm2 | +0.150 [+0.100, +0.200] (+0.200, +0.150, +0.100) | +0.100 [" in text
    assert "| game24 | full | smollm2 |" not in text  # no pair without both backbones
    with pytest.raises(SystemExit, match=r"cells measured twice: \[\('game24', 'full', 0, 'tiny'\)"):
        bench.main(["--report-from", str(paths[0]), str(paths[0]), "--seeds-doc", str(doc)])
