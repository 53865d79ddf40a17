"""Typed run configuration.

Hydra composes the YAML groups in ``configs/`` (shipped inside the package as
``agentrl.configs``); :func:`load_config` then validates the result against the
dataclasses below, so a wrong key or a value of the wrong type fails before any work with
a message that names it. Component-specific sections (``algorithm``, ``reward``,
``curriculum``) are validated against the ``Config`` dataclass of the registered component
when it is built (:func:`make_dataclass_config`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from agentrl.parallel import STRATEGIES
from agentrl.policy.models import ModelConfig


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
"""Ray placement-group strategies for ``cluster.placement_strategy``."""


@dataclass
class EnvConfig:
    """Which Gymnasium env to play and how."""

    id: str = "agentrl/TwentyQuestions-v0"
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_new_tokens: int = 24
    """Longest utterance the policy may produce in one turn."""
    stop: list[str] = field(default_factory=lambda: ["\n"])
    """A reply ends at the first of these strings (or at the model's end-of-turn/eos token);
    ``[]`` allows multi-line replies (code, JSON, tool calls) ended by end-of-turn only."""
    conversation: bool = False
    """Play a transcript env as a conversation (its ``info["message"]`` each turn, the
    policy keeping the history; :mod:`agentrl.envs.conversation`). Envs that are
    conversational by nature (``TextEnv.conversational``) are conversations either way."""


@dataclass
class SamplingSection:
    temperature: float = 1.0
    top_k: int = 0
    constraint: str | None = None
    """Constrained decoding (:mod:`agentrl.policy.constraints`), e.g. ``toolchain``: only
    valid plans are sampled; log-probs are those of the constrained distribution."""


@dataclass
class RolloutConfig:
    """How experience is collected each iteration."""

    num_workers: int = 2
    envs_per_worker: int = 8
    episodes_per_iter: int = 32
    num_cpus_per_worker: float = 1.0
    num_gpus_per_worker: float = 0.0
    """GPUs of each rollout worker's placement bundle (its inference copy of the policy)."""
    sampling: SamplingSection = field(default_factory=SamplingSection)
    keep_kv_cache: bool = True
    """Keep each conversation's KV cache across turns (prefill only the new tokens)."""
    max_context_tokens: int | None = None
    """A conversation ends (truncated) before a turn whose prompt plus ``max_new_tokens``
    exceeds this; default the model's ``max_position_embeddings``."""
    async_collection: bool = False
    """Collect iteration ``i+1`` while the learner updates on iteration ``i`` (for
    off-policy learners such as ArCHer): the episodes are then one policy version old,
    logged as ``async/staleness``. Overlaps only with Ray workers; inline runs produce the
    same episodes sequentially."""
    max_staleness: int = 1
    """With ``async_collection``: how many iterations ahead collections are kept launched,
    so the episodes an update trains on are this many policy versions old (at most);
    agentrl/pipeline.py, docs/scaling.md. Measured to leave ArCHer's learning unchanged. PPO
    with a value function (decoupled PPO for the stale turns) lost final success there: stale
    batches made its large single steps more common (watch ``ppo/approx_kl_max``), and at a
    learning rate small enough to avoid them it did not learn in the budget measured."""


@dataclass
class EvalConfig:
    """Periodic evaluation on a fixed set of seeds.

    ``greedy`` logs ``eval/*`` with argmax decoding; ``sample`` logs ``eval_sample/*`` with
    temperature-1 sampling under a fixed RNG seed (so it is reproducible too). A stochastic
    policy's greedy decoding can loop (ask the same question again) even when its sampled
    behaviour is good, so both views are useful.
    """

    every: int = 5
    episodes: int = 32
    seed: int = 1_000_000
    greedy: bool = True
    sample: bool = True


@dataclass
class WarmStartConfig:
    """Behaviour cloning of a scripted policy with TRL's SFTTrainer before RL."""

    enabled: bool = False
    policy: str = "mix"
    epsilon: float = 0.5
    episodes: int = 200
    epochs: float = 2.0
    lr: float = 1e-3
    batch_size: int = 16


@dataclass
class CheckpointConfig:
    every: int = 5
    keep: int = 3


@dataclass
class LauncherConfig:
    """``agentrl cluster render``: the Ray cluster-launcher YAML (``ray up``) for this run
    (docs/cluster.md)."""

    cluster_name: str = "agentrl"
    workers_per_node: int = 1
    """Rollout workers per rollout node: the rollout node type gets this many workers'
    CPUs/GPUs, and ``ceil(num_workers / workers_per_node)`` such nodes."""
    template: str | None = None
    """A launcher YAML of your own to fill in (provider, images, setup); default: the shipped
    ``configs/cluster/launcher/ray_up.yaml``."""


@dataclass
class ClusterConfig:
    """Where the run executes: ``inline`` (one process), ``local`` (embedded Ray), ``address``
    (a running cluster: ``HOST:PORT``, ``ray://HOST:10001``, ``auto`` or ``RAY_ADDRESS``).

    With Ray, the learner and each rollout worker get one bundle of a placement group
    (``placement_strategy``: PACK, SPREAD, STRICT_PACK or STRICT_SPREAD); a group the
    cluster cannot place within ``placement_timeout_s`` fails naming its bundles. The
    embedded cluster's dashboard is off unless ``dashboard``, and binds ``dashboard_host``.

    ``learner_workers > 1`` makes the learner a data-parallel group of that many Ray actors,
    each with ``learner_num_cpus``/``learner_num_gpus``, in one ``torch.distributed`` process
    group (NCCL on GPUs, gloo on CPUs): ``learner_strategy`` ``ddp`` replicates the trained
    parameters, ``fsdp`` shards a fully fine-tuned model; each rank cuts its share of a
    minibatch into ``grad_accum`` micro-batches (:mod:`agentrl.parallel`, docs/cluster.md).
    """

    mode: str = "local"
    address: str | None = None
    num_cpus: int | None = None
    learner_num_gpus: float = 0.0
    learner_num_cpus: float = 1.0
    learner_workers: int = 1
    learner_strategy: str = "ddp"
    grad_accum: int = 1
    placement_strategy: str = "PACK"
    placement_timeout_s: float = 120.0
    dashboard: bool = False
    dashboard_host: str = "127.0.0.1"
    launcher: LauncherConfig = field(default_factory=LauncherConfig)


@dataclass
class FaultConfig:
    """What a run survives without losing data, and how often (docs/faults.md).

    Attributes:
        step_timeout_s: an env ``reset``/``step`` that takes longer than this ends only its
            episode (truncated, ``error`` set) and the env is rebuilt; 0 disables the timeout.
        worker_retries: how many times the episodes of a rollout worker that died are
            collected again (on the restarted actor) before the run stops.
        learner_restarts: how many times a run whose learner actor died resumes on its own
            from the last intact checkpoint.
        max_nonfinite_iters: an update whose loss or gradient norm is NaN/inf is skipped (the
            weights stay as they were); after this many consecutive iterations with skipped
            steps the run stops, with the last good checkpoint intact.
    """

    step_timeout_s: float = 300.0
    worker_retries: int = 3
    learner_restarts: int = 2
    max_nonfinite_iters: int = 3


@dataclass
class LoggingConfig:
    """Where a run's metrics, transcripts and progress go (docs/logging.md).

    ``metrics.jsonl`` is always written; every enabled tracker (TensorBoard, W&B, MLflow)
    gets the same scalars per iteration, the config and the transcripts
    (:mod:`agentrl.trackers`).
    """

    tensorboard: bool = True
    """TensorBoard event files in ``run_dir/tb/`` (scalars; transcripts in the text tab)."""
    plot: bool = True
    """``run_dir/learning_curve.png`` at the end."""
    progress: bool = True
    """Progress bars (an interactive console) or occasional progress lines, and the table."""
    transcripts: int = 4
    """Eval episodes per mode written to ``run_dir/transcripts/iter_NNNNNN.md`` and ``.jsonl``
    at every evaluation (0 = none)."""
    wandb: bool = False
    """Log to Weights & Biases (``pip install -e ".[wandb]"``)."""
    wandb_project: str = "agentrl"
    wandb_mode: str = "offline"
    """``offline``: files under ``run_dir/wandb/``, no network (``wandb sync`` uploads them);
    ``online``: log in with ``wandb login`` first."""
    mlflow: bool = False
    """Log to MLflow (``pip install -e ".[mlflow]"``)."""
    mlflow_experiment: str = "agentrl"
    mlflow_tracking_uri: str | None = None
    """An MLflow tracking URI (e.g. ``http://host:5000``); default: a SQLite store in
    ``run_dir/mlruns/`` (``mlflow ui --backend-store-uri sqlite:///run_dir/mlruns/mlflow.db``)."""


@dataclass
class TrainConfig:
    """The whole run. Sections match the config groups in ``configs/``."""

    seed: int = 0
    iterations: int = 20
    run_dir: str | None = None
    resume: str | None = None
    init_from: str | None = None
    data: str | None = None
    """A JSONL file of episodes (one ``Episode.to_dict()`` per line) for offline algorithms
    (``archer_offline``): sets ``algorithm.dataset``, and no rollouts are collected."""
    imports: list[str] = field(default_factory=list)
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algorithm: dict[str, Any] = field(default_factory=lambda: {"name": "ppo"})
    reward: dict[str, Any] = field(default_factory=lambda: {"name": "env"})
    curriculum: dict[str, Any] = field(default_factory=lambda: {"name": "uniform"})
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    warm_start: WarmStartConfig = field(default_factory=WarmStartConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    fault: FaultConfig = field(default_factory=FaultConfig)
    lifelong: list[Any] = field(default_factory=list)
    """Lifelong components, in hook order: names or ``{name: ..., **options}`` (docs/lifelong.md)."""
    scenario: dict[str, Any] = field(default_factory=dict)
    """A task sequence for ``agentrl lifelong run`` (``scenario=NAME``; agentrl.lifelong.scenario)."""

    def __post_init__(self) -> None:
        _check(self.iterations >= 0, "iterations", self.iterations, "an integer >= 0")
        _check(self.rollout.num_workers >= 1, "rollout.num_workers", self.rollout.num_workers, ">= 1")
        _check(self.rollout.envs_per_worker >= 1, "rollout.envs_per_worker", self.rollout.envs_per_worker, ">= 1")
        _check(self.rollout.episodes_per_iter >= 1, "rollout.episodes_per_iter", self.rollout.episodes_per_iter, ">= 1")
        _check(self.rollout.max_staleness >= 1, "rollout.max_staleness", self.rollout.max_staleness, ">= 1 (iterations collected ahead with rollout.async_collection=true)")
        _check(self.rollout.sampling.temperature > 0, "rollout.sampling.temperature", self.rollout.sampling.temperature, "> 0")
        _check(self.cluster.mode in ("inline", "local", "address"), "cluster.mode", self.cluster.mode, "one of inline, local, address")
        _check(self.cluster.placement_strategy in PLACEMENT_STRATEGIES, "cluster.placement_strategy", self.cluster.placement_strategy, "one of " + ", ".join(PLACEMENT_STRATEGIES))
        _check(self.cluster.placement_timeout_s > 0, "cluster.placement_timeout_s", self.cluster.placement_timeout_s, "> 0")
        _check(self.rollout.num_cpus_per_worker >= 0 and self.rollout.num_gpus_per_worker >= 0 and self.rollout.num_cpus_per_worker + self.rollout.num_gpus_per_worker > 0, "rollout.num_cpus_per_worker/num_gpus_per_worker", (self.rollout.num_cpus_per_worker, self.rollout.num_gpus_per_worker), ">= 0 and not both 0 (a placement bundle needs a resource)")
        _check(self.cluster.learner_num_cpus >= 0 and self.cluster.learner_num_gpus >= 0 and self.cluster.learner_num_cpus + self.cluster.learner_num_gpus > 0, "cluster.learner_num_cpus/learner_num_gpus", (self.cluster.learner_num_cpus, self.cluster.learner_num_gpus), ">= 0 and not both 0 (a placement bundle needs a resource)")
        _check(self.cluster.learner_workers >= 1, "cluster.learner_workers", self.cluster.learner_workers, ">= 1")
        _check(self.cluster.learner_strategy in STRATEGIES, "cluster.learner_strategy", self.cluster.learner_strategy, "one of " + ", ".join(STRATEGIES))
        _check(self.cluster.grad_accum >= 1, "cluster.grad_accum", self.cluster.grad_accum, ">= 1")
        _check(self.cluster.launcher.workers_per_node >= 1, "cluster.launcher.workers_per_node", self.cluster.launcher.workers_per_node, ">= 1")
        _check(self.checkpoint.keep >= 1, "checkpoint.keep", self.checkpoint.keep, ">= 1")
        _check(self.checkpoint.every >= 0, "checkpoint.every", self.checkpoint.every, ">= 0 (0 = only at the end)")
        _check(self.fault.step_timeout_s >= 0, "fault.step_timeout_s", self.fault.step_timeout_s, ">= 0 (0 = no timeout)")
        _check(self.fault.worker_retries >= 0, "fault.worker_retries", self.fault.worker_retries, ">= 0")
        _check(self.fault.learner_restarts >= 0, "fault.learner_restarts", self.fault.learner_restarts, ">= 0")
        _check(self.fault.max_nonfinite_iters >= 1, "fault.max_nonfinite_iters", self.fault.max_nonfinite_iters, ">= 1")
        _check(self.eval.every >= 0, "eval.every", self.eval.every, ">= 0 (0 = only at the end)")
        _check(self.logging.transcripts >= 0, "logging.transcripts", self.logging.transcripts, ">= 0 (0 = none)")
        _check(self.logging.wandb_mode in ("offline", "online"), "logging.wandb_mode", self.logging.wandb_mode, "one of offline, online")
        _check(0.0 <= self.warm_start.epsilon <= 1.0, "warm_start.epsilon", self.warm_start.epsilon, "in [0, 1]")
        for section in ("algorithm", "reward", "curriculum"):
            value = getattr(self, section)
            _check(isinstance(value.get("name"), str), f"{section}.name", value.get("name"), "a registry name")


def _check(ok: bool, key: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"invalid config value {key}={value!r}: expected {expected}")


def config_dir() -> Path:
    """The folder holding the shipped Hydra config groups (works for wheel and editable installs)."""
    return Path(str(resources.files("agentrl.configs")))


def compose(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose the shipped configs with Hydra command-line style ``overrides``."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides or []))
    except HydraException as e:
        raise ConfigError(str(e).split("\nConfig search path:")[0].rstrip()) from e
    finally:
        GlobalHydra.instance().clear()


def to_train_config(cfg: DictConfig | dict[str, Any]) -> TrainConfig:
    """Validate a composed config against :class:`TrainConfig`."""
    try:
        schema = OmegaConf.structured(TrainConfig)
        merged = OmegaConf.merge(schema, cfg)
        obj = OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"invalid config: {_omegaconf_message(e)}") from e
    except TypeError as e:
        raise ConfigError(f"invalid config: {e}") from e
    assert isinstance(obj, TrainConfig)
    return obj


def load_config(overrides: list[str] | None = None) -> TrainConfig:
    """Compose + validate: the single entry point used by the CLI and the tests."""
    return to_train_config(compose(overrides))


def make_dataclass_config(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``values``, naming bad keys and values.

    A ``name`` key is a section's registry name (``algorithm.name=archer``) and is dropped,
    unless ``cls`` has a ``name`` field of its own (a model's name, a scenario's), which then
    gets it.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in dict(values).items() if k != "name" or "name" in names}
    unknown = sorted(set(values) - names)
    if unknown:
        hint = ""
        section = where.split("=")[0] if "=" in where else ""
        if section.isidentifier():  # e.g. a preset's PPO keys left over after algorithm=other
            drop = " ".join(f"'~{section}.{k}'" for k in unknown)
            hint = f" (a key another choice needs, e.g. from an experiment preset, can be dropped with {drop})"
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} for {where}; valid keys: {', '.join(sorted(names))}{hint}"
        )
    try:
        merged = OmegaConf.merge(OmegaConf.structured(cls), values)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as e:
        raise ConfigError(f"invalid config for {where}: {_omegaconf_message(e)}") from e
    except (TypeError, ValueError) as e:
        raise ConfigError(f"invalid config for {where}: {e}") from e


def _omegaconf_message(e: OmegaConfBaseException) -> str:
    msg = str(e).splitlines()[0]
    key = getattr(e, "full_key", None)
    return f"{msg} (key: {key})" if key and key not in msg else msg


def to_plain(obj: Any) -> Any:
    """A dataclass config as plain JSON-able dicts (for manifests and logs)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    return obj
