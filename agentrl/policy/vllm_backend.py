"""An optional vLLM generation backend for GPU rollout workers (``model.backend=vllm``).

:class:`VLLMPolicy` has the inference half of :class:`~agentrl.policy.Policy`'s interface —
``format_prompt``/``encode_prompts`` (the same functions, so prompts are identical),
``generate``/``generate_text`` returning the same :class:`~agentrl.types.Generation`
objects (sampled token ids and their log-probs), ``set_weights`` and ``version`` — so a
:class:`~agentrl.rollouts.worker.RolloutWorker` uses it unchanged. The learner always trains
the HF model; only Ray rollout workers with a GPU use vLLM.

Translation (each piece a small function, unit-tested against a fake ``vllm`` module):

- :func:`sampling_params_kwargs`: ``SamplingConfig`` -> ``vllm.SamplingParams`` fields:
  temperature (0 for greedy), ``top_k`` (-1 = off, which every vLLM version accepts),
  ``max_tokens``, ``stop`` strings, ``logprobs=0`` (the sampled token's log-prob only) and
  a per-request ``seed`` drawn from the caller's generator (same generator state -> same
  samples). The engine is created with ``logprobs_mode="processed_logprobs"`` so that the
  log-probs are those of the temperature-scaled / top-k distribution that was sampled, as
  in the HF backend (vLLM's default reports the raw model's).
- :func:`generation_from_output`: a vLLM ``CompletionOutput`` -> ``Generation``; the text is
  decoded from the token ids with the policy's tokenizer and cut at the first stop string
  exactly as the HF backend does.
- Weights: :meth:`VLLMPolicy.set_weights` takes what the learner's
  :meth:`Policy.get_weights` sends. A full state dict is pushed as is; a LoRA adapter
  (``model.lora=true``: only the adapter travels) is merged here into the base weights
  (:func:`merge_lora`: ``W = W0 + (alpha / r) * B @ A``) and only the merged target
  matrices are pushed. Pushing calls the engine model's ``load_weights`` (HF parameter
  names; vLLM fuses q/k/v itself) in this process when the engine runs in-process, else
  through ``LLM.collective_rpc`` on every engine worker; then the prefix cache is reset so
  no KV block computed with the old weights is reused.

Not supported here (clear errors): decoding constraints (``rollout.sampling.constraint``),
``get_weights`` (workers only receive weights) and CPU devices. vLLM is imported only when
this backend is selected; install it with ``pip install 'agentrl[vllm]'`` on a CUDA machine.
"""

from __future__ import annotations

import dataclasses
import importlib
import shutil
import tempfile
import weakref
from collections.abc import Collection, Iterable, Sequence
from typing import Any

import torch

from agentrl.policy.chat import ChatFormat, ToolSpec, chat_format
from agentrl.policy.device import resolve_device
from agentrl.policy.models import ModelConfig, load_model_and_tokenizer
from agentrl.policy.policy import Policy
from agentrl.policy.sampling import SamplingConfig, cut_at_stop
from agentrl.types import Generation

VLLM_INSTALL_HINT = "pip install 'agentrl[vllm]'"
PEFT_PREFIX = "base_model.model."


def import_vllm() -> Any:
    """``import vllm``, or an ``ImportError`` that names the extra to install."""
    try:
        return importlib.import_module("vllm")
    except ImportError as e:
        raise ImportError(
            f"model.backend=vllm needs the vllm package (CUDA only): {VLLM_INSTALL_HINT}, or use "
            f"model.backend=hf ({e})"
        ) from e


# ----------------------------------------------------------------------------- translation


