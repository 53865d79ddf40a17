"""Curricula decide which task each episode plays (``curriculum=...``).

A curriculum implements ``sample(n) -> list[TaskSpec]``, ``update(episodes)``,
``state_dict()`` / ``load_state_dict(sd)`` (JSON-able, written to ``curriculum.json``).
"""

from .uniform import Curriculum, UniformConfig, UniformCurriculum, build_curriculum

__all__ = ["Curriculum", "UniformConfig", "UniformCurriculum", "build_curriculum"]
