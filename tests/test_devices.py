"""Devices, autocast, LoRA-only weight sync, FLOP/MFU helpers and the GPU benchmark's
CPU path.

This machine has no GPU: the CUDA branches are tested through the pure resolvers (with
what the process "sees" passed in, or ``torch.cuda`` monkeypatched) and through a
recording stand-in for TRL's ``SFTConfig``; nothing here runs a kernel on a GPU.
``benchmarks/gpu.sh`` is run only to check that it refuses to start without CUDA.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from agentrl.config import ConfigError, load_config
from agentrl.flops import forward_flops, mfu, peak_flops, train_flops
from agentrl.learner import Learner
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.device import (
    actor_device,
    autocast,
    resolve_autocast,
    resolve_device,
    worker_device,
)
from agentrl.policy.models import load_model_and_tokenizer
from agentrl.registry import ALGORITHMS
from agentrl.rollouts.worker import EpisodeJob, RolloutWorker

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = dict(hidden_size=64, num_layers=1, intermediate_size=128, num_heads=2)
ENV = "agentrl/GuessTheNumber-v0"


# --- device resolution ------------------------------------------------------------------


def test_auto_is_cpu_here_and_cuda_without_cuda_is_a_config_error():
    assert not torch.cuda.is_available()  # this suite's machines have no GPU
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"model.device=cuda but this process sees no CUDA"):
        resolve_device("cuda")
    with pytest.raises(ConfigError, match=r"model.device=cuda:1 .*no CUDA"):
        resolve_device("cuda:1")
    # building a policy fails before loading any weights, with the same message
    with pytest.raises(ConfigError, match="no CUDA device"):
        Policy.from_config(ModelConfig(**TINY, device="cuda"))


def test_resolution_with_cuda_visible():
    assert resolve_device("auto", cuda_available=True, device_count=1) == torch.device("cuda", 0)
    assert resolve_device("cuda", cuda_available=True, device_count=2) == torch.device("cuda", 0)
    assert resolve_device("cuda:1", cuda_available=True, device_count=2) == torch.device("cuda", 1)
    assert resolve_device("cpu", cuda_available=True, device_count=2) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"sees 1 CUDA device\(s\) \(cuda:0..cuda:0\)"):
        resolve_device("cuda:1", cuda_available=True, device_count=1)


def test_resolver_reads_torch_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    device = resolve_device("auto")
    assert device == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_autocast("auto", device) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)  # e.g. a V100
    assert resolve_autocast("auto", device) is None


def test_autocast_resolution():
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert resolve_autocast("auto", cpu) is None
    assert resolve_autocast("auto", cuda, bf16_supported=True) is torch.bfloat16
    assert resolve_autocast("auto", cuda, bf16_supported=False) is None
    assert resolve_autocast("none", cuda, bf16_supported=True) is None
    assert resolve_autocast("bf16", cpu) is torch.bfloat16


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.device=gpu", "model.device='gpu': expected one of auto, cpu, cuda, cuda:N"),
        ("model.device=cuda:x", "model.device='cuda:x'"),
        ("model.autocast=fp16", "model.autocast='fp16': expected one of auto, bf16, none"),
        ("model.backend=trt", "model.backend='trt': expected one of hf, vllm"),
    ],
)
def test_bad_specs_are_config_errors(override, message):
    with pytest.raises(ConfigError) as e:
        load_config([override])
    assert message in str(e.value)


def test_config_defaults_and_overrides():
    cfg = load_config([])
    assert (cfg.model.device, cfg.model.autocast, cfg.model.backend) == ("auto", "auto", "hf")
    assert cfg.rollout.num_gpus_per_worker == 0
    cfg = load_config(
        ["model.device=cuda:1", "model.autocast=none", "rollout.num_gpus_per_worker=1"]
    )
    assert (cfg.model.device, cfg.model.autocast) == ("cuda:1", "none")
    assert cfg.rollout.num_gpus_per_worker == 1


def test_ray_actor_devices():
    # a learner actor: auto follows its reservation; explicit specs are kept
    assert actor_device("auto", 1.0) == "cuda"
    assert actor_device("auto", 0.5) == "cuda"
    assert actor_device("auto", 0.0) == "cpu"
    assert actor_device("cuda", 0.0) == "cuda"
    assert actor_device("cpu", 1.0) == "cpu"
    # rollout workers: GPU iff they reserved one (rollout.num_gpus_per_worker)
    assert worker_device(0.0) == "cpu" and worker_device(0.25) == "cuda"


# --- the learner: device, autocast, unchanged CPU numbers -------------------------------


def _episodes(policy: Policy, n: int = 4, seed: int = 0):
    worker = RolloutWorker(ENV, {}, n, SamplingConfig(max_new_tokens=8), policy=policy)
    return worker.collect([EpisodeJob(i, 100 + i) for i in range(n)], rng_seed=seed)


def test_learner_is_fp32_on_cpu_and_losses_match_the_plain_policy():
    """The device/autocast layer changes nothing on CPU: a Learner's PPO update gives
    exactly the losses of PPO on a policy built the pre-device way (``Policy(model, tok)``)."""
    section = {"name": "ppo", "epochs": 2, "minibatch_size": 4}
    learner = Learner(ModelConfig(**TINY), section, seed=3)
    assert learner.policy.device == torch.device("cpu")
    assert learner.autocast_dtype is None
    assert next(learner.policy.model.parameters()).dtype == torch.float32
    episodes = _episodes(learner.policy)
    stats = learner.update(episodes)

    torch.manual_seed(3)  # what Learner's seed_everything does for torch
    model, tok = load_model_and_tokenizer(ModelConfig(**TINY))
    plain = Policy(model, tok)
    algo_cls = ALGORITHMS.get("ppo")
    algo = algo_cls(algo_cls.Config(epochs=2, minibatch_size=4), plain, seed=3)
    expected = algo.update(episodes)
    for key in ("ppo/loss", "ppo/clip_frac", "ppo/approx_kl", "ppo/grad_norm"):
        assert stats[key] == expected[key], key


@pytest.mark.parametrize("spec, enabled", [("bf16", True), ("none", False), ("auto", False)])
def test_learner_wraps_updates_in_autocast(spec, enabled):
    learner = Learner(ModelConfig(**TINY, autocast=spec), {"name": "ppo"}, seed=0)
    seen = {}

    def update(episodes):
        seen["enabled"] = torch.is_autocast_enabled("cpu")
        seen["dtype"] = torch.get_autocast_dtype("cpu")
        return {"x": 1.0}

    learner.algorithm.update = update
    learner.update([])
    assert seen["enabled"] is enabled
    if enabled:
        assert seen["dtype"] is torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")  # switched off again after the update


def test_autocast_helper_is_a_no_op_without_dtype():
    with autocast(torch.device("cpu"), None):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(torch.device("cpu"), torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        y = torch.nn.functional.linear(torch.ones(2, 3), torch.ones(4, 3))
    assert y.dtype is torch.bfloat16


def test_warm_start_passes_bf16_and_use_cpu_for_the_device(monkeypatch):
    """TRL is replaced by recorders: on CPU -> use_cpu, no bf16 even if asked; on a CUDA
    device -> bf16 mixed precision and no use_cpu, and the model goes back to its device."""
    import trl

    from agentrl.warmstart import sft_warm_start

    seen: list[dict] = []

    def fake_config(**kwargs):
        seen.append(kwargs)
        return SimpleNamespace(**kwargs)

    class FakeTrainer:
        def __init__(self, model, args, train_dataset, processing_class):
            self.model = model

        def remove_callback(self, cb):
            pass

        def add_callback(self, cb):  # the warm start's progress callback
            pass

        def train(self):
            return SimpleNamespace(training_loss=0.5)

    monkeypatch.setattr(trl, "SFTConfig", fake_config)
    monkeypatch.setattr(trl, "SFTTrainer", FakeTrainer)
    moved = []
    model = SimpleNamespace(to=lambda d: moved.append(d), eval=lambda: None)
    rows = [{"prompt": "p", "completion": "c\n"}]

    cpu_policy = SimpleNamespace(model=model, tokenizer=None, device=torch.device("cpu"))
    sft_warm_start(cpu_policy, rows, 1.0, 1e-3, 2, 0, bf16=True)
    assert seen[-1]["use_cpu"] is True and seen[-1]["bf16"] is False

    gpu_policy = SimpleNamespace(model=model, tokenizer=None, device=torch.device("cuda", 1))
    out = sft_warm_start(gpu_policy, rows, 1.0, 1e-3, 2, 0, bf16=True)
    assert seen[-1]["use_cpu"] is False and seen[-1]["bf16"] is True
    assert moved[-1] == torch.device("cuda", 1)
    assert out["warm_start/loss"] == 0.5
    sft_warm_start(gpu_policy, rows, 1.0, 1e-3, 2, 0, bf16=False)  # model.autocast=none
    assert seen[-1]["bf16"] is False


# --- weight sync: only the LoRA adapter travels -----------------------------------------


def _nbytes(weights: dict[str, torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in weights.values())


def test_lora_sync_sends_only_the_adapter_and_workers_generate_like_the_learner():
    cfg = ModelConfig(**TINY, lora=True)
    learner = Learner(cfg, {"name": "ppo", "lr": 0.05}, seed=0)
    learner.update(_episodes(learner.policy, n=4))  # the adapter moves away from B = 0
    weights, version = learner.get_weights()

    full = learner.policy.model.state_dict()
    assert weights and all(".lora_A." in k or ".lora_B." in k for k in weights)
    assert len(weights) == 4 * TINY["num_layers"]  # A and B of q_proj and v_proj
    assert _nbytes(weights) < 0.05 * _nbytes(full)
    assert all(not t.is_cuda for t in weights.values())  # sent from CPU copies

    # A worker built from the same config: identical after the sync, different before.
    worker_policy = Policy.from_config(cfg)
    obs = ["Guess a number between 1 and 100."] * 3
    sampling = SamplingConfig(max_new_tokens=8)

    def sample(policy):
        gens = policy.generate_text(obs, sampling, generator=torch.Generator().manual_seed(7))
        return [(g.token_ids, g.logprobs) for g in gens]

    before = sample(worker_policy)
    worker_policy.set_weights(weights, version)
    after = sample(worker_policy)
    reference = sample(learner.policy)
    assert after == reference
    assert before != reference
    assert worker_policy.version == version == 1


def test_full_sync_sends_every_tensor_once():
    """Without LoRA every weight travels, a tied one (lm_head = embed_tokens) only once."""
    learner = Learner(ModelConfig(**TINY), {"name": "ppo"}, seed=0)
    weights, _ = learner.get_weights()
    state = learner.policy.model.state_dict()
    assert set(state) - set(weights) == {"lm_head.weight"}  # the tiny Llama ties them
    assert _nbytes(weights) == sum(p.numel() * 4 for p in learner.policy.model.parameters())
    worker = Policy.from_config(ModelConfig(**TINY, init_seed=5))
    worker.set_weights(weights)
    for k, v in worker.model.state_dict().items():  # lm_head included, through the tie
        assert torch.equal(v, state[k]), k
    with pytest.raises(KeyError, match="missing"):
        worker.set_weights({k: v for k, v in weights.items() if "q_proj" not in k})
    with pytest.raises(KeyError, match="unexpected"):
        worker.set_weights({**weights, "extra.weight": torch.zeros(1)})


# --- FLOPs / MFU --------------------------------------------------------------------------


def test_flop_counts_and_mfu(monkeypatch):
    assert train_flops(1_000, 10) == 60_000
    assert forward_flops(1_000, 10) == 20_000
    monkeypatch.delenv("AGENTRL_PEAK_TFLOPS", raising=False)
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("cpu") is None and peak_flops(None) is None
    # 135M params, 10k trained tokens in 1 s on an H200: 8.1e15 / 989e12 = 0.819 %
    assert mfu(train_flops(135_000_000, 10_000), 1.0, 989e12) == pytest.approx(0.00819, rel=1e-3)
    assert mfu(1.0, 1.0, None) is None and mfu(1.0, 0.0, 1.0) is None
    monkeypatch.setenv("AGENTRL_PEAK_TFLOPS", "100")
    assert peak_flops("anything") == 100e12
    monkeypatch.setenv("AGENTRL_PEAK_TFLOPS", "fast")
    with pytest.raises(ValueError, match="AGENTRL_PEAK_TFLOPS='fast'"):
        peak_flops("NVIDIA H200")


# --- the GPU benchmark ----------------------------------------------------------------------


def test_gpu_sh_fails_clearly_without_cuda():
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh")],
        capture_output=True,
        text=True,
        env={"PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
        timeout=120,
    )
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr


@pytest.mark.timeout(180)
def test_gpu_benchmark_runs_on_cpu(tmp_path, capsys):
    """The benchmark's own code path (meters, timing, table) on the CPU, tiny workload."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks import gpu_throughput

    out = tmp_path / "gpu.md"
    result = gpu_throughput.main(
        [
            "--device", "cpu", "--iterations", "1", "--episodes", "4", "--out", str(out),
            "algorithm.critic_epochs=2", "algorithm.batch_size=8", "algorithm.actor_epochs=1",
            "warm_start.episodes=10", "eval.episodes=2",
        ]
    )  # fmt: skip
    assert result["iterations"] == 1 and result["device"] == "cpu"
    assert result["mfu"] is None  # no peak for a CPU
    meters = {m["module"]: m for m in result["meters"]}
    # the actor trained (gradients through the policy) and sampled fresh actions (no grad)
    assert meters["policy"]["train_tokens"] > 0 and meters["policy"]["forward_tokens"] > 0
    assert meters["critic.encoder"]["train_tokens"] > 0
    assert meters["target_critic.encoder"]["train_tokens"] == 0  # the target never trains
    assert result["learner_tokens"] == sum(
        m["train_tokens"] + m["forward_tokens"] for m in result["meters"]
    )
    assert result["learner_tokens_per_s"] > 0
    assert "| MFU | n/a" in out.read_text()
    assert "learner tokens/s" in capsys.readouterr().out


