"""agentrl's L2M metrics equal the ``l2metrics`` package's on the same l2logger logs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from agentrl.lifelong.metrics import (
    Regime,
    lifetime_metrics,
    performance_maintenance,
    terminal_performance,
    to_regimes,
    transfer,
)
from agentrl.lifelong.report import read_l2log

TASKS = ["low", "mid", "high"]
# Blocks: test all, then (train one task, test all) for low, mid, high and low again.
SCHEDULE = ["test", "low", "test", "mid", "test", "high", "test", "low", "test"]


def _write_logs(
    base: Path, name: str, schedule: list[str], rng: np.random.Generator, train_len: int = 30
) -> Path:
    from l2logger import l2logger

    log = l2logger.DataLogger(
        str(base),
        name,
        {"metrics_columns": ["success", "reward"]},
        {"complexity": "1-low", "difficulty": "2-medium", "scenario_type": "custom"},
    )
    exp = 0
    skill = {t: 0.2 for t in TASKS}
    for block, kind in enumerate(schedule):
        tasks = TASKS if kind == "test" else [kind]
        for task in tasks:
            n = 8 if kind == "test" else train_len
            for i in range(n):
                if kind == "test":
                    value = float(np.clip(skill[task] + rng.normal(0, 0.1), 0, 1))
                else:  # a noisy learning curve that rises, then saturates
                    value = float(
                        np.clip(
                            skill[task] + 0.5 * min(i / (0.6 * n), 1) + rng.normal(0, 0.05), 0, 1
                        )
                    )
                log.log_record(
                    {
                        "block_num": block,
                        "block_type": "train" if kind != "test" else "test",
                        "worker_id": "w",
                        "task_name": task,
                        "task_params": {"k": 1},
                        "exp_num": exp,
                        "success": value,
                        "reward": value,
                    }
                )
                exp += 1
        if kind != "test":
            skill = {t: max(0.05, s - 0.15) for t, s in skill.items()}  # forgetting of the others
            skill[kind] = 0.7
    log.close()
    return Path(log.scenario_dir)


@pytest.fixture
def l2metrics_report(monkeypatch):
    monkeypatch.setattr(
        np, "NaN", np.nan, raising=False
    )  # l2metrics 3.1 still uses np.NaN (numpy < 2)
    import logging

    from l2metrics.report import MetricsReport

    logging.getLogger("l2metrics").setLevel(logging.ERROR)
    return MetricsReport


@pytest.mark.parametrize("smoothing", ["flat", "none"])
def test_metrics_equal_l2metrics(tmp_path, monkeypatch, l2metrics_report, smoothing):
    monkeypatch.setenv("L2DATA", str(tmp_path / "l2data"))
    from l2metrics.util import store_ste_data

    rng = np.random.default_rng(0)
    ll_dir = _write_logs(tmp_path / "logs", "scenario", SCHEDULE, rng)
    ste: dict[str, list[list[Regime]]] = {}
    for task in TASKS:
        for run in range(2):
            d = _write_logs(
                tmp_path / "ste", f"ste{task}{run}", [task], rng, train_len=24 + 6 * run
            )
            store_ste_data(d, mode="a")  # l2metrics' own STE store ($L2DATA/taskinfo)
            ste.setdefault(task, []).append(to_regimes(read_l2log(d), "success"))

    theirs = l2metrics_report(
        log_dir=ll_dir,
        perf_measure="success",
        normalization_method="none",
        smoothing_method=smoothing,
        transfer_method="both",
        maintenance_method="mrlep",
    )
    theirs.calculate()
    ours = lifetime_metrics(to_regimes(read_l2log(ll_dir), "success"), ste, smoothing=smoothing)

    life = theirs.lifetime_metrics_df.iloc[0]
    pairs = {
        "perf_maintenance": "perf_maintenance_mrlep",
        "forward_transfer_ratio": "forward_transfer_ratio",
        "forward_transfer_contrast": "forward_transfer_contrast",
        "backward_transfer_ratio": "backward_transfer_ratio",
        "backward_transfer_contrast": "backward_transfer_contrast",
        "ste_rel_perf": "ste_rel_perf",
        "sample_efficiency": "sample_efficiency",
    }
    for mine, their in pairs.items():
        assert not math.isnan(ours["lifetime"][mine]), mine
        assert ours["lifetime"][mine] == pytest.approx(float(life[their]), rel=1e-9, abs=1e-12), (
            mine
        )
    tm = theirs.task_metrics_df
    for task in TASKS:
        assert ours["tasks"][task]["perf_maintenance"] == pytest.approx(
            float(tm.at[task, "perf_maintenance_mrlep"])
        )
        assert ours["tasks"][task]["ste_rel_perf"] == pytest.approx(
            float(tm.at[task, "ste_rel_perf"])
        )
        assert ours["tasks"][task]["sample_efficiency"] == pytest.approx(
            float(tm.at[task, "sample_efficiency"])
        )
        for kind in ("forward_transfer_ratio", "backward_transfer_contrast"):
            their_pairs = tm.at[task, kind] or {}
            mine_pairs = {
                tested: v
                for (trained, tested), v in ours["transfer"][kind.replace("_transfer", "")].items()
                if trained == task
            }
            assert sorted(mine_pairs) == sorted(their_pairs), (task, kind)
            for tested, values in their_pairs.items():
                assert mine_pairs[tested] == pytest.approx([float(v) for v in values])
    # the synthetic agent forgets: maintenance is negative, re-training "low" transfers back
    assert ours["lifetime"]["perf_maintenance"] < 0


def test_hand_computed_maintenance_and_transfer():
    def reg(i: int, block: int, kind: str, task: str, values: list[float]) -> Regime:
        return Regime(
            i, block, kind, "wake", task, list(range(10 * i, 10 * i + len(values))), values
        )

    regimes = [
        reg(0, 0, "test", "a", [0.2]),
        reg(1, 0, "test", "b", [0.4]),
        reg(2, 1, "train", "a", [0.1] * 9 + [0.9]),
        reg(3, 2, "test", "a", [0.8]),
        reg(4, 2, "test", "b", [0.5]),
        reg(5, 3, "train", "b", [0.3]),
        reg(6, 4, "test", "a", [0.6]),
        reg(7, 4, "test", "b", [0.7]),
    ]
    assert terminal_performance(regimes[2]) == pytest.approx(0.9)  # last 10% of a training block
    # a: tested 0.8 right after training, 0.6 later -> -0.2; b: nothing after its post-training test
    assert performance_maintenance(regimes) == pytest.approx({"a": -0.2})
    tr = transfer(regimes)
    assert tr["forward_ratio"] == {
        ("a", "b"): [pytest.approx(0.5 / 0.4)]
    }  # training a moved b 0.4 -> 0.5
    assert tr["backward_contrast"] == {("b", "a"): [pytest.approx((0.6 - 0.8) / 1.4)]}
