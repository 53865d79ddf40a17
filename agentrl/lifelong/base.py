"""The lifelong-learning component API and the stack that composes components.

A *lifelong component* (L2RLCF, arXiv 2212.04603) is an independently written piece of a
lifelong learner -- experience replay, EWC, a task-change detector, wake/sleep
consolidation -- that joins one agent through optional hooks. Several components compose
in one run (``lifelong=[replay,online_ewc]``); a :class:`LifelongStack` owns them, lives in
the learner (next to the policy), and calls their hooks.

Hooks (methods of :class:`LifelongComponent`, each a no-op by default; a component
overrides only what it needs):

=========================================  ===========================================================
``on_task_start(task)``                    a task (scenario block) begins; ``task`` is a dict with ``name``
``on_task_end(task)``                      the task ends (given by the scenario, or detected)
``detect_task_change(episodes) -> bool``   True when the incoming episodes look like a new task
``on_episode(episode)``                    every freshly collected episode, after the update
``augment_batch(episodes) -> episodes``    change what the algorithm trains on (e.g. mix in replay)
``extra_loss(policy) -> Tensor | None``    a term the algorithm adds to its loss at every step
``consolidate(learner) -> dict | None``    after ``on_task_end``: Fisher/anchors, sleep phases, ...
``update_stats() -> dict``                 after each update: metrics, logged as ``lifelong/<name>/<key>``
``state_dict() / load_state_dict(sd)``     saved in checkpoints (``lifelong/state.pt``), carried by
                                           ``init_from`` into a new run
=========================================  ===========================================================

Order (documented, tested in ``tests/test_lifelong_api.py``): every hook runs over the
components in the order they are listed in the config. In one learner update:

1. ``detect_task_change`` of each component; if any says True, the stack ends the task
   (every ``on_task_end``, then every ``consolidate``) and starts a new one (every
   ``on_task_start``) -- before the update, so consolidation sees the old task's data only;
2. ``augment_batch`` chained: the output of component *i* is the input of *i+1*;
3. the algorithm's update, whose loss adds the sum of every ``extra_loss`` (see below);
4. ``on_episode`` for every new episode (not the replayed ones), component by component;
5. ``update_stats`` of each component: its metrics of this update.

At a given task boundary the stack calls every ``on_task_end`` first, then every
``consolidate``. ``augment_batch`` must not mutate its input (return a new list).

How the extra loss reaches the algorithm: the learner sets the attribute
``algorithm.extra_loss_fn`` (a ``callable(policy) -> Tensor | None``) on algorithms that
declare ``supports_extra_loss = True`` (PPO, filtered BC, ArCHer's actor); they add its
value to the loss of every optimiser step on the policy. A component that overrides
``extra_loss`` adds a loss term (:meth:`LifelongComponent.adds_loss`); a run that combines
one with an algorithm without that support fails at build time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from agentrl.types import Episode

HOOKS = (
    "on_task_start",
    "on_task_end",
    "detect_task_change",
    "on_episode",
    "augment_batch",
    "extra_loss",
    "consolidate",
    "update_stats",
    "state_dict",
    "load_state_dict",
)
"""The hooks of :class:`LifelongComponent`, in the table's order."""


class LifelongComponent:
    """The base class of a lifelong component: every hook (the module docstring's table) is a
    no-op here; a component overrides the ones it needs.

    Register a subclass with ``@LIFELONG.register("name")`` (or name it by dotted path
    ``pkg.module:Class``). Its ``Config`` is the dataclass of its options (``None``: it
    takes none), and it is built as ``Cls(config, seed=seed)``. A component with state
    overrides ``state_dict`` / ``load_state_dict`` (saved in checkpoints, carried by
    ``init_from``).
    """

    Config: ClassVar[type | None] = None

    def __init__(self, config: Any = None, seed: int = 0) -> None:
        """``config``: an instance of ``Config`` (``None`` when it takes no options);
        ``seed``: the component's own seed."""

    def on_task_start(self, task: dict[str, Any]) -> None:
        """A task begins; ``task`` is a dict with at least ``name``."""

    def on_task_end(self, task: dict[str, Any]) -> None:
        """The task ends (given by the scenario, or detected)."""

    def detect_task_change(self, episodes: Sequence[Episode]) -> bool:
        """True when the incoming episodes look like a new task."""
        return False

    def on_episode(self, episode: Episode) -> None:
        """Every freshly collected episode, after the update (not replayed ones)."""

    def augment_batch(self, episodes: Sequence[Episode]) -> list[Episode]:
        """What the algorithm trains on (must not mutate ``episodes``)."""
        return list(episodes)

    def extra_loss(self, policy: Any) -> torch.Tensor | None:
        """A term the algorithm adds to its loss at every step on the policy."""
        return None

    def consolidate(self, learner: Any) -> dict[str, float] | None:
        """After every ``on_task_end``: Fisher/anchors, sleep phases; returns metrics."""
        return None

    def update_stats(self) -> dict[str, float]:
        """This update's metrics, logged as ``lifelong/<name>/<key>``."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """The component's state for checkpoints (``{}``: stateless)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""

    @classmethod
    def adds_loss(cls) -> bool:
        """Whether this component adds a loss term (it overrides :meth:`extra_loss`)."""
        return cls.extra_loss is not LifelongComponent.extra_loss


