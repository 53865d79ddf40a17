"""Exceptions shared by the trainer and the Ray edge (kept import-light)."""

from __future__ import annotations


class LearnerLost(RuntimeError):
    """The learner's process died (killed, out of memory, its node lost).

    The trainer resumes from the last intact checkpoint when this happens, up to
    ``fault.learner_restarts`` times (docs/faults.md).
    """


class WorkerLost(RuntimeError):
    """A rollout worker kept dying while collecting the same episodes
    (more than ``fault.worker_retries`` times)."""


__all__ = ["LearnerLost", "WorkerLost"]
