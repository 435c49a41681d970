#!/usr/bin/env bash
# The GPU check of docs/gpu.md, for a machine with an NVIDIA GPU (CUDA 12 driver) and PyPI access:
# installs the gpu extra, runs the CPU/GPU equality tests, then the IFC and confocal benchmarks on CPU and GPU
# in the same run. Record the printed tables, with the card's name, in docs/benchmarks.md.
#
#   bash benchmarks/gpu_check.sh [EVENTS] [FOVS]
set -euo pipefail
cd "$(dirname "$0")/.."
events=${1:-20000}
fovs=${2:-16}
python3.12 -m venv .venv-gpu
. .venv-gpu/bin/activate
pip install -q -e ".[test,gpu]"
python -c "from scipzarr import backend; ok, what = backend.gpu_status(); print('GPU:', what); assert ok"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
python -m pytest -q tests/test_gpu.py -rs
python benchmarks/bench_ifc.py --events "$events" --families shape,intensity --families all \
    --device cpu --device gpu --out "${TMPDIR:-/tmp}/bench-ifc"
python benchmarks/bench_fov.py --fovs "$fovs" --device cpu --device gpu --out "${TMPDIR:-/tmp}/bench-fov"
