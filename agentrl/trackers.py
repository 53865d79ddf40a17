"""Experiment trackers: where a run's metrics, config and transcripts go besides ``metrics.jsonl``.

:class:`Tracker` is the interface; :class:`TensorBoardTracker`, :class:`WandbTracker` and
:class:`MlflowTracker` implement it. :func:`build_trackers` makes the ones a run's
``logging`` section enables, and :func:`check_trackers` fails before any work when a
tracker's package is not installed, naming the extra that installs it.

W&B and MLflow work without a network by default: W&B in offline mode under
``run_dir/wandb/`` (``wandb sync`` uploads it later), MLflow in a SQLite store under
``run_dir/mlruns/``. A resumed run continues the same tracker runs (their ids are kept in
``run_dir/trackers.json``).
"""

from __future__ import annotations

import html
import importlib.util
import json
import logging
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agentrl.config import ConfigError, LoggingConfig

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient
    from torch.utils.tensorboard import SummaryWriter
    from wandb.sdk.wandb_run import Run as WandbRun

ConfigTree = Mapping[str, object]
"""A run's config as plain nested dicts (:func:`agentrl.config.to_plain`)."""

WANDB_MODES = ("offline", "online")
"""Values of ``logging.wandb_mode``."""

IDS_FILE = "trackers.json"
"""Per-run file (in ``run_dir``) with the W&B and MLflow run ids, so a resumed run continues them."""

_EXTRAS = {
    "tensorboard": (("tensorboard",), "tensorboard is a dependency of agentrl: reinstall it"),
    "wandb": (("wandb",), 'pip install -e ".[wandb]"'),
    "mlflow": (("mlflow", "sqlalchemy", "alembic"), 'pip install -e ".[mlflow]"'),
}


class Tracker(ABC):
    """One destination for a run's metrics: scalars per iteration, text, the config.

    ``step`` is always the training iteration (0 = the initial evaluation).
    """

    name: str = ""

    @abstractmethod
    def log_config(self, config: ConfigTree) -> None:
        """Record the run's whole config (called once per run attempt, before any metrics)."""

    @abstractmethod
    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record one iteration's scalar metrics (keys like ``train/return``)."""

    @abstractmethod
    def log_text(self, step: int, tag: str, text: str) -> None:
        """Record a Markdown document (``tag`` names it, e.g. ``transcripts``)."""

    @abstractmethod
    def close(self, failed: bool = False) -> None:
        """Flush and finish; ``failed`` marks a run that ended with an exception."""


class TensorBoardTracker(Tracker):
    """Event files under ``log_dir``: scalars, and text (transcripts, the config) in the text tab."""

    name = "tensorboard"

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer: SummaryWriter = SummaryWriter(str(log_dir))

    def log_config(self, config: ConfigTree) -> None:
        self.writer.add_text("config", "```json\n" + json.dumps(config, indent=2) + "\n```", 0)
        self.writer.flush()

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def log_text(self, step: int, tag: str, text: str) -> None:
        self.writer.add_text(tag, text, step)
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        self.writer.close()


