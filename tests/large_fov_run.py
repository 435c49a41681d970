"""Run by tests/test_large_fov.py in its own process: a lazily generated FOV processed under a memory limit.

The limit is RLIMIT_DATA (heap and private mappings: every numpy array)
set to what the process uses after a warm-up run plus ``extra`` MiB; any
allocation beyond it fails with MemoryError.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from skimage.draw import disk

import scipzarr
from scipzarr.config import resolve_config
from scipzarr.converters.fov import Fov
from scipzarr.store import write_fov_store

PER_CHUNK = 8  # nuclei per 1024 x 1024 chunk, each inside its chunk: the expected count is exact


def _block(block_info=None):
    i, j = block_info[None]["chunk-location"][1:]
    shape = block_info[None]["chunk-shape"]
    rng = np.random.default_rng(i * 100003 + j)
    out = np.zeros(shape, np.uint16)
    for k in range(PER_CHUNK):
        r, c = 128 + (k // 2) * 256 + rng.integers(-20, 20), 256 + (k % 2) * 512 + rng.integers(-40, 40)
        rr, cc = disk((r, c), 12 + rng.integers(0, 6), shape=shape[1:])
        out[0, rr, cc] = 1000 + rng.integers(0, 500)
    return out


def lazy_image(side: int) -> da.Array:
    n = side // 1024
    return da.map_blocks(_block, chunks=((1,), (1024,) * n, (1024,) * n), dtype=np.uint16)


def _data_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmData in /proc/self/status")


def main(out: Path, side: int, extra_mib: int) -> None:
    cfg = resolve_config({"features": {"families": ["shape", "intensity"]}})

    def compute(collections, what=""):
        return dask.compute(*collections)

    write_fov_store(out / "warm.zarr", [Fov("warm", "generated", 0, lazy_image(2048), ["DNA"])], ["DNA"], 1024,
                    compute)
    # imports, compiled kernels, thread pools; chunked as the big one (a 2048^2 FOV is otherwise processed whole)
    scipzarr.process(out / "warm.zarr", cfg, None, progress=False, chunk_size=1024)
    limit = _data_bytes() + extra_mib * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    write_fov_store(out / "big.zarr", [Fov("big", "generated", 0, lazy_image(side), ["DNA"])], ["DNA"], 1024,
                    compute)
    table = scipzarr.process(out / "big.zarr", cfg, None, progress=False, chunk_size=1024)
    print(json.dumps({"objects": int(table.n_obs), "expected": PER_CHUNK * (side // 1024) ** 2,
                      "area_sum": float(table[:, "shape_area"].X.sum())}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
