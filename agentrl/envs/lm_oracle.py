"""A language-model oracle for the question games (``oracle="lm"``).

Any HF causal LM can answer: :meth:`LMOracle.choose` scores a few fixed continuations
(e.g. ``" Yes"`` / ``" No"``) after a prompt by their summed token log-probabilities and
returns the best, so the answer is always one of the env's answers, deterministic for
given weights, and needs no sampling. :meth:`LMOracle.generate` gives a short greedy
free-text answer (one line) for games with free-text replies.

The reference Twenty Questions oracle is a fine-tuned small T5; an untrained or tiny LM
answers arbitrarily but consistently, which is what the tests need.
"""

from __future__ import annotations

from typing import Any


class LMOracle:
    """Answers with a causal LM.

    Args:
        model: a ``transformers`` causal LM (in eval mode after construction).
        tokenizer: its tokenizer.
        max_prompt_tokens: prompts are cut from the left to this many tokens.
    """

    def __init__(self, model: Any, tokenizer: Any, max_prompt_tokens: int = 512):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_prompt_tokens = max_prompt_tokens

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def choose(self, prompt: str, options: tuple[str, ...] | list[str]) -> int:
        """The index of the option with the highest log-likelihood after ``prompt``."""
        import torch

        if not options:
            raise ValueError("choose() needs at least one option")
        prompt_ids = self._ids(prompt)[-self.max_prompt_tokens :]
        scores = []
        with torch.no_grad():
            for option in options:
                option_ids = self._ids(option)
                if not option_ids:
                    raise ValueError(f"option {option!r} encodes to no tokens")
                ids = torch.tensor([prompt_ids + option_ids], device=self.model.device)
                logits = self.model(input_ids=ids).logits[0, :-1].float()
                logp = torch.log_softmax(logits, dim=-1)
                start = len(prompt_ids) - 1
                picked = logp[start:, :].gather(1, ids[0, start + 1 :, None])
                scores.append(float(picked.sum()))
        return max(range(len(options)), key=lambda i: (scores[i], -i))

    def generate(self, prompt: str, max_new_tokens: int = 24) -> str:
        """A greedy continuation of ``prompt``, cut at the first newline, stripped."""
        import torch

        ids = torch.tensor([self._ids(prompt)[-self.max_prompt_tokens :]], device=self.model.device)
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or 0,
            )
        text = self.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        return text.split("\n")[0].strip()


_CACHE: dict[str, LMOracle] = {}


def make_oracle(model: Any, tokenizer: Any = None) -> LMOracle:
    """An :class:`LMOracle` from an oracle, a loaded model (+ tokenizer), or a path/id.

    A path or model id is loaded once per process (``AutoModelForCausalLM``) and shared
    by every env that names it.

    Raises:
        ValueError: no model given, or a loaded model without its tokenizer.
    """
    if isinstance(model, LMOracle):
        return model
    if model is None:
        raise ValueError(
            "oracle='lm' needs oracle_model= (a model path or id, a loaded HF causal LM "
            "with oracle_tokenizer=, or an LMOracle)"
        )
    if isinstance(model, str):
        if model not in _CACHE:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            _CACHE[model] = LMOracle(
                AutoModelForCausalLM.from_pretrained(model), AutoTokenizer.from_pretrained(model)
            )
        return _CACHE[model]
    if tokenizer is None:
        raise ValueError("a loaded oracle_model needs its oracle_tokenizer")
    return LMOracle(model, tokenizer)
