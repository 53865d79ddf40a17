"""The vLLM generation backend's translation logic, against a FAKE ``vllm`` module.

vLLM needs CUDA and is not installed here (nor in CI), so these tests inject a small
stand-in module into ``sys.modules["vllm"]``: ``SamplingParams`` that accepts only the
fields agentrl uses, and an ``LLM`` that records its arguments, returns scripted
``CompletionOutput``-like objects and records weight pushes. They prove what agentrl sends
to and reads from vLLM (sampling fields, per-request seeds, prompt token ids, log-prob
extraction, the stop-string cut, LoRA merging, which weights are pushed and how); they do
NOT prove that a real vLLM engine samples or loads weights correctly — that needs a GPU
run (docs/gpu.md says how).
"""

from __future__ import annotations

import copy
import gc
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from agentrl.config import ConfigError, load_config
from agentrl.policy import ModelConfig, Policy, SamplingConfig
from agentrl.policy.vllm_backend import (
    VLLM_INSTALL_HINT,
    VLLMPolicy,
    WeightLoaderExtension,
    build_inference_policy,
    generation_from_output,
    import_vllm,
    merge_lora,
    sampling_params_kwargs,
    start_engine,
)

TINY: dict[str, Any] = dict(hidden_size=64, num_layers=1, intermediate_size=128, num_heads=2)
CUDA = torch.device("cuda")  # only a label here: the fake engine never touches a GPU


class FakeSamplingParams:
    FIELDS = {"n", "temperature", "top_k", "top_p", "max_tokens", "stop", "logprobs", "seed"}

    def __init__(self, **kwargs):
        unknown = set(kwargs) - self.FIELDS
        if unknown:
            raise TypeError(f"unexpected SamplingParams fields {unknown}")
        self.__dict__.update(kwargs)


class FakeLLM:
    """Records everything; ``generate`` returns ``script`` (token ids) for every prompt."""

    reject: tuple[str, ...] = ()  # engine args this "old vLLM" does not know
    script: list[int] = []
    finish_reason = "stop"

    def __init__(self, **kwargs):
        for key in self.reject:
            if key in kwargs:
                raise TypeError(f"EngineArgs.__init__() got an unexpected keyword argument '{key}'")
        self.kwargs = kwargs
        self.calls: list[tuple] = []
        self.rpcs: list[tuple] = []
        self.prefix_resets = 0

    def generate(self, prompts, params, use_tqdm=True):
        self.calls.append((prompts, params, use_tqdm))
        outs = []
        for _ in prompts:
            steps = [
                # the sampled token plus another one, as vLLM returns with logprobs=0 or more
                {tid: SimpleNamespace(logprob=-0.25 * (i + 1)), -1: SimpleNamespace(logprob=-9.0)}
                for i, tid in enumerate(self.script)
            ]
            completion = SimpleNamespace(
                token_ids=list(self.script), logprobs=steps, finish_reason=self.finish_reason
            )
            outs.append(SimpleNamespace(outputs=[completion]))
        return outs

    def collective_rpc(self, method, args=(), kwargs=None):
        self.rpcs.append((method, args))
        return [None]

    def reset_prefix_cache(self):
        self.prefix_resets += 1


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.SamplingParams = FakeSamplingParams
    module.LLM = type("LLM", (FakeLLM,), {"reject": (), "script": []})
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def _vllm_policy(fake_vllm, **kw) -> VLLMPolicy:
    return VLLMPolicy.from_config(ModelConfig(**TINY, backend="vllm", **kw), device=CUDA)


# --- selection and errors -----------------------------------------------------------------


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # "not installed"
    with pytest.raises(ImportError) as e:
        import_vllm()
    assert VLLM_INSTALL_HINT in str(e.value) and "pip install 'agentrl[vllm]'" in str(e.value)
    with pytest.raises(ImportError, match=r"agentrl\[vllm\]"):
        _vllm_policy(None)


def test_hf_backend_never_imports_vllm(monkeypatch):
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    policy = build_inference_policy(ModelConfig(**TINY), device="cpu")
    assert isinstance(policy, Policy)
    assert "vllm" not in sys.modules


def test_vllm_on_a_cpu_worker_is_a_config_error(fake_vllm):
    with pytest.raises(ConfigError, match="num_gpus_per_worker"):
        build_inference_policy(ModelConfig(**TINY, backend="vllm"), device="cpu")


def test_backend_is_validated():
    assert load_config(["model.backend=vllm"]).model.backend == "vllm"
    with pytest.raises(ConfigError, match="expected one of hf, vllm"):
        load_config(["model.backend=tensorrt"])


