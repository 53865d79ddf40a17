"""ARMAP stage 1: exploration trajectories from a random or weak policy.

``collect`` plays ``episodes`` games of a scripted policy (``random``, ``mix`` with
``epsilon``, ``good``) and appends one row per episode to a JSONL file::

    {"id": 17, "episode": {... Episode.to_dict() ...}}

Episode ``i`` resets the env with seed ``seed + i // repeats`` (``repeats`` trajectories
share a task, which ranked pair synthesis needs) and draws the policy's randomness from
``(seed, i)``, so any subset of ids can be re-played identically. Re-running skips ids
already in the file, so an interrupted stage resumes.

``checkpoint=PATH`` explores with a trained (weak) LM policy instead: the checkpoint's policy
samples at ``temperature`` inside a :class:`~agentrl.rollouts.worker.RolloutWorker`, so the
rows carry token ids and log-probs; a chunk's sampling is seeded by ``(seed, first id)``, so
results are reproducible for the same ``chunk_size``. ``map_chunks`` lets a caller run the
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
    checkpoint: str = (
        ""  # a training checkpoint (run dir, step dir or "latest"): explore with its LM policy
    )
    temperature: float = 1.0


def play_scripted(
    env: Any, policy: Any, seed: int, rng: np.random.Generator, task: dict[str, Any] | None = None
) -> Episode:
    """One episode that also records the final observation (``turns[-1].info["final_observation"]``)."""
    from agentrl.envs.scripted import run_scripted_episode

    ep = run_scripted_episode(env, policy, seed=seed, task=task, rng=rng)
    if ep.turns:
        ep.turns[-1].info["final_observation"] = str(env.unwrapped.render() or "")
    return ep


_POLICIES: dict[
    str, tuple[Any, int]
] = {}  # checkpoint -> (policy, max_new_tokens), one load per process


def _checkpoint_policy(path: str) -> tuple[Any, int]:
    """The policy saved in a training checkpoint (verified) and its run's utterance length."""
    from omegaconf import OmegaConf

    from agentrl.checkpoint import resolve_checkpoint, verify_checkpoint
    from agentrl.config import to_train_config
    from agentrl.policy import Policy

    ckpt = resolve_checkpoint(path)
    key = str(ckpt.resolve())
    if key not in _POLICIES:
        manifest = verify_checkpoint(ckpt)
        cfg = to_train_config(OmegaConf.create(manifest["config"]))
        # Only the policy: no algorithm is built and no module named in the checkpoint's
        # config is imported (a checkpoint is data, never code).
        _POLICIES[key] = (Policy.load(ckpt / "policy", model_config=cfg.model), cfg.env.max_new_tokens)
    return _POLICIES[key]


def collect_with_policy(cfg: CollectConfig, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Play the episodes ``ids`` with the checkpoint's LM policy (see the module docstring)."""
    from agentrl.envs import resolve_env_id
    from agentrl.play import play
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

    env_id = resolve_env_id(cfg.env)
    policy, max_new = _checkpoint_policy(cfg.checkpoint)
    sampling = SamplingConfig(temperature=cfg.temperature, max_new_tokens=max_new)
    worker = RolloutWorker(
        env_id, cfg.env_kwargs, min(8, max(len(ids), 1)), sampling, policy=policy
    )
    # repeats of an env seed are consecutive ids: each plays the same task, sampled anew
    jobs = [EpisodeJob(k, cfg.seed + i // max(cfg.repeats, 1)) for k, i in enumerate(ids)]
    seed = int(np.random.SeedSequence([cfg.seed, ids[0], 11]).generate_state(1)[0])
    episodes = play(worker, jobs, seed, ["sampled"])["sampled"]
    return [{"id": int(i), "episode": ep.to_dict()} for i, ep in zip(ids, episodes, strict=True)]


def collect_chunk(cfg: CollectConfig, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Play the episodes ``ids`` of ``cfg`` (a pure function of its inputs)."""
    if cfg.checkpoint:
        return collect_with_policy(cfg, ids)
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

    if cfg.checkpoint:  # fail early on a missing or damaged checkpoint
        from agentrl.checkpoint import resolve_checkpoint, verify_checkpoint

        resolve_env_id(cfg.env)
        verify_checkpoint(resolve_checkpoint(cfg.checkpoint))
    else:
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
