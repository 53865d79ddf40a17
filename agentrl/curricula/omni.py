"""``omni``: learning progress plus a model of interestingness (MoI).

OMNI (Zhang et al., ICLR 2024, arXiv 2306.01711). The learning-progress weights of
:mod:`.learning_progress` are multiplied by ``boring_weight`` (0.001) for the tasks the
MoI calls boring, then renormalised. Labelling (ALGORITHMS.md): go through the learned
tasks (smoothed success >= ``learned_threshold``) from best-learned down; an unlabelled
learned task becomes *interesting*, and every still-unlabelled task that the MoI judges
"not interesting given that one" becomes *boring*. Labels are recomputed whenever the set
of learned tasks changes.

Models of interestingness (``moi=``):

- ``rule``: a task is boring given a learned task when they differ only in
  ``variant_keys`` (a repeat variant: "collect 3 wood" given "collect wood"). This is the
  oracle of the paper's comparison, and the model for tests.
- ``llm``: an HF causal LM (:class:`LLMInterestingness`) asked "given this learned task,
  is this task interesting?"; Yes/No are compared by log-probability (deterministic).
  Answers are cached by ``(learned, candidate)`` text in the checkpoint state and on disk
  (``cache_path``, JSON), so a pair is never asked twice.
- ``none``: plain learning progress.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from agentrl.curricula.learning_progress import (
    LearningProgressConfig,
    LearningProgressCurriculum,
)
from agentrl.registry import CURRICULA, import_dotted
from agentrl.types import Episode, TaskSpec

MOI_KINDS = ("rule", "llm", "none")


def describe_default(task: TaskSpec) -> str:
    """``"k=v, ..."``: the text of a task when no describer is configured."""
    return ", ".join(f"{k}={task[k]}" for k in sorted(task))


class Interestingness(Protocol):
    """A model of interestingness."""

    def boring(self, candidate: TaskSpec, learned: TaskSpec) -> bool:
        """Is ``candidate`` uninteresting once ``learned`` is learned?"""
        ...


@dataclass
class RuleInterestingness:
    """Boring = a repeat variant: equal to the learned task except in ``variant_keys``."""

    variant_keys: tuple[str, ...] = ("count",)

    def boring(self, candidate: TaskSpec, learned: TaskSpec) -> bool:
        def base(t: TaskSpec) -> dict[str, Any]:
            return {k: v for k, v in t.items() if k not in self.variant_keys}

        return candidate != learned and base(candidate) == base(learned)


PROMPT = (
    "An agent is learning tasks in a game. It has already learned the task: {learned}.\n"
    "Is the task '{candidate}' interesting to learn next, rather than a minor variant of "
    "the learned task? Answer Yes or No.\n"
)


class LLMInterestingness:
    """Asks a causal LM whether a task is interesting given a learned one (cached).

    Args:
        policy: an :class:`agentrl.policy.Policy` (built lazily from ``model`` when None).
        model: the :class:`~agentrl.policy.ModelConfig` name/fields to build it from.
        describe: task spec -> text.
        cache_path: a JSON file of answers (read at start, written after each new answer).

    Attributes:
        cache: ``"learned || candidate" -> boring`` answers.
        calls: how many times the model was run.
    """

    def __init__(
        self,
        policy: Any = None,
        model: dict[str, Any] | None = None,
        describe: Callable[[TaskSpec], str] = describe_default,
        cache_path: str = "",
    ):
        self._policy = policy
        self._model = dict(model or {"name": "smollm2"})
        self.describe = describe
        self.cache_path = cache_path
        self.cache: dict[str, bool] = {}
        self.calls = 0
        if cache_path and Path(cache_path).exists():
            self.cache.update(
                {str(k): bool(v) for k, v in json.loads(Path(cache_path).read_text()).items()}
            )

    @property
    def policy(self) -> Any:
        if self._policy is None:
            from agentrl.config import make_dataclass_config
            from agentrl.policy import ModelConfig, Policy

            cfg = make_dataclass_config(ModelConfig, self._model, where="curriculum=omni model")
            self._policy = Policy.from_config(cfg)
        return self._policy

    def key(self, candidate: TaskSpec, learned: TaskSpec) -> str:
        return f"{self.describe(learned)} || {self.describe(candidate)}"

    def boring(self, candidate: TaskSpec, learned: TaskSpec) -> bool:
        key = self.key(candidate, learned)
        if key not in self.cache:
            self.cache[key] = self._ask(self.describe(candidate), self.describe(learned))
            self._save()
        return self.cache[key]

    def _ask(self, candidate: str, learned: str) -> bool:
        """Boring when log p(" No") > log p(" Yes") after the question."""
        import torch

        policy = self.policy
        self.calls += 1
        prompt = policy.encode_prompts([PROMPT.format(learned=learned, candidate=candidate)])[0]
        tok = policy.tokenizer
        answers = [tok(a, add_special_tokens=False)["input_ids"] for a in (" Yes", " No")]
        with torch.no_grad():
            sums, _, _ = policy.action_logprobs([prompt, prompt], answers)
        return bool(sums[1] > sums[0])

    def _save(self) -> None:
        if not self.cache_path:
            return
        path = Path(self.cache_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.cache, indent=0, sort_keys=True))
        tmp.replace(path)  # atomic: a crash never leaves half a cache


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
        cache_path: JSON file of LLM answers ("" = only in checkpoints).
    """

    moi: str = "rule"
    boring_weight: float = 0.001
    learned_threshold: float = 0.5
    variant_keys: list[str] = field(default_factory=lambda: ["count"])
    describe: str = ""
    model: dict[str, Any] = field(default_factory=lambda: {"name": "smollm2"})
    cache_path: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
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
        for j, cand in enumerate(tasks):
            if not labels[j] and moi.boring(cand, tasks[i]):
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
                model=cfg.model, describe=describe, cache_path=cfg.cache_path
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
            self.moi.cache.update({k: bool(v) for k, v in state.get("moi_cache", {}).items()})
