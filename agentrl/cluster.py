"""``agentrl cluster render``: a Ray cluster-launcher YAML (``ray up``) sized for a run.

The shipped template (``configs/cluster/launcher/ray_up.yaml``, or the user's own via
``cluster.launcher.template``) carries the provider, instance types and setup; rendering
fills in what follows from the run's config, so the cluster fits the run's placement group
(see :mod:`agentrl.rollouts.placement`)::

    learner node type:  CPU = ceil(cluster.learner_num_cpus), GPU = ceil(cluster.learner_num_gpus)
                        min_workers = max_workers = 1
    rollout node type:  k = min(cluster.launcher.workers_per_node, rollout.num_workers)
                        CPU = ceil(k * rollout.num_cpus_per_worker), GPU = ceil(k * num_gpus_per_worker)
                        min_workers = max_workers = ceil(rollout.num_workers / k)
    max_workers = 1 + rollout nodes;  cluster_name = cluster.launcher.cluster_name

Ray's launcher schema wants whole resources per node type, hence the ceilings. This module
imports Ray only to validate (Ray's own ``prepare_config`` + ``validate_config``, the checks
``ray up`` runs before it contacts the cloud).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import yaml

from agentrl.config import TrainConfig, config_dir


class ClusterError(RuntimeError):
    """The run cannot start or join its Ray cluster, place its actors, or render its
    launcher YAML."""


def template_path(cfg: TrainConfig) -> Path:
    """The launcher template: ``cluster.launcher.template`` or the shipped one."""
    path = cfg.cluster.launcher.template
    return Path(path) if path else config_dir() / "cluster" / "launcher" / "ray_up.yaml"


def _whole(x: float) -> int:
    return int(math.ceil(x - 1e-9))


def node_resources(cfg: TrainConfig) -> dict[str, Any]:
    """The learner and rollout node types' resources and counts for ``cfg`` (see module doc)."""
    per_node = min(cfg.cluster.launcher.workers_per_node, cfg.rollout.num_workers)
    nodes = math.ceil(cfg.rollout.num_workers / per_node)

    def res(cpus: float, gpus: float) -> dict[str, int]:
        out = {"CPU": _whole(cpus)}
        if gpus > 0:
            out["GPU"] = _whole(gpus)
        return out

    return {
        "learner": {
            "resources": res(cfg.cluster.learner_num_cpus, cfg.cluster.learner_num_gpus),
            "count": 1,
        },
        "rollout": {
            "resources": res(
                per_node * cfg.rollout.num_cpus_per_worker,
                per_node * cfg.rollout.num_gpus_per_worker,
            ),
            "count": nodes,
            "workers_per_node": per_node,
        },
    }


def render_launcher(cfg: TrainConfig, template: dict[str, Any] | None = None) -> dict[str, Any]:
    """The launcher config for ``cfg``: ``template`` (default: :func:`template_path`) with
    the learner / rollout node types sized for the run.

    Raises:
        ClusterError: the template is not YAML or lacks the ``learner`` / ``rollout`` node types.
    """
    if template is None:
        path = template_path(cfg)
        try:
            template = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as e:
            raise ClusterError(f"cluster.launcher.template={path}: {e}") from e
    out = copy.deepcopy(template) if isinstance(template, dict) else None
    types = (out or {}).get("available_node_types") or {}
    missing = [t for t in ("learner", "rollout") if t not in types]
    if out is None or missing:
        raise ClusterError(
            f"the launcher template needs available_node_types 'learner' and 'rollout' "
            f"(missing: {', '.join(missing) or 'available_node_types'}); start from "
            "configs/cluster/launcher/ray_up.yaml"
        )
    sizes = node_resources(cfg)
    for name in ("learner", "rollout"):
        node = types[name]
        node["resources"] = dict(sizes[name]["resources"])
        node["min_workers"] = node["max_workers"] = sizes[name]["count"]
    out["cluster_name"] = cfg.cluster.launcher.cluster_name
    out["max_workers"] = sum(
        int(t.get("max_workers", 0)) for n, t in types.items() if n != out.get("head_node_type")
    )
    return out


def validate_launcher(config: dict[str, Any]) -> None:
    """Ray's own checks of a launcher config (``prepare_config`` then ``validate_config``,
    as ``ray up`` does before contacting the provider).

    Raises:
        ClusterError: naming the offending field.
    """
    from ray.autoscaler._private.util import prepare_config, validate_config

    try:
        validate_config(prepare_config(copy.deepcopy(config)))
    except Exception as e:  # jsonschema.ValidationError, ValueError, KeyError
        raise ClusterError(f"Ray rejects the launcher config: {str(e).splitlines()[0]}") from e


def to_yaml(config: dict[str, Any], overrides: list[str]) -> str:
    """The rendered YAML with a header saying how it was made and how to use it."""
    args = " ".join(overrides)
    header = (
        f"# Rendered by: agentrl cluster render {args}\n"
        "# Launch:  ray up <this file>;  ray dashboard <this file>  (tunnel to 127.0.0.1:8265)\n"
        "# Train:   ray job submit --address http://127.0.0.1:8265 --working-dir . -- "
        f"agentrl train cluster=address {args}\n"
    )
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def summary(cfg: TrainConfig) -> str:
    """One line per node type: what ``render`` sized and why."""
    s = node_resources(cfg)
    r = s["rollout"]
    return (
        f"learner: 1 node {s['learner']['resources']} (cluster.learner_num_cpus="
        f"{cfg.cluster.learner_num_cpus:g}, learner_num_gpus={cfg.cluster.learner_num_gpus:g})\n"
        f"rollout: {r['count']} node(s) {r['resources']} ({cfg.rollout.num_workers} workers, "
        f"{r['workers_per_node']} per node, {cfg.rollout.num_cpus_per_worker:g} CPU / "
        f"{cfg.rollout.num_gpus_per_worker:g} GPU each)"
    )


def cmd_cluster(args: list[str]) -> int:
    """``agentrl cluster render [overrides...] [--out FILE] [--no-validate]``."""
    import sys

    from agentrl.config import ConfigError, load_config

    usage = "usage: agentrl cluster render [hydra overrides...] [--out FILE] [--no-validate]"
    if not args or args[0] != "render":
        print(f"agentrl: error: {usage}", file=sys.stderr)
        return 2
    rest, out, validate = [], None, True
    it = iter(args[1:])
    for a in it:
        if a == "--out":
            out = next(it, None)
            if out is None:
                print(f"agentrl: error: --out needs a file; {usage}", file=sys.stderr)
                return 2
        elif a == "--no-validate":
            validate = False
        else:
            rest.append(a)
    try:
        cfg = load_config(rest)
        config = render_launcher(cfg)
        if validate:
            validate_launcher(config)
    except (ConfigError, ClusterError) as e:
        print(f"agentrl: error: {e}", file=sys.stderr)
        return 2
    text = to_yaml(config, rest)
    if out is None:
        print(text, end="")
    else:
        Path(out).write_text(text)
        print(f"wrote {out}" + (" (validated by Ray's launcher schema)" if validate else ""))
    print(summary(cfg), file=sys.stderr if out is None else sys.stdout)
    return 0


__all__ = [
    "ClusterError",
    "cmd_cluster",
    "node_resources",
    "render_launcher",
    "summary",
    "template_path",
    "to_yaml",
    "validate_launcher",
]
