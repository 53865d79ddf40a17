#!/usr/bin/env bash
# The GPU proof in one call (< 8 minutes on an H200): learner tokens/s and MFU at the
# Qwen2.5-0.5B/1.5B shapes, rollout tokens/s, one ArCHer and one GRPO iteration through the
# Trainer, and pytest -m gpu. See docs/gpu.md, "The GPU proof".
#
#   benchmarks/gpu_wheels.sh                   # first, where a package index is reachable: .whl/
#   benchmarks/gpu.sh                          # on the GPU machine, with .whl/ carried along
#   benchmarks/gpu.sh --device cpu --small     # the same code at tiny sizes on a CPU
#   benchmarks/gpu.sh --parts learner,rollout  # a subset; --out-dir DIR (default $OUT or runs/gpu)
#   AGENTRL_PEAK_TFLOPS=756 benchmarks/gpu.sh  # a GPU missing from agentrl/flops.py
#
# Fails (exit 2) when torch sees no CUDA device (unless --device cpu). Installs the wheels of
# .whl/ into .whl/site (on PYTHONPATH), and agentrl itself (editable, no dependencies) when
# it is not installed. Exit status 1 when a part did not pass; the results are written anyway.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
device=cuda
prev=
for arg in "$@"; do
  case "$prev" in --device) device="$arg" ;; esac
  case "$arg" in --device=*) device="${arg#--device=}" ;; esac
  prev="$arg"
done
if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "benchmarks/gpu.sh: $PY cannot import torch; activate the agentrl environment (or set PYTHON=...)" >&2
  exit 2
fi
if [ "$device" != cpu ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "benchmarks/gpu.sh: no CUDA device: torch $("$PY" -c 'import torch; print(torch.__version__)') sees no GPU (torch.cuda.is_available() is False); run it on a GPU machine with a CUDA build of torch, or pass --device cpu --small" >&2
  exit 2
fi
if compgen -G '.whl/*.whl' >/dev/null; then
  site="$PWD/.whl/site"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
missing=$("$PY" -c '
import importlib.util
print(" ".join(m for m in ("hydra", "omegaconf", "gymnasium", "transformers", "peft", "pytest") if importlib.util.find_spec(m) is None))')
if [ -n "$missing" ]; then
  echo "benchmarks/gpu.sh: $PY lacks: $missing; run benchmarks/gpu_wheels.sh where a package index is reachable and carry .whl/ along" >&2
  exit 2
fi
if ! "$PY" -c 'import agentrl.algorithms' 2>/dev/null; then
  echo "benchmarks/gpu.sh: installing agentrl (editable, --no-deps) into $PY's environment" >&2
  "$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e .
fi
export TOKENIZERS_PARALLELISM=false
exec "$PY" -m benchmarks.gpu_proof "$@"