def sampling_params_kwargs(sampling: SamplingConfig, seed: int | None) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` for one request under ``sampling``."""
    return {
        "n": 1,
        "temperature": 0.0 if sampling.is_greedy else float(sampling.temperature),
        "top_k": int(sampling.top_k) if sampling.top_k > 0 else -1,
        "top_p": 1.0,
        "max_tokens": int(sampling.max_new_tokens),
        "stop": list(sampling.stop),
        "logprobs": 0,
        "seed": seed,
    }


def request_seeds(n: int, generator: torch.Generator | None) -> list[int | None]:
    """One vLLM seed per request, drawn from ``generator`` (``None``s without one)."""
    if generator is None:
        return [None] * n
    draws = torch.randint(0, 2**31 - 1, (n,), generator=generator, device=generator.device)
    return [int(s) for s in draws.tolist()]


def generation_from_output(
    output: Any, prompt_ids: Sequence[int], tokenizer: Any, stop: Sequence[str]
) -> Generation:
    """A vLLM ``CompletionOutput`` (``token_ids``, ``logprobs``, ``finish_reason``) -> ``Generation``.

    ``output.logprobs`` holds one ``{token_id: Logprob}`` dict per generated token (the
    sampled token is always in it); its ``.logprob`` is the value kept.
    """
    token_ids = [int(t) for t in output.token_ids]
    if output.logprobs is None or len(output.logprobs) != len(token_ids):
        raise RuntimeError(
            "vLLM returned no per-token log-probs; the request must set logprobs=0 "
            "(agentrl.policy.vllm_backend.sampling_params_kwargs does)"
        )
    logprobs = [float(step[t].logprob) for t, step in zip(token_ids, output.logprobs, strict=True)]
    text = str(tokenizer.decode(token_ids, skip_special_tokens=True))
    return Generation(
        text=cut_at_stop(text, stop),
        token_ids=token_ids,
        logprobs=logprobs,
        prompt_ids=list(prompt_ids),
        finish_reason="length" if output.finish_reason == "length" else "stop",
    )


def lora_targets(adapter: dict[str, torch.Tensor]) -> list[str]:
    """HF module names (``model.layers.0.self_attn.q_proj``) that a peft adapter state dict
    (:func:`peft.get_peft_model_state_dict` keys) adapts, in order."""
    names: dict[str, None] = {}
    for key in adapter:
        if key.endswith(".lora_A.weight"):
            module = key[: -len(".lora_A.weight")]
            names[module.removeprefix(PEFT_PREFIX)] = None
    return list(names)


def merge_lora(
    base: dict[str, torch.Tensor], adapter: dict[str, torch.Tensor], scale: float
) -> dict[str, torch.Tensor]:
    """The adapted weight matrices ``W0 + scale * B @ A`` under their HF names.

    Args:
        base: the base model's weights, at least ``{module}.weight`` of every adapted module.
        adapter: peft adapter weights (``...{module}.lora_A.weight`` ``[r, in]`` and
            ``...{module}.lora_B.weight`` ``[out, r]``), as :meth:`Policy.get_weights` sends.
        scale: ``lora_alpha / r`` (peft's scaling without rsLoRA).

    Returns:
        ``{"{module}.weight": merged [out, in]}`` in the base weight's dtype.
    """
    merged: dict[str, torch.Tensor] = {}
    for module in lora_targets(adapter):
        a = adapter[f"{PEFT_PREFIX}{module}.lora_A.weight"].float()
        b = adapter[f"{PEFT_PREFIX}{module}.lora_B.weight"].float()
        w0 = base[f"{module}.weight"]
        merged[f"{module}.weight"] = (w0.float() + scale * (b @ a)).to(w0.dtype)
    unknown = [k for k in adapter if ".lora_A." not in k and ".lora_B." not in k]
    if unknown:
        raise KeyError(f"adapter weights that are not LoRA A/B matrices: {unknown[:5]}")
    return merged


class WeightLoaderExtension:
    """Mixed into every vLLM engine worker (``worker_extension_cls``), so the weights reach
    each worker through ``LLM.collective_rpc`` by method *name*: no pickled callable (which
    vLLM's V1 engine would only accept with ``VLLM_ALLOW_INSECURE_SERIALIZATION=1``)."""

    model_runner: Any  # provided by the vLLM worker class this is mixed into

    def agentrl_load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        self.model_runner.model.load_weights(weights)


WORKER_EXTENSION = f"{__name__}.WeightLoaderExtension"
OPTIONAL_ENGINE_ARGS = ("logprobs_mode", "worker_extension_cls")


def inprocess_model(llm: Any) -> Any:
    """The engine's ``nn.Module`` when vLLM runs it in this process (V0 engine, or V1 with
    ``VLLM_ENABLE_V1_MULTIPROCESSING=0``), else ``None``."""
    executor = getattr(getattr(llm, "llm_engine", None), "model_executor", None)
    worker = getattr(executor, "driver_worker", None)
    for candidate in (worker, getattr(worker, "worker", None)):
        runner = getattr(candidate, "model_runner", None)
        model = getattr(runner, "model", None)
        if model is not None and hasattr(model, "load_weights"):
            return model
    return None


def engine_kwargs(cfg: ModelConfig, model_dir: str) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments for the exported model in ``model_dir`` (defaults, then
    ``cfg.vllm_kwargs`` on top)."""
    return {
        "model": model_dir,
        "tokenizer": model_dir,
        "dtype": "bfloat16",
        "seed": cfg.init_seed,
        "enable_prefix_caching": True,
        "logprobs_mode": "processed_logprobs",
        "worker_extension_cls": WORKER_EXTENSION,
        **dict(cfg.vllm_kwargs),
    }


def start_engine(vllm: Any, kwargs: dict[str, Any], user_keys: Collection[str] = ()) -> Any:
    """``vllm.LLM(**kwargs)``; an engine argument of :data:`OPTIONAL_ENGINE_ARGS` that this
    vLLM does not know (a ``TypeError`` naming it) is dropped and the engine retried, unless
    the user set it."""
    kwargs = dict(kwargs)
    while True:
        try:
            return vllm.LLM(**kwargs)
        except TypeError as e:
            unknown = [k for k in OPTIONAL_ENGINE_ARGS if k in kwargs and k in str(e)]
            if not unknown or unknown[0] in user_keys:
                raise
            kwargs.pop(unknown[0])


# ------------------------------------------------------------------------------- the policy


class VLLMPolicy:
    """Rollout-side policy that generates with a vLLM engine (see the module docstring).

    Args:
        llm: a ``vllm.LLM`` (or a stand-in with ``generate`` and ``collective_rpc``).
        tokenizer: the HF tokenizer of the policy (prompts are encoded with it).
        model_config: the policy's :class:`ModelConfig` (system prompt, LoRA settings).
        base_weights: the base model's weights of every LoRA target (merging needs them);
            ignored without LoRA.
        vllm: the imported ``vllm`` module (for ``SamplingParams``).
        workdir: a temporary folder owned by this policy (the exported model), removed by
            :meth:`close`, or when the policy is garbage-collected or the interpreter exits
            without it.
    """

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        model_config: ModelConfig,
        base_weights: dict[str, torch.Tensor] | None = None,
        vllm: Any = None,
        workdir: str | None = None,
    ) -> None:
        self.llm = llm
        self.tokenizer = tokenizer
        self.model_config = model_config
        self.system_prompt = model_config.system_prompt
        self.base_weights = base_weights or {}
        self.vllm = vllm if vllm is not None else import_vllm()
        self.workdir = workdir
        # a policy dropped without close() (a worker's end, a test) must not leak the export
        self._remove_workdir = (
            weakref.finalize(self, shutil.rmtree, workdir, ignore_errors=True) if workdir else None
        )
        self.device = torch.device("cuda")
        self.version = 0
        self.default_constraint: str | None = None
        self.pushed_tensors = 0  # counted for logs and tests

    @classmethod
    def from_config(cls, cfg: ModelConfig, device: str | torch.device | None = None) -> VLLMPolicy:
        """Export ``cfg``'s base model to a temporary HF folder and start a vLLM engine on it.

        The engine gets ``dtype=bfloat16``, ``seed=cfg.init_seed``,
        ``enable_prefix_caching=True``, ``logprobs_mode=processed_logprobs`` and
        ``worker_extension_cls`` (:class:`WeightLoaderExtension`) unless ``cfg.vllm_kwargs``
        sets them (any other ``vllm.LLM`` argument goes there too). A vLLM too old for the
        last two is retried without them (its V0 engine runs in-process and reports
        processed log-probs).
        """
        target = torch.device(device) if device is not None else resolve_device(cfg.device)
        if target.type != "cuda":
            from agentrl.config import ConfigError

            raise ConfigError(
                f"model.backend=vllm needs a GPU but this worker's device is {target}: give rollout "
                "workers a GPU (rollout.num_gpus_per_worker=1) or use model.backend=hf"
            )
        vllm = import_vllm()
        base_cfg = dataclasses.replace(cfg, lora=False)
        model, tok = load_model_and_tokenizer(base_cfg)
        workdir = tempfile.mkdtemp(prefix="agentrl-vllm-")
        model.save_pretrained(workdir, safe_serialization=True)
        tok.save_pretrained(workdir)
        base: dict[str, torch.Tensor] = {}
        if cfg.lora:  # keep only what merging needs: the weights of the adapted modules
            suffixes = tuple(f".{m}.weight" for m in cfg.lora_target_modules)
            base = {
                k: v.detach().clone() for k, v in model.state_dict().items() if k.endswith(suffixes)
            }
        del model
        kwargs = engine_kwargs(cfg, workdir)
        try:
            llm = start_engine(vllm, kwargs, user_keys=set(cfg.vllm_kwargs))
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        return cls(llm, tok, cfg, base_weights=base, vllm=vllm, workdir=workdir)

    # ------------------------------------------------------------------------ prompts
    # Policy's own functions (they read only ``tokenizer`` and ``system_prompt``), not a
    # copy: both backends see byte-identical prompts.

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def format_prompt(self, observation: str) -> str:
        return Policy.format_prompt(self, observation)  # type: ignore[arg-type]

    def encode_prompts(self, observations: Sequence[str]) -> list[list[int]]:
        return Policy.encode_prompts(self, observations)  # type: ignore[arg-type]

    def chat_format(self, tools: Sequence[ToolSpec] = ()) -> ChatFormat:
        """The conversation format, as :meth:`Policy.chat_format` (same tokenizer, same ids)."""
        return chat_format(self.tokenizer, self.system_prompt, tools)

    @property
    def max_context_tokens(self) -> int:
        """``vllm_kwargs["max_model_len"]`` when set, else no limit of agentrl's own (the
        engine refuses prompts beyond the model's length)."""
        return int(self.model_config.vllm_kwargs.get("max_model_len", 2**31 - 1))

    def generate_continue(
        self,
        prompt_ids: Sequence[Sequence[int]],
        caches: Sequence[None],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Generation], list[None]]:
        """:meth:`generate` (the engine's automatic prefix cache reuses each conversation's
        earlier turns: ``enable_prefix_caching``); no caches of agentrl's own."""
        return self.generate(prompt_ids, sampling, generator), [None] * len(prompt_ids)

    # --------------------------------------------------------------------- generation

    def generate(
        self,
        prompt_ids: Sequence[Sequence[int]],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Generation]:
        """Sample one utterance per prompt with the engine; same contract as
        :meth:`Policy.generate` (``Generation`` per prompt, in input order)."""
        sampling = sampling or SamplingConfig()
        if not prompt_ids:
            return []
        if any(len(p) == 0 for p in prompt_ids):
            raise ValueError("every prompt needs at least one token")
        if sampling.constraint or self.default_constraint:
            raise NotImplementedError(
                "decoding constraints (rollout.sampling.constraint) are implemented by the hf "
                "backend only; use model.backend=hf"
            )
        seeds = request_seeds(len(prompt_ids), generator)
        params = [self.vllm.SamplingParams(**sampling_params_kwargs(sampling, s)) for s in seeds]
        prompts = [{"prompt_token_ids": list(p)} for p in prompt_ids]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            generation_from_output(out.outputs[0], p, self.tokenizer, sampling.stop)
            for p, out in zip(prompt_ids, outputs, strict=True)
        ]

    def generate_text(
        self,
        observations: Sequence[str],
        sampling: SamplingConfig | None = None,
        generator: torch.Generator | None = None,
    ) -> list[Generation]:
        """:meth:`encode_prompts` then :meth:`generate`."""
        return self.generate(self.encode_prompts(observations), sampling, generator)

    # ------------------------------------------------------------------------ weights

    def set_weights(self, weights: dict[str, torch.Tensor], version: int | None = None) -> None:
        """Load the learner's weights into the engine (merging a LoRA adapter first)."""
        if self.model_config.lora:
            scale = self.model_config.lora_alpha / self.model_config.lora_r
            named = merge_lora(self.base_weights, weights, scale)
        else:
            named = dict(weights)
        self._push(named.items())
        self.version = self.version + 1 if version is None else int(version)

    def _push(self, items: Iterable[tuple[str, torch.Tensor]]) -> None:
        weights = [(k, v.detach().cpu()) for k, v in items]
        model = inprocess_model(self.llm)
        if model is not None:
            model.load_weights(weights)
        else:
            self.llm.collective_rpc("agentrl_load_weights", args=(weights,))
        reset = getattr(self.llm, "reset_prefix_cache", None)
        if callable(reset):
            reset()
        self.pushed_tensors += len(weights)

    def get_weights(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError("a vLLM policy only receives weights (the learner holds them)")

    def close(self) -> None:
        """Drop the engine and remove the exported model folder."""
        self.llm = None
        if self._remove_workdir is not None:
            self._remove_workdir()
        self.workdir = None


def check_backend(
    model: ModelConfig, cluster_mode: str, num_gpus_per_worker: float, constraint: str | None
) -> None:
    """Fail before any work when ``model.backend=vllm`` cannot run with this run's settings.

    vLLM serves Ray rollout workers that reserved a GPU; an inline run's workers share the
    learner's HF policy, and decoding constraints exist only in the HF decode loop.
    """
    if model.backend != "vllm":
        return
    from agentrl.config import ConfigError

    if cluster_mode == "inline":
        raise ConfigError(
            "model.backend=vllm generates in Ray rollout workers, but cluster=inline shares the "
            "learner's HF policy: use cluster=local or cluster=address with "
            "rollout.num_gpus_per_worker>0, or model.backend=hf"
        )
    if num_gpus_per_worker <= 0:
        raise ConfigError(
            "model.backend=vllm needs GPU rollout workers: set rollout.num_gpus_per_worker "
            "(e.g. 1, or 0.5 to share a GPU between two workers), or use model.backend=hf"
        )
    if constraint:
        raise ConfigError(
            f"rollout.sampling.constraint={constraint} is implemented by model.backend=hf only"
        )


def build_inference_policy(cfg: ModelConfig, device: str | torch.device | None = None) -> Any:
    """The rollout worker's inference copy: :class:`Policy` (``backend=hf``) or
    :class:`VLLMPolicy` (``backend=vllm``, imported only then), on ``device``."""
    if cfg.backend == "vllm":
        return VLLMPolicy.from_config(cfg, device=device)
    return Policy.from_config(cfg, device=device)


__all__ = [
    "VLLMPolicy",
    "VLLM_INSTALL_HINT",
    "build_inference_policy",
    "check_backend",
    "generation_from_output",
    "import_vllm",
    "merge_lora",
    "sampling_params_kwargs",
]
