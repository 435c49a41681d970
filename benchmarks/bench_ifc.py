"""IFC benchmark at the seed's geometry: 6 channels, 90 x 90 px, one cell per event.

Times, in one run and on the same store:
  * convert  (.npy stack -> OME-Zarr mosaic store),
  * baseline (plain zarr read + decode of every chunk of the store, via dask),
  * process  (normalize, segment, label, features, labels written), once per ``--families`` set,
each in its own child process so that its peak memory (max RSS) is its own.

    python benchmarks/bench_ifc.py --events 20000 [--chunk-tiles 16] [--out bench-out] \
        [--families shape,intensity --families shape,intensity,texture --families all] [--device cpu --device gpu]

Each process run is repeated for every ``--device`` (default: cpu only) and ``--scheduler`` (default:
threads; ``local:N`` for a LocalCluster of N single-thread worker processes, its start-up included), so
CPU and GPU, thread and process figures come from the same run on the same store.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from _bytecode import byte_compile


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_generate(out: Path, n: int) -> dict:
    import numpy as np

    from scipzarr.synthetic import make_events

    t0 = time.perf_counter()
    stack = np.lib.format.open_memmap(out / "events.npy", mode="w+", dtype=np.uint16, shape=(n, 6, 90, 90))
    step = 1000
    for start in range(0, n, step):
        ev, _ = make_events(min(step, n - start), channels=6, size=90, seed=start, noise=20.0)
        stack[start:start + len(ev)] = np.stack(ev)
    stack.flush()
    return {"seconds": time.perf_counter() - t0}


def phase_convert(out: Path, k: int) -> dict:
    import scipzarr

    t0 = time.perf_counter()
    scipzarr.convert([out / "events.npy"], out / "bench.zarr", chunk_tiles=k, overwrite=True, progress=False)
    return {"seconds": time.perf_counter() - t0}


def phase_baseline(out: Path) -> dict:
    import dask
    import dask.array as da
    import zarr

    arr = da.from_zarr(zarr.open_array(str(out / "bench.zarr" / "s0"), mode="r"))
    t0 = time.perf_counter()
    total = dask.compute(arr.map_blocks(lambda b: b.sum(keepdims=True, dtype="uint64"),
                                        chunks=(1, 1, 1), dtype="uint64").sum(), scheduler="threads")[0]
    return {"seconds": time.perf_counter() - t0, "checksum": int(total)}


def scheduler_args(spec: str) -> dict:
    """``process`` keywords for a benchmark's ``--scheduler``: ``threads``, ``synchronous`` or ``local:N``."""
    from scipzarr.scheduler import ClusterOptions

    name, _, workers = spec.partition(":")
    if name != "local":
        return {"scheduler": name}
    return {"scheduler": "local", "cluster": ClusterOptions(workers=int(workers) if workers else None,
                                                          threads_per_worker=1)}


def phase_process(out: Path, families: str, device: str = "cpu", scheduler: str = "threads") -> dict:
    import scipzarr
    from scipzarr.features import resolve_families

    cfg = {"features": {"families": resolve_families(families)}, "segmentation": {"channels": [0]}}
    t0 = time.perf_counter()
    a = scipzarr.process(out / "bench.zarr", cfg, out / "bench.h5ad", overwrite=True, progress=False, device=device,
                         table_in_memory=False,  # as the command line: the features go to the file, not back
                         **scheduler_args(scheduler))
    return {"seconds": time.perf_counter() - t0, "objects": int(a.n_obs), "features": int(a.n_vars)}


def _child(phase: str, *args) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, *map(str, args)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--chunk-tiles", type=int, default=16)
    p.add_argument("--out", default="bench-out")
    p.add_argument("--families", action="append",
                   help="comma-separated families of one process run; repeat for several runs "
                        "(default: shape,intensity; 'all' for every family)")
    p.add_argument("--device", action="append", choices=["cpu", "gpu"],
                   help="device of the process runs; repeat for both (default: cpu)")
    p.add_argument("--scheduler", action="append",
                   help="threads (default), synchronous, or local:N (N worker processes); repeat for several")
    p.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    byte_compile()  # the commands start as an installed package's do (benchmarks/_bytecode.py)
    if args.phase:
        name, *rest = args.phase
        out = Path(rest[0])
        fn = {"generate": lambda: phase_generate(out, int(rest[1])), "convert": lambda: phase_convert(out, int(rest[1])),
              "baseline": lambda: phase_baseline(out), "process": lambda: phase_process(out, *rest[1:])}[name]
        res = fn()
        res["peak_mb"] = _peak_mb()
        print(json.dumps(res))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    n = args.events
    if not (out / "events.npy").exists() or _npy_len(out / "events.npy") != n:
        print(f"generating {n} events (6 x 90 x 90 uint16) ...", flush=True)
        _child("generate", out, n)
    conv = _child("convert", out, args.chunk_tiles)
    base = _child("baseline", out)
    runs = [(f"{fam}; {dev}; {sch}", _child("process", out, fam, dev, sch))
            for fam in (args.families or ["shape,intensity"]) for dev in (args.device or ["cpu"])
            for sch in (args.scheduler or ["threads"])]
    import os

    rows = [("read+decode baseline", base), ("convert", conv)] + [(f"process ({f})", r) for f, r in runs]
    print(f"\nIFC benchmark: {n} events, 6 ch x 90 x 90 uint16, chunks of {args.chunk_tiles}x{args.chunk_tiles} "
          f"events, {os.cpu_count()} cores")
    print(f"{'step':48s} {'seconds':>8s} {'events/s':>10s} {'x baseline':>11s} {'peak MB':>8s}")
    for name, r in rows:
        rate = n / r["seconds"]
        print(f"{name:48s} {r['seconds']:8.2f} {rate:10,.0f} {base['seconds'] / r['seconds']:11.3f} {r['peak_mb']:8.0f}")
    for fam, proc in runs:
        print(f"process ({fam}): objects {proc['objects']}, features {proc['features']}; projected time for "
              f"the seed's 270,000 events: {270000 / (n / proc['seconds']):.0f} s")


def _npy_len(path: Path) -> int:
    import numpy as np

    return np.load(path, mmap_mode="r").shape[0]


if __name__ == "__main__":
    main()
