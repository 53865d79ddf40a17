"""The model card (``README.md``) of an exported checkpoint (:mod:`agentrl.export`).

:func:`read_run_record` gathers what the card says from the checkpoint's manifest (the
run's resolved config) and, when the checkpoint sits in its run folder
(``<run>/checkpoints/step_*``), the run's ``metrics.jsonl`` and ``summary.json``;
:func:`model_card` renders it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import agentrl
from agentrl.metrics import read_metrics

KNOWN_BASES = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""Hub ids of the presets that are not hub ids themselves (``tiny`` has none)."""

SUMMARY_KEYS = (
    "iterations",
    "initial_eval_success",
    "final_eval_success",
    "initial_eval_return",
    "final_eval_return",
    "initial_eval_sample_success",
    "final_eval_sample_success",
    "initial_eval_sample_return",
    "final_eval_sample_return",
)


@dataclass(frozen=True)
class RunRecord:
    """What a model card says about the run behind a checkpoint.

    Attributes:
        checkpoint: the checkpoint folder.
        step: its step (iteration).
        config: the run's resolved config as saved in the manifest (``{}`` if none).
        run_dir: the run folder, when the checkpoint is in one.
        eval_row: the last ``metrics.jsonl`` row at or before ``step`` with evaluation keys.
        train_row: the ``metrics.jsonl`` row of iteration ``step``.
        summary: the run's ``summary.json`` (``{}`` when absent).
    """

    checkpoint: Path
    step: int
    config: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None
    eval_row: dict[str, Any] = field(default_factory=dict)
    train_row: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        """One section of the saved config (``{}`` when missing)."""
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def stop(self) -> tuple[str, ...]:
        """The env's stop strings (``env.stop``; none when the config does not say)."""
        return tuple(str(s) for s in self.section("env").get("stop") or ())


def read_run_record(checkpoint: Path, manifest: dict[str, Any]) -> RunRecord:
    """The :class:`RunRecord` of a verified checkpoint and its ``manifest``."""
    step = int(manifest.get("step", 0))
    config = manifest.get("config")
    config = config if isinstance(config, dict) else {}
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else None
    if run_dir is None:
        return RunRecord(checkpoint, step, config)
    eval_row: dict[str, Any] = {}
    train_row: dict[str, Any] = {}
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        for row in read_metrics(metrics):
            iteration = row.get("iteration")
            if not isinstance(iteration, int) or iteration > step:
                continue
            if any(k.startswith("eval") for k in row):
                eval_row = row
            if iteration == step:
                train_row = row
    summary_file = run_dir / "summary.json"
    summary: dict[str, Any] = {}
    if summary_file.is_file():
        try:
            loaded = json.loads(summary_file.read_text())
        except ValueError:
            loaded = {}
        summary = loaded if isinstance(loaded, dict) else {}
    return RunRecord(checkpoint, step, config, run_dir, eval_row, train_row, summary)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    return ["| metric | value |", "|---|---:|", *(f"| `{k}` | {_fmt(v)} |" for k, v in rows)]


def _metrics_section(record: RunRecord) -> list[str]:
    lines = ["## Metrics", ""]
    if record.run_dir is None:
        return [*lines, "The checkpoint was exported outside its run folder: no metrics found.", ""]
    if record.eval_row:
        it = record.eval_row.get("iteration")
        lines += [f"Evaluation after iteration {it} (`metrics.jsonl`):", ""]
        keys = sorted(k for k in record.eval_row if k.startswith(("eval/", "eval_sample/")))
        lines += [*_table([(k, record.eval_row[k]) for k in keys]), ""]
    if record.train_row:
        keys = sorted(k for k in record.train_row if k.startswith("train/"))
        if keys:
            lines += [f"Training episodes of iteration {record.step}:", ""]
            lines += [*_table([(k, record.train_row[k]) for k in keys]), ""]
    if record.summary:
        rows = [(k, record.summary[k]) for k in SUMMARY_KEYS if k in record.summary]
        lines += [
            "The whole run (`summary.json`; its final checkpoint is "
            f"`{Path(str(record.summary.get('checkpoint'))).name}`):",
            "",
        ]
        lines += [*_table(rows), ""]
    if len(lines) == 2:
        lines += ["The run folder holds no `metrics.jsonl` or `summary.json`.", ""]
    return lines


