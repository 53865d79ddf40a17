"""ARMAP over seeds, response formats and reward-model backbones (``benchmarks/armap.py --seeds``).

For every seed, env and response format -- ``full``: each step with its result
(``"4 * 6 = 24"``, so a success's last line ends in ``= 24``); ``hidden``: Game of 24's
``hide_results=true``, the plan only (``"4 * 6"``), so the reward model has to do the
arithmetic -- the stages run in ``WORK/seed{S}/{env}_{format}/``: collect, synthesize, then
per backbone (``tiny``, ``tiny_encoder``, ``smollm2`` = SmolLM2-135M-Instruct with LoRA)
train a reward model and run Best-of-N (N = 1, 10, 100) with it on tasks absent from its
data. Every stage's seed derives from the seed (:func:`stage_seeds`): seed 0 with the
``full`` format and a tiny backbone repeats the default single-seed run. Finished stages are
reused when re-run (use a fresh ``--work`` for other sizes).

The report (:func:`markdown`), per (env, format, backbone): held-out pairwise accuracy as the
mean over seeds with a 95% bootstrap interval, per kind of pair, and Best-of-N avg / sel /
max (means over seeds), plus the wall time of each stage. The JSON is written to
``--seeds-json`` and the markdown between :data:`START` and :data:`END` of ``--seeds-doc``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentrl.rewards.armap import (
    CollectConfig,
    SynthesizeConfig,
    TrainRMConfig,
    collect,
    synthesize,
    train_reward_model,
)
from agentrl.rewards.armap.jsonl import read_jsonl
from agentrl.rewards.armap.plan import PlanConfig, run_plan
from agentrl.rewards.model import RMBackboneConfig
from benchmarks._results import splice_into_doc
from benchmarks.smollm2_learning import bootstrap_interval

FORMATS: dict[str, dict[str, Any]] = {"full": {}, "hidden": {"hide_results": True}}
"""Response formats: the env kwargs each adds to collect, synthesize and plan."""
FORMAT_ENVS: dict[str, tuple[str, ...]] = {"hidden": ("game24",)}
"""Formats that only some envs have (the kwarg is theirs)."""
BACKBONES = ("tiny", "tiny_encoder", "smollm2")
NS = (1, 10, 100)
START, END = "<!-- armap-seeds:start -->", "<!-- armap-seeds:end -->"


@dataclass
class StudyConfig:
    """What ``--seeds`` runs (see the module doc).

    Attributes:
        seeds / formats / backbones / envs: the grid (formats from :data:`FORMATS`,
            backbones from :data:`BACKBONES`).
        work: the work folder (``seed{S}/{env}_{format}/`` below it).
        smollm2_lr / smollm2_epochs / smollm2_batch_size: the SmolLM2 + LoRA reward model's
            training (``smollm2_epochs`` ``None``: the spec's epochs, as for the tiny ones).
        specs: the env specs (``benchmarks/armap.py``'s ``ENVS``, sized by its flags).
    """

    seeds: list[int]
    formats: list[str]
    backbones: list[str]
    envs: list[str]
    work: Path
    smollm2_lr: float = 3e-4
    smollm2_epochs: float | None = None
    smollm2_batch_size: int = 16
    specs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, values, valid in (
            ("format", self.formats, tuple(FORMATS)),
            ("backbone", self.backbones, BACKBONES),
            ("env", self.envs, tuple(self.specs)),
        ):
            bad = [v for v in values if v not in valid]
            if bad or not values:
                raise ValueError(f"unknown {name} {bad or values!r}; valid: {', '.join(valid)}")
        for fmt in self.formats:
            only = FORMAT_ENVS.get(fmt)
            wrong = [e for e in self.envs if only is not None and e not in only]
            if wrong:
                raise ValueError(
                    f"format {fmt!r} exists for {', '.join(only or ())} only, not {', '.join(wrong)}"
                )
        if not self.seeds:
            raise ValueError("--seeds needs at least one seed")


def stage_seeds(seed: int) -> dict[str, int]:
    """The seed of every stage for a study seed (collections 10,000 env seeds apart)."""
    return {
        "collect": 10_000 * seed,
        "synthesize": seed,
        "train": seed,
        "init": seed,
        "plan": 100_000 + 10_000 * seed,
    }


def train_or_resume(cfg: TrainRMConfig) -> tuple[dict[str, Any], bool]:
    """Train (``train_reward_model``) unless ``cfg.out`` already has a version; returns the
    metrics and whether they were read from the existing version."""
    latest = Path(cfg.out) / "latest"
    if latest.is_file():
        folder = Path(cfg.out) / latest.read_text().strip()
        meta = json.loads((folder / "reward_model.json").read_text())
        return {"path": str(folder), **meta["metrics"]}, True
    return train_reward_model(cfg), False


def rm_config(
    backbone: str, spec: dict[str, Any], study: StudyConfig, seed: int, data: Path, out: Path
) -> TrainRMConfig:
    """The reward model of ``backbone`` for one cell."""
    seeds = stage_seeds(seed)
    epochs = float(spec["epochs"])
    if backbone == "smollm2":
        return TrainRMConfig(
            data=str(data),
            out=str(out),
            epochs=study.smollm2_epochs if study.smollm2_epochs is not None else epochs,
            lr=study.smollm2_lr,
            batch_size=study.smollm2_batch_size,
            seed=seeds["train"],
            backbone=RMBackboneConfig(name="smollm2", lora=True, init_seed=seeds["init"]),
        )
    return TrainRMConfig(
        data=str(data),
        out=str(out),
        epochs=epochs,
        lr=1e-3,
        seed=seeds["train"],
        backbone=RMBackboneConfig(name=backbone, init_seed=seeds["init"], **spec["backbone"]),
    )


def add_seconds(d: Path, stage: str, seconds: float) -> float:
    """Add ``seconds`` to the wall time spent on ``stage`` over all invocations (kept in
    ``d/seconds.json``, so a stage reused by a re-run keeps the time it first took); returns
    the total."""
    path = d / "seconds.json"
    spent = json.loads(path.read_text()) if path.is_file() else {}
    spent[stage] = float(spent.get(stage, 0.0)) + seconds
    path.write_text(json.dumps(spent, indent=1))
    return float(spent[stage])


def run_cell(
    env: str, fmt: str, seed: int, study: StudyConfig, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Collect, synthesize, and per backbone train + Best-of-N, for one (env, format, seed)."""
    spec = study.specs[env]
    seeds = stage_seeds(seed)
    d = study.work / f"seed{seed}" / f"{env}_{fmt}"
    d.mkdir(parents=True, exist_ok=True)
    tag = f"[seed {seed} {env}/{fmt}]"
    fkw = FORMATS[fmt]
    seconds: dict[str, float] = {}  # this invocation
    total: dict[str, float] = {}  # over all invocations (the report's)

    def timed(stage: str, t0: float) -> float:
        seconds[stage] = time.time() - t0
        total[stage] = add_seconds(d, stage, seconds[stage])
        return seconds[stage]

    col_spec = {k: v for k, v in spec["collect"].items() if k != "env_kwargs"}
    t = time.time()
    col = collect(
        CollectConfig(
            env=env,
            env_kwargs={**spec["collect"].get("env_kwargs", {}), **fkw},
            out=str(d / "traj.jsonl"),
            seed=seeds["collect"],
            **col_spec,
        )
    )
    timed("collect", t)
    log(
        f"{tag} collect: {col['episodes']} episodes, success {col['success_rate']:.3f} ({seconds['collect']:.1f} s)"
    )
    t = time.time()
    syn = synthesize(
        SynthesizeConfig(
            trajectories=str(d / "traj.jsonl"),
            out=str(d / "triplets.jsonl"),
            seed=seeds["synthesize"],
            env_kwargs={**spec["collect"].get("env_kwargs", {}), **fkw},
        )
    )
    timed("synthesize", t)
    log(f"{tag} synthesize: {syn['written']} triplets ({seconds['synthesize']:.1f} s)")
    play_kwargs = {**spec["proposer"].get("env_kwargs", {}), **fkw}
    proposer = {k: v for k, v in spec["proposer"].items() if k != "env_kwargs"}
    cell: dict[str, Any] = {
        "env": env,
        "format": fmt,
        "seed": seed,
        "stage_seeds": seeds,
        "collect": col,
        "synthesize": syn,
        "rm": {},
        "bon": {},
        "rm_config": {},
        "seconds": total,
        "seconds_this_run": seconds,
    }
    for backbone in study.backbones:
        cfg = rm_config(backbone, spec, study, seed, d / "triplets.jsonl", d / f"rm_{backbone}")
        t = time.time()
        res, reused = train_or_resume(cfg)
        timed(f"train_{backbone}", t)
        res["heldout_pairs_by_kind"] = dict(
            Counter(str(r.get("kind")) for r in read_jsonl(Path(res["path"]) / "heldout.jsonl"))
        )
        cell["rm"][backbone] = res
        cell["rm_config"][backbone] = {**asdict(cfg), "data": None, "out": None}
        log(
            f"{tag} RM {backbone}: held-out acc {res['heldout_accuracy']:.3f} "
            f"({res['heldout_pairs']} pairs), train {res['train_accuracy']:.3f}"
            f"{' (reused)' if reused else ''} ({seconds[f'train_{backbone}']:.1f} s)"
        )
        t = time.time()
        bon = run_plan(
            PlanConfig(
                env=env,
                env_kwargs=play_kwargs,
                planner="best_of_n",
                reward={"name": "learned_rm", "path": res["path"], "env_kwargs": play_kwargs},
                ns=list(NS),
                tasks=int(spec["tasks"]),
                seed=seeds["plan"],
                exclude=str(d / "triplets.jsonl") if spec["exclude_seen"] else None,
                out=str(d / f"bon_{backbone}.jsonl"),
                **proposer,
            )
        )
        timed(f"bon_{backbone}", t)
        cell["bon"][backbone] = bon
        log(
            f"{tag} Best-of-N {backbone}: "
            + "  ".join(
                f"N={n} avg {bon[f'N={n}/avg']:.2f} sel {bon[f'N={n}/sel']:.2f}" for n in NS
            )
            + f" ({seconds[f'bon_{backbone}']:.1f} s)"
        )
    return cell


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def training_label(cfg: dict[str, Any] | None) -> str:
    """``"4 epochs, lr 0.001"`` (``", LoRA"`` where it applies) from a cell's RM config."""
    if not cfg:
        return "-"
    lora = ", LoRA" if (cfg.get("backbone") or {}).get("lora") else ""
    epochs = float(cfg["epochs"])
    return f"{epochs:g} epoch{'' if epochs == 1 else 's'}, lr {float(cfg['lr']):g}{lora}"


def _commands(command: str | Sequence[str]) -> str:
    commands = [command] if isinstance(command, str) else list(command)
    label = "Command" if len(commands) == 1 else "Commands"
    return f"{label}: " + "; ".join(f"`{c}`" for c in commands)


def merge_results(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One report from several studies' JSONs (e.g. the tiny backbones' and SmolLM2's runs,
    made by separate invocations): their cells side by side, the summary recomputed, every
    command kept. A (env, format, seed, backbone) present in two parts is an error."""
    seen: set[tuple[str, str, int, str]] = set()
    cells: list[dict[str, Any]] = []
    for part in parts:
        for cell in part["cells"]:
            keys = {(cell["env"], cell["format"], int(cell["seed"]), b) for b in cell["rm"]}
            if keys & seen:
                raise ValueError(f"cells measured twice: {sorted(keys & seen)}")
            seen |= keys
            cells.append(cell)
    commands: list[str] = []
    for part in parts:
        c = part["command"]
        commands.extend([c] if isinstance(c, str) else c)
    return {"command": commands, "cells": cells, "summary": summarize(cells)}


def plot(results: dict[str, Any], png: Path) -> None:
    """Best-of-N: the reward model's pick against N, one line per (format, backbone) with a
    dot per seed, beside one sample's success and any sample's (grey); and each backbone's
    held-out pairwise accuracy per format with a dot per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["summary"]
    cells = results["cells"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(rows):
        color, style = colors[i % len(colors)], "-" if r["format"] == "full" else "--"
        label = f"{r['format']} / {r['backbone']}"
        ax.plot(NS, [r["bon"][f"N={n}/sel"] for n in NS], style, color=color, label=label)
        for c in cells:
            if c["env"] == r["env"] and c["format"] == r["format"] and r["backbone"] in c["bon"]:
                ys = [float(c["bon"][r["backbone"]][f"N={n}/sel"]) for n in NS]
                ax.scatter(NS, ys, color=color, s=10, alpha=0.6)
    if rows:
        ax.plot(
            NS, [rows[0]["bon"][f"N={n}/avg"] for n in NS], ":", color="grey", label="one sample"
        )
        ax.plot(
            NS, [rows[0]["bon"][f"N={n}/max"] for n in NS], "-.", color="grey", label="any sample"
        )
    ax.set_xscale("log")
    ax.set_xlabel("N (candidates)")
    ax.set_ylabel("success of the reward model's pick")
    ax.set_title("Best-of-N on unseen Game of 24 puzzles")
    ax.legend(fontsize=7)
    labels = [f"{r['format']}\n{r['backbone']}" for r in rows]
    for i, r in enumerate(rows):
        bx.bar(i, r["heldout_accuracy"], color=colors[i % len(colors)], alpha=0.5)
        bx.scatter(
            [i] * len(r["heldout_accuracy_per_seed"]),
            r["heldout_accuracy_per_seed"],
            color="k",
            s=10,
        )
    bx.axhline(0.5, color="grey", lw=0.8, ls=":")
    bx.set_xticks(range(len(rows)), labels, fontsize=7)
    bx.set_ylim(0.4, 1.0)
    bx.set_ylabel("held-out pairwise accuracy")
    bx.set_title("Reward model on pairs of unseen puzzles")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def paired_differences(cells: Sequence[dict[str, Any]], base: str = "tiny") -> list[dict[str, Any]]:
    """Per (env, format) and backbone other than ``base``: its held-out accuracy and
    Best-of-N pick success minus ``base``'s, seed by seed (same seed, same trajectories,
    triplets, held-out pairs and Best-of-N candidates: only the reward model differs), with
    the mean and a 95% bootstrap interval over the seeds that have both."""
    by_key: dict[tuple[str, str, int], dict[str, Any]] = {}
    for c in cells:  # cells of separate studies hold different backbones of one seed
        merged = by_key.setdefault((c["env"], c["format"], int(c["seed"])), {"rm": {}, "bon": {}})
        merged["rm"].update(c["rm"])
        merged["bon"].update(c["bon"])
    out = []
    groups = sorted({(env, fmt) for env, fmt, _ in by_key})
    for env, fmt in groups:
        seeds = sorted(s for e, f, s in by_key if (e, f) == (env, fmt))
        others = sorted({b for s in seeds for b in by_key[(env, fmt, s)]["rm"]} - {base})
        for other in others:
            both = [s for s in seeds if {base, other} <= set(by_key[(env, fmt, s)]["rm"])]
            if not both:
                continue
            metrics: dict[str, list[float]] = {"heldout_accuracy": []}
            metrics.update({f"N={n}/sel": [] for n in NS})
            for s in both:
                cell = by_key[(env, fmt, s)]
                metrics["heldout_accuracy"].append(
                    float(cell["rm"][other]["heldout_accuracy"])
                    - float(cell["rm"][base]["heldout_accuracy"])
                )
                for n in NS:
                    metrics[f"N={n}/sel"].append(
                        float(cell["bon"][other][f"N={n}/sel"])
                        - float(cell["bon"][base][f"N={n}/sel"])
                    )
            out.append(
                {
                    "env": env,
                    "format": fmt,
                    "backbone": other,
                    "base": base,
                    "seeds": both,
                    "diff": {
                        k: {"mean": _mean(v), "ci": list(bootstrap_interval(v)), "per_seed": v}
                        for k, v in metrics.items()
                    },
                }
            )
    return out


def summarize(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (env, format, backbone): means over seeds, the accuracy's 95% bootstrap
    interval, per-kind accuracy, Best-of-N, and the mean seconds per seed of each stage."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for cell in cells:
        for backbone in cell["rm"]:
            groups.setdefault((cell["env"], cell["format"], backbone), []).append(cell)
    rows = []
    for (env, fmt, backbone), group in groups.items():
        accs = [float(c["rm"][backbone]["heldout_accuracy"]) for c in group]
        kinds: dict[str, list[float]] = {}
        counts: dict[str, list[int]] = {}
        for c in group:
            rm = c["rm"][backbone]
            for kind, v in rm.get("heldout_accuracy_by_kind", {}).items():
                kinds.setdefault(kind, []).append(float(v))
                counts.setdefault(kind, []).append(
                    int(rm.get("heldout_pairs_by_kind", {}).get(kind, 0))
                )
        row: dict[str, Any] = {
            "env": env,
            "format": fmt,
            "backbone": backbone,
            "seeds": [int(c["seed"]) for c in group],
            "heldout_accuracy": _mean(accs),
            "heldout_accuracy_ci": list(bootstrap_interval(accs)),
            "heldout_accuracy_per_seed": accs,
            "heldout_pairs": _mean([c["rm"][backbone]["heldout_pairs"] for c in group]),
            "heldout_accuracy_by_kind": {k: _mean(v) for k, v in sorted(kinds.items())},
            "heldout_pairs_by_kind": {k: _mean(v) for k, v in sorted(counts.items())},
            "training": training_label(group[0].get("rm_config", {}).get(backbone)),
            "bon": {},
            "seconds": {
                stage: _mean([c["seconds"][key] for c in group])
                for stage, key in (
                    ("collect", "collect"),
                    ("synthesize", "synthesize"),
                    ("train", f"train_{backbone}"),
                    ("bon", f"bon_{backbone}"),
                )
            },
        }
        for n in NS:
            for k in ("avg", "sel", "max"):
                vals = [float(c["bon"][backbone][f"N={n}/{k}"]) for c in group]
                row["bon"][f"N={n}/{k}"] = _mean(vals)
                if k == "sel":
                    row["bon"][f"N={n}/sel_ci"] = list(bootstrap_interval(vals))
        rows.append(row)
    return rows


def markdown(results: dict[str, Any]) -> str:
    """The tables of a study's results (the text spliced between :data:`START` and :data:`END`)."""
    rows = results["summary"]
    seeds = sorted({s for r in rows for s in r["seeds"]})
    kinds = sorted({k for r in rows for k in r["heldout_accuracy_by_kind"]})
    lines = [
        "## Seeds, response formats and backbones (`benchmarks/armap.py --seeds`)",
        "",
        f"{_commands(results['command'])}; seeds {', '.join(map(str, seeds))}. Formats: `full` = each "
        'step with its result ("4 * 6 = 24"), `hidden` = the plan only ("4 * 6", '
        "`env.kwargs.hide_results=true`: the reward model must do the arithmetic). Intervals: "
        "95% bootstrap over the seeds (crude with few seeds).",
        "",
        "Held-out pairwise accuracy (tasks the reward model never saw; chance 0.5); the kind "
        "columns give the accuracy on each kind of pair and, in brackets, its held-out pairs "
        "per seed:",
        "",
        "| env | format | backbone | RM training | held-out pairs | accuracy (mean [95% CI]) | per seed | "
        + " | ".join(kinds)
        + " |",
        "|---|---|---|---|---|---|---|" + "---|" * len(kinds),
    ]
    for r in rows:
        lo, hi = r["heldout_accuracy_ci"]
        by_kind = r["heldout_accuracy_by_kind"]
        lines.append(
            f"| {r['env']} | {r['format']} | {r['backbone']} | {r.get('training', '-')} | "
            f"{r['heldout_pairs']:.0f} | "
            f"{r['heldout_accuracy']:.3f} [{lo:.3f}, {hi:.3f}] | "
            + ", ".join(f"{a:.3f}" for a in r["heldout_accuracy_per_seed"])
            + " | "
            + " | ".join(
                f"{by_kind[k]:.3f} ({r.get('heldout_pairs_by_kind', {}).get(k, 0):.0f})"
                if k in by_kind
                else "-"
                for k in kinds
            )
            + " |"
        )
    lines += [
        "",
        "Best-of-N with the reward model of each row (unseen tasks; means over seeds; avg = one "
        "sample's success, sel = the reward model's pick, max = any sample succeeds):",
        "",
        "| env | format | backbone | N | avg | sel [95% CI] | max |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        b = r["bon"]
        for n in NS:
            lo, hi = b[f"N={n}/sel_ci"]
            lines.append(
                f"| {r['env']} | {r['format']} | {r['backbone']} | {n} | {b[f'N={n}/avg']:.3f} | "
                f"**{b[f'N={n}/sel']:.3f}** [{lo:.3f}, {hi:.3f}] | {b[f'N={n}/max']:.3f} |"
            )
    diffs = paired_differences(results["cells"]) if "cells" in results else []
    if diffs:
        lines += [
            "",
            "Each backbone against the tiny causal one, seed by seed (the same trajectories, "
            "held-out pairs and Best-of-N candidates: only the reward model differs); mean "
            "difference [95% bootstrap interval over seeds] and the per-seed differences:",
            "",
            "| env | format | backbone - tiny | held-out accuracy | "
            + " | ".join(f"Best-of-{n} pick" for n in NS if n > 1)
            + " |",
            "|---|---|---|---|" + "---|" * len([n for n in NS if n > 1]),
        ]

        def cell_text(d: dict[str, Any]) -> str:
            lo, hi = d["ci"]
            per = ", ".join(f"{v:+.3f}" for v in d["per_seed"])
            return f"{d['mean']:+.3f} [{lo:+.3f}, {hi:+.3f}] ({per})"

        for d in diffs:
            lines.append(
                f"| {d['env']} | {d['format']} | {d['backbone']} | "
                + " | ".join(
                    cell_text(d["diff"][k])
                    for k in ["heldout_accuracy", *(f"N={n}/sel" for n in NS if n > 1)]
                )
                + " |"
            )
    lines += [
        "",
        "Wall time per seed (mean seconds spent on each stage, summed over the invocations "
        "that ran it; the machine's other load counts too):",
        "",
        "| env | format | backbone | collect | synthesize | train RM | Best-of-N |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["seconds"]
        lines.append(
            f"| {r['env']} | {r['format']} | {r['backbone']} | {s['collect']:.0f} | "
            f"{s['synthesize']:.0f} | {s['train']:.0f} | {s['bon']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def write_report(results: dict[str, Any], json_path: Path | None, doc: Path) -> str:
    """Write the results JSON (unless ``json_path`` is None), splice the markdown into ``doc``
    (if it has the markers) and return the markdown."""
    text = markdown(results)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1, default=str))
    if not splice_into_doc(doc, START, END, text):
        print(f"note: {doc} has no {START} ... {END} markers; the table was not written there")
    return text


def run_study(
    study: StudyConfig, command: str, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Every cell of the grid, then the summary (JSON-able)."""
    t0 = time.time()
    cells = [
        run_cell(env, fmt, seed, study, log)
        for seed in study.seeds
        for env in study.envs
        for fmt in study.formats
    ]
    log(f"[study] {len(cells)} cells in {time.time() - t0:.0f} s")
    return {
        "command": command,
        "config": {
            **{k: v for k, v in asdict(study).items() if k != "work"},
            "work": str(study.work),
        },
        "cells": cells,
        "summary": summarize(cells),
        "seconds": time.time() - t0,
    }
