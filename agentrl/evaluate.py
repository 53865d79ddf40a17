"""Evaluations: a training run's own (:func:`evaluate_run`, every ``eval.every``
iterations) and a saved checkpoint's, as its run evaluated it (``agentrl eval
checkpoint=...``, :func:`evaluate_checkpoint`). Both play through :func:`agentrl.play.play`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from agentrl.checkpoint import resolve_checkpoint, verify_checkpoint
from agentrl.config import ConfigError, to_train_config
from agentrl.play import (
    METRIC_PREFIX,
    MODES,
    Collector,
    Mode,
    acting_rule,
    episode_jobs,
    mode_stats,
    play,
)

if TYPE_CHECKING:
    from agentrl.config import TrainConfig
    from agentrl.metrics import MetricsLogger
    from agentrl.progress import Progress
    from agentrl.rollouts.worker import ActFn

_DOTTED = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")  # "pkg.module:Name"


def evaluate_run(
    cfg: TrainConfig,
    workers: Collector,
    act: ActFn | None,
    progress: Progress,
    run_dir: Path,
    iteration: int | None = None,
    log: MetricsLogger | None = None,
) -> dict[str, float]:
    """A training run's evaluation of the policy its ``workers`` hold: greedy (``eval/*``)
    and sampled (``eval_sample/*``, with the algorithm's acting rule ``act`` if it has one)
    episodes on the fixed eval seeds, and ``eval/policy_version`` (the learner's number of
    updates that played them).

    With an ``iteration``, the first ``logging.transcripts`` episodes of each mode are
    written to ``run_dir/transcripts/iter_NNNNNN.md`` and ``.jsonl``
    (:func:`agentrl.transcripts.write_transcripts`) and the Markdown goes to ``log``'s
    trackers' text tabs. ``progress`` draws the bars (and, enabled, says when it starts and
    how long it took)."""
    from agentrl.transcripts import write_transcripts

    jobs = episode_jobs(cfg.eval.episodes, cfg.eval.seed)
    modes: list[Mode] = [m for m, on in zip(MODES, (cfg.eval.greedy, cfg.eval.sample), strict=True) if on]
    start = time.perf_counter()
    say = progress.console.print
    if progress.enabled and jobs and modes:
        say(f"evaluating: {len(jobs)} episodes, {' and '.join(modes)} ...", highlight=False)
    shown = play(workers, jobs, cfg.eval.seed, modes, act=act, progress=progress)
    out = mode_stats(shown)
    eps = shown[modes[-1]] if modes else []
    if iteration is not None and cfg.logging.transcripts > 0 and shown:
        markdown = write_transcripts(
            run_dir / "transcripts",
            {m: e[: cfg.logging.transcripts] for m, e in shown.items()},
            iteration,
        )
        if log is not None:
            log.log_text(iteration, "transcripts", markdown)
    if eps:  # which policy was evaluated (the learner's number of updates)
        out["eval/policy_version"] = float(min(e.policy_version for e in eps))
    if progress.enabled and jobs and modes:
        say(f"evaluated in {time.perf_counter() - start:.0f} s", highlight=False)
    return out


def _code_references(node: Any, prefix: str = "") -> dict[str, Any]:
    """Every config value that would make agentrl import code: ``imports`` and dotted paths."""
    found: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}{k}"
            if key == "imports" and v:
                found[key] = v
            else:
                found.update(_code_references(v, key + "."))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found.update(_code_references(v, f"{prefix[:-1]}[{i}]."))
    elif isinstance(node, str) and _DOTTED.match(node):
        found[prefix[:-1]] = node
    return found


def checkpoint_config(manifest: dict[str, Any], overrides: list[str] | None = None) -> Any:
    """The config saved in a checkpoint's manifest, merged with the user's ``overrides``.

    A checkpoint is data, not code: a module to import (``imports``) or a dotted path
    (``pkg.module:Name``) is taken only from the user's own overrides. If the saved config
    names one the user did not pass, this raises :class:`ConfigError` naming the keys to
    pass (after reading them, if they trust the checkpoint).
    """
    saved = dict(manifest.get("config") or {})
    given = {o.partition("=")[0].lstrip("+") for o in overrides or []}
    unsafe = {
        k: v
        for k, v in _code_references(saved).items()
        if k not in given and k.split("[")[0] not in given
    }
    if unsafe:
        listed = ", ".join(f"{k}={v}" for k, v in sorted(unsafe.items()))
        raise ConfigError(
            f"the checkpoint's saved config names code to import ({listed}); agentrl never "
            "imports code named by a checkpoint. If you trust it, pass these yourself, e.g. "
            + " ".join(f"'{k}={_override_value(v)}'" for k, v in sorted(unsafe.items()))
        )
    saved["imports"] = []  # only the user's own, from the overrides below
    base: Any = OmegaConf.create(saved)
    if overrides:
        base = OmegaConf.merge(base, OmegaConf.from_dotlist(list(overrides)))
    return base


def _override_value(v: Any) -> str:
    return "[" + ",".join(str(x) for x in v) + "]" if isinstance(v, list) else str(v)


def evaluate_checkpoint(
    path: str, episodes: int | None = None, seed: int | None = None, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Evaluate the policy of the checkpoint at ``path`` in-process, as the run evaluated it.

    The run's saved config decides everything a training evaluation used: the env and its
    stop strings and reply length, the decoding constraint (``rollout.sampling.constraint``),
    the sampling temperature and top-k, the conversation settings, which modes to play
    (``eval.greedy``: ``eval/*``; ``eval.sample``: ``eval_sample/*``, with the algorithm's
    own acting rule if it has one, as CHAI's), the number of episodes (``eval.episodes``)
    and their seeds (``eval.seed``; the sampled mode draws with ``eval.seed + 1``). So the
    same checkpoint gives the numbers its run logged. ``overrides`` (``key=value``) change
    the saved config, e.g. ``env.id=...`` to evaluate on another env or ``eval.greedy=false``;
    ``episodes`` / ``seed`` override ``eval.episodes`` / ``eval.seed``.
    """
    from agentrl.learner import Learner
    from agentrl.rollouts.backend import sampling_config, worker_options
    from agentrl.rollouts.group import InlineWorkerGroup
    from agentrl.rollouts.worker import RolloutWorker
    from agentrl.validate import algorithm_section

    ckpt = resolve_checkpoint(path)
    manifest = verify_checkpoint(ckpt)
    cfg = to_train_config(checkpoint_config(manifest, overrides))
    constraint = cfg.rollout.sampling.constraint
    learner = Learner(
        cfg.model,
        algorithm_section(cfg),
        seed=cfg.seed,
        imports=list(cfg.imports),
        sampling_constraint=constraint,
        sampling_temperature=cfg.rollout.sampling.temperature,
    )
    learner.load(str(ckpt), weights_only=True)
    sampling = sampling_config(cfg)
    worker = RolloutWorker(
        cfg.env.id, cfg.env.kwargs, cfg.rollout.envs_per_worker, sampling, policy=learner.policy,
        **worker_options(cfg),
    )  # fmt: skip
    group = InlineWorkerGroup(worker, cfg.rollout.num_workers)  # the run's split of the jobs
    start = cfg.eval.seed if seed is None else seed
    n = cfg.eval.episodes if episodes is None else episodes
    modes: list[Mode] = [m for m, on in zip(MODES, (cfg.eval.greedy, cfg.eval.sample), strict=True) if on]
    if not modes:
        raise ValueError("nothing to evaluate: eval.greedy and eval.sample are both false")
    act = acting_rule(learner.algorithm, sampling)
    played = play(group, episode_jobs(n, start), start, modes, act=act)
    out: dict[str, Any] = {
        "checkpoint": str(ckpt),
        "step": manifest["step"],
        "env": cfg.env.id,
        "episodes": n,
        "seed": start,
        "modes": modes,
        "constraint": constraint,
        "temperature": cfg.rollout.sampling.temperature,
        "top_k": cfg.rollout.sampling.top_k,
        "stop": list(cfg.env.stop),
        **mode_stats(played),
    }
    out["examples"] = {
        mode: [
            json.loads(
                json.dumps(
                    {
                        "seed": e.seed,
                        "task": e.task,
                        "actions": [t.action for t in e.turns][:5],
                        "return": e.env_reward,
                        "success": e.success,
                    },
                    default=str,
                )
            )
            for e in eps[:3]
        ]
        for mode, eps in played.items()
    }
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A short, readable report of :func:`evaluate_checkpoint`'s result: one row per mode."""
    lines = [
        f"checkpoint {result['checkpoint']} (step {result['step']}), env {result['env']}, "
        f"{result['episodes']} episodes from seed {result['seed']}, constraint "
        f"{result['constraint'] or 'none'}, temperature {result['temperature']}, "
        f"top_k {result['top_k']}, stop {result['stop']}",
        f"{'mode':<8} {'success':>8} {'return':>8} {'turns':>6} {'invalid':>8} {'errors':>6}",
    ]
    for mode in result["modes"]:
        p = METRIC_PREFIX[mode]
        lines.append(
            f"{mode:<8} {result[p + '/success']:>8.3f} {result[p + '/return']:>8.3f} "
            f"{result[p + '/turns']:>6.2f} {result[p + '/invalid_actions']:>8.3f} "
            f"{result[p + '/errors']:>6.0f}"
        )
    return lines


def default_output(result: dict[str, Any]) -> Path:
    """Where ``agentrl eval`` writes its JSON unless told: ``<run>/eval/step_NNNNNN.json``
    next to the run's ``checkpoints`` folder (else next to the checkpoint)."""
    ckpt = Path(result["checkpoint"])
    base = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    return base / "eval" / f"step_{int(result['step']):06d}.json"
