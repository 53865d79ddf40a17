"""The ArCHer main job on a GPU for a few iterations: learner tokens/s and MFU.

(:func:`measure` runs any inline training so; the GPU proof, ``benchmarks/gpu_proof.py``,
uses it for one ArCHer and one GRPO iteration.)

Run it through ``benchmarks/gpu.sh`` (which refuses to start without CUDA)::

    benchmarks/gpu.sh                                  # tiny model, 3 iterations
    benchmarks/gpu.sh --model smollm2 --iterations 5   # SmolLM2-135M + LoRA
    benchmarks/gpu.sh --out docs/gpu_results.md algorithm.batch_size=128

What is counted: every token that goes through the policy model and the critic encoders
while the learner updates (forward pre-hooks: the non-padding columns each call feeds,
so a KV-cache decode step counts one token per row). A call with gradients counts
``6 * N`` FLOPs per token (forward + backward), one without ``2 * N``
(:mod:`agentrl.flops`), ``N`` = that module's parameters. Learner tokens/s = those tokens
/ the summed ``learner.update`` wall time (CUDA synchronised); MFU = FLOPs / update time /
the GPU's dense bf16 peak (``AGENTRL_PEAK_TFLOPS`` overrides). Rollout throughput comes
from the run's own ``perf/tokens_per_s``. Runs inline (one process, one GPU), with a short
BC warm start (so the SFTTrainer bf16 path runs too) whose time is not counted.

``--device cpu`` runs the same code on the CPU (no MFU without a peak): the test suite
uses it as a smoke test, since CI machines have no GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentrl.config import load_config  # noqa: E402
from agentrl.flops import forward_flops, mfu, peak_flops, train_flops  # noqa: E402
from agentrl.policy.lean import lean_parts  # noqa: E402
from agentrl.trainer import Trainer  # noqa: E402


@dataclass
class TokenMeter:
    """Tokens through one module while :attr:`active`, split by gradient mode."""

    name: str
    params: int
    train_tokens: int = 0
    forward_tokens: int = 0
    active: list[bool] = field(default_factory=lambda: [False])

    def hook(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if not self.active[0]:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            return
        mask = kwargs.get("attention_mask")
        width = ids.shape[-1]
        n = int(mask[:, -width:].sum()) if mask is not None else int(ids.numel())
        if torch.is_grad_enabled() and any(p.requires_grad for p in module.parameters()):
            self.train_tokens += n
        else:
            self.forward_tokens += n

    @property
    def flops(self) -> float:
        return train_flops(self.params, self.train_tokens) + forward_flops(
            self.params, self.forward_tokens
        )


class MeteredTrainer(Trainer):
    """The trainer, with token meters on the learner's models and a timed ``update``."""

    meters: list[TokenMeter]
    update_s: float

    def _build(self) -> None:
        super()._build()
        learner = self.learner
        active = [False]
        self.meters = []
        policy = learner.policy.model
        # Decode steps run the policy's body (agentrl.policy.lean), not the
        # whole LM: every policy token, full or lean, passes the body, so meter it there.
        parts = lean_parts(policy)
        modules = [("policy", policy, parts[0] if parts else policy)]
        algo = learner.algorithm
        for label in ("critic", "target_critic"):
            critic = getattr(algo, label, None)
            encoder = getattr(critic, "encoder", None)
            if encoder is not None and encoder is not policy:
                modules.append((f"{label}.encoder", encoder, encoder))
        for label, module, metered in modules:
            meter = TokenMeter(label, sum(p.numel() for p in module.parameters()), active=active)
            metered.register_forward_pre_hook(meter.hook, with_kwargs=True)
            self.meters.append(meter)
        self.update_s = 0.0
        update = learner.update
        device = learner.policy.device

        def timed_update(episodes: Any) -> Any:
            _sync(device)
            start = time.perf_counter()
            active[0] = True
            try:
                return update(episodes)
            finally:
                _sync(device)
                active[0] = False
                self.update_s += time.perf_counter() - start

        learner.update = timed_update


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda", help="model.device (cuda, cuda:N; cpu = smoke test)")
    p.add_argument("--model", default="tiny", help="model config group: tiny or smollm2")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--episodes", type=int, default=32, help="rollout.episodes_per_iter")
    p.add_argument("--out", default=None, help="also write a markdown table here")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides (key=value)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"gpu_throughput: --device {args.device} but torch {torch.__version__} sees no CUDA "
            "device; run on a GPU machine (or --device cpu for a smoke test)"
        )
    overrides = [
        f"model={args.model}",
        f"model.device={args.device}",
        f"iterations={args.iterations}",
        f"rollout.episodes_per_iter={args.episodes}",
        f"rollout.envs_per_worker={min(args.episodes, 32)}",
        "algorithm.warmup_iters=0",  # the actor trains from the first iteration
        "eval.every=0",
        "eval.episodes=8",
        "eval.sample=false",
        "warm_start.episodes=50",
        "warm_start.epochs=1.0",
        *args.overrides,
    ]
    result = measure(overrides, args.model)
    table = render(result)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
    return result