# --- engine construction ------------------------------------------------------------------


def test_engine_gets_the_exported_model_and_defaults(fake_vllm):
    policy = _vllm_policy(fake_vllm, vllm_kwargs={"gpu_memory_utilization": 0.3})
    kw = policy.llm.kwargs
    workdir = policy.workdir
    assert kw["model"] == workdir and kw["tokenizer"] == workdir
    assert (Path(workdir) / "config.json").is_file()
    assert kw["logprobs_mode"] == "processed_logprobs"  # log-probs of what was sampled
    assert kw["worker_extension_cls"] == "agentrl.policy.vllm_backend.WeightLoaderExtension"
    assert kw["gpu_memory_utilization"] == 0.3 and kw["seed"] == 0 and kw["dtype"] == "bfloat16"
    policy.close()
    assert not Path(workdir).exists()
    policy.close()  # a second close is a no-op


def test_exported_model_is_removed_when_a_policy_is_dropped_without_close(fake_vllm):
    policy = _vllm_policy(fake_vllm)
    workdir = Path(policy.workdir)
    assert workdir.is_dir()
    del policy
    gc.collect()
    assert not workdir.exists()


def test_old_vllm_without_optional_engine_args_is_retried(fake_vllm):
    fake_vllm.LLM.reject = ("logprobs_mode", "worker_extension_cls")
    llm = start_engine(fake_vllm, {"model": "m", "logprobs_mode": "x", "worker_extension_cls": "y"})
    assert llm.kwargs == {"model": "m"}
    with pytest.raises(TypeError, match="logprobs_mode"):  # the user asked for it: no retry
        start_engine(fake_vllm, {"model": "m", "logprobs_mode": "x"}, user_keys={"logprobs_mode"})


# --- generation -----------------------------------------------------------------------------


def test_sampling_params_translation():
    s = SamplingConfig(temperature=0.7, top_k=0, max_new_tokens=12, stop=("\n", "END"))
    assert sampling_params_kwargs(s, seed=5) == {
        "n": 1,
        "temperature": 0.7,
        "top_k": -1,  # off (accepted by every vLLM version)
        "top_p": 1.0,
        "max_tokens": 12,
        "stop": ["\n", "END"],
        "logprobs": 0,  # the sampled token's log-prob
        "seed": 5,
    }
    greedy = sampling_params_kwargs(SamplingConfig(greedy=True, top_k=5), seed=None)
    assert greedy["temperature"] == 0.0 and greedy["top_k"] == 5 and greedy["seed"] is None


def test_generate_translates_requests_and_outputs(fake_vllm):
    policy = _vllm_policy(fake_vllm, system_prompt="sys")
    hf = Policy.from_config(ModelConfig(**TINY, system_prompt="sys"))
    tok = policy.tokenizer
    fake_vllm.LLM.script = tok.encode("50\nmore", add_special_tokens=False)
    obs = ["Guess a number between 1 and 100.", "Too low."]
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=8)

    gens = policy.generate_text(obs, sampling, generator=torch.Generator().manual_seed(3))
    prompts, params, use_tqdm = policy.llm.calls[-1]
    # the prompts are the HF policy's token ids, byte for byte
    assert [p["prompt_token_ids"] for p in prompts] == hf.encode_prompts(obs)
    assert use_tqdm is False
    assert [p.max_tokens for p in params] == [8, 8] and params[0].stop == ["\n"]
    assert params[0].logprobs == 0 and params[0].temperature == 1.0
    seeds = [p.seed for p in params]
    assert seeds[0] != seeds[1]  # one seed per request, from the generator
    again = policy.generate_text(obs, sampling, generator=torch.Generator().manual_seed(3))
    assert [p.seed for p in policy.llm.calls[-1][1]] == seeds  # same generator -> same seeds
    assert again == gens

    g = gens[0]
    assert g.token_ids == fake_vllm.LLM.script
    assert g.logprobs == [-0.25 * (i + 1) for i in range(len(g.token_ids))]  # the sampled ids'
    assert g.text == "50"  # cut at the stop string, like the HF backend
    assert g.prompt_ids == hf.encode_prompts(obs)[0]
    assert g.finish_reason == "stop"


def test_generation_from_output_rules():
    tok = Policy.from_config(ModelConfig(**TINY)).tokenizer
    ids = tok.encode("hi there", add_special_tokens=False)
    steps = [{t: SimpleNamespace(logprob=-1.0)} for t in ids]
    out = SimpleNamespace(token_ids=ids, logprobs=steps, finish_reason="length")
    g = generation_from_output(out, [1, 2], tok, ["\n"])
    assert g.finish_reason == "length" and g.text == "hi there" and g.logprob == -len(ids)
    with pytest.raises(RuntimeError, match="logprobs=0"):
        generation_from_output(SimpleNamespace(token_ids=ids, logprobs=None), [1], tok, ["\n"])


