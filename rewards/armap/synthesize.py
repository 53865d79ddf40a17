"""ARMAP stage 2: a task intent, a positive and a negative response per trajectory.

Methods (``SynthesizeConfig.method``):

- ``env``: the env's own tools. With a scorer and a corruption function (Game of 24):
  a trajectory that the scorer accepts is the positive and a corruption of it the
  negative; a failed trajectory is the negative (or, every other time, a corruption of the
  reference solution is, as in the paper) and the env's reference solution the positive.
  Without them (any env): trajectories of the same task are ranked by their env reward
  (the paper's WebShop recipe) and each worse one is paired with a best one.
- ``llm``: an HF causal LM reads the trajectory and writes ``Intent:``, ``Positive:`` and
  ``Negative:`` sections (:data:`LLM_TEMPLATE`). Output that lacks a section, repeats the
  positive as the negative or is empty is dropped and counted, never an error.

Rows (one per trajectory that yields a triplet; ``id`` = the trajectory's id)::

    {"id": 3, "task": {...}, "task_id": "numbers=[...]", "intent": "...",
     "positive": "...", "negative": "...", "kind": "corruption",
     "response_format": {"env": "agentrl/Game24-v0", "env_kwargs": {"hide_results": true}}}

``response_format`` is the env and kwargs whose hooks wrote the texts;
``agentrl reward train`` records it in the reward model it trains.

Counts go to ``<out>.stats.json``; re-running skips ids already written.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentrl.envs.base import ScoresResponses
from agentrl.types import Episode

from ..model import ResponseFormat
from ..trajectory import env_for, intent_and_response
from .jsonl import append_jsonl, done_ids, read_jsonl, repair

LLM_TEMPLATE = (
    "Here is what an agent did in an environment.\n{intent}\n{response}\n\n"
    "Write the task this trajectory is trying to do, one response that accomplishes it and "
    "one that fails. Use exactly three lines, like this example:\n"
    "Intent: Find the word 'dog' by asking yes/no questions.\n"
    "Positive: Is it an animal? Is it a pet? Is it a dog?\n"
    "Negative: Is it a car? Is it a tree?\n\n"
    "Now for the trajectory above:\nIntent:"
)
_EXAMPLE = (
    "find the word 'dog' by asking yes/no questions.",
    "is it an animal? is it a pet? is it a dog?",
    "is it a car? is it a tree?",
)
_SECTION = re.compile(r"(Intent|Positive|Negative):", re.IGNORECASE)


@dataclass
class SynthesizeConfig:
    trajectories: str = "armap/trajectories.jsonl"
    out: str = "armap/triplets.jsonl"
    method: str = "env"
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """The kwargs of the env whose hooks write the texts (e.g. ``{"hide_results": True}``
    for Game of 24's plan-only responses); the same ones ``collect`` and ``plan`` use."""
    model: str = "smollm2"
    """``method=llm``: the model (anything ModelConfig accepts)."""
    max_new_tokens: int = 96
    temperature: float = 0.0

    def __post_init__(self) -> None:
        if self.method not in ("env", "llm"):
            raise ValueError(f"synthesize method must be one of env, llm; got {self.method!r}")


def parse_llm_output(text: str) -> tuple[str, str, str] | None:
    """``(intent, positive, negative)`` from an LLM answer (the prompt ends with ``Intent:``).

    Each section ends at the next section or a blank line. Returns ``None`` for malformed
    output: a section missing or empty, a template placeholder (``<task>``) or the prompt's
    example echoed back, or positive == negative.
    """
    text = "Intent:" + text if not text.lstrip().lower().startswith("intent:") else text
    parts: dict[str, str] = {}
    matches = list(_SECTION.finditer(text))
    for k, m in enumerate(matches):
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        key = m.group(1).lower()
        if key not in parts:
            parts[key] = text[m.end() : end].strip().split("\n\n")[0].strip()
    intent, pos, neg = parts.get("intent", ""), parts.get("positive", ""), parts.get("negative", "")
    if not intent or not pos or not neg or pos == neg:
        return None
    if any(re.fullmatch(r"<[^<>]*>", x) for x in (intent, pos, neg)):
        return None  # a placeholder parroted back
    if any(x.lower() == e for x, e in zip((intent, pos, neg), _EXAMPLE, strict=True)):
        return None  # the example copied
    return intent, pos, neg


def _row(
    i: int,
    ep: Episode,
    intent: str,
    pos: str,
    neg: str,
    kind: str,
    env_kwargs: dict[str, Any] | None,
) -> dict[str, Any]:
    from agentrl.envs.base import TextEnv

    fmt = ResponseFormat(env=ep.env_id, env_kwargs=dict(env_kwargs or {}))
    return {
        "id": i,
        "task": ep.task,
        "task_id": TextEnv.task_id(ep.task),
        "intent": intent,
        "positive": pos,
        "negative": neg,
        "kind": kind,
        "response_format": asdict(fmt),
    }


def synthesize_env(
    items: Sequence[tuple[int, Episode]], seed: int, env_kwargs: dict[str, Any] | None = None
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Triplets from the env's scorer/corruption/reference hooks, or by ranking; see the module
    doc. The hooks are those of an env made with ``env_kwargs``."""
    rows, stats = [], {"no_pair": 0}
    by_env: dict[str, list[tuple[int, Episode]]] = defaultdict(list)
    for i, ep in items:
        by_env[ep.env_id].append((i, ep))
    for env_id, group in by_env.items():
        env = env_for(env_id, json.dumps(env_kwargs or {}, sort_keys=True))
        judge = env.unwrapped
        if isinstance(judge, ScoresResponses):
            scorer, corrupt, ref = (
                judge.score_response,
                judge.corrupt_response,
                judge.reference_response,
            )
            for i, ep in group:
                rng = np.random.default_rng([seed, i, 11])
                intent, response = intent_and_response(ep, env)
                if scorer(ep.task, response) > 0:
                    neg = corrupt(ep.task, response, rng)
                    rows.append(_row(i, ep, intent, response, neg, "corruption", env_kwargs))
                    continue
                good = ref(ep.task)
                if good is None:
                    stats["no_pair"] += 1
                    continue
                if i % 2 == 1:
                    neg = corrupt(ep.task, good, rng)
                    rows.append(_row(i, ep, intent, good, neg, "reference_corruption", env_kwargs))
                else:
                    kind = "reference_vs_trajectory"
                    rows.append(_row(i, ep, intent, good, response, kind, env_kwargs))
            continue
        rows_r, n = _ranked(group, env, env_kwargs)
        rows.extend(rows_r)
        stats["no_pair"] += n
    return rows, stats


def _ranked(
    group: Sequence[tuple[int, Episode]], env: Any, env_kwargs: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], int]:
    from agentrl.envs.base import TextEnv

    by_task: dict[str, list[tuple[int, Episode]]] = defaultdict(list)
    for i, ep in group:
        by_task[TextEnv.task_id(ep.task)].append((i, ep))
    rows, no_pair = [], 0
    for members in by_task.values():
        best_r = max(ep.env_reward for _, ep in members)
        best = [(i, ep) for i, ep in members if ep.env_reward == best_r]
        k = 0
        for i, ep in members:
            if ep.env_reward >= best_r:
                no_pair += 1 if len(best) == len(members) else 0
                continue
            _, top = best[k % len(best)]
            k += 1
            intent, neg = intent_and_response(ep, env)
            _, pos = intent_and_response(top, env)
            rows.append(_row(i, ep, intent, pos, neg, "ranked", env_kwargs))
    return rows, no_pair


def synthesize_llm(
    items: Sequence[tuple[int, Episode]],
    generate: Callable[[list[str]], list[str]],
    batch_size: int = 8,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Triplets written by an LLM (``generate``: prompts -> completions); malformed ones
    counted. The trajectories are shown as the hooks of an env made with ``env_kwargs`` write them."""
    rows, stats = [], {"malformed": 0}
    for k in range(0, len(items), batch_size):
        batch = items[k : k + batch_size]
        prompts = []
        for _, ep in batch:
            intent, response = intent_and_response(ep, env_kwargs=env_kwargs)
            prompts.append(LLM_TEMPLATE.format(intent=intent, response=response))
        for (i, ep), text in zip(batch, generate(prompts), strict=True):
            parsed = parse_llm_output(text)
            if parsed is None:
                stats["malformed"] += 1
                continue
            rows.append(_row(i, ep, *parsed, kind="llm", env_kwargs=env_kwargs))
    return rows, stats


def hf_generate(
    model_name: str, max_new_tokens: int, temperature: float, seed: int
) -> Callable[[list[str]], list[str]]:
    """A batched ``prompts -> completions`` function around any HF causal LM."""
    import torch

    from agentrl.policy.models import ModelConfig, load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(ModelConfig(name=model_name))
    gen = torch.Generator().manual_seed(seed)

    def as_chat(prompt: str) -> str:
        # Instruct models: the prompt becomes the user turn, the answer is pre-filled with "Intent:".
        if not tok.chat_template:
            return prompt
        head, _, _ = prompt.rpartition("Intent:")
        chat = tok.apply_chat_template(
            [{"role": "user", "content": head.rstrip()}], tokenize=False, add_generation_prompt=True
        )
        return str(chat) + "Intent:"

    def generate(prompts: list[str]) -> list[str]:
        enc = tok(
            [as_chat(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
        with torch.no_grad():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                pad_token_id=tok.pad_token_id,
            )
        return [
            str(t)
            for t in tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        ]

    return generate


def synthesize(
    cfg: SynthesizeConfig, generate: Callable[[list[str]], list[str]] | None = None
) -> dict[str, Any]:
    """Run stage 2; returns the counts (also written to ``<out>.stats.json``)."""
    if not Path(cfg.trajectories).is_file():
        raise FileNotFoundError(
            f"no trajectories at {cfg.trajectories!r}; run `agentrl reward collect` first"
        )
    out = Path(cfg.out)
    repair(out)
    have = done_ids(out)
    every = [
        (int(r["id"]), Episode.from_dict(r["episode"]))
        for r in read_jsonl(cfg.trajectories)
        if "episode" in r
    ]
    items = [(i, ep) for i, ep in every if i not in have]
    stats_path = Path(str(out) + ".stats.json")
    totals = json.loads(stats_path.read_text()) if stats_path.is_file() and have else {}
    if (
        cfg.method == "env"
    ):  # cheap and deterministic: recompute over all (ranking needs whole groups)
        rows, stats = synthesize_env(every, cfg.seed, cfg.env_kwargs)
        rows = [r for r in rows if r["id"] not in have]
        totals.pop("no_pair", None)
    else:
        gen = generate or hf_generate(cfg.model, cfg.max_new_tokens, cfg.temperature, cfg.seed)
        rows, stats = synthesize_llm(items, gen, env_kwargs=cfg.env_kwargs)
    written = append_jsonl(out, rows)
    for key, value in {"written": written, "trajectories": len(items), **stats}.items():
        totals[key] = int(totals.get(key, 0)) + int(value)
    totals["skipped_already_done"] = len(have)
    stats_path.write_text(json.dumps(totals, indent=2))
    return {"out": str(out), **totals}
