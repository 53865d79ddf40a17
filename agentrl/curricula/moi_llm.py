"""The LLM model of interestingness (MoI) of ``omni``: scores, prompts, calibration.

For a learned task ``L`` and a candidate task ``C`` the LM gives a *boring score*
``s(L, C)`` (higher = more boring); a candidate is boring when its score passes a
threshold. Scores (``score=``):

- ``answer``: the LM is asked whether ``C`` is interesting to learn next given that ``L``
  is learned, and ``s = log P(answer "No") - log P(answer "Yes")`` at the first token of
  its reply (one forward pass, no sampling). Prompts (``prompt=``):

  - ``zero_shot``: the question alone (the first version of this MoI).
  - ``few_shot``: in the style of OMNI's prompts, a system message that says what makes a
    task interesting, then in-context judgements as earlier chat turns. The examples are
    from an invented fishing/building game, so they share no task with TextCraft or any
    evaluated task list. The instructions and examples are one prefix whose KV cache is
    computed once per sweep (:func:`.llm_score.answer_logprobs`).

- ``surprisal``: novelty as the LM's surprise. ``s = log p(C | "... has learned to L. The
  next task it practises is to") - log p(C | "... has learned nothing yet. ...")``, the
  pointwise mutual information of the candidate's text with the learned task's, as a
  plain-text continuation: a task the LM finds predictable from what is already learned
  is boring.

Thresholds (``calibration=``): ``fixed`` (boring when ``s > threshold``; 0 = the more
likely answer) or ``relative`` (boring when ``s`` is an outlier among the scores of all
``reference`` tasks given the same learned task: ``s > mean + z * std``; no labels needed,
and it removes the LM's constant bias toward one answer). Scores are cached per
``(variant, learned, candidate)`` text in memory, in checkpoints and in ``cache_path``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agentrl.types import TaskSpec

SCORES = ("answer", "surprisal")
PROMPTS = ("zero_shot", "few_shot")
CALIBRATIONS = ("fixed", "relative")


def describe_default(task: TaskSpec) -> str:
    """``"k=v, ..."``: the text of a task when no describer is configured."""
    return ", ".join(f"{k}={task[k]}" for k in sorted(task))


ZERO_SHOT = (
    "An agent is learning tasks in a game. It has already learned the task: {learned}.\n"
    "Is the task '{candidate}' interesting to learn next, rather than a minor variant of "
    "the learned task? Answer Yes or No."
)
FEW_SHOT_SYSTEM = (
    "You judge which tasks are interesting for a player who is learning a crafting game. "
    "A new task is boring if the player has already learned the same action and only the "
    "number differs; otherwise it is interesting."
)
FEW_SHOT_QUESTION = (
    "Learned: {learned}\nNew: {candidate}\nIs the new task interesting? Answer Yes or No."
)
FEW_SHOT_EXAMPLES: tuple[tuple[str, str, bool], ...] = (
    # (learned, candidate, interesting): an invented game, disjoint from every env's tasks
    ("catch fish", "catch 3 fish", False),
    ("catch fish", "cook fish", True),
    ("build boat", "catch fish", True),
    ("build boat", "build 2 boat", False),
    ("cook fish", "cook 4 fish", False),
    ("cook fish", "build boat", True),
    ("chop tree", "chop 5 tree", False),
    ("chop tree", "build house", True),
)
SURPRISAL_CONTEXT = "An agent in a game has learned to {learned}. The next task it practises is to "
SURPRISAL_NULL = "An agent in a game has learned nothing yet. The next task it practises is to "


class LLMInterestingness:
    """Asks a causal LM whether a task is boring given a learned one (scores cached).

    Args:
        policy: an :class:`agentrl.policy.Policy` (built lazily from ``model`` when None).
        model: the :class:`~agentrl.policy.ModelConfig` fields to build it from.
        describe: task spec -> text.
        cache_path: JSON file of scores (read at start, written after each batch of new ones).
        score, prompt, calibration: see the module docstring (``SCORES``, ``PROMPTS``,
            ``CALIBRATIONS``).
        threshold: ``fixed`` calibration: boring when the score exceeds it.
        z: ``relative`` calibration: boring when the score exceeds mean + z * std.
        reference: ``relative`` calibration: the tasks whose scores give the mean and std
            (the curriculum's task list; default: the candidates of each call).
        batch_size: questions per forward pass.

    Attributes:
        cache: ``"<variant> | <learned> || <candidate>" -> score``.
        calls: how many questions the model was run on (cache misses).
    """

    def __init__(
        self,
        policy: Any = None,
        model: dict[str, Any] | None = None,
        describe: Callable[[TaskSpec], str] = describe_default,
        cache_path: str = "",
        score: str = "surprisal",
        prompt: str = "few_shot",
        calibration: str = "relative",
        threshold: float = 0.0,
        z: float = 2.0,
        reference: Sequence[TaskSpec] = (),
        batch_size: int = 32,
    ):
        check_llm_options(score, prompt, calibration, z, batch_size)
        self._policy = policy
        self._model = {"name": "smollm2", **(model or {})}
        self.describe = describe
        self.cache_path = cache_path
        self.score_kind, self.prompt, self.calibration = score, prompt, calibration
        self.threshold, self.z = float(threshold), float(z)
        self.reference = [dict(t) for t in reference]
        self.batch_size = batch_size
        self.cache: dict[str, float] = {}
        self._null: dict[str, float] = {}  # surprisal: log p(candidate | nothing learned)
        self.calls = 0
        if cache_path and Path(cache_path).exists():
            self.load_cache(json.loads(Path(cache_path).read_text()))

    # ------------------------------------------------------------------ cache

    @property
    def variant(self) -> str:
        return "surprisal" if self.score_kind == "surprisal" else f"answer/{self.prompt}"

    def key(self, candidate: TaskSpec, learned: TaskSpec) -> str:
        return f"{self.variant} | {self.describe(learned)} || {self.describe(candidate)}"

    def load_cache(self, entries: dict[str, Any]) -> None:
        """Merge saved scores (entries of another format, e.g. old yes/no answers, are skipped)."""
        self.cache.update(
            {
                str(k): float(v)
                for k, v in entries.items()
                if isinstance(v, int | float) and not isinstance(v, bool)
            }
        )

    def _save(self) -> None:
        if not self.cache_path:
            return
        path = Path(self.cache_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.cache, indent=0, sort_keys=True))
        tmp.replace(path)  # atomic: a crash never leaves half a cache

    # ------------------------------------------------------------------ decisions

    def scores(self, candidates: Sequence[TaskSpec], learned: TaskSpec) -> list[float]:
        """Boring scores of ``candidates`` given ``learned``; only uncached ones are computed."""
        keys = [self.key(c, learned) for c in candidates]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        todo = list({keys[i]: i for i in todo}.values())  # each new pair once
        if todo:
            new = self._compute([candidates[i] for i in todo], learned)
            self.calls += len(todo)
            for i, s in zip(todo, new, strict=True):
                self.cache[keys[i]] = float(s)
            self._save()
        return [self.cache[k] for k in keys]

    def cut(self, learned: TaskSpec, candidates: Sequence[TaskSpec] = ()) -> float:
        """The score above which a candidate is boring given ``learned``."""
        if self.calibration == "fixed":
            return self.threshold
        ref = [t for t in (self.reference or candidates) if t != learned]
        s = np.array(self.scores(ref, learned))
        return float(s.mean() + self.z * s.std()) if len(s) else self.threshold

    def boring_many(self, candidates: Sequence[TaskSpec], learned: TaskSpec) -> list[bool]:
        """Is each candidate uninteresting once ``learned`` is learned?"""
        if not candidates:
            return []
        cut = self.cut(learned, candidates)
        return [s > cut for s in self.scores(candidates, learned)]

    def boring(self, candidate: TaskSpec, learned: TaskSpec) -> bool:
        return self.boring_many([candidate], learned)[0]

    # ------------------------------------------------------------------ the model

    @property
    def policy(self) -> Any:
        if self._policy is None:
            from agentrl.config import make_dataclass_config
            from agentrl.policy import ModelConfig, Policy

            # ModelConfig has a ``name`` field: the model named here is the one loaded
            cfg = make_dataclass_config(ModelConfig, self._model, where="curriculum=omni model")
            self._policy = Policy.from_config(cfg)
        return self._policy

    def _compute(self, candidates: Sequence[TaskSpec], learned: TaskSpec) -> list[float]:
        texts = [self.describe(c) for c in candidates]
        if self.score_kind == "surprisal":
            return self._surprisal(texts, self.describe(learned))
        return self._answer(texts, self.describe(learned))

    def _answer(self, candidates: Sequence[str], learned: str) -> list[float]:
        from agentrl.curricula.llm_score import answer_logprobs

        policy = self.policy
        tok = policy.tokenizer
        prefix, suffixes, answers = build_answer_prompts(tok, self.prompt, learned, candidates)
        model = policy.model
        was_training = model.training
        model.eval()
        try:
            logp = answer_logprobs(
                model,
                prefix,
                suffixes,
                answers,
                batch_size=self.batch_size,
                pad_id=tok.pad_token_id or 0,
            )
        finally:
            model.train(was_training)
        return (logp[:, 1] - logp[:, 0]).tolist()  # log P(No) - log P(Yes)

    def _surprisal(self, candidates: Sequence[str], learned: str) -> list[float]:
        import torch

        policy = self.policy
        tok = policy.tokenizer

        def ids(text: str) -> list[int]:
            return list(tok(text, add_special_tokens=False)["input_ids"])

        ctx, null = ids(SURPRISAL_CONTEXT.format(learned=learned)), ids(SURPRISAL_NULL)
        acts = [ids(c + "\n") for c in candidates]
        fresh = [i for i, c in enumerate(candidates) if c not in self._null]  # null: once per task
        model = policy.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                sums, _, _ = policy.action_logprobs(
                    [ctx] * len(acts) + [null] * len(fresh),
                    acts + [acts[i] for i in fresh],
                    batch_size=self.batch_size,
                )
        finally:
            model.train(was_training)
        n = len(acts)
        for i, v in zip(fresh, sums[n:].tolist(), strict=True):
            self._null[candidates[i]] = v
        return [float(sums[i]) - self._null[c] for i, c in enumerate(candidates)]


def check_llm_options(score: str, prompt: str, calibration: str, z: float, batch_size: int) -> None:
    """Clear errors for the LLM MoI's options."""
    for what, value, valid in (
        ("llm_score", score, SCORES),
        ("llm_prompt", prompt, PROMPTS),
        ("llm_calibration", calibration, CALIBRATIONS),
    ):
        if value not in valid:
            raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    if not z >= 0.0:
        raise ValueError(f"llm_z must be >= 0, got {z}")
    if batch_size < 1:
        raise ValueError(f"llm_batch_size must be >= 1, got {batch_size}")


def build_answer_prompts(
    tokenizer: Any, prompt: str, learned: str, candidates: Sequence[str]
) -> tuple[list[int], list[list[int]], list[int]]:
    """``(prefix ids, one suffix per candidate, [id of "Yes", id of "No"])`` for the
    ``answer`` score. With a chat template the examples are earlier chat turns and each
    question is the last user turn (the prefix ends where the question starts); without one
    (tiny test models) the same text as ``Q: ... A: ...`` lines. The answers are the first
    token of each reply word; they must differ."""
    if prompt == "few_shot":
        system, question = FEW_SHOT_SYSTEM, FEW_SHOT_QUESTION
        shots = [(q, "Yes" if y else "No") for q, y in _shot_questions()]
    else:  # zero_shot: the question alone, under the model's default system message
        system, question, shots = "", ZERO_SHOT, []
    marker = "\x00QUESTION\x00"

    def ids(t: str) -> list[int]:
        return list(tokenizer(t, add_special_tokens=False)["input_ids"])

    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "system", "content": system}] if system else []
        for q, a in shots:
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        messages.append({"role": "user", "content": marker})
        text = str(
            tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        )
        words = ("Yes", "No")
    else:  # " Yes" after "A:" when both are one token (GPT-2-like BPE), else "A: " + "Yes"
        spaced = all(len(ids(w)) == 1 for w in (" Yes", " No"))
        sep = "" if spaced else " "
        lines = [system] if system else []
        lines += [f"Q: {q}\nA: {a}" for q, a in shots]
        text = "\n\n".join([*lines, f"Q: {marker}\nA:{sep}"])
        words = (" Yes", " No") if spaced else ("Yes", "No")
    head, _, tail = text.partition(marker)

    suffixes = [ids(question.format(learned=learned, candidate=c) + tail) for c in candidates]
    answers = [ids(w)[0] for w in words]
    if answers[0] == answers[1]:
        raise ValueError(f"the answers {words} start with the same token for this tokenizer")
    return ids(head), suffixes, answers


def _shot_questions() -> list[tuple[str, bool]]:
    return [
        (FEW_SHOT_QUESTION.format(learned=a, candidate=b), interesting)
        for a, b, interesting in FEW_SHOT_EXAMPLES
    ]
