"""``omni``: learning progress plus a model of interestingness (MoI).

OMNI (Zhang et al., ICLR 2024, arXiv 2306.01711). The learning-progress weights of
:mod:`.learning_progress` are multiplied by ``boring_weight`` (0.001) for the tasks the
MoI calls boring, then renormalised. Labelling (docs/curricula.md): go through the learned
tasks (smoothed success >= ``learned_threshold``) from best-learned down; an unlabelled
learned task becomes *interesting*, and every still-unlabelled task that the MoI judges
"not interesting given that one" becomes *boring*. Labels are recomputed whenever the set
of learned tasks changes.

Models of interestingness (``moi=``):

- ``rule``: a task is boring given a learned task when they differ only in
  ``variant_keys`` (a repeat variant: "collect 3 wood" given "collect wood"). This is the
  oracle of the paper's comparison, and the model for tests.
- ``llm``: an HF causal LM (:class:`~.moi_llm.LLMInterestingness`) gives each (learned,
  candidate) pair a boring score: the log-odds of its answer to "is this task interesting
  given the learned one?" (``llm_score=answer``, zero- or few-shot prompt) or the
  candidate's pointwise mutual information with the learned task (``llm_score=surprisal``);
  boring above a fixed or a relative (z-score) threshold. Scores are cached by pair text
  in the checkpoint state and on disk (``cache_path``, JSON), so a pair is never scored
  twice.
- ``none``: plain learning progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agentrl.curricula.learning_progress import (
    LearningProgressConfig,
    LearningProgressCurriculum,
)
from agentrl.curricula.moi_llm import LLMInterestingness, check_llm_options, describe_default
from agentrl.registry import CURRICULA, import_dotted
from agentrl.types import Episode, TaskSpec

MOI_KINDS = ("rule", "llm", "none")
__all__ = ["LLMInterestingness", "OmniConfig", "OmniCurriculum", "RuleInterestingness"]


class Interestingness(Protocol):
    """A model of interestingness. A class that subclasses it explicitly inherits
    :meth:`boring_many` (one :meth:`boring` per candidate); an LLM judge overrides it to score
    the candidates in one batch."""

    def boring(self, candidate: TaskSpec, learned: TaskSpec) -> bool:
        """Is ``candidate`` uninteresting once ``learned`` is learned?"""
        ...

    def boring_many(self, candidates: Sequence[TaskSpec], learned: TaskSpec) -> list[bool]:
        """:meth:`boring` of each candidate against one learned task."""
        return [self.boring(c, learned) for c in candidates]


@dataclass
class RuleInterestingness(Interestingness):
    """Boring = a repeat variant: equal to the learned task except in ``variant_keys``."""

    variant_keys: tuple[str, ...] = ("count",)

    def boring(self, candidate: TaskSpec, learned: TaskSpec) -> bool:
        def base(t: TaskSpec) -> dict[str, Any]:
            return {k: v for k, v in t.items() if k not in self.variant_keys}

        return candidate != learned and base(candidate) == base(learned)


@dataclass
class OmniConfig(LearningProgressConfig):
    """Config keys of ``curriculum=omni``: those of ``learning_progress`` plus:

    Attributes:
        moi: ``rule``, ``llm`` or ``none``.
        boring_weight: factor on a boring task's weight (0.001).
        learned_threshold: smoothed success at which a task counts as learned.
        variant_keys: task keys whose values make repeat variants (rule MoI).
        describe: ``"module:function"`` task spec -> text for the LLM (default ``k=v``).
        model: the LLM MoI's model section (as ``model=``; ``{name: smollm2}``).
        cache_path: JSON file of LLM scores ("" = only in checkpoints).
        llm_score: ``answer`` (log-odds of the LM's No vs Yes) or ``surprisal`` (PMI of
            the candidate with the learned task); see :mod:`.moi_llm`.
        llm_prompt: ``answer`` prompt: ``few_shot`` (in-context judgements) or ``zero_shot``.
        llm_calibration: ``relative`` (boring when the score exceeds mean + ``llm_z`` std
            of all tasks' scores given the same learned task) or ``fixed`` (boring when it
            exceeds ``llm_threshold``).
        llm_threshold: the ``fixed`` cut (0.0: the likelier answer / positive PMI).
        llm_z: the ``relative`` cut in standard deviations.
        llm_batch_size: questions per forward pass.
    """

    moi: str = "rule"
    boring_weight: float = 0.001
    learned_threshold: float = 0.5
    variant_keys: list[str] = field(default_factory=lambda: ["count"])
    describe: str = ""
    model: dict[str, Any] = field(default_factory=lambda: {"name": "smollm2"})
    cache_path: str = ""
    llm_score: str = "surprisal"
    llm_prompt: str = "few_shot"
    llm_calibration: str = "relative"
    llm_threshold: float = 0.0
    llm_z: float = 2.0
    llm_batch_size: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_llm_options(
            self.llm_score, self.llm_prompt, self.llm_calibration, self.llm_z, self.llm_batch_size
        )
        if self.moi not in MOI_KINDS:
            raise ValueError(f"unknown moi {self.moi!r}; valid: {', '.join(MOI_KINDS)}")
        if not 0.0 < self.boring_weight <= 1.0:
            raise ValueError(f"boring_weight must be in (0, 1], got {self.boring_weight}")
        if not 0.0 < self.learned_threshold <= 1.0:
            raise ValueError(f"learned_threshold must be in (0, 1], got {self.learned_threshold}")


def label_tasks(
    tasks: Sequence[TaskSpec], success: np.ndarray, threshold: float, moi: Interestingness
) -> list[str]:
    """``"interesting" | "boring" | ""`` (unlabelled) per task, by OMNI's sweep."""
    labels = [""] * len(tasks)
    learned = [i for i in np.argsort(-success, kind="stable") if success[i] >= threshold]
    for i in learned:
        if labels[i]:
            continue
        labels[i] = "interesting"
        open_ = [j for j in range(len(tasks)) if not labels[j]]
        answers = moi.boring_many([tasks[j] for j in open_], tasks[i])  # one batch per learned task
        for j, is_boring in zip(open_, answers, strict=True):
            if is_boring:
                labels[j] = "boring"
    return labels


