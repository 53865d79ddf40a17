"""Smoke test of benchmarks/rollout_throughput.py: tiny model, tiny workload, no Ray/TRL rows.

Checks that the script runs end to end and prints every expected row and the targets
section; it makes no timing assertions (the machines are shared and noisy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import rollout_throughput as bench  # noqa: E402  (needs ROOT on sys.path)


@pytest.mark.timeout(120)
def test_quick_run_prints_every_row(tmp_path, capsys):
    out = tmp_path / "bench.md"
    result = bench.main(
        ["--quick", "--model", "tiny", "--skip-ray", "--skip-trl", "--out", str(out)]
    )

    rows = {r.key: r for r in result["rows"]}
    measured = [
        "raw_generate",
        "raw_generate_full",
        "hf_generate",
        "inline",
        "rescore",
        "naive",
        "agentrl_train",
        "agentrl_train_1ep",
    ]
    for key in measured:
        assert rows[key].ok, f"{key}: {rows[key].status} {rows[key].reason}"
        assert rows[key].tok_s > 0 and rows[key].eps_s > 0
        assert rows[key].tokens > 0
    assert rows["ray"].status == "skipped"
    assert rows["trl_grpo"].status == "skipped"
    # every method did the same work: 2 episodes x 2 turns x up to 4 tokens
    assert rows["inline"].episodes == 2 and rows["raw_generate"].episodes == 2
    # lean and full decode steps sample the same tokens from the same draws
    assert rows["raw_generate_full"].tokens == rows["raw_generate"].tokens
    assert rows["inline"].tokens <= 2 * 2 * 4
    assert rows["inline"].extra["captured_logprobs"] is True

    printed = capsys.readouterr().out
    for row in result["rows"]:
        assert row.label in printed
    assert "targets:" in printed
    assert [t.status for t in result["targets"]][-1] == "N/A"  # TRL skipped
    assert len(result["targets"]) == 3

    md = out.read_text()
    assert md.startswith("# Rollout throughput")
    assert "| agentrl inline rollout" in md and "## Targets" in md and "machine" in md


def test_sample_efficiency_smoke(tmp_path):
    from benchmarks import sample_efficiency as se

    out = tmp_path / "se.md"
    tiny = [
        "model.hidden_size=32",
        "model.num_layers=1",
        "model.intermediate_size=64",
        "model.num_heads=2",
        "warm_start.enabled=false",
        "eval.episodes=4",
        "algorithm.critic_epochs=1",
        "env=guess_the_number",
        "algorithm.batch_size=4",
        "algorithm.critic_model.hidden_size=16",
        "algorithm.critic_model.num_layers=1",
    ]
    args = [
        "--algorithms",
        "archer",
        "archer_decay",
        "--variant",
        "archer_decay=archer",
        "--trajectories",
        "8",
        "--eval-trajectories",
        "4",
        "--per-iter",
        "archer=2",
        "archer_decay=4",
        "--root",
        str(tmp_path / "runs"),
        "--out",
        str(out),
        "--algo-extra",
        "archer=algorithm.critic_lr=3e-4",
        "archer_decay=algorithm.actor_lr_decay_iters=2",
        "archer_decay=eval.greedy=false",
        "--final-episodes",
        "3",
        "--extra",
        *tiny,
    ]
    assert se.main(args) == 0
    text = out.read_text()
    assert (
        "| archer | 2 | eval_sample/return |" in text
        and out.with_suffix(".png").stat().st_size > 1000
    )
    rows = se.read_metrics(tmp_path / "runs" / "archer-seed0" / "metrics.jsonl")
    assert [r.get("episodes_total", 0) for r in rows if "eval_sample/return" in r] == [0, 4, 8]
    assert "| run | 0 | 4 | 8 |" in text and "| archer seed 0 | " in text  # per-seed table
    cfg = json.loads((tmp_path / "runs" / "archer-seed0" / "config.json").read_text())
    assert cfg["algorithm"]["critic_lr"] == 3e-4  # --algo-extra reached archer's run
    assert cfg["algorithm"]["actor_lr_decay_iters"] == 0
    variant = json.loads((tmp_path / "runs" / "archer_decay-seed0" / "config.json").read_text())
    assert variant["algorithm"]["name"] == "archer"  # the variant runs archer, with its own
    assert variant["algorithm"]["actor_lr_decay_iters"] == 2  # overrides only
    assert (
        variant["algorithm"]["critic_lr"] != 3e-4 and variant["rollout"]["episodes_per_iter"] == 4
    )
    assert "| archer_decay | 4 | eval_sample/return |" in text
    assert "| archer_decay | 4 | eval/return |" not in text  # no greedy eval in that run
    assert "Final policies re-evaluated on 3 fresh seeds" in text
    final = json.loads(
        (tmp_path / "runs" / "archer-seed0" / "final_eval_3_2000000.json").read_text()
    )
    assert set(final) >= {"final/return", "final/success", "final/return_std"}


def test_sample_efficiency_rejects_bad_variants(capsys):
    from benchmarks import sample_efficiency as se

    for bad in (["--variant", "ppo=archer"], ["--variant", "x=nope"], ["--algorithms", "x"]):
        with pytest.raises(SystemExit):
            se.main(bad)
    assert "choose from archer, ppo, filtered_bc, chai" in capsys.readouterr().err


def test_trajectories_to_reach():
    from benchmarks.sample_efficiency import trajectories_to_reach

    pts = [(0, -13.0, -14, -12), (64, -11.0, -12, -10), (128, -9.5, -10, -9)]
    assert trajectories_to_reach(pts, -11.0) == 64
    assert trajectories_to_reach(pts, -9.0) is None


def test_archer_update_speed_smoke(capsys):
    from benchmarks import archer_update_speed as aus

    rows = aus.measure("main", steps=1, full_iteration=False)
    assert rows["critic"] > 0 and rows["actor"] > 0 and rows["iteration_s"] > 0
    assert "| main |" in aus.table([rows])


@pytest.mark.slow  # ~2 min: four short local-Ray trainings
def test_scaling_quick_run_reports_every_configuration():
    from benchmarks import scaling

    result = scaling.main(["--quick"])
    rows = result["rows"]
    assert [(r["part"], r["workers"], r["async"]) for r in rows] == [
        ("collect", 1, "-"),
        ("collect", 2, "-"),
        ("train", 1, "off"),
        ("train", 1, "on"),
        ("train", 2, "off"),
        ("train", 2, "on"),
    ]
    assert all(r["episodes_per_s"] > 0 and r["tokens_per_s"] > 0 for r in rows)
    train = {(r["workers"], r["async"]): r for r in rows if r["part"] == "train"}
    assert train[(1, "on")]["staleness"] == 1.0 and train[(1, "off")]["staleness"] == 0.0
    assert 0.0 <= train[(2, "off")]["learner_wait_frac"] <= 1.0


@pytest.mark.slow  # ~1 min: two short local-Ray trainings with a warm start
def test_scaling_async_part_compares_modes_with_staleness_and_idle_shares():
    from benchmarks import scaling

    result = scaling.main(["--part", "async", "--quick"])
    rows = {r["depth"]: r for r in result["rows"]}
    assert sorted(rows) == [0, 1]
    assert rows[0]["staleness"] == [0.0, 0.0] and rows[1]["staleness"] == [0.0, 1.0]
    for r in rows.values():
        assert r["episodes_per_s"] > 0 and 0.0 <= r["worker_idle_frac"] <= 1.0
    assert "| ppo | async, max_staleness=1 |" in result["table"]


def test_scaling_async_part_inline_records_step_sizes():
    """``--cluster inline`` plays the same schedule in one process; every PPO update's
    largest minibatch KL is recorded, and updates above ``BIG_KL`` are listed by number."""
    from benchmarks import scaling
    from benchmarks.scaling_async import BIG_KL, kl_stats

    result = scaling.main(["--part", "async", "--quick", "--cluster", "inline"])
    rows = {r["depth"]: r for r in result["rows"]}
    assert rows[1]["staleness"] == [0.0, 1.0]
    for r in rows.values():
        assert len(r["approx_kl_max"]) == 2 and r["max_kl"] == max(r["approx_kl_max"])
    its = [{"ppo/approx_kl_max": k} for k in (0.01, BIG_KL + 0.2, 0.02, BIG_KL + 0.1)]
    assert kl_stats(its, "ppo")["big_kl_updates"] == [2, 4]
    assert kl_stats([{"archer/critic_loss": 1.0}], "archer") == {}


def test_scaling_async_learning_table_pairs_seeds_with_the_synchronous_run(tmp_path):
    import json

    from benchmarks import scaling

    def row(depth, seed, after, kl):
        return {"algorithm": "ppo", "depth": depth, "seed": seed, "iterations": 16, "override": [],
                "success_after": after, "max_kl": kl, "big_kl_updates": [3] if kl > 0.1 else []}

    rows = [row(0, 0, 0.5, 0.02), row(0, 1, 0.4, 0.3), row(2, 0, 0.1, 0.5), row(2, 1, 0.5, 0.01)]
    f = tmp_path / "rows.json"
    f.write_text(json.dumps({"rows": rows}))
    text = scaling.main(["--part", "async", "--rows-from", str(f)])["learning"]
    sync, stale = text.splitlines()[2:]
    assert "| synchronous | 2 | 0.450 " in sync and "| 0 | 1 of 2 | 0.160 |" in sync
    # per seed: 0.1 - 0.5 and 0.5 - 0.4 -> mean -0.150, lower on 1 of 2; one run below 0.25
    assert "| max_staleness=2 | 2 | 0.300 " in stale and "-0.150 [" in stale and "(1 of 2)" in stale
    assert "| 1 | 1 of 2 | 0.255 |" in stale


def test_scaling_async_overlap_table_splits_an_iteration(tmp_path):
    """Synchronous: update 0.4 + collection 0.3 + other 0.1 = 0.8 s, so perfect overlap
    gives 0.8 / (0.4 + 0.1) = 1.6x; the asynchronous runs' update took 0.5 s (1.25x) and
    their iteration 0.64 s: 1.25x measured. Settings come from the file's arguments when a
    row lacks them; inline rows are left out (they measure no overlap)."""
    import json

    from benchmarks import scaling

    def row(depth, eps_per_s, update, wait, cluster="local"):
        return {"algorithm": "archer", "depth": depth, "seed": 0, "success_after": 0.4,
                "episodes_per_s": eps_per_s, "update_s": update, "learner_wait_frac": wait,
                "cluster": cluster}

    rows = [row(0, 80.0, 0.4, 0.3 / 0.8), row(2, 100.0, 0.5, 0.0), row(2, 1.0, 9.0, 0.0, "inline")]
    f = tmp_path / "rows.json"
    f.write_text(json.dumps({"args": {"episodes_per_iter": 64, "iterations": 8, "override": []}, "rows": rows}))
    text = scaling.main(["--part", "async", "--rows-from", str(f)])["overlap"]
    sync, stale = text.splitlines()[2:]
    assert sync == "| archer | 64 | - | synchronous | 0.800 | 0.400 | 0.300 | 0.100 | 1.00x | - |"
    assert stale == "| archer | 64 | - | max_staleness=2 | 0.640 | 0.500 | 0.000 | 0.140 | 1.25x | 1.60x / 1.25x |"


def test_smollm2_learning_table_from_run_dirs(tmp_path):
    import json

    from benchmarks import smollm2_learning as sl

    dirs = []
    for seed, (before, after) in enumerate([(0.1, 0.4), (0.2, 0.3)]):
        d = tmp_path / f"s{seed}"
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"rollout": {"episodes_per_iter": 32}}))
        rows = [
            {"iteration": 0, "eval/success": 0.0, "eval_sample/success": before, "eval_sample/return": 0.0},
            {"iteration": 1, "train/success": 0.5},
            {"iteration": 2, "train/success": 0.6, "eval/success": 0.1, "eval_sample/success": after, "eval_sample/return": 1.0},
        ]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        dirs.append(str(d))
    out = sl.main(["--env", "gtn", *dirs, "--png", str(tmp_path / "c.png")])
    s = out["gtn"]["summary"]
    assert s["sampled_success_before"] == pytest.approx(0.15) and s["sampled_success_delta"] == pytest.approx(0.2)
    lo, hi = s["sampled_success_delta_ci"]
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.3)  # the bootstrap of two deltas
    assert out["gtn"]["runs"][0]["train_success"] == [0.5, 0.6] and (tmp_path / "c.png").is_file()
    assert out["gtn"]["runs"][0]["episodes_per_iter"] == 32  # the curve's x label says so
    assert "| gtn | sampled | 0.150 | 0.350 | +0.200 [+0.100, +0.300]" in sl.table(out)


def test_smollm2_learning_before_from_another_run(tmp_path):
    """--before: every seed's "before" is the prompted run's evaluation; runs with no RL
    iteration (a warm start only) still get a table and a figure."""
    import json

    from benchmarks import smollm2_learning as sl

    def run(name: str, greedy: float, sampled: float) -> str:
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"rollout": {"episodes_per_iter": 16}}))
        row = {"iteration": 0, "eval/success": greedy, "eval_sample/success": sampled}
        (d / "metrics.jsonl").write_text(json.dumps(row) + "\n")
        return str(d)

    zero = run("zero", 0.0, 0.0)
    dirs = [run("ws0", 0.75, 0.5), run("ws1", 0.65, 0.6)]
    out = sl.main(["--env", "tc", *dirs, "--before", zero, "--png", str(tmp_path / "c.png")])
    s = out["tc"]["summary"]
    assert s["greedy_success_before"] == 0.0 and s["greedy_success_delta"] == pytest.approx(0.7)
    assert s["sampled_success_delta_ci"] == (pytest.approx(0.5), pytest.approx(0.6))
    assert out["tc"]["runs"][0]["before_from"] == zero and (tmp_path / "c.png").is_file()
    assert out["tc"]["runs"][1]["train_success"] == []
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text(json.dumps({"iteration": 1, "train/success": 0.1}) + "\n")
    with pytest.raises(ValueError, match="no evaluation row"):
        sl.main(["--env", "tc", *dirs, "--before", str(tmp_path / "empty")])


# --- the GPU proof (benchmarks/gpu_proof.py), at tiny sizes on the CPU ----------------------


@pytest.mark.timeout(300)
def test_gpu_proof_small_runs_every_part(tmp_path, capsys):
    """``--device cpu --small --in-process``: every part measures, one JSON line each, the
    results file and the Markdown table are written; the GPU tests skip without CUDA."""
    from benchmarks import gpu_proof

    rc = gpu_proof.main(["--device", "cpu", "--small", "--in-process", "--out-dir", str(tmp_path)])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [x["part"] for x in lines] == ["environment", *gpu_proof.PARTS]
    summary = json.loads((tmp_path / "gpu_proof.json").read_text())
    parts = {p["part"]: p for p in summary["parts"]}
    assert rc == 0 and all(p["status"] == "ok" for p in parts.values()), parts

    learner = parts["learner"]["rows"]
    # 1 shape x 2 conversation lengths x (lora, full), each a real update
    assert [(r["conversation"], r["precision"]) for r in learner] == [
        (128, "lora"), (128, "full"), (256, "lora"), (256, "full"),
    ]  # fmt: skip
    for r in learner:
        assert r["tokens_per_s"] > 0 and r["mfu"] is None  # no peak for a CPU
        assert r["tokens_per_step"] == r["conversations_per_step"] * r["conversation"] == 512
        assert 0 < r["trainable"] < r["params"] if r["precision"] == "lora" else r["trainable"] == r["params"]
    rollout = parts["rollout"]["rows"]
    assert [r["setup"] for r in rollout] == ["lora", "bf16"]
    assert all(0 < r["sampled_tokens"] <= r["batch"] * r["new_tokens"] for r in rollout)
    for algo in ("archer", "grpo"):
        assert parts[algo]["algorithm"] == algo and parts[algo]["iterations"] == 1
        assert parts[algo]["learner_tokens"] > 0 and parts[algo]["rollout_tokens_per_s"] > 0
    tests = parts["pytest_gpu"]
    assert tests["passed"] == tests["failed"] == 0 and tests["skipped"] >= 8  # no CUDA here
    assert all("needs a CUDA device" in s for s in tests["skips"])

    md = (tmp_path / "gpu_proof.md").read_text()
    assert md.startswith("### GPU proof on cpu (small sizes)")
    assert "| Qwen2 (small) | lora | 128 | 4 | 512 |" in md and "| archer | tiny (small) | 1 |" in md
    assert "| pytest_gpu | ok |" in md and "0 passed, 0 failed, 8 skipped" in md


@pytest.mark.timeout(180)
def test_gpu_proof_reports_a_part_past_its_cap_and_runs_the_next(tmp_path, capsys, monkeypatch):
    """Each part runs in its own process: one killed at its time cap is reported as a
    timeout, and the next part still runs and is written out."""
    import subprocess

    from benchmarks import gpu_proof

    # The small grpo part takes 5-6 s here, too close to any cap the budget allows (a cap
    # under 5 s skips the part): its process is run with a 1 s timeout instead, so the kill
    # is certain on any machine; the cap it reports is still the configured 6 s.
    real_run = subprocess.run

    def quick_kill(cmd, *args, **kwargs):
        if "grpo" in cmd and "timeout" in kwargs:
            kwargs["timeout"] = 1.0
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(gpu_proof.subprocess, "run", quick_kill)
    argv = ["--device", "cpu", "--small", "--out-dir", str(tmp_path), "--parts", "grpo,rollout"]
    rc = gpu_proof.main([*argv, "--cap", "grpo=6"])
    parts = {p["part"]: p for p in json.loads((tmp_path / "gpu_proof.json").read_text())["parts"]}
    assert rc == 1
    assert parts["grpo"]["status"] == "timeout" and "cap of 6 s" in parts["grpo"]["error"]
    assert parts["grpo"]["seconds"] < 30
    assert parts["rollout"]["status"] == "ok" and len(parts["rollout"]["rows"]) == 2
    assert "| grpo | timeout |" in (tmp_path / "gpu_proof.md").read_text()
    assert "===== part rollout" in (tmp_path / "gpu_proof.log").read_text()
    with pytest.raises(SystemExit):
        gpu_proof.main(["--parts", "learner,nope"])
    assert "unknown part(s) nope" in capsys.readouterr().err


def test_gpu_proof_caps_fit_its_eight_minute_budget():
    """On the GPU machine every part has a cap, the caps sum to at most the proof's budget,
    and the budget leaves gpu.sh's set-up (installs) 45 s inside one 8-minute call."""
    from benchmarks.gpu_proof import FULL, PARTS

    assert set(FULL.caps) == set(PARTS)
    assert sum(FULL.caps.values()) <= FULL.budget_s <= 8 * 60 - 45


