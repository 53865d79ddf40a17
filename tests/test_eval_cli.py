"""``agentrl eval``: both decodings with the run's constraint and stop settings, printed and
written as JSON, equal to what the run logged."""

from __future__ import annotations

import json

import pytest

from agentrl.cli import main
from agentrl.metrics import read_metrics


def test_eval_prints_both_decodings_with_the_constraint_and_writes_json(
    tiny_overrides, tmp_path, capsys
):
    run = tmp_path / "run"
    assert main([
        "train", *tiny_overrides, "algorithm=filtered_bc", "env=toolchain",
        "rollout.sampling.constraint=toolchain",
        "iterations=1", "eval.every=1", "eval.episodes=4", f"run_dir={run}",
    ]) == 0  # fmt: skip
    last = read_metrics(run / "metrics.jsonl")[-1]
    capsys.readouterr()
    assert main(["eval", f"checkpoint={run}"]) == 0
    out = capsys.readouterr().out
    assert "constraint toolchain" in out and "wrote " in out
    rows = {line.split()[0]: line.split() for line in out.splitlines()[2:4]}
    assert set(rows) == {"greedy", "sampled"}
    written = run / "eval" / "step_000001.json"
    result = json.loads(written.read_text())
    assert result["constraint"] == "toolchain" and result["modes"] == ["greedy", "sampled"]
    for key in ("eval/success", "eval/return", "eval_sample/success", "eval_sample/return"):
        assert result[key] == pytest.approx(last[key]), key  # the numbers its run logged
    assert float(rows["greedy"][1]) == pytest.approx(result["eval/success"], abs=1e-3)
    assert float(rows["sampled"][2]) == pytest.approx(result["eval_sample/return"], abs=1e-3)
    assert set(result["examples"]) == {"greedy", "sampled"}
    # out= chooses the file; a greedy-only evaluation reports one mode
    other = tmp_path / "greedy.json"
    assert main(["eval", f"checkpoint={run}", f"out={other}", "eval.sample=false"]) == 0
    assert json.loads(other.read_text())["modes"] == ["greedy"]
    assert main(["eval", f"checkpoint={run}", "eval.sample=false", "eval.greedy=false"]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err
