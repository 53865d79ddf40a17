"""``agentrl reward collect|synthesize|train`` and ``agentrl plan`` (the ARMAP pipeline).

Arguments are ``key=value`` (nested keys with dots, values parsed as YAML), validated
against the stage's config dataclass::

    agentrl reward collect env=game24 episodes=600 policy=mix epsilon=0.8 out=armap/traj.jsonl
    agentrl reward collect ... cluster=local workers=2        # on Ray workers
    agentrl reward synthesize trajectories=armap/traj.jsonl out=armap/triplets.jsonl [method=llm model=smollm2]
    agentrl reward synthesize ... env_kwargs.hide_results=true  # the env kwargs whose hooks write the texts
    agentrl reward train data=armap/triplets.jsonl out=armap/rm epochs=3 [backbone.name=tiny_encoder]
    agentrl plan env=game24 planner=best_of_n rm=armap/rm ns=[1,10,100] tasks=50 [exclude=armap/triplets.jsonl]

``rm=PATH`` is short for ``reward.name=learned_rm reward.path=PATH``; ``reward=env`` plans
with the env's true reward (an oracle). Every stage resumes from its output file.
"""

from __future__ import annotations

import json
import os
from typing import Any

import yaml

USAGE = __doc__ or ""


def parse_args(args: list[str]) -> dict[str, Any]:
    """``["a=1", "b.c=x"]`` -> ``{"a": 1, "b": {"c": "x"}}`` (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for a in args:
        key, sep, raw = a.partition("=")
        if not sep or not key:
            raise ValueError(f"expected key=value, got {a!r}")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"{key!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return out


def _config(cls: type, values: dict[str, Any], where: str) -> Any:
    from agentrl.config import make_dataclass_config

    return make_dataclass_config(cls, values, where=where)


def _ray_init() -> Any:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    if not ray.is_initialized():
        ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    return ray


def cmd_collect(args: list[str]) -> dict[str, Any]:
    from agentrl.rewards.armap import CollectConfig, collect

    values = parse_args(args)
    cluster = str(values.pop("cluster", "inline"))
    workers = int(values.pop("workers", 2))
    if cluster not in ("inline", "local", "address"):
        raise ValueError(f"cluster must be one of inline, local, address; got {cluster!r}")
    cfg = _config(CollectConfig, values, "reward collect")
    if cluster == "inline":
        return collect(cfg)
    from agentrl.rollouts.reward_actors import ray_map_chunks

    if cluster == "address":
        os.environ.setdefault("RAY_ADDRESS", "auto")
    _ray_init()
    return collect(cfg, map_chunks=ray_map_chunks(workers))


def cmd_synthesize(args: list[str]) -> dict[str, Any]:
    from agentrl.rewards.armap import SynthesizeConfig, synthesize

    return synthesize(_config(SynthesizeConfig, parse_args(args), "reward synthesize"))


def cmd_train_rm(args: list[str]) -> dict[str, Any]:
    from agentrl.rewards.armap import TrainRMConfig, train_reward_model

    return train_reward_model(_config(TrainRMConfig, parse_args(args), "reward train"))


def cmd_plan_dict(args: list[str]) -> dict[str, Any]:
    from agentrl.rewards.armap.plan import PlanConfig, run_plan

    values = parse_args(args)
    if "rm" in values:
        values["reward"] = {"name": "learned_rm", "path": str(values.pop("rm"))}
    if isinstance(values.get("reward"), str):
        values["reward"] = {"name": values["reward"]}
    return run_plan(_config(PlanConfig, values, "plan"))


STAGES = {"collect": cmd_collect, "synthesize": cmd_synthesize, "train": cmd_train_rm}


def _run(fn: Any, args: list[str]) -> int:
    from agentrl.cli import _fail
    from agentrl.config import ConfigError
    from agentrl.registry import RegistryError
    from agentrl.rewards.model import RewardModelError

    if any(a in ("-h", "--help", "help") for a in args):
        print(USAGE)
        return 0
    try:
        result = fn(args)
    except (ConfigError, RegistryError, RewardModelError, ValueError, FileNotFoundError) as e:
        return _fail(str(e))
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_reward(args: list[str]) -> int:
    """``agentrl reward STAGE key=value ...``"""
    from agentrl.cli import _fail

    if not args or args[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if args[0] not in STAGES:
        return _fail(f"unknown reward stage {args[0]!r}; valid stages: {', '.join(STAGES)}")
    return _run(STAGES[args[0]], args[1:])


def cmd_plan(args: list[str]) -> int:
    """``agentrl plan key=value ...``"""
    return _run(cmd_plan_dict, args)
