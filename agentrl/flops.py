"""FLOP counts and model FLOPs utilisation (MFU) for throughput reports.

The standard dense-transformer estimates (Kaplan et al. 2020, the PaLM paper's MFU):
a forward pass costs ``2 * N`` FLOPs per token and forward + backward ``6 * N``, with ``N``
the parameter count. Attention's ``O(T^2)`` term is left out (small next to ``N`` for the
short prompts of text games). Under LoRA the backward pass still runs through the frozen
base weights (activation gradients), so ``6 * N`` with ``N`` = *all* parameters stays the
usual convention; weight-gradient FLOPs of frozen weights are skipped in reality, so MFU
under LoRA is a slight over-estimate.

MFU = achieved FLOP/s / the accelerator's peak. Peaks are dense (no 2:4 sparsity) bf16
tensor-core numbers from the vendors' datasheets; override with the environment variable
``AGENTRL_PEAK_TFLOPS`` (e.g. for another GPU, or fp32/TF32 runs).
"""

from __future__ import annotations

import os

PEAK_ENV = "AGENTRL_PEAK_TFLOPS"

# Dense bf16 tensor-core peaks in TFLOP/s, matched as substrings of
# ``torch.cuda.get_device_name()`` (most specific first).
PEAK_BF16_TFLOPS: dict[str, float] = {
    "H200": 989.0,
    "H100": 989.0,  # SXM; the PCIe card is lower (~756): set AGENTRL_PEAK_TFLOPS
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}


def train_flops(params: int, tokens: int) -> float:
    """Forward + backward FLOPs of ``tokens`` tokens through a ``params``-parameter model."""
    return 6.0 * params * tokens


def forward_flops(params: int, tokens: int) -> float:
    """Forward-only FLOPs (generation, scoring without gradients): ``2 * N * T``."""
    return 2.0 * params * tokens


def peak_flops(device_name: str | None) -> float | None:
    """Peak FLOP/s of a device named ``device_name`` (``AGENTRL_PEAK_TFLOPS`` wins), or
    ``None`` when unknown (e.g. a CPU): MFU is then not reported."""
    override = os.environ.get(PEAK_ENV)
    if override:
        try:
            value = float(override)
        except ValueError as e:
            raise ValueError(f"{PEAK_ENV}={override!r} is not a number of TFLOP/s") from e
        if value <= 0:
            raise ValueError(f"{PEAK_ENV} must be > 0, got {value}")
        return value * 1e12
    if not device_name:
        return None
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key.lower() in device_name.lower():
            return tflops * 1e12
    return None


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    """``flops / seconds / peak``, or ``None`` without a peak or a positive duration."""
    if peak is None or seconds <= 0:
        return None
    return flops / seconds / peak


__all__ = ["PEAK_BF16_TFLOPS", "PEAK_ENV", "forward_flops", "mfu", "peak_flops", "train_flops"]
