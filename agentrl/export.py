"""Export a checkpoint's policy as a standard Hugging Face model folder (``agentrl export``).

The folder opens with ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` alone, no agentrl needed:

- ``model.safetensors`` + ``config.json``: the policy, its LoRA adapter merged into the base
  weights by peft (``merge_and_unload``); a fully fine-tuned policy is saved as it is;
- the tokenizer with a chat template (``chat_template.jinja``) that renders a conversation
  to the same token ids as the policy's own rendering (:mod:`agentrl.policy.chat`): the
  model's own template, or, for a model without one (the tiny model), a template of the
  plain format (``{user}\\nAction: {reply}\\n...``). The run's system prompt, if any, is the
  template's default system message;
- ``generation_config.json`` whose ``eos_token_id`` also holds the chat format's
  end-of-turn token and the run's single-token stop strings (``env.stop``), so ``generate``
  ends a reply where the agent's replies ended;
- ``README.md``, a model card: the checkpoint, the run's config (YAML), its metrics at the
  checkpoint (``metrics.jsonl``, ``summary.json``) and how to load it.

The folder is written next to ``out`` and renamed into place when complete.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from agentrl.checkpoint import CheckpointError, resolve_checkpoint, verify_checkpoint
from agentrl.export_card import RunRecord, model_card, read_run_record
from agentrl.policy import Policy
from agentrl.policy.models import hf_quietly

PLAIN_CHAT_TEMPLATE = r"""{%- for message in messages -%}
{%- if message['role'] == 'assistant' -%}
{{- message['content'] -}}
{%- if not message['content'].endswith('\n') -%}{{- '\n' -}}{%- endif -%}
{%- elif message['role'] == 'system' -%}
{{- message['content'] + '\n' -}}
{%- else -%}
{%- if message['role'] == 'tool' -%}{{- 'Tool result: ' -}}{%- endif -%}
{{- message['content'] -}}
{%- if loop.last -%}{{- '\nAction: ' if add_generation_prompt else '\n' -}}
{%- elif messages[loop.index0 + 1]['role'] == 'assistant' -%}{{- '\nAction: ' -}}
{%- else -%}{{- '\n' -}}
{%- endif -%}
{%- endif -%}
{%- endfor -%}"""
"""The plain format of :class:`agentrl.policy.chat.PlainFormat` as a Jinja chat template:
``system\\n``, ``user\\nAction: `` before a reply (or as the generation prompt), ``reply\\n``,
``Tool result: ...``."""


class ExportError(ValueError):
    """The export cannot be written where it was asked to go."""


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote.

    Attributes:
        out: the model folder.
        checkpoint: the checkpoint folder it came from (``latest`` resolved).
        step: the checkpoint's step.
        merged_lora: whether a LoRA adapter was merged into the base weights.
        files: the folder's file names, sorted.
        size_bytes: their total size.
    """

    out: Path
    checkpoint: Path
    step: int
    merged_lora: bool
    files: tuple[str, ...]
    size_bytes: int


def plain_chat_template(bos_token: bool = False) -> str:
    """:data:`PLAIN_CHAT_TEMPLATE`, preceded by ``{{ bos_token }}`` when the tokenizer adds
    one (the plain format's first piece is encoded with the tokenizer's special tokens)."""
    return ("{{- bos_token -}}" if bos_token else "") + PLAIN_CHAT_TEMPLATE


def with_default_system(template: str, system_prompt: str | None) -> str:
    """``template`` with ``system_prompt`` as the system message of a conversation that
    has none (unchanged when ``system_prompt`` is empty), as the policy renders it."""
    if not system_prompt:
        return template
    literal = json.dumps(system_prompt)  # a valid Jinja string literal (ASCII, escaped)
    return (
        "{% if not messages or messages[0]['role'] != 'system' %}"
        f"{{% set messages = [{{'role': 'system', 'content': {literal}}}] + messages %}}"
        "{% endif %}" + template
    )


def export_chat_template(policy: Policy) -> str | dict[str, str]:
    """The chat template of the exported tokenizer: the tokenizer's own or the plain
    format's (:func:`plain_chat_template`), with the policy's system prompt as default.
    A tokenizer with several named templates keeps them all, each with that default."""
    tok = policy.tokenizer
    own = tok.chat_template
    if isinstance(own, dict) and own:
        return {name: with_default_system(t, policy.system_prompt) for name, t in own.items()}
    if isinstance(own, str) and own:
        template = own
    else:
        probe = "x"
        adds_bos = (
            tok(probe, add_special_tokens=True)["input_ids"]
            != tok(probe, add_special_tokens=False)["input_ids"]
        )
        template = plain_chat_template(bos_token=adds_bos and tok.bos_token is not None)
    return with_default_system(template, policy.system_prompt)


