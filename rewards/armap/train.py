"""ARMAP stage 3: train a reward model on (intent, positive, negative) triplets.

TRL's ``RewardTrainer`` does the work (rows ``{"chosen", "rejected"}`` holding
``rm_text(intent, positive)`` / ``rm_text(intent, negative)``, ``num_labels=1``,
``bf16=False``); :class:`BTRewardTrainer` only swaps its loss for ARMAP's
(:func:`agentrl.rewards.losses.bradley_terry_loss`, centring term ``|mean(r+ + r-)|``).

Triplets are split by task (``task_id``): the held-out pairs come from puzzles the model
never saw, and their pairwise accuracy is the stage's headline number. The result is a
new version under ``out`` (``out/v001``, ``out/v002``, ... and ``out/latest``), with
``heldout.jsonl`` (every held-out pair's two scores) next to the weights. The version's
``reward_model.json`` records the response format (:class:`~agentrl.rewards.model.ResponseFormat`:
env id and env kwargs) that the triplets record (``synthesize`` writes it in every row), so
``learned_rm`` renders episodes the way the model was trained. Training keeps
HF checkpoints in ``out/.work-<key>/`` per epoch, so an interrupted run resumes there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from agentrl.policy.models import hf_quietly
from agentrl.progress import Phase, Progress

from ..losses import bradley_terry_loss, pairwise_accuracy
from ..model import (
    ResponseFormat,
    RewardModelScorer,
    RMBackboneConfig,
    build_backbone,
    rm_text,
    save_reward_model,
)
from .jsonl import append_jsonl, read_jsonl


@dataclass
class TrainRMConfig:
    data: str = "armap/triplets.jsonl"
    out: str = "armap/rm"
    backbone: RMBackboneConfig = field(default_factory=RMBackboneConfig)
    epochs: float = 3.0
    lr: float = 1e-3
    batch_size: int = 16
    heldout_fraction: float = 0.2
    center_coef: float = 1e-3
    max_length: int = 384
    seed: int = 0
    progress: bool = True
    """Print a line about every tenth of the training steps (step, loss, elapsed time); a
    bar instead on an interactive terminal. Not part of the resume key."""
    response_format: ResponseFormat | None = None
    """The env and env kwargs whose hooks wrote the triplets. ``None``: the format the triplets
    record. Set it (``response_format.env=game24 response_format.env_kwargs.hide_results=true``)
    for triplet files written before ``synthesize`` recorded it; a value that contradicts the
    triplets' own record is an error."""