def test_gpu_learner_part_skips_cases_past_its_deadline_and_reports_as_it_goes():
    import time

    import torch

    from benchmarks.gpu_learner import learner_cases, run_learner

    cases = learner_cases(["small"], [64], tokens_per_step=128)
    cpu = torch.device("cpu")
    seen: list[int] = []
    result = run_learner(
        cpu, cases, 0, 1, None, time.time() + 600, (8, 6, 16), lambda r: seen.append(len(r["rows"]))
    )
    assert [r["precision"] for r in result["rows"]] == ["lora", "full"] and seen == [1, 2]
    late = run_learner(cpu, cases, 0, 1, None, time.time() - 1, (8, 6, 16))
    assert late["rows"] == [] and late["skipped_for_time"] == ["small/64/lora", "small/64/full"]


def test_learner_memory_compares_both_settings_in_fresh_processes(tmp_path):
    from benchmarks import learner_memory

    out = tmp_path / "mem.json"
    result = learner_memory.main(["--model", "tiny", "--conversations", "2", "--tokens", "300", "--out", str(out)])
    assert [r["checkpointing"] for r in result["rows"]] == [False, True]
    assert all(r["peak_gb"] >= r["loaded_gb"] > 0 and r["step_s"] > 0 for r in result["rows"])
    assert json.loads(out.read_text())["setup"]["conversations"] == 2