def _unique(ids: Iterable[int | None]) -> list[int]:
    out: list[int] = []
    for i in ids:
        if i is not None and i not in out:
            out.append(int(i))
    return out


def stop_token_ids(policy: Policy, stop: Sequence[str]) -> list[int]:
    """The ids that end a reply: eos, the chat format's end-of-turn tokens and every stop
    string that is one token on its own."""
    tok = policy.tokenizer
    gen_eos = policy.model.generation_config.eos_token_id
    ids: list[int | None] = list(gen_eos) if isinstance(gen_eos, list) else [gen_eos]
    ids += [tok.eos_token_id, *policy.chat_format().end_of_turn_ids]
    for s in stop:
        piece = tok(s, add_special_tokens=False)["input_ids"]
        if len(piece) == 1:
            ids.append(piece[0])
    return _unique(ids)


def export_generation_config(policy: Policy, stop: Sequence[str]) -> GenerationConfig:
    """The model's generation config with :func:`stop_token_ids` as ``eos_token_id`` and the
    tokenizer's pad token."""
    gen = copy.deepcopy(policy.model.generation_config)
    eos = stop_token_ids(policy, stop)
    gen.eos_token_id = eos[0] if len(eos) == 1 else eos
    gen.pad_token_id = policy.tokenizer.pad_token_id
    return gen


def _check_out(out: Path, checkpoint: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"out={out} is a file; give a folder path (it is created)")
    ckpt, target = checkpoint.resolve(), out.resolve()
    if target == ckpt or target in ckpt.parents or ckpt in target.parents:
        raise ExportError(f"out={out} overlaps the checkpoint {checkpoint}; pick another folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise ExportError(
            f"out={out} exists and is not empty; pick a new folder, or pass overwrite=true "
            "to replace the model folder there"
        )
    if not (out / "config.json").is_file():
        raise ExportError(
            f"out={out} is not a model folder (no config.json); overwrite=true only replaces "
            "an earlier export, pick a new folder"
        )


def _folder_files(folder: Path) -> tuple[tuple[str, ...], int]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return tuple(str(p.relative_to(folder)) for p in files), sum(p.stat().st_size for p in files)


def _write_folder(
    tmp: Path,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    generation: GenerationConfig,
    card: str,
) -> None:
    model.generation_config = generation
    with hf_quietly():
        model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(card)


def _replace_folder(tmp: Path, out: Path) -> None:
    """Move the finished ``tmp`` to ``out`` (an earlier export there is removed last)."""
    old = None
    if out.exists():
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, old)
        else:
            out.rmdir()
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    overwrite: bool = False,
    log: Callable[[str], None] = print,
) -> ExportResult:
    """Write the policy of ``checkpoint`` to ``out`` as a Hugging Face model folder.

    Args:
        checkpoint: a checkpoint folder, a run folder or its ``checkpoints`` folder (the
            latest checkpoint), as for ``agentrl eval``.
        out: the folder to write; created. It must not exist or be empty, unless
            ``overwrite`` is set and it holds an earlier export (a ``config.json``).
        overwrite: replace the model folder at ``out``.
        log: called with one progress line per phase.

    Returns:
        an :class:`ExportResult`.

    Raises:
        CheckpointError: no checkpoint at ``checkpoint``, or a damaged one.
        ExportError: ``out`` is a file, overlaps the checkpoint, or is not empty (without
            ``overwrite``, or not a model folder).
    """
    ckpt = resolve_checkpoint(checkpoint)
    manifest = verify_checkpoint(ckpt)
    out = Path(out)
    _check_out(out, ckpt, overwrite)
    policy_dir = ckpt / "policy"
    if not policy_dir.is_dir():
        raise CheckpointError(f"checkpoint {ckpt} holds no policy/ folder to export")
    record: RunRecord = read_run_record(ckpt, manifest)
    log(f"export: loading the policy of {ckpt} (step {record.step})")
    policy = Policy.load(policy_dir, device="cpu")
    generation = export_generation_config(policy, record.stop)
    chat = "template" if policy.has_chat_template else "plain"
    model = policy.model
    merged = policy.is_lora
    if merged:
        log("export: merging the LoRA adapter into the base weights")
        model = model.merge_and_unload()
    model.eval()
    tokenizer = policy.tokenizer
    tokenizer.chat_template = export_chat_template(policy)
    card = model_card(record, merged_lora=merged, chat=chat, out=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()
    log(f"export: writing the model, tokenizer, generation config and model card to {out}")
    try:
        _write_folder(tmp, model, tokenizer, generation, card)
        _replace_folder(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    files, size = _folder_files(out)
    log(f"export: done: {out} ({size / 1e6:.1f} MB, {len(files)} files)")
    return ExportResult(out, ckpt, record.step, merged, files, size)
