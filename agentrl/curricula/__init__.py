"""Curricula decide which task each episode plays (``curriculum=...``).

A curriculum implements ``sample(n) -> list[TaskSpec]``, ``update(episodes)``,
``state_dict()`` / ``load_state_dict(sd)`` (JSON-able, written to ``curriculum.json``).
Built-ins: ``uniform`` (default), ``learning_progress``, ``omni``, ``xland`` and ``privileged`` (docs/curricula.md).
"""

from .learning_progress import LearningProgressConfig, LearningProgressCurriculum
from .omni import LLMInterestingness, OmniConfig, OmniCurriculum, RuleInterestingness
from .privileged import PrivilegedConfig, PrivilegedCurriculum
from .uniform import Curriculum, UniformConfig, UniformCurriculum, build_curriculum
from .xland import XLandConfig, XLandCurriculum, passes_filters

__all__ = [
    "Curriculum",
    "LearningProgressConfig",
    "LearningProgressCurriculum",
    "LLMInterestingness",
    "OmniConfig",
    "OmniCurriculum",
    "PrivilegedConfig",
    "PrivilegedCurriculum",
    "RuleInterestingness",
    "UniformConfig",
    "UniformCurriculum",
    "XLandConfig",
    "XLandCurriculum",
    "build_curriculum",
    "passes_filters",
]
