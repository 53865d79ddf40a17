"""Checks that run before any work: every registry name, component config and combination of
settings in a :class:`~agentrl.config.TrainConfig` (``agentrl train`` and ``agentrl config``
run exactly these), and the algorithm's config section as the trainer builds it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrl.algorithm import algorithm_class, defines_worker_acting_rule, episodes_per_task
from agentrl.algorithm import check_run as check_algorithm_run
from agentrl.config import ConfigError, TrainConfig, make_dataclass_config
from agentrl.parallel import check_learner_group
from agentrl.registry import import_user_modules
from agentrl.trackers import check_trackers


def validate_components(cfg: TrainConfig) -> None:
    """Resolve every registry name and component config before any work starts."""
    from agentrl.curricula import build_curriculum
    from agentrl.rewards import build_reward
    from agentrl.rollouts.worker import make_env

    import_user_modules(list(cfg.imports))
    check_trackers(cfg.logging)  # a missing wandb/mlflow fails here, naming the extra
    try:
        algo_cls = algorithm_class(cfg.algorithm["name"])
    except TypeError as e:
        raise ConfigError(str(e)) from e
    if algo_cls.Config is not None:
        make_dataclass_config(
            algo_cls.Config, algorithm_section(cfg), where=f"algorithm={cfg.algorithm['name']}"
        )
    group = episodes_per_task(cfg.algorithm["name"], algorithm_section(cfg))
    try:
        check_algorithm_run(cfg.algorithm["name"], algorithm_section(cfg), cfg.rollout.sampling.constraint)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    if cfg.rollout.episodes_per_iter % group:
        raise ConfigError(
            f"rollout.episodes_per_iter={cfg.rollout.episodes_per_iter} must be a multiple of "
            f"algorithm.group_size={group} (algorithm={cfg.algorithm['name']} plays each sampled "
            "task group_size times)"
        )
    if (
        algo_cls.has_acting_rule
        and cfg.cluster.mode != "inline"
        and not defines_worker_acting_rule(algo_cls)
    ):
        raise ConfigError(
            f"algorithm={cfg.algorithm['name']} has an acting rule of its own (act()) but defines no "
            "worker_acting_rule, so Ray rollout workers cannot act with it: run it with "
            "cluster=inline, or define worker_acting_rule and acting_state "
            "(docs/write_your_algorithm.md)"
        )
    check_learner_group(cfg, algorithm_section(cfg))  # cluster.learner_workers > 1 (docs/cluster.md)
    if cfg.data:  # a damaged dataset fails here, before any work, naming file and line
        from agentrl.types import load_episodes

        try:
            load_episodes(cfg.data)
        except (OSError, ValueError) as e:
            raise ConfigError(f"data: {e}") from e
    build_reward(cfg.reward)
    if cfg.rollout.sampling.constraint:
        from agentrl.policy.constraints import resolve_grammar

        try:
            resolve_grammar(cfg.rollout.sampling.constraint)
        except ValueError as e:
            raise ConfigError(f"rollout.sampling.constraint: {e}") from e
    build_curriculum(cfg.curriculum, seed=cfg.seed)
    # as the trainer decides (a resumed run is past its warm start)
    if cfg.warm_start.enabled and not cfg.init_from and not cfg.resume:
        from agentrl.envs.scripted import make_scripted

        try:  # the warm start clones a scripted player of the env
            make_scripted(cfg.env.id, cfg.warm_start.policy)
        except ValueError as e:
            raise ConfigError(
                f"warm_start.enabled=true clones a scripted {cfg.warm_start.policy!r} player of "
                f"env {cfg.env.id}, which has none: set warm_start.enabled=false (or pick "
                f"warm_start.policy); {e}"
            ) from e
    from agentrl.policy.vllm_backend import check_backend

    check_backend(
        cfg.model,
        cfg.cluster.mode,
        cfg.rollout.num_gpus_per_worker,
        cfg.rollout.sampling.constraint,
    )
    make_env(cfg.env.id, cfg.env.kwargs).close()
    if cfg.lifelong:
        from agentrl.lifelong.base import validate_lifelong

        validate_lifelong(list(cfg.lifelong), cfg.algorithm["name"])


def algorithm_section(cfg: TrainConfig) -> dict[str, Any]:
    """The algorithm section, with the env's utterance length and the rollout temperature
    filled in for algorithms that sample on their own (ArCHer's fresh actions) unless set."""
    import dataclasses

    from agentrl.registry import ALGORITHMS

    section = dict(cfg.algorithm)
    config_cls = algorithm_class(section["name"]).Config
    fields = {f.name for f in dataclasses.fields(config_cls)} if config_cls else set()
    if "max_new_tokens" in fields:
        section.setdefault("max_new_tokens", cfg.env.max_new_tokens)
    if cfg.data:
        if "dataset" not in fields:
            offline = sorted(
                n for n in ALGORITHMS.names() if algorithm_class(n).offline
            )
            raise ConfigError(
                f"data={cfg.data} is for offline algorithms ({', '.join(offline)}); "
                f"algorithm={section['name']} learns from its own rollouts"
            )
        if not Path(cfg.data).is_file():
            raise ConfigError(
                f"data={cfg.data}: no such file (a JSONL of episodes, one Episode.to_dict() per line)"
            )
        section["dataset"] = str(Path(cfg.data).resolve())
    return section


def is_offline(cfg: TrainConfig) -> bool:
    """Whether the algorithm learns from a fixed dataset only (the trainer then collects no rollouts)."""

    return algorithm_class(cfg.algorithm["name"]).offline


__all__ = ["algorithm_section", "is_offline", "validate_components"]