def _describe_model(model: dict[str, Any], merged_lora: bool) -> str:
    name = str(model.get("name", "unknown"))
    if merged_lora:
        targets = ", ".join(str(t) for t in model.get("lora_target_modules") or [])
        return (
            f"`{name}` with a LoRA adapter (r {model.get('lora_r')}, alpha "
            f"{model.get('lora_alpha')}, on {targets}) merged into its weights"
        )
    return f"`{name}`, all weights trained" if name != "unknown" else "unknown"


def model_card(record: RunRecord, merged_lora: bool, chat: str, out: str = ".") -> str:
    """The ``README.md`` of an exported model folder.

    Args:
        record: the run behind the checkpoint (:func:`read_run_record`).
        merged_lora: whether a LoRA adapter was merged.
        chat: ``"template"`` (the model's own chat template) or ``"plain"`` (agentrl's plain
            format, written as a template).
        out: the folder path shown in the loading example.
    """
    model, env = record.section("model"), record.section("env")
    algorithm = str(record.section("algorithm").get("name", "unknown"))
    sampling = record.section("rollout").get("sampling") or {}
    base = KNOWN_BASES.get(str(model.get("name")), str(model.get("name", "")))
    front = ["---", "library_name: transformers", "tags:", "- agentrl", "- reinforcement-learning"]
    front += [f"- {algorithm}"] if algorithm != "unknown" else []
    if base and base != "tiny" and not Path(base).is_absolute():
        front.append(f"base_model: {base}")
    front.append("---")
    where = f" of run `{record.run_dir.name}`" if record.run_dir else ""
    system = model.get("system_prompt")
    format_line = (
        "the model's own chat template"
        if chat == "template"
        else "agentrl's plain format for models without a chat template "
        "(`{system}\\n{user}\\nAction: {reply}\\n...`), written as a chat template"
    )
    stop = ", ".join(json.dumps(s) for s in record.stop) or "none"
    max_new = env.get("max_new_tokens", 32)
    lines = [
        *front,
        "",
        f"# {algorithm} policy for {env.get('id', 'an unknown env')}",
        "",
        f"Exported by `agentrl export` (agentrl {agentrl.__version__}) from checkpoint "
        f"`{record.checkpoint.name}` (step {record.step}){where}.",
        "",
        f"- Model: {_describe_model(model, merged_lora)}.",
        f"- Trained with `{algorithm}` on `{env.get('id', 'unknown')}`.",
        f"- Chat format: {format_line}.",
        "- System prompt: "
        + (
            f"{json.dumps(system)}, the template's default when a conversation has none."
            if system
            else "none."
        ),
        f"- Replies end at the stop strings {stop} or at the end of turn (`generation_config.json`'s "
        f"`eos_token_id` holds those of one token), after at most {max_new} new tokens. The run "
        f"sampled with temperature {sampling.get('temperature', 1.0)}, top-k "
        f"{sampling.get('top_k', 0)}.",
        "",
        *_metrics_section(record),
        "## How to load",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{out}")',
        f'model = AutoModelForCausalLM.from_pretrained("{out}")',
        'messages = [{"role": "user", "content": "<what the env says>"}]',
        "inputs = tokenizer.apply_chat_template(",
        '    messages, add_generation_prompt=True, return_tensors="pt", return_dict=True',
        ")",
        f"reply = model.generate(**inputs, max_new_tokens={max_new}, do_sample=False)",
        'print(tokenizer.decode(reply[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
        "To stop exactly where the agent did (at any token that contains a stop string), also pass "
        f"`stop_strings={list(record.stop)}, tokenizer=tokenizer` to `generate`. In agentrl the "
        f"folder is a model like any other: `model.name={out}`.",
        "",
        "## Config",
        "",
        "The run's resolved config, as saved in the checkpoint:",
        "",
        "```yaml",
        yaml.safe_dump(record.config, sort_keys=False, default_flow_style=False).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
