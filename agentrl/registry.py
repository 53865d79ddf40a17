"""A small, honest registry: a dict, a decorator, clear errors.

Each extension point (algorithms, reward models, curricula, lifelong components) has one
:class:`Registry`. Names resolve in this order: registered names (built-ins are imported
lazily on first lookup), then third-party entry points in the registry's entry-point
group, then a dotted path ``"pkg.module:Name"``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate registry name."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0]) if self.args else ""


def import_dotted(path: str) -> Any:
    """Import ``"pkg.mod:Name"`` (or ``"pkg.mod.Name"``) and return the object."""
    if ":" in path:
        module_name, _, attr = path.partition(":")
    else:
        module_name, _, attr = path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"not a dotted path: {path!r} (expected 'pkg.module:Name')")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def import_user_modules(modules: list[str], search_path: str | None = None) -> None:
    """Import the user's modules named in config ``imports`` (their registrations run).

    ``search_path`` (default: the current directory) is put on ``sys.path`` first, so a
    package next to where ``agentrl train`` was started is found, also inside Ray actors.
    """
    import os
    import sys

    path = search_path or os.getcwd()
    if modules and path not in sys.path:
        sys.path.insert(0, path)
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise RegistryError(f"cannot import module {name!r} listed in imports: {e}") from e


class Registry(Generic[T]):
    """Maps names to classes or factories.

    Args:
        kind: what is registered, used in messages ("algorithm").
        builtins: module imported on first lookup; importing it registers the built-ins.
        entry_point_group: Python entry-point group scanned for third-party plugins.
    """

    def __init__(self, kind: str, builtins: str | None = None, entry_point_group: str | None = None):
        self.kind = kind
        self._builtins = builtins
        self._group = entry_point_group
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``."""

        def _add(o: T) -> T:
            if name in self._items and self._items[name] is not o:
                raise RegistryError(f"{self.kind} {name!r} is already registered ({self._items[name]!r})")
            self._items[name] = o
            return o

        if obj is not None:
            return _add(obj)
        return _add

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if self._builtins:
            importlib.import_module(self._builtins)
        if self._group:
            for ep in metadata.entry_points(group=self._group):
                if ep.name not in self._items:
                    self._items[ep.name] = ep.load()

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load()
        return sorted(self._items)

    def get(self, name: str) -> T:
        """Resolve ``name`` (registered name or dotted path) or raise :class:`RegistryError`."""
        self._load()
        if name in self._items:
            return self._items[name]
        if ":" in name:
            try:
                return import_dotted(name)
            except (ImportError, AttributeError, ValueError) as e:
                raise RegistryError(f"cannot import {self.kind} {name!r}: {e}") from e
        valid = ", ".join(self.names()) or "(none)"
        raise RegistryError(
            f"unknown {self.kind} {name!r}; valid names: {valid} (or a dotted path 'pkg.module:Name')"
        )

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


ALGORITHMS: Registry[Callable[..., Any]] = Registry(
    "algorithm", builtins="agentrl.algorithms", entry_point_group="agentrl.algorithms"
)
REWARDS: Registry[Callable[..., Any]] = Registry(
    "reward", builtins="agentrl.rewards", entry_point_group="agentrl.rewards"
)
CURRICULA: Registry[Callable[..., Any]] = Registry(
    "curriculum", builtins="agentrl.curricula", entry_point_group="agentrl.curricula"
)
LIFELONG: Registry[Callable[..., Any]] = Registry(
    "lifelong component", builtins="agentrl.lifelong", entry_point_group="agentrl.lifelong"
)
