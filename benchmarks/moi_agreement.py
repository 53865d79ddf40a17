"""Agreement of the LLM model of interestingness with the rule oracle on TextCraft.

OMNI's MoI decides which tasks are boring once some tasks are learned; ``omni``'s rule MoI
(the oracle) calls a task boring when it is a repeat variant of a learned task ("collect 3
wood" once "collect wood" is learned). This script measures how far each LLM MoI variant
(:mod:`agentrl.curricula.moi_llm`) agrees with it on TextCraft's 105 tasks:

- pairs: 8 achievements at count 1 (``PAIR_LEARNED``; ``--learned all``: all 16) as the
  learned task, every other task as the candidate (8 x 104 = 832 pairs, 32 boring by the
  oracle); the AUC of the boring score
  (threshold-free) and precision / recall of "boring" and of "interesting" at the
  variant's threshold.
- sweeps: ``omni``'s labelling (:func:`agentrl.curricula.omni.label_tasks`) for a few
  learned sets; how many tasks each MoI labels boring, and how many truly interesting ones
  it buries (labels boring where the oracle does not).

Usage (SmolLM2-135M-Instruct, ~10 min on one CPU core; scores cached in ``--cache``)::

    python benchmarks/moi_agreement.py --model smollm2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: python benchmarks/NAME.py
    sys.path.insert(0, str(ROOT))

from benchmarks._results import splice_into_doc  # noqa: E402

START, END = "<!-- moi:start -->", "<!-- moi:end -->"
# (row name, llm_score, llm_prompt, llm_calibration, z (None: --z))
VARIANTS: list[tuple[str, str, str, str, float | None]] = [
    ("answer zero-shot, fixed 0", "answer", "zero_shot", "fixed", None),
    ("answer zero-shot, relative", "answer", "zero_shot", "relative", None),
    ("answer few-shot, fixed 0", "answer", "few_shot", "fixed", None),
    ("answer few-shot, relative", "answer", "few_shot", "relative", None),
    ("surprisal, fixed 0", "surprisal", "few_shot", "fixed", None),
    ("surprisal, relative", "surprisal", "few_shot", "relative", None),
    ("surprisal, relative z=1.5", "surprisal", "few_shot", "relative", 1.5),
]
PAIR_LEARNED = ["collect_wood", "collect_sapling", "collect_drink", "collect_stone", "collect_iron",
                "place_table", "make_wood_pickaxe", "make_wood_sword"]  # fmt: skip
LEARNED_SETS = {
    "wood": ["collect_wood/1"],
    "early": ["collect_wood/1", "collect_wood/2", "collect_drink/1", "place_table/1"],
    "wood tools": ["collect_wood/1", "collect_wood/2", "collect_wood/3", "collect_sapling/1",
                   "collect_drink/1", "place_table/1", "make_wood_pickaxe/1", "make_wood_sword/1"],
    "deep": ["collect_wood/1", "place_table/1", "make_wood_pickaxe/1", "collect_stone/1",
             "make_stone_pickaxe/1", "collect_iron/1"],
}  # fmt: skip


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counting 1/2."""
    pos, neg = scores[labels], scores[~labels]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def agreement(truth: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Precision / recall of boring (positive) and interesting, accuracy, balanced accuracy."""
    tp, tn = int((pred & truth).sum()), int((~pred & ~truth).sum())
    fp, fn = int((pred & ~truth).sum()), int((~pred & truth).sum())

    def div(a: int, b: int) -> float:
        return a / b if b else float("nan")

    out = {
        "boring_precision": div(tp, tp + fp),
        "boring_recall": div(tp, tp + fn),
        "interesting_precision": div(tn, tn + fn),
        "interesting_recall": div(tn, tn + fp),
        "accuracy": div(tp + tn, len(truth)),
        "said_boring": float(pred.mean()) if len(pred) else float("nan"),
    }
    out["balanced_accuracy"] = (out["boring_recall"] + out["interesting_recall"]) / 2
    return out


def legacy_scores(policy: Any, pairs: list[tuple[str, str]], batch: int = 16) -> np.ndarray:
    """The MoI before this benchmark, exactly: the zero-shot question as the policy's user
    turn, ``log p(" No") - log p(" Yes")`` (leading spaces) by full re-scoring."""
    import torch

    from agentrl.curricula.moi_llm import ZERO_SHOT

    tok = policy.tokenizer
    yes, no = (tok(a, add_special_tokens=False)["input_ids"] for a in (" Yes", " No"))
    prompts = policy.encode_prompts(
        [ZERO_SHOT.format(learned=lt, candidate=c) + "\n" for lt, c in pairs]
    )
    policy.model.eval()
    with torch.no_grad():
        s_yes, _, _ = policy.action_logprobs(prompts, [yes] * len(prompts), batch_size=batch)
        s_no, _, _ = policy.action_logprobs(prompts, [no] * len(prompts), batch_size=batch)
    return (s_no - s_yes).numpy()


def key(t: dict[str, Any]) -> str:
    return f"{t['achievement']}/{t['count']}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from agentrl.curricula.moi_llm import LLMInterestingness
    from agentrl.curricula.omni import RuleInterestingness, label_tasks
    from agentrl.envs.textcraft import RECIPES, describe_task, task_list
    from agentrl.policy import ModelConfig, Policy

    torch.manual_seed(0)
    tasks = task_list()
    by_key = {key(t): t for t in tasks}
    names = list(RECIPES) if args.learned == "all" else PAIR_LEARNED
    learned = [{"achievement": a, "count": 1} for a in names]
    rule = RuleInterestingness()
    pairs = [(lt, c) for lt in learned for c in tasks if c != lt]
    truth = np.array([rule.boring(c, lt) for lt, c in pairs])
    policy = Policy.from_config(ModelConfig(name=args.model, lora=False))
    rows: list[dict[str, Any]] = []
    sweeps: list[dict[str, Any]] = []
    if args.extra_rows:  # rows measured by an earlier run (e.g. the slow legacy row)
        rows += json.loads(Path(args.extra_rows).read_text())
    if args.legacy_learned:  # the MoI as it was, on the first few learned tasks only (slow)
        sub = [(lt, c) for lt, c in pairs if lt in learned[: args.legacy_learned]]
        t0 = time.perf_counter()
        s = legacy_scores(policy, [(describe_task(lt), describe_task(c)) for lt, c in sub])
        tr = np.array([rule.boring(c, lt) for lt, c in sub])
        row = {"moi": f"answer zero-shot, ' Yes'/' No' tokens (before; {args.legacy_learned} learned tasks)",
               "score": "legacy", "prompt": "zero_shot", "calibration": "fixed", "pairs": len(sub),
               "boring_pairs": int(tr.sum()), "auc": auc(tr, s), **agreement(tr, s > 0),
               "seconds_per_query": (time.perf_counter() - t0) / len(sub), "new_queries": len(sub)}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
    for name, score, prompt, calibration, z in VARIANTS:
        moi = LLMInterestingness(
            policy=policy,
            describe=describe_task,
            cache_path=args.cache,
            score=score,
            prompt=prompt,
            calibration=calibration,
            z=args.z if z is None else z,
            reference=tasks,
        )
        t0 = time.perf_counter()
        scores = np.array(
            [s for lt in learned for s in moi.scores([c for c in tasks if c != lt], lt)]
        )
        per_query = (time.perf_counter() - t0) / max(moi.calls, 1)
        pred = np.array(
            [b for lt in learned for b in moi.boring_many([c for c in tasks if c != lt], lt)]
        )
        row = {"moi": name, "score": score, "prompt": prompt, "calibration": calibration,
               "pairs": len(pairs), "boring_pairs": int(truth.sum()), "auc": auc(truth, scores),
               **agreement(truth, pred), "seconds_per_query": per_query if moi.calls else None,
               "new_queries": moi.calls}  # fmt: skip
        rows.append(row)
        print(json.dumps(row), flush=True)
        for set_name, keys in LEARNED_SETS.items():
            success = np.array([1.0 if key(t) in keys else 0.0 for t in tasks])
            lab = label_tasks(tasks, success, 0.5, moi)
            ref = label_tasks(tasks, success, 0.5, rule)
            unlearned = [i for i, t in enumerate(tasks) if key(t) not in keys]
            p = np.array([lab[i] == "boring" for i in unlearned])
            tr = np.array([ref[i] == "boring" for i in unlearned])
            sweeps.append({"moi": name, "learned": set_name, "n_learned": len(keys),
                           "boring": int(p.sum()), "oracle_boring": int(tr.sum()),
                           "agree": int((p == tr).sum()), "n": len(unlearned),
                           "buried": sorted(describe_task(tasks[i]) for i, b in zip(unlearned, p & ~tr, strict=True) if b),
                           "missed": int((~p & tr).sum())})  # fmt: skip
    del by_key
    return {"model": args.model, "z": args.z, "pairs": rows, "sweeps": sweeps}


def tables(res: dict[str, Any]) -> str:
    rows = res["pairs"]
    main_rows = [r for r in rows if r["score"] != "legacy"]
    n, nb = main_rows[0]["pairs"], main_rows[0]["boring_pairs"]
    out = [
        f"Pairs: {n // 104} achievements at count 1 learned (`PAIR_LEARNED`), every other task a "
        f"candidate ({n} pairs, {nb} boring by the rule oracle); model {res['model']}, relative "
        f"threshold mean + {res['z']} std. The first row (the MoI as it was) is measured on the "
        "pairs of the first learned tasks only.",
        "",
        "| LLM MoI | AUC | boring precision | boring recall | interesting precision "
        "| interesting recall | accuracy | balanced accuracy | says boring |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [f"{r[k]:.2f}" for k in ("auc", "boring_precision", "boring_recall",
                 "interesting_precision", "interesting_recall", "accuracy", "balanced_accuracy",
                 "said_boring")]  # fmt: skip
        out.append(f"| {r['moi']} | " + " | ".join(cells) + " |")
    rows = main_rows
    out += [
        "",
        "Sweeps (omni's labelling from a learned set): tasks labelled boring by the LLM MoI / "
        "by the oracle, and the interesting tasks it buried (boring where the oracle says not):",
        "",
        "| LLM MoI | " + " | ".join(LEARNED_SETS) + " |",
        "|---|" + "---|" * len(LEARNED_SETS),
    ]
    for r in rows:
        cells = []
        for s in res["sweeps"]:
            if s["moi"] == r["moi"]:
                cells.append(f"{s['boring']}/{s['oracle_boring']}, buried {len(s['buried'])}")
        out.append(f"| {r['moi']} | " + " | ".join(cells) + " |")
    sizes = ", ".join(f"{k} = {len(v)} tasks" for k, v in LEARNED_SETS.items())
    out.append(f"\nLearned sets: {sizes} (`benchmarks/moi_agreement.py`, `LEARNED_SETS`).")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--z", type=float, default=2.0, help="relative calibration: mean + z std")
    ap.add_argument(
        "--learned", choices=("some", "all"), default="some",
        help="learned tasks of the pairs: PAIR_LEARNED (8) or all 16 possible achievements",
    )  # fmt: skip
    ap.add_argument(
        "--legacy-learned", type=int, default=4, help="learned tasks for the old MoI's row"
    )
    ap.add_argument("--extra-rows", default="", help="JSON list of pair rows from an earlier run")
    ap.add_argument("--cache", default="runs/moi_agreement_cache.json")
    ap.add_argument("--out", default=str(ROOT / "docs" / "moi_agreement.json"))
    ap.add_argument("--doc", default=str(ROOT / "docs" / "curricula.md"))
    ap.add_argument("--table-only", action="store_true", help="re-render from --out")
    args = ap.parse_args(argv)
    if args.table_only:
        res = json.loads(Path(args.out).read_text())
    else:
        res = run(args)
        Path(args.out).write_text(json.dumps(res, indent=1))
    text = tables(res)
    print(text)
    splice_into_doc(args.doc, START, END, text)
    return res


if __name__ == "__main__":
    main()
