#!/usr/bin/env bash
# The ArCHer main job on CUDA for a few iterations; prints learner tokens/s and MFU.
#
#   benchmarks/gpu.sh                                   # tiny model, 3 iterations, cuda
#   benchmarks/gpu.sh --model smollm2 --iterations 5    # SmolLM2-135M + LoRA
#   benchmarks/gpu.sh --out docs/gpu_results.md algorithm.critic_precision=bf16
#   AGENTRL_PEAK_TFLOPS=756 benchmarks/gpu.sh           # a GPU missing from agentrl/flops.py
#
# Fails (exit 2) when torch sees no CUDA device. See docs/gpu.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "benchmarks/gpu.sh: $PY cannot import torch; activate the agentrl environment (or set PYTHON=...)" >&2
  exit 2
fi
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "benchmarks/gpu.sh: no CUDA device: torch $("$PY" -c 'import torch; print(torch.__version__)') sees no GPU (torch.cuda.is_available() is False); run it on a GPU machine with a CUDA build of torch" >&2
  exit 2
fi
"$PY" -c 'import torch; print("device:", torch.cuda.get_device_name(0), "| torch", torch.__version__, "| bf16:", torch.cuda.is_bf16_supported())'
exec "$PY" -m benchmarks.gpu_throughput --device "${AGENTRL_GPU_DEVICE:-cuda}" "$@"
