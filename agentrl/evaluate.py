"""Greedy evaluation of a saved checkpoint (``agentrl eval checkpoint=...``)."""

from __future__ import annotations

import json
from typing import Any

from omegaconf import OmegaConf

from agentrl.checkpoint import resolve_checkpoint, verify_checkpoint
from agentrl.config import to_train_config


def evaluate_checkpoint(path: str, episodes: int = 32, seed: int | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load the policy of the checkpoint at ``path`` and play ``episodes`` greedy episodes in-process.

    ``overrides`` (``key=value``) change the checkpoint's saved config, e.g. ``env.id=...``
    to evaluate on another env.
    """
    from agentrl.learner import Learner
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.group import InlineWorkerGroup
    from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
    from agentrl.trainer import episode_stats

    ckpt = resolve_checkpoint(path)
    manifest = verify_checkpoint(ckpt)
    base = OmegaConf.create(manifest["config"])
    if overrides:
        base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    cfg = to_train_config(base)
    learner = Learner(cfg.model, dict(cfg.algorithm), seed=cfg.seed, imports=list(cfg.imports))
    learner.load(str(ckpt), weights_only=True)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=cfg.env.max_new_tokens)
    worker = RolloutWorker(cfg.env.id, cfg.env.kwargs, cfg.rollout.envs_per_worker, sampling, policy=learner.policy)
    group = InlineWorkerGroup(worker, 1)
    start = cfg.eval.seed if seed is None else seed
    eps = group.collect([EpisodeJob(j, start + j) for j in range(episodes)], rng_seed=start, greedy=True)
    out = {"checkpoint": str(ckpt), "step": manifest["step"], "env": cfg.env.id, "episodes": episodes,
           **episode_stats("eval", eps)}
    out["examples"] = [json.loads(json.dumps({"task": e.task, "actions": [t.action for t in e.turns][:5],
                                               "return": e.env_reward})) for e in eps[:3]]
    return out
