"""Evaluation transcripts: what the env said and what the agent replied.

At every evaluation the trainer writes the first ``logging.transcripts`` episodes of each
decoding mode twice, as ``run_dir/transcripts/iter_NNNNNN.md`` (to read) and
``iter_NNNNNN.jsonl`` (one :func:`episode_record` per line, to process).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from agentrl.types import Episode

Message = dict[str, str | float | bool]
"""A transcript message: ``role`` and ``content``; an agent reply also has ``reward`` and
``invalid``."""


def transcript_markdown(episodes: Mapping[str, Sequence[Episode]], iteration: int) -> str:
    """``episodes`` (per decoding mode) as Markdown: per turn the env's message and the
    agent's reply, with its reward and flags."""
    lines = [f"# Evaluation episodes after iteration {iteration}", ""]
    for mode, eps in episodes.items():
        for ep in eps:
            lines += [
                f"## {mode}, seed {ep.seed}, task {json.dumps(ep.task, default=str)}: "
                f"return {ep.total_reward:.3f}, {'success' if ep.success else 'no success'}, "
                f"{ep.num_turns} turns" + (f", error: {ep.error}" if ep.error else ""),
                "",
            ]
            for i, t in enumerate(ep.turns):
                flags = ", invalid" if t.info.get("invalid_action") else ""
                lines += [
                    f"**{t.role}** (turn {i})",
                    "```",
                    t.observation.rstrip("\n"),
                    "```",
                    f"**agent** (reward {t.reward:+.3f}{flags})",
                    "```",
                    t.action,
                    "```",
                    "",
                ]
    return "\n".join(lines)


def episode_record(episode: Episode, iteration: int, mode: str) -> dict[str, object]:
    """One episode as a JSON-able dict: ``iteration``, ``mode`` (greedy or sampled),
    ``seed``, ``task``, ``messages`` (the env's as ``user``/``tool``, the agent's as
    ``assistant`` with its ``reward`` and ``invalid`` flag), ``rewards`` (per turn),
    ``return``, ``success``, ``turns`` and ``error``."""
    messages: list[Message] = []
    for t in episode.turns:
        messages.append({"role": t.role, "content": t.observation})
        messages.append(
            {
                "role": "assistant",
                "content": t.action,
                "reward": t.reward,
                "invalid": bool(t.info.get("invalid_action")),
            }
        )
    return {
        "iteration": iteration,
        "mode": mode,
        "seed": episode.seed,
        "task": episode.task,
        "messages": messages,
        "rewards": [t.reward for t in episode.turns],
        "return": episode.total_reward,
        "success": bool(episode.success),
        "turns": episode.num_turns,
        "error": episode.error,
    }


def write_transcripts(
    directory: Path, episodes: Mapping[str, Sequence[Episode]], iteration: int
) -> str:
    """Write ``iter_NNNNNN.md`` and ``iter_NNNNNN.jsonl`` of ``episodes`` (per decoding mode)
    into ``directory``; returns the Markdown (for the trackers' text tabs)."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / f"iter_{iteration:06d}"
    markdown = transcript_markdown(episodes, iteration)
    stem.with_suffix(".md").write_text(markdown)
    with open(stem.with_suffix(".jsonl"), "w") as f:
        for mode, eps in episodes.items():
            for ep in eps:
                f.write(json.dumps(episode_record(ep, iteration, mode), default=str) + "\n")
    return markdown
