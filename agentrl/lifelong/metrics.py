"""The L2M lifelong-learning metrics, computed by agentrl itself (pure functions).

Definitions follow the ``l2metrics`` package (DARPA L2M; version 3.1), so that on the same
``l2logger`` logs both give the same numbers (``tests/test_lifelong_metrics.py`` checks it,
with ``normalization_method="none"`` and smoothing ``"flat"`` or ``"none"``):

- a *regime* is a maximal run of log rows with the same block number, block type
  (train/test), block subtype (wake/sleep) and task name; its *terminal performance* is the
  mean of its last 10% of experiences (train) or of all of them (test);
- **performance maintenance** (``mrlep``) of a task: mean over its test regimes after the
  first post-training test of ``tp(test) - tp(most recent post-training test)``; negative =
  forgetting;
- **forward transfer** of task A to task B: B's test performance right before (``tp1``) and
  right after (``tp2``) a training regime of A that comes before B's first training;
  **backward transfer**: the same for a training regime of A after B was first trained;
  *ratio* ``tp2 / tp1``, *contrast* ``(tp2 - tp1) / (tp1 + tp2)``;
- **performance relative to a single-task expert (STE)**: the sum of the task's training
  performance over its first ``n`` experiences over the STE's sum over the same ``n``;
- **sample efficiency**: ``(sat / sat_ste) * (exp_to_sat_ste / exp_to_sat)`` where ``sat`` is
  the maximum of the smoothed training curve and ``exp_to_sat`` where it is first reached
  (0 when the curve's slope is negative or ``sat < 0.2 sat_ste``).

Lifetime values are means over tasks (transfer: over task pairs, the first value of each).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

import numpy as np


@dataclass
class Regime:
    """Consecutive log rows of one block and task.

    Attributes:
        index: the regime number (0-based, in log order).
        block_num / block_type / block_subtype / task: as logged.
        exp: ``exp_num`` of each row.
        values: the performance measure of each row (after smoothing, if any).
    """

    index: int
    block_num: int
    block_type: str
    block_subtype: str
    task: str
    exp: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def to_regimes(rows: Iterable[Mapping[str, Any]], perf: str) -> list[Regime]:
    """Split log rows (in log order) into regimes; rows with a missing/NaN ``perf`` or an
    ``exp_status`` other than ``complete`` are dropped first (as l2metrics does)."""
    out: list[Regime] = []
    key_prev = None
    for r in rows:
        if str(r.get("exp_status", "complete")) != "complete":
            continue
        v = _float(r.get(perf))
        if v is None or math.isnan(v):
            continue
        key = (
            int(r["block_num"]),
            str(r["block_type"]),
            str(r.get("block_subtype", "wake")),
            str(r["task_name"]),
        )
        if key != key_prev:
            out.append(Regime(len(out), *key))
            key_prev = key
        out[-1].exp.append(int(r["exp_num"]))
        out[-1].values.append(v)
    for reg in out:  # l2metrics sorts rows by (regime, exp_num)
        order = sorted(range(len(reg.exp)), key=lambda i: reg.exp[i])
        reg.exp = [reg.exp[i] for i in order]
        reg.values = [reg.values[i] for i in order]
    return out


def _float(v: Any) -> float | None:
    if v is None or v == "":
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def smooth(x: Sequence[float] | np.ndarray, window_len: int | None = None) -> np.ndarray:
    """Flat moving average with reflected ends, same length as ``x`` (l2metrics' ``smooth``).

    The default window is ``min(int(0.2 * len), 100)``; below 3 the data is returned as is.
    """
    a = np.asarray(x, dtype=float)
    if window_len is None or a.size < window_len:
        window_len = min(int(a.size * 0.2), 100)
    if window_len < 3:
        return a
    s = np.r_[a[window_len - 1 : 0 : -1], a, a[-2 : -window_len - 1 : -1]]
    s = s[~np.isnan(s)]
    y = np.convolve(np.ones(window_len) / window_len, s, mode="valid")
    return y[int(np.floor(window_len / 2 - 1)) : -int(np.ceil(window_len / 2))]


def smooth_regimes(regimes: Sequence[Regime], test_too: bool = False) -> list[Regime]:
    """Regimes with training curves smoothed (l2metrics' default ``smoothing_method="flat"``)."""
    return [
        Regime(
            r.index,
            r.block_num,
            r.block_type,
            r.block_subtype,
            r.task,
            list(r.exp),
            [float(v) for v in smooth(r.values)]
            if (r.block_type == "train" or test_too)
            else list(r.values),
        )
        for r in regimes
    ]


def per_experience(exp: Sequence[int], values: Sequence[float]) -> np.ndarray:
    """Values averaged per ``exp_num`` (in ``exp_num`` order) when an experience has several rows."""
    if len(set(exp)) == len(exp):
        return np.asarray(values, dtype=float)
    groups: dict[int, list[float]] = {}
    for e, v in zip(exp, values, strict=True):
        groups.setdefault(e, []).append(v)
    return np.asarray([float(np.mean(groups[e])) for e in sorted(groups)])


def terminal_performance(regime: Regime, window_ratio: float = 0.1) -> float:
    """Mean of the last ``window_ratio`` of the regime's experiences (all of them for tests)."""
    data = (
        per_experience(regime.exp, regime.values)
        if len(regime.values) > 1
        else np.asarray(regime.values, float)
    )
    data = data[~np.isnan(data)]
    if not data.size:
        return float("nan")
    ratio = 1.0 if regime.block_type == "test" else window_ratio
    return float(np.mean(data[int((1 - ratio) * data.size) :]))


def saturation(exp: Sequence[int], values: Sequence[float]) -> tuple[float, int]:
    """``(max of the smoothed per-experience curve, index where it is first reached)``."""
    s = smooth(per_experience(exp, values))
    s = s[~np.isnan(s)]
    if not s.size:
        return float("nan"), 0
    sat = float(np.max(s))
    return sat, int(np.where(s == sat)[0][0])


def _evaluation_regimes(regimes: Sequence[Regime]) -> list[Regime]:
    # With sleep evaluation blocks, wake test blocks are ignored (as in l2metrics).
    if any(r.block_subtype == "sleep" for r in regimes):
        return [r for r in regimes if not (r.block_type == "test" and r.block_subtype == "wake")]
    return list(regimes)


def _unique_tasks(regimes: Sequence[Regime]) -> list[str]:
    seen: list[str] = []
    for r in regimes:
        if r.task not in seen:
            seen.append(r.task)
    return seen


def performance_maintenance(regimes: Sequence[Regime]) -> dict[str, float]:
    """Per task: mean of ``tp(test) - tp(most recent post-training test)`` (``mrlep``)."""
    regs = _evaluation_regimes(regimes)
    tp = {r.index: terminal_performance(r) for r in regimes}
    out: dict[str, float] = {}
    for task in _unique_tasks(regs):
        train = np.array([r.index for r in regs if r.task == task and r.block_type == "train"])
        test = np.array([r.index for r in regs if r.task == task and r.block_type == "test"])
        refs = np.array([test[np.argmax(test > x)] for x in train if np.any(test > x)])
        values = []
        for t in test:
            if refs.size and np.any(t > refs) and t not in refs:
                ref = refs[t > refs][-1]
                values.append(tp[int(t)] - tp[int(ref)])
        values = [v for v in values if not math.isnan(v)]
        if values:
            out[task] = float(np.mean(values))
    return out


def transfer(regimes: Sequence[Regime]) -> dict[str, dict[tuple[str, str], list[float]]]:
    """Forward/backward transfer, ratio and contrast, per ``(trained task, tested task)``.

    Returns ``{"forward_ratio" | "forward_contrast" | "backward_ratio" | "backward_contrast":
    {(trained, tested): [values in log order]}}``.
    """
    regs = _evaluation_regimes(regimes)
    tp = {r.index: terminal_performance(r) for r in regimes}
    task_of = {r.index: r.task for r in regs}
    # Keyed by the second test regime, like l2metrics (a later pair overwrites an earlier one).
    by_regime: dict[str, dict[int, tuple[str, float]]] = {
        k: {} for k in ("forward_ratio", "forward_contrast", "backward_ratio", "backward_contrast")
    }
    for task, other in permutations(_unique_tasks(regs), 2):
        train = np.array([r.index for r in regs if r.task == task and r.block_type == "train"])
        o_test = np.array([r.index for r in regs if r.task == other and r.block_type == "test"])
        o_train = np.array([r.index for r in regs if r.task == other and r.block_type == "train"])
        if not train.size:
            continue
        ft = train[train < np.min(o_train)] if o_train.size else train
        bt = train[train > np.min(o_train)] if o_train.size else np.array([], dtype=int)
        for kind, trains in (("forward", ft), ("backward", bt)):
            for x in trains:
                for t1, t2 in zip(o_test, o_test[1:], strict=False):
                    if t1 < x < t2:
                        a, b = tp[int(t1)], tp[int(t2)]
                        if a != 0:
                            by_regime[f"{kind}_ratio"][int(t2)] = (task, b / a)
                        if a + b != 0:
                            by_regime[f"{kind}_contrast"][int(t2)] = (task, (b - a) / (a + b))
    out: dict[str, dict[tuple[str, str], list[float]]] = {}
    for kind, values in by_regime.items():
        pairs: dict[tuple[str, str], list[float]] = {}
        for t2 in sorted(values):
            trained, v = values[t2]
            pairs.setdefault((trained, task_of[t2]), []).append(float(v))
        out[kind] = pairs
    return out


def _train_wake(regimes: Sequence[Regime], task: str) -> tuple[list[int], list[float]]:
    exp: list[int] = []
    vals: list[float] = []
    for r in regimes:
        if r.task == task and r.block_type == "train" and r.block_subtype == "wake":
            exp += r.exp
            vals += r.values
    return exp, vals


def ste_relative_performance(
    regimes: Sequence[Regime], ste: Mapping[str, Sequence[Sequence[Regime]]]
) -> dict[str, float]:
    """Per task with STE runs: mean over runs of ``sum(perf[:n]) / sum(ste_perf[:n])``."""
    out: dict[str, float] = {}
    for task in _unique_tasks(regimes):
        _, vals = _train_wake(regimes, task)
        runs = ste.get(task) or []
        if not vals or not runs:
            continue
        rel = []
        for run in runs:
            ste_vals = [v for r in run if r.block_type == "train" for v in r.values]
            n = min(len(vals), len(ste_vals))
            rel.append(float(np.nansum(vals[:n])) / float(np.nansum(ste_vals[:n])))
        out[task] = float(np.nanmean(rel))
    return out


def sample_efficiency(
    regimes: Sequence[Regime], ste: Mapping[str, Sequence[Sequence[Regime]]]
) -> dict[str, float]:
    """Per task with STE runs: mean over runs of ``(sat / sat_ste) * (exp_ste / exp)``."""
    out: dict[str, float] = {}
    for task in _unique_tasks(regimes):
        exp, vals = _train_wake(regimes, task)
        runs = ste.get(task) or []
        if not vals or not runs:
            continue
        slope = float(np.polyfit(exp, vals, 1)[0]) if len(vals) > 1 else 0.0
        sat, to_sat = saturation(exp, vals)
        if to_sat == 0:  # saturated at once: undefined (l2metrics skips the task)
            continue
        se = []
        for run in runs:
            s_exp = [e for r in run if r.block_type == "train" for e in r.exp]
            s_vals = [v for r in run if r.block_type == "train" for v in r.values]
            s_sat, s_to_sat = saturation(s_exp, s_vals)
            if s_to_sat == 0:
                continue
            se.append(
                0.0 if (sat < 0.2 * s_sat or slope < 0) else (sat / s_sat) * (s_to_sat / to_sat)
            )
        out[task] = float(np.mean(se)) if se else float("nan")
    return out


def lifetime_metrics(
    regimes: Sequence[Regime],
    ste: Mapping[str, Sequence[Sequence[Regime]]] | None = None,
    smoothing: str = "flat",
) -> dict[str, Any]:
    """Every metric, per task and over the lifetime (means), from raw (unsmoothed) regimes.

    Args:
        regimes: the lifelong run's regimes (:func:`to_regimes`).
        ste: task -> list of single-task-expert runs (each a list of regimes).
        smoothing: ``"flat"`` (l2metrics' default: training curves smoothed) or ``"none"``.
    """
    if smoothing not in ("flat", "none"):
        raise ValueError(f"smoothing must be 'flat' or 'none', got {smoothing!r}")
    if smoothing == "flat":
        regimes = smooth_regimes(regimes)
        ste = {t: [smooth_regimes(run) for run in runs] for t, runs in (ste or {}).items()}
    ste = ste or {}
    per_task: dict[str, dict[str, Any]] = {t: {} for t in _unique_tasks(regimes)}
    pm = performance_maintenance(regimes)
    rel = ste_relative_performance(regimes, ste)
    se = sample_efficiency(regimes, ste)
    for t in per_task:
        per_task[t]["perf_maintenance"] = pm.get(t, float("nan"))
        per_task[t]["ste_rel_perf"] = rel.get(t, float("nan"))
        per_task[t]["sample_efficiency"] = se.get(t, float("nan"))
    tr = transfer(regimes)
    lifetime: dict[str, float] = {
        "perf_maintenance": _nanmean(pm.values()),
        "ste_rel_perf": _nanmean(rel.values()),
        "sample_efficiency": _nanmean(se.values()),
    }
    for kind, pairs in tr.items():
        lifetime[f"{kind.split('_')[0]}_transfer_{kind.split('_')[1]}"] = _nanmean(
            v[0] for v in pairs.values()
        )
    return {"lifetime": lifetime, "tasks": per_task, "transfer": tr}


def _nanmean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")
