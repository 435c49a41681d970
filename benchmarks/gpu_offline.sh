#!/usr/bin/env bash
# The GPU check of docs/gpu.md for a lent GPU machine without network access (as lent so far): CuPy, numpy,
# scipy, scikit-image, numba, pytest and tifffile come from the machine; scipzarr's other dependencies from a
# folder of wheels made beforehand on a machine with PyPI (benchmarks/fetch_gpu_wheels.sh). Runs the CPU/GPU
# equality tests, the stage profile of one chunk, and the IFC and confocal benchmarks on CPU and GPU in the same
# run; record the printed tables, with the card's name, in docs/benchmarks.md.
#
#   bash benchmarks/gpu_offline.sh [WHEELS=.whl] [EVENTS=10000] [FOVS=32]   (about 8 minutes on 16 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=${1:-.whl}
events=${2:-10000}
fovs=${3:-32}
site=${TMPDIR:-/tmp}/scipzarr-site
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" "$wheels"/*.whl
export PYTHONPATH=$PWD:$site
# what the wheel build does: converters/ and schemas/ inside the package
[ -e scipzarr/converters ] || cp -r converters scipzarr/converters
[ -e scipzarr/schemas ] || cp -r schemas scipzarr/schemas
python3 -c "from scipzarr import backend; ok, what = backend.gpu_status(); print('GPU:', what); assert ok"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
set +e  # device time is scarce: a failing step does not stop the ones after it
python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs
python3 benchmarks/profile_chunk.py --events 2048 --device cpu --device gpu
# threads, and one single-thread worker process per core (no GIL shared between chunk tasks)
python3 benchmarks/bench_ifc.py --events "$events" --families shape,intensity --families all \
    --device cpu --device gpu --scheduler threads --scheduler "local:$(nproc)" --out "${TMPDIR:-/tmp}/bench-ifc"
python3 benchmarks/bench_fov.py --fovs "$fovs" --device cpu --device gpu --scheduler threads \
    --scheduler "local:$(nproc)" --out "${TMPDIR:-/tmp}/bench-fov"
