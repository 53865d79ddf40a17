#!/usr/bin/env bash
# The pure-Python wheels the GPU proof needs and the GPU machine lacks, into .whl/
# (ignored through .git/info/exclude, never committed). Run it on a machine with a package
# index, then carry .whl with the repository to the GPU machine, where benchmarks/gpu.sh
# installs them (pip install --no-index --target .whl/site; docs/gpu.md, "The GPU proof").
#
#   benchmarks/gpu_wheels.sh          # PYTHON=... picks the pip that downloads
#
# The GPU machine (Python 3.12, no network) has torch, transformers, peft, accelerate,
# numpy, pyyaml, rich, pytest; it lacks Hydra and OmegaConf (config composition),
# Gymnasium (the envs) and Ray/TRL/datasets (not needed by the proof: inline runs, no BC
# warm start). The versions are those the project is developed and tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
LIMIT_MIB=16   # the repository and everything carried with it must stay under 64 MiB
WHEELS=(
  hydra-core==1.3.8
  omegaconf==2.3.1
  gymnasium==1.4.0
  farama-notifications==0.0.6
  cloudpickle==3.1.3
)
# OmegaConf's parser runtime is published as a source archive only: built here into its
# (pure-Python, py3-none-any) wheel.
SDIST_ONLY=(antlr4-python3-runtime==4.9.3)

mkdir -p .whl
if [ -d .git/info ] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then
  echo '/.whl/' >>.git/info/exclude
fi
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${WHEELS[@]}"
"$PY" -m pip wheel -q --no-deps -w .whl "${SDIST_ONLY[@]}"

expected=$(( ${#WHEELS[@]} + ${#SDIST_ONLY[@]} ))
found=$(find .whl -maxdepth 1 -type f -name '*.whl' | wc -l)
if [ "$found" -ne "$expected" ]; then
  echo "gpu_wheels.sh: expected $expected wheels in .whl/, found $found (an old version left over? remove .whl/ and rerun)" >&2
  exit 1
fi
if find .whl -maxdepth 1 -type f -name '*.whl' ! -name '*-none-any.whl' | grep -q .; then
  echo "gpu_wheels.sh: a wheel is not pure Python (py3-none-any):" >&2
  find .whl -maxdepth 1 -type f -name '*.whl' ! -name '*-none-any.whl' >&2
  exit 1
fi
bytes=$(find .whl -maxdepth 1 -type f -name '*.whl' -printf '%s\n' | awk '{s += $1} END {print s + 0}')
find .whl -maxdepth 1 -type f -name '*.whl' -printf '%f\t%s bytes\n' | sort
echo "total: $bytes bytes ($(awk -v b="$bytes" 'BEGIN {printf "%.2f", b / 1048576}') MiB; limit $LIMIT_MIB MiB)"
if [ "$bytes" -gt $(( LIMIT_MIB * 1048576 )) ]; then
  echo "gpu_wheels.sh: .whl/ holds more than $LIMIT_MIB MiB" >&2
  exit 1
fi
if command -v git >/dev/null && git rev-parse --git-dir >/dev/null 2>&1; then
  tree=$(git ls-files -co --exclude-standard -z | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  carried=$(du -sb .whl | cut -f1)  # .whl/site too, if gpu.sh ran here
  echo "working tree (tracked + untracked, not ignored) + .whl/: $(awk -v b="$((tree + carried))" 'BEGIN {printf "%.1f", b / 1048576}') MiB of the 64 MiB that may travel"
fi
