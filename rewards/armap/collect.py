"""ARMAP stage 1: exploration trajectories from a random or weak policy.

``collect`` plays ``episodes`` games of a scripted policy (``random``, ``mix`` with
``epsilon``, ``good``) and appends one row per episode to a JSONL file::

    {"id": 17, "episode": {... Episode.to_dict() ...}}

Episode ``i`` resets the env with seed ``seed + i // repeats`` (``repeats`` trajectories
share a task, which ranked pair synthesis needs) and draws the policy's randomness from
``(seed, i)``, so any subset of ids can be re-played identically. Re-running skips ids
already in the file, so an interrupted stage resumes. ``map_chunks`` lets a caller run the
chunks elsewhere (the CLI passes Ray rollout workers: :mod:`agentrl.rollouts.armap_actors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agentrl.types import Episode

from .jsonl import append_jsonl, done_ids, read_jsonl, repair


@dataclass
class CollectConfig:
    env: str = "game24"
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    out: str = "armap/trajectories.jsonl"
    episodes: int = 200
    policy: str = "random"
    epsilon: float = 0.5
    repeats: int = 1
    seed: int = 0
    chunk_size: int = 64


def play_scripted(
    env: Any, policy: Any, seed: int, rng: np.random.Generator, task: dict[str, Any] | None = None
) -> Episode:
    """One episode that also records the final observation (``turns[-1].info["final_observation"]``)."""
    from agentrl.envs.scripted import run_scripted_episode

    ep = run_scripted_episode(env, policy, seed=seed, task=task, rng=rng)
    if ep.turns:
        ep.turns[-1].info["final_observation"] = str(env.unwrapped.render() or "")
    return ep


def collect_chunk(cfg: CollectConfig, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Play the episodes ``ids`` of ``cfg`` (a pure function of its inputs)."""
    from agentrl.envs import resolve_env_id
    from agentrl.envs.scripted import make_scripted
    from agentrl.rollouts.worker import make_env

    env_id = resolve_env_id(cfg.env)
    env = make_env(env_id, cfg.env_kwargs)
    kw: dict[str, Any] = {"epsilon": cfg.epsilon} if cfg.policy == "mix" else {}
    policy = make_scripted(env_id, cfg.policy, **kw)
    rows = []
    for i in ids:
        ep = play_scripted(
            env,
            policy,
            cfg.seed + i // max(cfg.repeats, 1),
            np.random.default_rng([cfg.seed, i, 5]),
        )
        rows.append({"id": int(i), "episode": ep.to_dict()})
    env.close()
    return rows


def collect(
    cfg: CollectConfig,
    map_chunks: Callable[[CollectConfig, list[list[int]]], Iterable[list[dict[str, Any]]]]
    | None = None,
) -> dict[str, Any]:
    """Run stage 1; returns ``{"out", "written", "skipped", "success_rate"}``."""
    from agentrl.envs import resolve_env_id
    from agentrl.envs.scripted import make_scripted

    make_scripted(resolve_env_id(cfg.env), cfg.policy)  # fail early on a bad env or policy
    out = Path(cfg.out)
    repair(out)
    have = done_ids(out)
    todo = [i for i in range(cfg.episodes) if i not in have]
    chunks = [todo[k : k + cfg.chunk_size] for k in range(0, len(todo), cfg.chunk_size)]
    written = 0
    if map_chunks is None:
        for chunk in chunks:
            written += append_jsonl(out, collect_chunk(cfg, chunk))
    else:  # remote workers: one wave of chunks at a time, written as each wave returns
        for rows in map_chunks(cfg, chunks):
            written += append_jsonl(out, rows)
    eps = [r["episode"] for r in read_jsonl(out)]
    rate = sum(bool(e.get("success")) for e in eps) / max(len(eps), 1)
    return {
        "out": str(out),
        "written": written,
        "skipped": len(have),
        "episodes": len(eps),
        "success_rate": rate,
    }