@pytest.mark.ray
def test_ray_lora_run_syncs_the_adapter_and_matches_inline(ray_cluster, tiny_overrides, tmp_path):
    """Through Ray actors (CPU here), a LoRA run sends only the adapter (perf/sync_mb is its
    size) and its workers sample exactly what the inline run's shared policy samples."""
    from agentrl.metrics import read_metrics
    from agentrl.trainer import Trainer

    base = [
        *tiny_overrides,
        "env=guess_the_number",
        "model.lora=true",
        "algorithm.lr=5e-2",
        "iterations=2",
        "eval.every=0",
        "rollout.episodes_per_iter=4",
        "rollout.envs_per_worker=4",
        "rollout.num_cpus_per_worker=0.5",
        "cluster.learner_num_cpus=0.5",
    ]
    cfg = load_config([*base, "cluster=local", f"run_dir={tmp_path / 'ray'}"])
    Trainer(cfg, console=False).run()
    inline = load_config([*base, "cluster=inline", f"run_dir={tmp_path / 'inline'}"])
    Trainer(inline, console=False).run()
    a = read_metrics(tmp_path / "ray" / "metrics.jsonl")
    b = read_metrics(tmp_path / "inline" / "metrics.jsonl")
    adapter_mb = _nbytes(Policy.from_config(cfg.model).get_weights()) / 2**20
    full_mb = _nbytes(Policy.from_config(ModelConfig(**TINY)).get_weights()) / 2**20
    trained = [r for r in a if r["iteration"] > 0]
    assert trained and all(r["perf/sync_mb"] == pytest.approx(adapter_mb) for r in trained)
    assert adapter_mb < 0.05 * full_mb
    for ra, rb in zip(a, b, strict=True):
        for key in ("train/return", "train/turns", "ppo/loss", "eval/return"):
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], abs=1e-5), key
