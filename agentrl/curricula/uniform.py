"""The default curriculum: tasks uniformly at random."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from agentrl.registry import CURRICULA
from agentrl.types import Episode, TaskSpec


class Curriculum(Protocol):
    """What the trainer calls each iteration. A curriculum class also has ``Config``, the
    dataclass of its ``curriculum.*`` keys, and is built as ``cls(config, seed=seed)``."""

    Config: ClassVar[type]

    def sample(self, n: int) -> list[TaskSpec]: ...

    def update(self, episodes: Sequence[Episode]) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def stats(self) -> dict[str, float]:
        """Scalars logged each iteration (keys ``curriculum/*``); ``{}`` for none."""
        ...


@dataclass
class UniformConfig:
    """``tasks``: explicit task specs to sample from, or ``tasks_from``: a ``"module:function"``
    returning them (e.g. ``agentrl.envs.ruleworld:task_list``); both empty = the env's own
    distribution."""

    tasks: list[dict[str, Any]] = field(default_factory=list)
    tasks_from: str = ""


@CURRICULA.register("uniform")
class UniformCurriculum:
    """Uniform over ``config.tasks``, or ``{}`` (the env samples its task from the reset seed)."""

    Config = UniformConfig

    def __init__(self, config: UniformConfig | None = None, seed: int = 0):
        self.config = config or UniformConfig()
        if not self.config.tasks and self.config.tasks_from:
            from agentrl.registry import import_dotted

            self.config.tasks = [dict(t) for t in import_dotted(self.config.tasks_from)()]
        self.rng = np.random.default_rng(seed)
        self.counts: dict[str, int] = {}

    def sample(self, n: int) -> list[TaskSpec]:
        if not self.config.tasks:
            return [{} for _ in range(n)]
        idx = self.rng.integers(len(self.config.tasks), size=n)
        return [dict(self.config.tasks[i]) for i in idx]

    def update(self, episodes: Sequence[Episode]) -> None:
        for ep in episodes:
            key = ",".join(f"{k}={v}" for k, v in sorted(ep.task.items())) or "default"
            self.counts[key] = self.counts.get(key, 0) + 1

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "counts": dict(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.counts = dict(state["counts"])

    def stats(self) -> dict[str, float]:
        return {}


def build_curriculum(section: dict[str, Any], seed: int) -> Curriculum:
    """Build the curriculum named in the ``curriculum`` config section."""
    from agentrl.config import ConfigError, make_dataclass_config

    name = section["name"]
    cls: Any = CURRICULA.get(name)
    try:
        config_cls = cls.Config
    except AttributeError:
        config_cls = None
    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise ConfigError(
            f"curriculum={name}: {cls!r} has no Config dataclass; a curriculum class declares "
            "one (its curriculum.* keys) and is built as cls(config, seed=seed)"
        )
    return cls(make_dataclass_config(config_cls, section, where=f"curriculum={name}"), seed=seed)