class WandbTracker(Tracker):
    """A Weights & Biases run; in ``offline`` mode its files go to ``run_dir/wandb/``.

    Args:
        run_dir: the run folder (W&B's ``dir``; the run is named after it).
        project: the W&B project.
        mode: ``offline`` (no network; ``wandb sync run_dir/wandb/offline-run-*`` uploads
            later) or ``online``.
        run_id: continue this W&B run (a resumed agentrl run), else a new one.
    """

    name = "wandb"

    def __init__(self, run_dir: Path, project: str, mode: str, run_id: str | None = None):
        import wandb

        if mode not in WANDB_MODES:
            raise ConfigError(
                f"invalid W&B mode {mode!r} (logging.wandb_mode): expected one of "
                + ", ".join(WANDB_MODES)
            )
        self.run: WandbRun = wandb.init(
            project=project,
            name=run_dir.name,
            dir=str(run_dir),
            mode="offline" if mode == "offline" else "online",
            id=run_id,
            resume="allow" if run_id else None,
            # console="off": leave stdout alone (the progress bars and the table print there)
            settings=wandb.Settings(silent=True, console="off"),
        )
        self.run_id: str = self.run.id

    def log_config(self, config: ConfigTree) -> None:
        self.run.config.update(dict(config), allow_val_change=True)

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        self.run.log(dict(scalars), step=step)

    def log_text(self, step: int, tag: str, text: str) -> None:
        import wandb

        self.run.log({tag: wandb.Html(f"<pre>{html.escape(text)}</pre>")}, step=step)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class MlflowTracker(Tracker):
    """An MLflow run: scalars as metrics, the config as params (flattened, ``env.kwargs.high``)
    and as a ``config.json`` artifact, text as ``<tag>/iter_NNNNNN.md`` artifacts.

    Args:
        run_dir: the run folder (the run is named after it).
        experiment: the MLflow experiment (created if missing).
        tracking_uri: an MLflow tracking URI; ``None``: a SQLite store at
            ``run_dir/mlruns/mlflow.db`` with artifacts in ``run_dir/mlruns/artifacts``.
        run_id: continue this MLflow run (a resumed agentrl run), else a new one.
    """

    name = "mlflow"

    def __init__(
        self,
        run_dir: Path,
        experiment: str,
        tracking_uri: str | None = None,
        run_id: str | None = None,
    ):
        from mlflow.tracking import MlflowClient

        artifact_location: str | None = None
        if tracking_uri is None:
            store = (run_dir / "mlruns").resolve()
            store.mkdir(parents=True, exist_ok=True)
            tracking_uri = f"sqlite:///{store / 'mlflow.db'}"
            artifact_location = (store / "artifacts").as_uri()
            for noisy in ("alembic", "mlflow.store.db.utils"):  # "creating tables" at INFO
                logging.getLogger(noisy).setLevel(logging.WARNING)
        self.tracking_uri = tracking_uri
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking_uri)
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = (
            found.experiment_id
            if found is not None
            else self.client.create_experiment(experiment, artifact_location=artifact_location)
        )
        if run_id is None:
            run_id = self.client.create_run(experiment_id, run_name=run_dir.name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        self.run_id: str = run_id
        self._closed = False

    def log_config(self, config: ConfigTree) -> None:
        from mlflow.entities import Param

        # a resumed run keeps the params it started with (MLflow refuses changed values);
        # config.json always holds this attempt's whole config
        existing = self.client.get_run(self.run_id).data.params
        params = [
            Param(mlflow_key(k), v)
            for k, v in flatten_config(config).items()
            if mlflow_key(k) not in existing
        ]
        self.client.log_batch(self.run_id, params=params)
        self.client.log_dict(self.run_id, dict(config), "config.json")

    def log_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(mlflow_key(k), float(v), now, step) for k, v in scalars.items()]
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_text(self, step: int, tag: str, text: str) -> None:
        self.client.log_text(self.run_id, text, f"{tag}/iter_{step:06d}.md")

    def close(self, failed: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


_PARAM_MAX = 500
"""Longest MLflow param value written (older servers refuse longer ones; config.json has all)."""


def flatten_config(config: ConfigTree, prefix: str = "") -> dict[str, str]:
    """``{"env": {"kwargs": {"high": 16}}}`` -> ``{"env.kwargs.high": "16"}``: MLflow params.

    Lists and ``None`` are written as JSON; values longer than 500 characters are cut (with
    ``...``)."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_config(value, prefix=f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[name] = text if len(text) <= _PARAM_MAX else text[: _PARAM_MAX - 3] + "..."
    return out


def mlflow_key(key: str) -> str:
    """``key`` with the characters MLflow refuses in metric and param names replaced by ``_``
    (it allows letters, digits, ``_ - . / :`` and spaces)."""
    return re.sub(r"[^\w\-./: ]", "_", key)


def check_trackers(cfg: LoggingConfig) -> None:
    """Fail before any work when an enabled tracker's package is not installed.

    Raises:
        ConfigError: naming the key, the missing package and the install command.
    """
    enabled = {"tensorboard": cfg.tensorboard, "wandb": cfg.wandb, "mlflow": cfg.mlflow}
    for name, on in enabled.items():
        modules, install = _EXTRAS[name]
        if name == "mlflow" and cfg.mlflow_tracking_uri is not None:
            modules = ("mlflow",)  # a server of one's own: no local SQLite store needed
        missing = [m for m in modules if on and importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"logging.{name}=true needs the {', '.join(missing)} package(s), which are not "
                f"installed: {install} (or set logging.{name}=false)"
            )


def build_trackers(cfg: LoggingConfig, run_dir: Path) -> list[Tracker]:
    """The trackers ``cfg`` enables, for ``run_dir``; W&B and MLflow continue the runs named
    in ``run_dir/trackers.json`` (a resumed or restarted run), and their ids are saved there."""
    check_trackers(cfg)
    ids_path = run_dir / IDS_FILE
    ids: dict[str, str] = json.loads(ids_path.read_text()) if ids_path.exists() else {}
    trackers: list[Tracker] = []
    try:
        if cfg.tensorboard:
            trackers.append(TensorBoardTracker(run_dir / "tb"))
        if cfg.wandb:
            wandb_tracker = WandbTracker(run_dir, cfg.wandb_project, cfg.wandb_mode, ids.get("wandb"))
            ids["wandb"] = wandb_tracker.run_id
            trackers.append(wandb_tracker)
        if cfg.mlflow:
            mlflow_tracker = MlflowTracker(
                run_dir, cfg.mlflow_experiment, cfg.mlflow_tracking_uri, ids.get("mlflow")
            )
            ids["mlflow"] = mlflow_tracker.run_id
            trackers.append(mlflow_tracker)
    except BaseException:
        close_all(trackers, failed=True)
        raise
    if ids:
        ids_path.write_text(json.dumps(ids, indent=2))
    return trackers


def close_all(trackers: list[Tracker], failed: bool = False) -> None:
    """Close every tracker, even when one of them raises.

    After a successful run the first error is raised once all are closed; after a failed run
    (``failed``) errors are only reported on stderr, so they do not hide the original one.
    """
    first: BaseException | None = None
    for tracker in trackers:
        try:
            tracker.close(failed=failed)
        except Exception as e:  # keep closing the others
            print(f"agentrl: closing the {tracker.name} tracker failed: {e}", file=sys.stderr)
            first = first or e
    if first is not None and not failed:
        raise first