def test_constraints_are_refused(fake_vllm):
    policy = _vllm_policy(fake_vllm)
    with pytest.raises(NotImplementedError, match="model.backend=hf"):
        policy.generate([[1, 2]], SamplingConfig(constraint="toolchain"))


# --- weights --------------------------------------------------------------------------------


def test_lora_adapter_is_merged_and_pushed(fake_vllm):
    """Only the adapter travels; the worker merges it into its base weights and pushes
    exactly the merged matrices peft's own ``merge_and_unload`` produces."""
    cfg = ModelConfig(**TINY, lora=True)
    learner = Policy.from_config(cfg)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for name, p in learner.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen))
    adapter = learner.get_weights()

    policy = _vllm_policy(fake_vllm, lora=True)
    policy.set_weights(adapter, version=4)
    assert policy.version == 4
    method, (pushed,) = policy.llm.rpcs[-1]
    assert method == "agentrl_load_weights"  # by name, via the worker extension
    merged_ref = copy.deepcopy(learner.model).merge_and_unload().state_dict()
    names = [n for n, _ in pushed]
    assert names == [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.v_proj.weight",
    ]
    for name, tensor in pushed:
        assert not tensor.is_cuda
        torch.testing.assert_close(tensor, merged_ref[name], rtol=0, atol=1e-6)
        assert not torch.equal(tensor, policy.base_weights[name])  # the adapter changed it
    assert policy.llm.prefix_resets == 1  # no KV block of the old weights is reused
    policy.set_weights(adapter)
    assert policy.version == 5


def test_merge_lora_by_hand():
    base = {"m.q.weight": torch.eye(2)}
    adapter = {
        "base_model.model.m.q.lora_A.weight": torch.tensor([[1.0, 2.0]]),  # [r=1, in=2]
        "base_model.model.m.q.lora_B.weight": torch.tensor([[1.0], [0.0]]),  # [out=2, r=1]
    }
    merged = merge_lora(base, adapter, scale=2.0)
    assert torch.equal(merged["m.q.weight"], torch.tensor([[3.0, 4.0], [0.0, 1.0]]))
    with pytest.raises(KeyError, match="not LoRA"):
        merge_lora(base, {**adapter, "base_model.model.m.q.bias": torch.zeros(2)}, 1.0)


def test_full_weights_go_to_an_in_process_engine(fake_vllm):
    policy = _vllm_policy(fake_vllm)
    loaded: list = []
    model = SimpleNamespace(load_weights=lambda w: loaded.extend(w))
    runner = SimpleNamespace(model=model)
    policy.llm.llm_engine = SimpleNamespace(
        model_executor=SimpleNamespace(driver_worker=SimpleNamespace(model_runner=runner))
    )
    weights = Policy.from_config(ModelConfig(**TINY, init_seed=1)).get_weights()
    policy.set_weights(weights)
    assert [n for n, _ in loaded] == list(weights)  # HF names, every tensor
    assert policy.llm.rpcs == []  # in-process: no RPC
    assert policy.pushed_tensors == len(weights)


def test_worker_extension_loads_into_the_runner_model():
    loaded: list = []
    worker = WeightLoaderExtension()
    worker.model_runner = SimpleNamespace(model=SimpleNamespace(load_weights=loaded.extend))
    worker.agentrl_load_weights([("a.weight", torch.zeros(1))])
    assert [n for n, _ in loaded] == ["a.weight"]


def test_get_weights_is_refused(fake_vllm):
    with pytest.raises(NotImplementedError):
        _vllm_policy(fake_vllm).get_weights()


# --- run validation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["cluster=inline"], "cluster=inline shares the learner's HF policy"),
        (["cluster=local"], "needs GPU rollout workers: set rollout.num_gpus_per_worker"),
        (
            [
                "cluster=local",
                "rollout.num_gpus_per_worker=1",
                "rollout.sampling.constraint=toolchain",
            ],
            "implemented by model.backend=hf only",
        ),
    ],
)
def test_trainer_refuses_vllm_where_it_cannot_run(tmp_path, overrides, message):
    from agentrl.trainer import Trainer

    cfg = load_config(["model.backend=vllm", f"run_dir={tmp_path / 'run'}", *overrides])
    with pytest.raises(ConfigError, match=message):
        Trainer(cfg, console=False)  # validated before Ray or any model starts
