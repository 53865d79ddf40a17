"""Scenarios: a sequence of tasks, trained one after another, evaluated on all of them.

A scenario (``configs/scenario/*.yaml``, selected with ``scenario=NAME``) lists tasks; each
names an env (id, kwargs) and optionally explicit task specs for the uniform curriculum,
and how many training iterations it gets. :func:`run_scenario` plays the blocks::

    block 0: test on every task (the starting policy)
    block 1: train task 1   block 2: test on every task
    block 3: train task 2   block 4: test on every task   ...

Each training block is an ordinary :class:`~agentrl.trainer.Trainer` run (the run's
algorithm, model and ``lifelong`` components) started with ``init_from`` = the previous
block's checkpoint, so the policy weights *and the lifelong state* (replay, EWC anchors and
Fisher, the task history) travel from task to task exactly as they do between two
``agentrl train`` runs; the trainer calls the components' task start and task end. Test
blocks play ``eval_episodes`` sampled episodes per task on fixed seeds.

Every block is logged with ``l2logger`` (``<run_dir>/l2logs/<scenario>-<time>/``): one
record per training iteration (``reward`` = mean episode return, ``success`` = success rate
of that iteration's episodes) and one per test episode, so ``l2metrics`` reads the logs
unchanged. ``ste=true`` also trains a single-task expert per task (no lifelong components,
same start) and logs it under ``<run_dir>/ste/`` for the STE-relative metrics.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrl.config import ConfigError, EnvConfig, TrainConfig, make_dataclass_config
from agentrl.play import Mode
from agentrl.types import Episode

if TYPE_CHECKING:
    from agentrl.policy import Policy

METRICS_COLUMNS = ["reward", "success"]


@dataclass
class ScenarioTask:
    """One task of a scenario.

    Attributes:
        name: a short lower-case name without ``_`` (l2metrics lower-cases names and cuts
            variant names at ``_``).
        env: overrides of the run's ``env`` section (``id``, ``kwargs``, ``max_new_tokens``).
        tasks: task specs for the uniform curriculum (empty: the env's own distribution).
        iterations: training iterations of this task's block.
    """

    name: str
    env: dict[str, Any] = field(default_factory=dict)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    iterations: int = 10


@dataclass
class ScenarioConfig:
    """A sequence of tasks (see the module docstring).

    Attributes:
        name: the scenario's name (its l2logger folder).
        tasks: the tasks, in training order.
        eval_episodes: test episodes per task in every test block.
        eval_seed: first reset seed of the test episodes (the same in every block).
        greedy_eval: argmax decoding in tests (default: temperature-1 sampling, fixed seed).
        complexity / difficulty / scenario_type: recorded in ``scenario_info.json``.
    """

    name: str = "scenario"
    tasks: list[ScenarioTask] = field(default_factory=list)
    eval_episodes: int = 32
    eval_seed: int = 2_000_000
    greedy_eval: bool = False
    complexity: str = "1-low"
    difficulty: str = "2-medium"
    scenario_type: str = "custom"
    boundaries: str = "given"
    """``given``: each task's start and end reach the components (consolidation at every
    task end); ``detected``: the components are not told, a ``task_change`` component must
    find the boundaries (the first task's start is the only one given)."""

    def __post_init__(self) -> None:
        if self.boundaries not in ("given", "detected"):
            raise ValueError(
                f"scenario.boundaries must be 'given' or 'detected', got {self.boundaries!r}"
            )
        if not self.tasks:
            raise ValueError("a scenario needs at least one task (scenario.tasks)")
        names = [t.name for t in self.tasks]
        for n in names:
            if not n or n != n.lower() or "_" in n:
                raise ValueError(
                    f"scenario task name {n!r} must be non-empty, lower case, without '_'"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"scenario task names must be unique, got {names}")


def scenario_config(cfg: TrainConfig) -> ScenarioConfig:
    """The run's ``scenario`` section as a validated :class:`ScenarioConfig`."""
    if not cfg.scenario:
        raise ConfigError(
            "no scenario: pass scenario=NAME (a file in configs/scenario/) or a scenario section"
        )
    sc: ScenarioConfig = make_dataclass_config(ScenarioConfig, dict(cfg.scenario), where="scenario")
    return sc


def block_config(
    cfg: TrainConfig,
    task: ScenarioTask,
    run_dir: Path,
    init_from: str | None,
    seed: int,
    lifelong: bool = True,
) -> TrainConfig:
    """The :class:`TrainConfig` of one training block."""
    env = dataclasses.replace(cfg.env, **task.env) if task.env else cfg.env
    env = EnvConfig(id=env.id, kwargs=dict(env.kwargs), max_new_tokens=env.max_new_tokens)
    curriculum = (
        {"name": "uniform", "tasks": list(task.tasks)} if task.tasks else dict(cfg.curriculum)
    )
    return dataclasses.replace(
        cfg,
        seed=seed,
        iterations=task.iterations,
        run_dir=str(run_dir),
        resume=None,
        init_from=init_from,
        env=env,
        curriculum=curriculum,
        eval=dataclasses.replace(cfg.eval, every=0, greedy=False, sample=False),
        checkpoint=dataclasses.replace(cfg.checkpoint, every=0, keep=1),
        logging=dataclasses.replace(cfg.logging, plot=False, tensorboard=False),
        lifelong=list(cfg.lifelong) if lifelong else [],
        scenario={},
    )


def evaluate_policy(
    policy: Policy,
    env: EnvConfig,
    tasks: list[dict[str, Any]],
    episodes: int,
    seed: int,
    greedy: bool,
    num_envs: int = 16,
) -> list[Episode]:
    """Play ``episodes`` test episodes (task specs cycled) on env seeds ``seed, seed + 1, ...``
    with :func:`agentrl.play.play`: greedy, or sampled at temperature 1 (drawing with
    ``seed + 1``, as every evaluation's sampled mode does)."""
    from agentrl.play import episode_jobs, play
    from agentrl.policy import SamplingConfig
    from agentrl.rollouts.worker import RolloutWorker

    sampling = SamplingConfig(temperature=1.0, max_new_tokens=env.max_new_tokens)
    worker = RolloutWorker(
        env.id, dict(env.kwargs), min(num_envs, episodes), sampling, policy=policy
    )
    mode: Mode = "greedy" if greedy else "sampled"
    return play(worker, episode_jobs(episodes, seed, tasks), seed, [mode])[mode]


def _task_env(cfg: TrainConfig, task: ScenarioTask) -> EnvConfig:
    env = dataclasses.replace(cfg.env, **task.env) if task.env else cfg.env
    return EnvConfig(id=env.id, kwargs=dict(env.kwargs), max_new_tokens=env.max_new_tokens)


class BlockLogger:
    """Writes blocks in the l2logger format (one ``DataLogger`` per scenario folder)."""

    def __init__(
        self, base: Path, name: str, sc: ScenarioConfig, extra_info: dict[str, Any] | None = None
    ):
        try:
            from l2logger import l2logger
        except ImportError as e:
            raise ImportError("scenario logs need l2logger: pip install 'agentrl[lifelong]'") from e

        info = {
            "complexity": sc.complexity,
            "difficulty": sc.difficulty,
            "scenario_type": sc.scenario_type,
            "tasks": [t.name for t in sc.tasks],
            **(extra_info or {}),
        }
        base.mkdir(parents=True, exist_ok=True)
        self.logger = l2logger.DataLogger(
            str(base), name, {"metrics_columns": METRICS_COLUMNS}, info
        )
        self.dir = Path(self.logger.scenario_dir)
        self.exp = 0

    def record(
        self, block_num: int, block_type: str, task: ScenarioTask, reward: float, success: float
    ) -> None:
        self.logger.log_record(
            {
                "block_num": block_num,
                "block_type": block_type,
                "worker_id": "agentrl",
                "task_name": task.name,
                "task_params": {"env": task.env.get("id", ""), **task.env.get("kwargs", {})},
                "exp_num": self.exp,
                "reward": float(reward),
                "success": float(success),
            }
        )
        self.exp += 1

    def train_block(self, block_num: int, task: ScenarioTask, run_dir: Path) -> None:
        from agentrl.metrics import read_metrics

        for row in read_metrics(run_dir / "metrics.jsonl"):
            if "train/return" in row:
                self.record(block_num, "train", task, row["train/return"], row["train/success"])

    def close(self) -> None:
        self.logger.close()


def _load_policy(cfg: TrainConfig, checkpoint: str | None) -> Any:
    from agentrl.learner import seed_everything
    from agentrl.policy import Policy

    seed_everything(cfg.seed)
    if checkpoint is None:
        return Policy.from_config(cfg.model)
    return Policy.load(Path(checkpoint) / "policy", model_config=cfg.model)


def _position(sc: ScenarioConfig, checkpoint: str | None) -> int:
    """How many of ``sc``'s tasks the checkpoint's lifelong history has already finished."""
    from agentrl.lifelong.base import read_lifelong_state

    if checkpoint is None:
        return 0
    state = read_lifelong_state(checkpoint) or {}
    done = [h for h in state.get("history", []) if h.get("scenario") == sc.name]
    return int(done[-1]["position"]) + 1 if done else 0


def run_scenario(cfg: TrainConfig, ste: bool = False, console: bool = True) -> dict[str, Any]:
    """Play the scenario in ``cfg.scenario`` (see the module docstring); returns a summary."""
    from agentrl.checkpoint import resolve_checkpoint, verify_checkpoint
    from agentrl.trainer import Trainer

    sc = scenario_config(cfg)
    if cfg.lifelong:  # fail before any block runs
        from agentrl.lifelong.base import validate_lifelong

        validate_lifelong(list(cfg.lifelong), cfg.algorithm["name"])
    run_dir = Path(cfg.run_dir or f"runs/lifelong-{sc.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.mkdir(parents=True, exist_ok=True)
    start_ckpt: str | None = None
    if cfg.init_from:
        start_ckpt = str(resolve_checkpoint(cfg.init_from))
        verify_checkpoint(start_ckpt)
    position = _position(sc, start_ckpt)
    if position >= len(sc.tasks):
        raise ConfigError(
            f"the checkpoint {start_ckpt} already finished every task of scenario {sc.name!r}"
        )
    say = print if console else (lambda *a, **k: None)
    say(
        f"scenario {sc.name}: tasks {[t.name for t in sc.tasks]}, starting at task {position} "
        f"({sc.tasks[position].name}), lifelong={list(cfg.lifelong)}, run dir {run_dir}"
    )
    log = BlockLogger(
        run_dir / "l2logs",
        sc.name,
        sc,
        {"lifelong": [str(x) for x in cfg.lifelong], "algorithm": cfg.algorithm["name"]},
    )
    summary: dict[str, Any] = {
        "scenario": sc.name,
        "run_dir": str(run_dir),
        "l2logs": str(log.dir),
        "blocks": [],
    }
    block = 0

    def test_block(checkpoint: str | None) -> dict[str, float]:
        nonlocal block
        policy = _load_policy(cfg, checkpoint)
        out = {}
        for task in sc.tasks:
            eps = evaluate_policy(
                policy,
                _task_env(cfg, task),
                list(task.tasks),
                sc.eval_episodes,
                sc.eval_seed,
                sc.greedy_eval,
            )
            for e in eps:
                log.record(block, "test", task, e.env_reward, float(e.success))
            out[task.name] = sum(e.success for e in eps) / max(len(eps), 1)
        summary["blocks"].append({"block": block, "type": "test", "success": out})
        say(f"  block {block} test: " + ", ".join(f"{k} {v:.2f}" for k, v in out.items()))
        block += 1
        return out

    checkpoint = start_ckpt
    test_block(checkpoint)
    for k in range(position, len(sc.tasks)):
        task = sc.tasks[k]
        block_dir = run_dir / "blocks" / f"{block:02d}-train-{task.name}"
        bcfg = block_config(cfg, task, block_dir, checkpoint, seed=cfg.seed + 1000 * (k + 1))
        trainer = Trainer(
            bcfg,
            console=False,
            lifelong_task={
                "name": task.name,
                "scenario": sc.name,
                "position": k,
                "given": sc.boundaries == "given",
            },
        )
        result = trainer.run()
        checkpoint = result["checkpoint"]
        log.train_block(block, task, block_dir)
        summary["blocks"].append(
            {"block": block, "type": "train", "task": task.name, "checkpoint": checkpoint}
        )
        say(f"  block {block} train {task.name}: {task.iterations} iterations -> {checkpoint}")
        block += 1
        test_block(checkpoint)
    log.close()
    if ste:
        summary["ste"] = run_ste(cfg, sc, run_dir, start_ckpt, say)
    summary["checkpoint"] = checkpoint
    (run_dir / "scenario_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def run_ste(
    cfg: TrainConfig, sc: ScenarioConfig, run_dir: Path, start_ckpt: str | None, say: Any
) -> dict[str, str]:
    """Train a single-task expert per task (same start, no lifelong components), l2logger-logged."""
    from agentrl.trainer import Trainer

    out = {}
    for k, task in enumerate(sc.tasks):
        block_dir = run_dir / "ste" / "runs" / task.name
        bcfg = block_config(
            cfg, task, block_dir, start_ckpt, seed=cfg.seed + 1000 * (k + 1), lifelong=False
        )
        Trainer(bcfg, console=False).run()
        log = BlockLogger(run_dir / "ste" / "l2logs", f"ste-{task.name}", sc)
        log.train_block(0, task, block_dir)
        log.close()
        out[task.name] = str(log.dir)
        say(f"  single-task expert {task.name}: {log.dir}")
    return out