def _plain(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if isinstance(v, str | int | float | bool)}


def _entry_name(entry: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(entry, str):
        return entry, {}
    if isinstance(entry, dict) and isinstance(entry.get("name"), str):
        return entry["name"], {k: v for k, v in entry.items() if k != "name"}
    raise ValueError(
        f"a lifelong entry must be a registry name or a dict with 'name', got {entry!r} "
        "(e.g. lifelong=[replay,online_ewc] or lifelong=[{name:replay,capacity:500}])"
    )


def build_component(entry: Any, seed: int = 0) -> tuple[str, LifelongComponent]:
    """Build one component from ``"name"`` or ``{"name": ..., **config}``; a registered
    class that is not a :class:`LifelongComponent` is refused by name."""
    from agentrl.config import make_dataclass_config
    from agentrl.registry import LIFELONG

    name, values = _entry_name(entry)
    cls: Any = LIFELONG.get(name)
    if not (isinstance(cls, type) and issubclass(cls, LifelongComponent)):
        raise ValueError(
            f"lifelong component {name!r} is {cls!r}, not a subclass of "
            "agentrl.lifelong.LifelongComponent (subclass it and override the hooks you need)"
        )
    config_cls = cls.Config
    if config_cls is None:
        if values:
            raise ValueError(f"lifelong component {name!r} takes no options, got {sorted(values)}")
        return name, cls(None, seed=seed)
    config = make_dataclass_config(config_cls, values, where=f"lifelong={name}")
    return name, cls(config, seed=seed)


class LifelongStack:
    """The components of one run, in order, and the bookkeeping of tasks.

    Args:
        components: ``(name, component)`` pairs in the order their hooks run.

    Attributes:
        tasks: names of the tasks started so far, in order.
        history: the task dicts started so far (JSON values only; a scenario's tasks carry
            ``scenario`` and ``position``: the scenario position ``init_from`` carries).
        current: the task in progress (``None`` between tasks).
        detected_changes: how many task changes detectors reported.
    """

    def __init__(self, components: Sequence[tuple[str, LifelongComponent]] = ()):
        names = [n for n, _ in components]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"lifelong component(s) listed twice: {', '.join(dupes)}")
        self.components = list(components)
        self.tasks: list[str] = []
        self.history: list[dict[str, Any]] = []
        self.current: dict[str, Any] | None = None
        self.detected_changes = 0

    @classmethod
    def build(cls, entries: Sequence[Any], seed: int = 0) -> LifelongStack:
        """Build the stack from the config's ``lifelong`` list."""
        return cls([build_component(e, seed=seed + 7 * i) for i, e in enumerate(entries)])

    def __bool__(self) -> bool:
        return bool(self.components)

    def __len__(self) -> int:
        return len(self.components)

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.components]

    @property
    def has_extra_loss(self) -> bool:
        return any(c.adds_loss() for _, c in self.components)

    # --- task boundaries -------------------------------------------------------------------
    def task_start(self, task: dict[str, Any]) -> None:
        """Begin ``task`` (a dict with at least ``name``) in every component.

        A task with ``"given": False`` is a hint, not a boundary: if a task is in progress
        (e.g. restored by ``init_from``) it continues, and only a detector ends it.
        """
        if task.get("given", True) is False and self.current is not None:
            # recorded (a scenario's position), but the components are not told
            self.history.append({**_plain(task), "continued": True})
            return
        task = dict(task)
        task.setdefault("name", f"task{len(self.tasks)}")
        self.current = task
        self.tasks.append(str(task["name"]))
        self.history.append(_plain(task))
        for _, comp in self.components:
            comp.on_task_start(task)

    def task_end(self, learner: Any, detected: bool = False) -> dict[str, float]:
        """End the current task: every ``on_task_end``, then every ``consolidate``.

        A task started with ``"given": False`` ends only when a detector says so
        (``detected=True``); the end of a run then leaves it running.
        """
        if not detected and self.current is not None and self.current.get("given", True) is False:
            return {}
        task = self.current or {"name": f"task{len(self.tasks)}"}
        for _, comp in self.components:
            comp.on_task_end(task)
        stats: dict[str, float] = {}
        for name, comp in self.components:
            for k, v in (comp.consolidate(learner) or {}).items():
                stats[f"lifelong/{name}/{k}"] = float(v)
        self.current = None
        return stats

    # --- per update ------------------------------------------------------------------------
    def before_update(
        self, episodes: Sequence[Episode], learner: Any
    ) -> tuple[list[Episode], dict[str, float]]:
        """Steps 1-2 of an update: detect a task change, then augment the batch."""
        stats: dict[str, float] = {}
        flags = [comp.detect_task_change(list(episodes)) for _, comp in self.components]
        if any(flags):
            self.detected_changes += 1
            given = (self.current or {}).get("given", True)
            stats.update(self.task_end(learner, detected=True))
            self.task_start(
                {"name": f"detected{self.detected_changes}", "detected": True, "given": given}
            )
            stats["lifelong/task_change"] = 1.0
        batch = list(episodes)
        for _, comp in self.components:
            batch = list(comp.augment_batch(batch))
        stats["lifelong/batch_episodes"] = float(len(batch))
        return batch, stats

    def after_update(self, episodes: Sequence[Episode]) -> dict[str, float]:
        """Steps 4-5: every new episode to every component's ``on_episode``, then the
        components' ``update_stats`` as ``lifelong/<name>/<key>`` metrics (a dotted-path
        name ``pkg.module:Class`` is shortened to ``class``)."""
        for ep in episodes:
            for _, comp in self.components:
                comp.on_episode(ep)
        stats: dict[str, float] = {}
        for name, comp in self.components:
            short = name.rsplit(":", 1)[-1].lower() if ":" in name else name
            stats.update({f"lifelong/{short}/{k}": float(v) for k, v in comp.update_stats().items()})
        return stats

    def extra_loss(self, policy: Any) -> torch.Tensor | None:
        """The sum of every component's extra loss (``None`` when none contributes)."""
        total: torch.Tensor | None = None
        for _, comp in self.components:
            value = comp.extra_loss(policy)
            if value is not None:
                total = value if total is None else total + value
        return total

    # --- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "tasks": list(self.tasks),
            "history": [dict(h) for h in self.history],
            "current": self.current,
            "detected_changes": self.detected_changes,
            "components": {n: c.state_dict() for n, c in self.components},
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = False) -> list[str]:
        """Restore; components absent from ``state`` keep their fresh state (a new run may add
        components). Returns the names that were restored. ``strict`` requires all of them."""
        self.tasks = list(state.get("tasks", []))
        self.history = [dict(h) for h in state.get("history", [])]
        self.current = state.get("current")
        self.detected_changes = int(state.get("detected_changes", 0))
        saved = state.get("components", {})
        restored = []
        for name, comp in self.components:
            if name in saved:
                comp.load_state_dict(saved[name])
                restored.append(name)
            elif strict:
                raise KeyError(f"lifelong state has no component {name!r} (saved: {sorted(saved)})")
        return restored

    def save(self, directory: str | Path) -> None:
        """Write ``directory/state.pt`` (tensors, numbers, strings: ``weights_only`` loadable)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), d / "state.pt")

    def load(self, directory: str | Path) -> list[str]:
        """Load :meth:`save`'s file if present; returns the restored component names."""
        path = Path(directory) / "state.pt"
        if not path.exists():
            return []
        return self.load_state_dict(torch.load(path, weights_only=True))


