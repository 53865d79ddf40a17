"""The policy: HF causal LM + tokenizer (+ LoRA), sampling, scoring, weights, save/load."""

from agentrl.policy.models import ModelConfig, load_model_and_tokenizer
from agentrl.policy.policy import Policy
from agentrl.policy.sampling import SamplingConfig, inverse_cdf_sample, sample_next
from agentrl.policy.tokenizer import build_char_tokenizer, build_word_tokenizer

__all__ = [
    "ModelConfig",
    "Policy",
    "SamplingConfig",
    "build_char_tokenizer",
    "build_word_tokenizer",
    "inverse_cdf_sample",
    "load_model_and_tokenizer",
    "sample_next",
]
