"""Kickstarting for XLand-style generations: a KL term toward the previous generation.

XLand (DeepMind 2021, section 5.4) trains agents in generations: generation ``k+1``
starts from a fresh policy and adds ``beta_t * KL(pi_k || pi_{k+1})`` to its loss, with
``beta_t`` annealed to zero, so it first imitates generation ``k`` and is then free to
surpass it. Here the KL is taken per token over the full vocabulary at the action
positions of turns from the current batch (the student's own trajectories), averaged::

    KL_t = sum_v p_teacher(v | ctx_t) * (log p_teacher(v | ctx_t) - log p_student(v | ctx_t))
    beta_u = beta * max(0, 1 - u / anneal_updates)          u: learner updates so far

:class:`Kickstart` is a lifelong component (``extra_loss`` hook, docs/lifelong.md), so
any algorithm with ``supports_extra_loss`` (PPO, filtered BC, ArCHer's actor) can use it:
``lifelong=[{name: kickstart, teacher: <checkpoint>}]``. Every update logs
``lifelong/kickstart/beta`` and ``lifelong/kickstart/kl`` (the mean KL of its steps).
A generation is an ordinary run; the next one is a new run (fresh ``model.init_seed``) with
the previous run's checkpoint as ``teacher``. Teacher and student must share a tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agentrl.lifelong.base import LifelongComponent
from agentrl.registry import LIFELONG
from agentrl.types import Episode


def kickstart_beta(update: int, beta: float, anneal_updates: int) -> float:
    """Linear annealing: ``beta`` at update 0, 0 from ``anneal_updates`` on."""
    if anneal_updates <= 0:
        return 0.0
    return beta * max(0.0, 1.0 - update / anneal_updates)


def token_kl(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean over masked positions of ``KL(teacher || student)``.

    Args:
        teacher_logits, student_logits: ``[B, L, V]``.
        mask: ``[B, L]`` bool, True at action tokens.
    """
    log_t = torch.log_softmax(teacher_logits.float(), -1)
    log_s = torch.log_softmax(student_logits.float(), -1)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # [B, L]
    m = mask.float()
    return (kl * m).sum() / m.sum().clamp(min=1.0)


@dataclass
class KickstartConfig:
    """``teacher``: generation k's run dir, checkpoints dir or checkpoint dir (its ``policy/``
    is loaded; the latest checkpoint for the first two), or a saved policy dir; ``beta``: the
    initial weight; ``anneal_updates``: learner updates until it reaches 0; ``max_turns``:
    turns of each batch the KL is computed on."""

    teacher: str = ""
    beta: float = 1.0
    anneal_updates: int = 100
    max_turns: int = 8

    def __post_init__(self) -> None:
        if self.beta < 0 or self.anneal_updates < 0 or self.max_turns < 1:
            raise ValueError("beta and anneal_updates must be >= 0, max_turns >= 1")


def action_logits(model: Any, prompt: Sequence[int], action: Sequence[int]) -> torch.Tensor:
    """Logits ``[len(action), V]`` that predict each action token after the prompt."""
    ids = torch.tensor([list(prompt) + list(action)], device=next(model.parameters()).device)
    logits = model(input_ids=ids).logits[0]
    return logits[len(prompt) - 1 : len(prompt) + len(action) - 1]


@LIFELONG.register("kickstart")
class Kickstart(LifelongComponent):
    """The kickstarting KL as a lifelong component (module docstring), registered as
    ``kickstart`` (:mod:`agentrl.lifelong` imports this module; the dotted path
    ``agentrl.curricula.kickstart:Kickstart`` works too). It lives with the XLand curriculum."""

    Config = KickstartConfig

    def __init__(self, config: KickstartConfig | None = None, seed: int = 0, teacher: Any = None):
        self.config = config or KickstartConfig()
        if teacher is None and not self.config.teacher:
            raise ValueError("kickstart needs teacher=<checkpoint dir of the previous generation>")
        self._teacher = teacher
        self.updates = 0
        self.turns: list[tuple[list[int], list[int]]] = []
        self._teacher_logits: list[torch.Tensor] | None = None  # of ``turns``: once per update
        self._kl: list[torch.Tensor] = []  # this update's KL values (for update_stats)

    @property
    def teacher(self) -> Any:
        if self._teacher is None:
            from agentrl.policy import Policy
            from agentrl.policy.policy import POLICY_META

            path = Path(self.config.teacher)
            if not path.exists():
                raise FileNotFoundError(f"kickstart teacher {path} does not exist")
            if (path / "policy").is_dir():
                path = path / "policy"  # a checkpoint dir
            elif not (path / POLICY_META).exists():
                from agentrl.checkpoint import resolve_checkpoint

                path = resolve_checkpoint(path) / "policy"  # a run dir or checkpoints dir
            self._teacher = Policy.load(path)
            self._teacher.model.eval()
        return self._teacher

    def beta(self) -> float:
        return kickstart_beta(self.updates, self.config.beta, self.config.anneal_updates)

    def augment_batch(self, episodes: Sequence[Episode]) -> list[Episode]:
        """Keeps up to ``max_turns`` turns of this update's batch; the batch is unchanged."""
        self.updates += 1
        turns = [
            (context, list(t.action_ids))
            for e in episodes
            for t, context in zip(e.turns, e.contexts(), strict=True)
            if context and t.action_ids
        ]
        self.turns = turns[: self.config.max_turns]
        self._teacher_logits = None  # new turns: the teacher scores them at the first step
        return list(episodes)

    def extra_loss(self, policy: Any) -> torch.Tensor | None:
        beta = self.beta()
        if beta == 0.0 or not self.turns:
            return None
        teacher = self.teacher
        if teacher.device != policy.device:  # loaded on the CPU: score where the student is
            teacher.model.to(policy.device)
            teacher.device = policy.device
        if self._teacher_logits is None:  # the teacher is frozen: one forward per update
            with torch.no_grad():
                self._teacher_logits = [action_logits(teacher.model, p, a) for p, a in self.turns]
        terms = []
        for (prompt, action), t_logits in zip(self.turns, self._teacher_logits, strict=True):
            s_logits = action_logits(policy.model, prompt, action)
            if t_logits.shape != s_logits.shape:
                raise ValueError(
                    f"kickstart: teacher and student vocabularies differ ({t_logits.shape[-1]} vs {s_logits.shape[-1]})"
                )
            mask = torch.ones(1, s_logits.shape[0], dtype=torch.bool, device=s_logits.device)
            terms.append(token_kl(t_logits[None], s_logits[None], mask))
        kl = torch.stack(terms).mean()
        self._kl.append(kl.detach())  # read in update_stats: no device sync per step
        return beta * kl

    def update_stats(self) -> dict[str, float]:
        """This update's ``beta`` and mean KL (0 once beta is 0: no KL is computed then)."""
        kl = float(torch.stack(self._kl).mean()) if self._kl else 0.0
        self._kl = []
        return {"beta": self.beta(), "kl": kl}  # the beta this update's steps used

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
