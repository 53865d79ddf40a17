"""Weight-sync size and time, full model vs LoRA adapter (CPU; the numbers in docs/gpu.md).

For each model, what :meth:`Policy.get_weights` sends to the rollout workers each
iteration (the whole state dict, or only the adapter with ``model.lora=true``), its size,
and the time of the learner's ``get_weights`` (CPU copies) and a worker's ``set_weights``
(load into a second policy built from the same config). Ray's object-store transfer is not
included (it scales with the bytes). Usage::

    python -m benchmarks.weight_sync                 # tiny + smollm2, writes docs/weight_sync.md
    python -m benchmarks.weight_sync --models tiny --out sync.md   # a quick look, in the current folder
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agentrl.config import load_config  # noqa: E402
from agentrl.policy import Policy  # noqa: E402


def measure(overrides: list[str], repeats: int = 3) -> dict[str, Any]:
    """Sizes and best-of-``repeats`` times of one sync for the model config ``overrides``."""
    cfg = load_config(overrides).model
    learner = Policy.from_config(cfg, device="cpu")
    worker = Policy.from_config(cfg, device="cpu")
    get_s, set_s = [], []
    weights: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        weights = learner.get_weights()
        t1 = time.perf_counter()
        worker.set_weights(weights)
        t2 = time.perf_counter()
        get_s.append(t1 - t0)
        set_s.append(t2 - t1)
    total = sum(p.numel() for p in learner.model.parameters())
    return {
        "model": cfg.name,
        "lora": cfg.lora,
        "params": total,
        "tensors": len(weights),
        "numel": sum(t.numel() for t in weights.values()),
        "mb": sum(t.numel() * t.element_size() for t in weights.values()) / 2**20,
        "get_s": min(get_s),
        "set_s": min(set_s),
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny", "smollm2"])
    p.add_argument("--out", default=str(ROOT / "docs" / "weight_sync.md"))
    args = p.parse_args(argv)
    rows = []
    for name in args.models:
        for lora in (False, True):
            rows.append(measure([f"model={name}", f"model.lora={str(lora).lower()}"]))
    lines = [
        "# Weight sync: full model vs LoRA adapter",
        "",
        "Measured by `python -m benchmarks.weight_sync` on the 2-core CPU machine (fp32 weights;",
        "best of 3). `get_weights` = the learner's CPU copies; `set_weights` = loading them into",
        "a worker's policy. LoRA: r=8 on q_proj and v_proj (the configs' defaults).",
        "",
        "| model | LoRA | model params | tensors sent | values sent | MB sent | get_weights (ms) | set_weights (ms) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {'yes' if r['lora'] else 'no'} | {r['params']:,} | {r['tensors']} "
            f"| {r['numel']:,} | {r['mb']:.3f} | {1e3 * r['get_s']:.1f} | {1e3 * r['set_s']:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    Path(args.out).write_text(table + "\n")
    return rows


if __name__ == "__main__":
    main()