def read_lifelong_state(checkpoint: str | Path) -> dict[str, Any] | None:
    """The lifelong state saved in a checkpoint folder, or ``None`` if it has none."""
    path = Path(checkpoint) / "lifelong" / "state.pt"
    return torch.load(path, weights_only=True) if path.exists() else None


def validate_lifelong(entries: Sequence[Any], algorithm_name: str) -> None:
    """Resolve every entry (names, options) and check the algorithm supports extra losses
    if a component has one; raises ``ConfigError`` naming the problem."""
    from agentrl.algorithm import algorithm_class
    from agentrl.config import ConfigError
    from agentrl.registry import ALGORITHMS, RegistryError

    try:
        stack = LifelongStack.build(entries)
    except (RegistryError, ValueError) as e:
        raise ConfigError(f"lifelong: {e}") from e
    if stack.has_extra_loss and not algorithm_class(algorithm_name).supports_extra_loss:
        users = [n for n, c in stack.components if c.adds_loss()]
        supported = [n for n in ALGORITHMS.names() if algorithm_class(n).supports_extra_loss]
        raise ConfigError(
            f"lifelong component(s) {', '.join(users)} add a loss term, which algorithm={algorithm_name} "
            f"does not support; algorithms that do: {', '.join(supported)}"
        )


def attach_lifelong(
    entries: Sequence[Any], algorithm: Any, algorithm_name: str, seed: int = 0
) -> LifelongStack:
    """Build the stack and hand its extra loss to the algorithm (``algorithm.extra_loss_fn``)."""
    if entries:
        validate_lifelong(entries, algorithm_name)
    stack = LifelongStack.build(entries, seed=seed)
    if stack.has_extra_loss:
        algorithm.extra_loss_fn = stack.extra_loss
    return stack
