"""Confocal FOV benchmark at the seed's geometry: 5 channels x 1600 x 900 px, a few hundred nuclei per FOV.

Times, in one run on the same store: read + decode of every chunk (baseline),
``convert --kind fov`` from OME-TIFF files, and ``process`` (smoothing, global
Otsu, hole filling, chunked labelling, watershed split, features, labels
written) with the default families and with shape + intensity + texture.

    python benchmarks/bench_fov.py [--fovs 8] [--nuclei 300] [--out bench-fov] [--device cpu --device gpu] \
        [--scheduler threads --scheduler local:16]

``--scheduler`` as in bench_ifc.py (``local:N``: N single-thread worker processes, start-up included).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def generate(out: Path, n_fovs: int, n_nuclei: int) -> list[Path]:
    import tifffile
    from scipy import ndimage as ndi
    from skimage.draw import disk

    files = []
    for f in range(n_fovs):
        rng = np.random.default_rng(f)
        img = np.zeros((5, 1600, 900), np.uint16)
        for _ in range(n_nuclei):
            r, c, rad = rng.uniform(10, 1590), rng.uniform(10, 890), rng.uniform(5, 11)
            rr, cc = disk((r, c), rad, shape=img.shape[1:])
            img[0, rr, cc] = 1500 + rng.integers(0, 500)
            for ch in range(1, 5):
                img[ch, rr, cc] = rng.integers(100, 3000)
        img = ndi.gaussian_filter(img, (0, 1, 1)) + rng.integers(0, 80, img.shape).astype(np.uint16)
        path = out / f"fov{f:03d}.ome.tif"
        tifffile.imwrite(path, img, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.3, "PhysicalSizeY": 0.3})
        files.append(path)
    return files


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--fovs", type=int, default=8)
    p.add_argument("--nuclei", type=int, default=300)
    p.add_argument("--out", default="bench-fov")
    p.add_argument("--device", action="append", choices=["cpu", "gpu"],
                   help="device of the process runs; repeat for both (default: cpu)")
    p.add_argument("--scheduler", action="append",
                   help="threads (default), synchronous, or local:N (N worker processes); repeat for several")
    args = p.parse_args()
    import dask
    import dask.array as da
    import zarr
    from bench_ifc import scheduler_args
    from scipzarr.converters import convert

    import scipzarr
    from scipzarr.config import resolve_config

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(out.glob("fov*.ome.tif"))
    if len(files) != args.fovs:
        for f in files:
            f.unlink()
        files = generate(out, args.fovs, args.nuclei)
    t0 = time.perf_counter()
    convert(files, out / "bench.zarr", kind="fov", overwrite=True, progress=False)
    t_convert = time.perf_counter() - t0
    arrays = [da.from_zarr(zarr.open_array(str(out / "bench.zarr" / str(i) / "s0"))) for i in range(len(files))]
    t0 = time.perf_counter()
    dask.compute(*[a.sum(dtype="uint64") for a in arrays])
    t_base = time.perf_counter() - t0
    rows = [("read+decode baseline", t_base, None), ("convert (OME-TIFF -> store)", t_convert, None)]
    for device in args.device or ["cpu"]:
        for sch in args.scheduler or ["threads"]:
            run = scheduler_args(sch)
            for fams in (["shape", "intensity"], ["shape", "intensity", "texture"]):
                cfg = resolve_config({"features": {"families": fams}})
                t0 = time.perf_counter()
                a = scipzarr.process(out / "bench.zarr", cfg, None, progress=False, device=device, **run)
                rows.append((f"process ({','.join(fams)}; {device}; {sch})", time.perf_counter() - t0, a))
            t0 = time.perf_counter()  # the chunked path on the same FOVs (what images over fov.whole_max_pixels take)
            a = scipzarr.process(out / "bench.zarr", cfg, None, progress=False, device=device, chunk_size=1024, **run)
            rows.append((f"process ({','.join(fams)}; {device}; {sch}; chunked 1024)", time.perf_counter() - t0, a))
    n = len(files)
    print(f"\nFOV benchmark: {n} FOVs of 5 x 1600 x 900 uint16, ~{args.nuclei} nuclei each, chunks 1024, "
          f"{os.cpu_count()} cores")
    print(f"{'step':62s} {'seconds':>8s} {'s/FOV':>7s} {'x baseline':>11s} {'869 FOVs (s)':>13s} {'objects':>8s}")
    for name, sec, table in rows:
        print(f"{name:62s} {sec:8.2f} {sec / n:7.3f} {t_base / sec:11.3f} {869 * sec / n:13.0f} "
              f"{'' if table is None else table.n_obs:>8}")


if __name__ == "__main__":
    main()
