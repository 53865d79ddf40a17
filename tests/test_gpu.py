"""CUDA checks, marked ``gpu`` (deselected by default: ``addopts = -m 'not slow and not gpu'``).

Run on a machine with a CUDA GPU: ``pytest -m gpu tests/test_gpu.py`` (``benchmarks/gpu.sh``
runs it as part of the GPU proof). Without CUDA every test is skipped; the warm-start test
skips without TRL and the vLLM test without vLLM (``pip install 'agentrl[vllm]'``), which
the project's GPU machine lacks. NOTE: written on a CPU-only machine and never run there
(no GPU was lent); docs/gpu.md lists it as the first thing to run on a GPU.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from agentrl.config import load_config
from agentrl.learner import Learner
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker
from agentrl.trainer import Trainer

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = dict(hidden_size=64, num_layers=1, intermediate_size=128, num_heads=2)
ENV = "agentrl/GuessTheNumber-v0"
SECTIONS = {
    "ppo": {"name": "ppo", "epochs": 1, "minibatch_size": 8},
    "filtered_bc": {"name": "filtered_bc"},
    "rltf": {"name": "rltf"},
    "archer": {
        "name": "archer",
        "critic_epochs": 2,
        "actor_epochs": 1,
        "batch_size": 8,
        "grad_accum": 1,
        "warmup_iters": 0,
        "max_new_tokens": 8,
    },
}


def _episodes(policy: Any, n: int = 8) -> list[Any]:
    worker = RolloutWorker(ENV, {}, n, SamplingConfig(max_new_tokens=8), policy=policy)
    return worker.collect([EpisodeJob(i, 100 + i) for i in range(n)], rng_seed=0)


@pytest.mark.parametrize("algo", sorted(SECTIONS))
def test_learner_updates_on_cuda_under_bf16_autocast(algo):
    learner = Learner(ModelConfig(**TINY, device="cuda"), dict(SECTIONS[algo]), seed=0)
    assert learner.policy.device.type == "cuda"
    assert learner.autocast_dtype is (torch.bfloat16 if torch.cuda.is_bf16_supported() else None)
    stats = learner.update(_episodes(learner.policy))
    assert stats and all(math.isfinite(v) for v in stats.values()), stats
    for p in learner.policy.model.parameters():
        assert p.device.type == "cuda" and p.dtype == torch.float32  # autocast, not bf16 weights
    critic = getattr(learner.algorithm, "critic", None)
    if critic is not None:
        assert critic.device.type == "cuda"


def test_cuda_lora_learner_feeds_a_cpu_worker():
    learner = Learner(ModelConfig(**TINY, device="cuda", lora=True), {"name": "ppo", "lr": 0.05})
    learner.update(_episodes(learner.policy))
    weights, version = learner.get_weights()
    assert all(not t.is_cuda for t in weights.values())
    assert all(".lora_" in k for k in weights)
    worker = Policy.from_config(ModelConfig(**TINY, lora=True), device="cpu")
    worker.set_weights(weights, version)
    gens = worker.generate_text(["Guess a number between 1 and 100."] * 4, SamplingConfig())
    with torch.no_grad():
        _, per_token, mask = learner.policy.action_logprobs(
            [g.prompt_ids for g in gens], [g.token_ids for g in gens]
        )
    for g, row, m in zip(gens, per_token.cpu(), mask.cpu(), strict=True):
        assert row[m].tolist() == pytest.approx(g.logprobs, abs=1e-3)


def test_inline_training_run_on_cuda(tiny_overrides):
    pytest.importorskip("trl", reason="the BC warm start runs TRL's SFTTrainer")
    cfg = load_config(
        [
            *tiny_overrides,
            "model.device=cuda",
            "iterations=2",
            "warm_start.enabled=true",
            "warm_start.episodes=20",
            "warm_start.epochs=1.0",
        ]
    )
    trainer = Trainer(cfg, console=False)
    summary = trainer.run()
    assert summary["iterations"] == 2 and summary["stopped"] is None
    assert trainer.learner.policy.device.type == "cuda"  # the warm start moved it back


def test_gpu_benchmark_reports_mfu(monkeypatch):
    monkeypatch.setenv("AGENTRL_PEAK_TFLOPS", "100")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import gpu_throughput

    result = gpu_throughput.main(
        ["--device", "cuda", "--iterations", "1", "--episodes", "8", "warm_start.enabled=false"]
    )
    assert result["device"] != "cpu"
    assert result["mfu"] is not None and 0.0 < result["mfu"] < 1.0
    assert result["learner_tokens_per_s"] > 0


def test_vllm_engine_agrees_with_the_hf_policy():
    """A real vLLM engine: after a LoRA adapter sync, the tokens it samples have (up to bf16)
    the log-probs the HF learner assigns them."""
    pytest.importorskip("vllm", reason="needs pip install 'agentrl[vllm]'")
    from agentrl.policy.vllm_backend import VLLMPolicy

    cfg = ModelConfig(
        **TINY,
        lora=True,
        backend="vllm",
        vllm_kwargs={"gpu_memory_utilization": 0.3, "enforce_eager": True},
    )
    learner = Policy.from_config(cfg, device="cuda")
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for name, p in learner.model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen).to(p.device))
    engine = VLLMPolicy.from_config(cfg, device="cuda")
    try:
        engine.set_weights(learner.get_weights(), version=1)
        obs = ["Guess a number between 1 and 100.", "Too high."] * 4
        gens = engine.generate_text(obs, SamplingConfig(), torch.Generator().manual_seed(1))
        assert all(g.token_ids for g in gens)
        with torch.no_grad():
            _, per_token, mask = learner.action_logprobs(
                [g.prompt_ids for g in gens], [g.token_ids for g in gens]
            )
        for g, row, m in zip(gens, per_token.cpu(), mask.cpu(), strict=True):
            assert row[m].tolist() == pytest.approx(g.logprobs, abs=0.15)  # bf16 engine
    finally:
        engine.close()