@CURRICULA.register("omni")
class OmniCurriculum(LearningProgressCurriculum):
    """Learning progress with boring tasks down-weighted (module docstring).

    Args:
        config: :class:`OmniConfig`.
        seed: RNG seed.
        moi: a ready model of interestingness (overrides ``config.moi``; for tests and
            the LLM with a given policy).
    """

    Config = OmniConfig
    name = "omni"
    config: OmniConfig

    def __init__(
        self, config: OmniConfig | None = None, seed: int = 0, moi: Interestingness | None = None
    ):
        super().__init__(config or OmniConfig(), seed=seed)
        cfg = self.config
        describe = import_dotted(cfg.describe) if cfg.describe else describe_default
        self.moi: Interestingness | None = moi
        if moi is None and cfg.moi == "rule":
            self.moi = RuleInterestingness(tuple(cfg.variant_keys))
        elif moi is None and cfg.moi == "llm":
            self.moi = LLMInterestingness(
                model=cfg.model,
                describe=describe,
                cache_path=cfg.cache_path,
                score=cfg.llm_score,
                prompt=cfg.llm_prompt,
                calibration=cfg.llm_calibration,
                threshold=cfg.llm_threshold,
                z=cfg.llm_z,
                reference=self.tasks,
                batch_size=cfg.llm_batch_size,
            )
        self.labels = [""] * len(self.tasks)
        self._learned: tuple[int, ...] = ()

    def _relabel(self) -> None:
        learned = tuple(
            sorted(int(i) for i in np.flatnonzero(self.success() >= self.config.learned_threshold))
        )
        if self.moi is None or learned == self._learned:
            return
        self._learned = learned
        self.labels = label_tasks(
            self.tasks, self.success(), self.config.learned_threshold, self.moi
        )

    def update(self, episodes: Sequence[Episode]) -> None:
        super().update(episodes)
        self._relabel()

    def update_success(self, rates: dict[str, float]) -> None:
        super().update_success(rates)
        self._relabel()

    def weights(self) -> np.ndarray:
        w = super().weights()
        boring = np.array([lab == "boring" for lab in self.labels])
        w = np.where(boring, w * self.config.boring_weight, w)
        total = w.sum()
        return w / total if total > 0 else super().weights()

    def stats(self) -> dict[str, float]:
        return {
            **super().stats(),
            "curriculum/boring": float(sum(lab == "boring" for lab in self.labels)),
            "curriculum/interesting": float(sum(lab == "interesting" for lab in self.labels)),
        }

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["labels"] = list(self.labels)
        state["learned"] = list(self._learned)
        if isinstance(self.moi, LLMInterestingness):
            state["moi_cache"] = dict(self.moi.cache)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.labels = list(state["labels"])
        self._learned = tuple(state["learned"])
        if isinstance(self.moi, LLMInterestingness):
            self.moi.load_cache(state.get("moi_cache", {}))
