#!/usr/bin/env bash
# Wheels of scipzarr's dependencies that a lent GPU machine may lack (it has CuPy, numpy, scipy, scikit-image,
# numba, pandas, pytest and tifffile, and no network), for benchmarks/gpu_offline.sh: run here, then carry the
# folder along. Checked in a venv holding only those packages: tests/test_gpu.py, profile_chunk.py, bench_ifc.py
# (threads and local:2) and bench_fov.py run there with these wheels.
# dask-cuda (with nvidia-ml-py, cuda-core, click) is there for its LocalCUDACluster test; its pin of dask
# (rapids-dask-dependency) is not fetched: --no-deps.
#
#   bash benchmarks/fetch_gpu_wheels.sh [DEST=.whl]
set -euo pipefail
dest=${1:-.whl}
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$dest" \
    dask distributed zarr numcodecs donfig google-crc32c anndata array-api-compat natsort legacy-api-wrap \
    ome-zarr ome-zarr-models pydantic pydantic-core annotated-types typing-inspection pydantic-zarr \
    pydantic-settings python-dotenv jsonschema jsonschema-specifications referencing rpds-py partd locket zict \
    tblib tornado Deprecated msgspec rangehttpserver scverse-misc session-info2 transformnd \
    dask-cuda nvidia-ml-py cuda-core click \
    typing-extensions PyYAML h5py toolz cloudpickle fsspec psutil msgpack sortedcontainers wrapt attrs packaging \
    rich markdown-it-py mdurl Pygments
ls "$dest" | wc -l
