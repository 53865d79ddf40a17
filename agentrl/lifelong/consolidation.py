"""Wake/sleep consolidation (``lifelong=[consolidation]``).

Two copies of the policy: the *plastic* one (the learner's policy) learns online during
the wake phase with whatever algorithm the run uses; the *stable* one holds what was
consolidated so far. At every task end a sleep phase distils into the stable policy, on
replayed turns (a reservoir of ``capacity`` turns over all tasks):

- turns of the task that just ended: teacher = the plastic policy (the new skill);
- turns of earlier tasks: teacher = the stable policy as it was before this sleep (keep
  the old skills);

loss = ``KL(teacher || student)`` over the full next-token distribution at every action
position (mean over action tokens), ``steps`` Adam steps on minibatches of
``batch_size`` turns. The student starts from the stable weights; after the sleep the
plastic policy is reset to the new stable weights, so the next wake phase starts from
the consolidated policy. The first task's sleep only stores the stable copy.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from agentrl.lifelong.base import LifelongComponent
from agentrl.lifelong.replay import Reservoir
from agentrl.registry import LIFELONG
from agentrl.types import Episode


def action_log_distributions(
    policy: Any, prompts: list[list[int]], actions: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Full log-distributions at the action positions: ``([B, L, V], mask [B, L] bool)``.

    Same layout as :meth:`Policy.action_logprobs` (left-padded prompt | right-padded action).
    """
    dev = policy.device
    pad = policy.tokenizer.pad_token_id
    b = len(prompts)
    p_w = max(len(p) for p in prompts)
    a_w = max(len(a) for a in actions)
    seq = torch.full((b, p_w + a_w), pad, dtype=torch.long, device=dev)
    attn = torch.zeros_like(seq)
    mask = torch.zeros(b, a_w, dtype=torch.bool, device=dev)
    for i, (p, a) in enumerate(zip(prompts, actions, strict=True)):
        seq[i, p_w - len(p) : p_w] = torch.as_tensor(p, device=dev)
        seq[i, p_w : p_w + len(a)] = torch.as_tensor(a, device=dev)
        attn[i, p_w - len(p) : p_w + len(a)] = 1
        mask[i, : len(a)] = True
    positions = (attn.cumsum(-1) - 1).clamp_(min=0)
    out = policy.model(
        input_ids=seq,
        attention_mask=attn,
        position_ids=positions,
        use_cache=False,
        logits_to_keep=a_w + 1,
    )
    return torch.log_softmax(out.logits[:, :-1].float(), dim=-1), mask


def distillation_kl(
    teacher_logp: torch.Tensor, student_logp: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean over masked positions of ``KL(teacher || student)``; inputs ``[B, L, V]``, mask ``[B, L]``."""
    kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)
    m = mask.float()
    return (kl * m).sum() / m.sum().clamp(min=1.0)


@dataclass
class ConsolidationConfig:
    """Attributes:
    capacity: replayed turns kept (reservoir over all tasks).
    steps: distillation steps per sleep phase.
    batch_size: turns per step.
    lr: Adam learning rate of the sleep phase.
    """

    capacity: int = 2000
    steps: int = 50
    batch_size: int = 32
    lr: float = 1e-3


@LIFELONG.register("consolidation")
class WakeSleepConsolidation(LifelongComponent):
    """Wake/sleep consolidation (see the module docstring)."""

    Config = ConsolidationConfig

    def __init__(self, config: ConsolidationConfig | None = None, seed: int = 0):
        self.config = config or ConsolidationConfig()
        self.turns: Reservoir[dict[str, Any]] = Reservoir(self.config.capacity, seed=seed)
        self.stable: dict[str, torch.Tensor] | None = None
        self.task = ""
        self.generator = torch.Generator().manual_seed(seed)

    def on_task_start(self, task: dict[str, Any]) -> None:
        self.task = str(task.get("name", ""))

    def on_episode(self, episode: Episode) -> None:
        for t, context in zip(episode.turns, episode.contexts(), strict=True):
            if t.action_ids and context:
                self.turns.add({"prompt": context, "action": list(t.action_ids), "task": self.task})

    def consolidate(self, learner: Any) -> dict[str, float]:
        plastic = learner.policy
        if self.stable is None:
            self.stable = plastic.get_weights()
            return {"sleep_steps": 0.0}
        old_stable = copy.deepcopy(plastic)
        old_stable.set_weights(self.stable, version=plastic.version)
        student = copy.deepcopy(old_stable)
        student.model.train()
        for m in (plastic, old_stable):
            m.model.eval()
        opt = torch.optim.Adam(student.trainable_parameters(), lr=self.config.lr)
        rows = self.turns.items
        losses = []
        for _ in range(self.config.steps if rows else 0):
            idx = torch.randint(
                len(rows), (min(self.config.batch_size, len(rows)),), generator=self.generator
            )
            batch = [rows[int(i)] for i in idx]
            prompts, actions = [r["prompt"] for r in batch], [r["action"] for r in batch]
            new = torch.tensor([r["task"] == self.task for r in batch], device=plastic.device)
            with torch.no_grad():
                t_new, mask = action_log_distributions(plastic, prompts, actions)
                t_old, _ = action_log_distributions(old_stable, prompts, actions)
                teacher = torch.where(new[:, None, None], t_new, t_old)
            student_logp, _ = action_log_distributions(student, prompts, actions)
            loss = distillation_kl(teacher, student_logp, mask)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        student.model.eval()
        self.stable = student.get_weights()
        plastic.set_weights(self.stable, version=plastic.version)
        return {"sleep_steps": float(len(losses)), "sleep_kl": sum(losses) / max(len(losses), 1)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "turns": list(self.turns.items),
            "seen": self.turns.seen,
            "rng": self.turns.rng_state(),
            "stable": self.stable,
            "task": self.task,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.turns.items = list(state["turns"])
        self.turns.seen = int(state["seen"])
        self.turns.set_rng_state(state["rng"])
        self.stable = state["stable"]
        self.task = str(state["task"])
        self.generator.set_state(state["generator"])
