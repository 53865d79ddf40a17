"""Lifelong learning: components (replay, EWC, task-change detection, wake/sleep
consolidation), scenarios logged in the ``l2logger`` format, and the L2M metrics.

Importing this package registers the built-in components (and XLand's ``kickstart``, from
:mod:`agentrl.curricula.kickstart`) in
:data:`agentrl.registry.LIFELONG`. See ``docs/lifelong.md``.
"""

from agentrl.curricula.kickstart import Kickstart  # XLand generations; registers "kickstart"
from agentrl.lifelong.base import (
    HOOKS,
    LifelongComponent,
    LifelongStack,
    build_component,
    read_lifelong_state,
)
from agentrl.lifelong.consolidation import WakeSleepConsolidation
from agentrl.lifelong.ewc import EWC, OnlineEWC, ewc_penalty, fisher_diagonal
from agentrl.lifelong.replay import ExperienceReplay, Reservoir
from agentrl.lifelong.task_change import TaskChangeDetector

__all__ = [
    "EWC",
    "HOOKS",
    "Kickstart",
    "ExperienceReplay",
    "LifelongComponent",
    "LifelongStack",
    "OnlineEWC",
    "Reservoir",
    "TaskChangeDetector",
    "WakeSleepConsolidation",
    "build_component",
    "ewc_penalty",
    "fisher_diagonal",
    "read_lifelong_state",
]