def _progress_callback(phase: Phase) -> Any:
    """A TRL/transformers ``TrainerCallback`` that advances ``phase`` once per optimizer step
    (its total set from the trainer's ``max_steps``) and names the latest logged loss."""
    from transformers import TrainerCallback

    class _StepProgress(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            phase.set_total(int(state.max_steps))
            if state.global_step:  # resumed from an epoch checkpoint
                phase.advance(int(state.global_step))

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                phase.unit = f"loss {float(logs['loss']):.3f}, step"

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            phase.advance(int(state.global_step) - phase.done)

    return _StepProgress()


def _reward_config(config_cls: Any, cfg: TrainRMConfig, work: Path) -> Any:
    """TRL's ``RewardConfig`` for ``cfg``: fp32, an HF checkpoint per epoch in ``work`` (one
    kept, for resuming), the linear schedule without warm-up, no reporting or tqdm."""
    return config_cls(
        output_dir=str(work),
        num_train_epochs=cfg.epochs,
        learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size,
        bf16=False,
        fp16=False,
        use_cpu=not torch.cuda.is_available(),
        save_strategy="epoch",
        save_total_limit=1,
        logging_steps=10,
        report_to=[],
        seed=cfg.seed,
        max_length=cfg.max_length,
        center_rewards_coefficient=None,
        disable_tqdm=True,
        dataset_num_proc=None,
        lr_scheduler_type="linear",
        warmup_steps=0,
    )


@contextlib.contextmanager
def _datasets_and_hub_quietly() -> Iterator[None]:
    """``datasets``' and the hub's progress bars off for the block (restored after)."""
    import datasets
    import huggingface_hub.utils as hub_utils

    ds_bars = datasets.is_progress_bar_enabled()
    hub_bars = not hub_utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    hub_utils.disable_progress_bars()
    try:
        yield
    finally:
        if ds_bars:
            datasets.enable_progress_bars()
        if hub_bars:
            hub_utils.enable_progress_bars()


def _bt_trainer_cls() -> Any:
    from trl import RewardTrainer

    class BTRewardTrainer(RewardTrainer):  # type: ignore[misc]
        """TRL's RewardTrainer with ARMAP's Bradley-Terry loss (see the module doc)."""

        center_coef: float = 1e-3

        def compute_loss(
            self,
            model: Any,
            inputs: Any,
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            _, outputs = super().compute_loss(
                model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch
            )
            r_pos, r_neg = torch.chunk(outputs.logits.squeeze(-1), chunks=2)
            loss = bradley_terry_loss(r_pos, r_neg, self.center_coef)
            return (loss, outputs) if return_outputs else loss

    return BTRewardTrainer


def split_by_task(
    rows: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Hold out whole tasks (about ``fraction`` of the rows); deterministic in ``seed``."""
    tasks = sorted({str(r.get("task_id", r["id"])) for r in rows})
    random.Random(seed).shuffle(tasks)
    n_held = max(1, round(len(tasks) * fraction)) if fraction > 0 and len(tasks) > 1 else 0
    held = set(tasks[:n_held])
    train = [r for r in rows if str(r.get("task_id", r["id"])) not in held]
    test = [r for r in rows if str(r.get("task_id", r["id"])) in held]
    return train, test


def triplets_format(
    rows: list[dict[str, Any]], declared: ResponseFormat | None, where: str
) -> ResponseFormat | None:
    """The response format of triplet ``rows``: the one they all record, else ``declared``
    (its env alias resolved); ``None`` when neither says. Rows that mix formats, or a
    ``declared`` format that contradicts the rows', raise a ``ValueError`` naming both."""
    from agentrl.envs import resolve_env_id

    if declared is not None:
        declared = ResponseFormat(resolve_env_id(declared.env), dict(declared.env_kwargs))
    seen = {json.dumps(r.get("response_format"), sort_keys=True) for r in rows}
    if len(seen) > 1:
        raise ValueError(
            f"{where} mixes response formats ({', '.join(sorted(seen))}; null: rows written "
            "before synthesize recorded it); a reward model learns one: synthesize each format "
            "into its own file"
        )
    value = json.loads(seen.pop()) if seen else None
    if value is None:
        return declared
    recorded = ResponseFormat.from_dict(value, where)
    if declared is not None and declared != recorded:
        raise ValueError(
            f"{where} records the response format {recorded.describe()}, but "
            f"response_format={declared.describe()} was asked for; drop response_format to use "
            "the triplets' own"
        )
    return recorded


def _key(cfg: TrainRMConfig, data_digest: str) -> str:
    blob = json.dumps(
        {**asdict(cfg), "out": None, "data": data_digest, "progress": None}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def evaluate_pairs(
    scorer: RewardModelScorer, rows: list[dict[str, Any]]
) -> tuple[float, list[dict[str, Any]]]:
    """Pairwise accuracy of ``scorer`` on triplet ``rows`` and the per-pair scores."""
    if not rows:
        return float("nan"), []
    pos = scorer.score([r["intent"] for r in rows], [r["positive"] for r in rows])
    neg = scorer.score([r["intent"] for r in rows], [r["negative"] for r in rows])
    acc = pairwise_accuracy(torch.tensor(pos), torch.tensor(neg))
    return acc, [
        {"id": r["id"], "kind": r.get("kind"), "r_pos": p, "r_neg": n}
        for r, p, n in zip(rows, pos, neg, strict=True)
    ]


def train_reward_model(cfg: TrainRMConfig) -> dict[str, Any]:
    """Run stage 3; returns ``{"path", "heldout_accuracy", "train_accuracy", ...}``.

    Triplets that record no response format (and no ``cfg.response_format``) give a checkpoint
    without one, read as the default env kwargs, like a checkpoint saved before it was recorded.
    """
    import warnings

    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import RewardConfig

    data = Path(cfg.data)
    if not data.is_file():
        raise FileNotFoundError(
            f"no triplets at {cfg.data!r}; run `agentrl reward synthesize` first"
        )
    rows = list(read_jsonl(data))
    rows = [
        r
        for r in rows
        if all(isinstance(r.get(k), str) and r[k] for k in ("intent", "positive", "negative"))
    ]
    if len(rows) < 2:
        raise ValueError(f"{cfg.data!r} has {len(rows)} usable triplets; need at least 2")
    fmt = triplets_format(rows, cfg.response_format, f"triplets {cfg.data!r}")
    train_rows, test_rows = split_by_task(rows, cfg.heldout_fraction, cfg.seed)
    with hf_quietly(errors_only=True):  # its load report calls the new score head "missing"
        model, tok = build_backbone(cfg.backbone)
    eos = str(tok.eos_token or "")
    ds = Dataset.from_list(
        [
            {
                "chosen": rm_text(r["intent"], r["positive"], eos),
                "rejected": rm_text(r["intent"], r["negative"], eos),
            }
            for r in train_rows
        ]
    )
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    work = Path(cfg.out) / f".work-{_key(cfg, digest)}"
    resume = any(work.glob("checkpoint-*"))
    trainer_cls = _bt_trainer_cls()
    trainer_cls.center_coef = cfg.center_coef
    name = f"reward model ({cfg.backbone.name})"
    with (
        hf_quietly(errors_only=True),
        _datasets_and_hub_quietly(),
        warnings.catch_warnings(),  # TRL's and transformers' deprecations name nothing we call
        Progress(enabled=cfg.progress).phase(name, None, "step", plain_updates=True) as bar,
    ):
        warnings.simplefilter("ignore")
        args = _reward_config(RewardConfig, cfg, work)
        trainer = trainer_cls(model=model, args=args, train_dataset=ds, processing_class=tok)
        trainer.remove_callback(PrinterCallback)  # no per-step dicts on stdout
        trainer.add_callback(_progress_callback(bar))
        result = trainer.train(resume_from_checkpoint=True if resume else None)
    trained = trainer.model
    scorer = RewardModelScorer.from_model(trained, tok, max_length=cfg.max_length)
    train_acc, _ = evaluate_pairs(scorer, train_rows[:500])
    held_acc, held_scores = evaluate_pairs(scorer, test_rows)
    by_kind: dict[str, list[float]] = {}
    for s in held_scores:
        by_kind.setdefault(str(s["kind"]), []).append(float(s["r_pos"] > s["r_neg"]))
    metrics = {
        "heldout_accuracy": held_acc,
        "train_accuracy": train_acc,
        "train_loss": float(result.training_loss),
        "heldout_pairs": len(test_rows),
        "train_pairs": len(train_rows),
        "heldout_accuracy_by_kind": {k: sum(v) / len(v) for k, v in sorted(by_kind.items())},
    }
    meta = {
        "backbone": asdict(cfg.backbone),
        "train_config": {**asdict(cfg), "backbone": None},
        "data_sha256": digest,
        "metrics": metrics,
        "text_format": "rm_text(intent, response, eos)",
        "response_format": asdict(fmt) if fmt is not None else None,
    }
    path = save_reward_model(trained, tok, cfg.out, meta)
    append_jsonl(path / "heldout.jsonl", held_scores)
    shutil.rmtree(work, ignore_errors=True)
    return {"path": str(path), **metrics}