def test_privileged_zero_shot_report_renders_into_the_page(tmp_path):
    from benchmarks import privileged_zero_shot as pz

    rows = [
        {"conversation": False, "level": 1, "episodes": 13, "success": 2 / 13,
         "invalid": 0.9, "turns": 11.5, "wall_s": 65.2},
        {"conversation": True, "level": 2, "episodes": 13, "success": 0.0,
         "invalid": 1.0, "turns": 12.0, "wall_s": 90.0},
    ]  # fmt: skip
    src = tmp_path / "z.json"
    src.write_text(json.dumps(rows))
    doc = tmp_path / "page.md"
    doc.write_text(f"intro\n{pz.START}\nold\n{pz.END}\ntail\n")
    pz.main(["--report-from", str(src), "--doc", str(doc)])
    text = doc.read_text()
    assert "| transcript | 1 | 2/13 | 0.90 | 11.5 | 65 s |" in text
    assert "| conversation | 2 | 0/13 | 1.00 | 12.0 | 90 s |" in text
    assert "old" not in text and text.endswith(f"{pz.END}\ntail\n")
    with pytest.raises(SystemExit, match="no <!-- privileged-zero-shot:start -->"):
        pz.main(["--report-from", str(src), "--doc", str(tmp_path / "z.json")])