def measure(overrides: list[str], model_label: str) -> dict[str, Any]:
    """Run a metered inline training (``cluster=inline``, one rollout worker, no
    checkpoints, trackers, plots or progress bars, in a temporary run dir) configured by
    ``overrides``, and return its learner tokens/s, MFU and rollout tokens/s (the result
    :func:`render` prints)."""
    with tempfile.TemporaryDirectory(prefix="agentrl-gpu-bench-") as tmp:
        cfg = load_config(
            [
                "cluster=inline",
                f"run_dir={Path(tmp) / 'run'}",
                "rollout.num_workers=1",
                "checkpoint.every=0",
                "logging.tensorboard=false",
                "logging.plot=false",
                "logging.progress=false",
                *overrides,
            ]
        )
        trainer = MeteredTrainer(cfg, console=False)
        trainer.run()
        rows = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").open()]
    device = trainer.learner.policy.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_flops(name if device.type == "cuda" else None)
    tokens = sum(m.train_tokens + m.forward_tokens for m in trainer.meters)
    flops = sum(m.flops for m in trainer.meters)
    train_rows = [r for r in rows if "perf/tokens_per_s" in r]
    return {
        "device": name,
        "model": model_label,
        "algorithm": cfg.algorithm["name"],
        "iterations": len(train_rows),
        "autocast": str(getattr(trainer.learner, "autocast_dtype", None)),
        "update_s": trainer.update_s,
        "learner_tokens": tokens,
        "learner_tokens_per_s": tokens / max(trainer.update_s, 1e-9),
        "tflops_per_s": flops / max(trainer.update_s, 1e-9) / 1e12,
        "peak_tflops": peak / 1e12 if peak else None,
        "mfu": mfu(flops, trainer.update_s, peak),
        "rollout_tokens_per_s": sum(r["perf/tokens_per_s"] for r in train_rows)
        / max(len(train_rows), 1),
        "meters": [
            {
                "module": m.name,
                "params": m.params,
                "train_tokens": m.train_tokens,
                "forward_tokens": m.forward_tokens,
            }
            for m in trainer.meters
        ],
    }


def render(r: dict[str, Any]) -> str:
    mfu_s = f"{100 * r['mfu']:.2f} %" if r["mfu"] is not None else "n/a (no peak for this device)"
    peak_s = f"{r['peak_tflops']:.0f}" if r["peak_tflops"] else "n/a"
    lines = [
        f"# {r['algorithm']} main job on {r['device']} ({r['model']}, {r['iterations']} iterations)",
        "",
        "| metric | value |",
        "|---|---|",
        f"| learner autocast | {r['autocast']} |",
        f"| learner update time (s) | {r['update_s']:.2f} |",
        f"| learner tokens | {r['learner_tokens']} |",
        f"| learner tokens/s | {r['learner_tokens_per_s']:.0f} |",
        f"| learner TFLOP/s (6N/2N per token) | {r['tflops_per_s']:.3f} |",
        f"| peak TFLOP/s (dense bf16) | {peak_s} |",
        f"| MFU | {mfu_s} |",
        f"| rollout tokens/s (perf/tokens_per_s) | {r['rollout_tokens_per_s']:.0f} |",
        "",
        "| module | params | trained tokens | forward-only tokens |",
        "|---|---|---|---|",
    ]
    for m in r["meters"]:
        lines.append(
            f"| {m['module']} | {m['params']:,} | {m['train_tokens']} | {m['forward_tokens']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
