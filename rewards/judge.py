"""``reward=llm_judge``: any HF causal LM judges a trajectory against the task intent.

The judge reads ``template`` filled with ``{intent}`` and ``{response}`` (see
:mod:`agentrl.rewards.trajectory`) and the score is the log-odds of its next token being
``yes_token`` rather than ``no_token``::

    score = log p(yes_token | prompt) - log p(no_token | prompt)

(through ``transform=sigmoid``: ``p(yes) / (p(yes) + p(no))``). Only the first token of each
answer word is compared. ``model`` is anything :class:`~agentrl.policy.ModelConfig`
accepts: ``tiny``, ``smollm2`` (SmolLM2-135M-Instruct from PyPI) or an HF id / path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from agentrl.registry import REWARDS
from agentrl.types import Episode

from .base import Reward, RewardConfig
from .trajectory import intent_and_response

DEFAULT_TEMPLATE = (
    "Task: {intent}\nWhat the agent did:\n{response}\n"
    "Did the agent accomplish the task? Answer Yes or No.\nAnswer:"
)


@dataclass
class LLMJudgeConfig(RewardConfig):
    model: str = "smollm2"
    template: str = DEFAULT_TEMPLATE
    yes_token: str = " Yes"
    no_token: str = " No"
    transform: str = "sigmoid"
    batch_size: int = 8
    max_length: int = 1024


@REWARDS.register("llm_judge")
class LLMJudge(Reward):
    """Yes/no log-odds of an HF causal LM as the reward."""

    Config = LLMJudgeConfig
    config: LLMJudgeConfig

    def __init__(
        self,
        config: RewardConfig | None = None,
        model: Any = None,
        tokenizer: Any = None,
    ):
        from agentrl.policy.models import ModelConfig, load_model_and_tokenizer

        super().__init__(config)
        for key in ("{intent}", "{response}"):
            if key not in self.config.template:
                raise ValueError(
                    f"reward.template must contain {key}; got {self.config.template!r}"
                )
        if model is None:
            model, tokenizer = load_model_and_tokenizer(ModelConfig(name=self.config.model))
        self.model, self.tokenizer = model, tokenizer
        self.model.eval()
        self.yes_id = self._first_id(self.config.yes_token)
        self.no_id = self._first_id(self.config.no_token)
        if self.yes_id == self.no_id:
            raise ValueError(
                f"yes_token {self.config.yes_token!r} and no_token {self.config.no_token!r} start "
                "with the same token; choose words that differ in their first token"
            )

    def _first_id(self, word: str) -> int:
        ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"the judge's tokenizer encodes {word!r} to no tokens")
        return int(ids[0])

    def prompts(self, episodes: Sequence[Episode]) -> list[str]:
        out = []
        for ep in episodes:
            intent, response = intent_and_response(ep)
            out.append(self.config.template.format(intent=intent, response=response))
        return out

    @torch.no_grad()
    def score_prompts(self, prompts: Sequence[str]) -> list[float]:
        tok = self.tokenizer
        side, tside = tok.padding_side, tok.truncation_side
        tok.padding_side, tok.truncation_side = "left", "left"
        out: list[float] = []
        try:
            for i in range(0, len(prompts), self.config.batch_size):
                enc = tok(
                    list(prompts[i : i + self.config.batch_size]),
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                    max_length=self.config.max_length,
                )
                logits = self.model(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
                ).logits[:, -1]
                logp = torch.log_softmax(logits.float(), dim=-1)
                out.extend(float(x) for x in logp[:, self.yes_id] - logp[:, self.no_id])
        finally:
            tok.padding_side, tok.truncation_side = side, tside
        return out

    def score(self, episodes: Sequence[Episode]) -> list[float]:
        raw = self.score_prompts(self.prompts(episodes))
        if self.config.transform == "raw":
            return raw
        return [1.0 / (1.0 + math.exp(-x)) for x in raw]
