"""Scaling on one machine: threads, local clusters of 1 and 2 workers, MPI with 3 and 4 ranks.

Processes the same store (N synthetic 6 x 90 x 90 events) on each scheduler, checks the
tables are identical, measures the scheduler's overhead per task, and prints a run-time
model for the seed's 270,000 events on W workers.

    python benchmarks/bench_scaling.py --events 10000 [--out bench-scaling]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _bytecode import byte_compile


def _store(out: Path, n: int) -> Path:
    import scipzarr
    from scipzarr.synthetic import make_events

    path = out / "scaling.zarr"
    if path.exists():
        return path
    stack = np.lib.format.open_memmap(out / "events.npy", mode="w+", dtype=np.uint16, shape=(n, 6, 90, 90))
    for start in range(0, n, 1000):
        ev, _ = make_events(min(1000, n - start), channels=6, size=90, seed=start, noise=20.0)
        stack[start:start + len(ev)] = np.stack(ev)
    stack.flush()
    scipzarr.convert([out / "events.npy"], path, progress=False)
    return path


def _run_cli(args: list[str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-3000:])
    return time.perf_counter() - t0


def task_overhead(scheduler: str, n_tasks: int = 2000) -> float:
    """Seconds of scheduling per (no-op) task, measured on a chain-free graph of n_tasks."""
    import dask
    import dask.array as da

    x = da.ones(n_tasks, chunks=1)
    y = x.map_blocks(lambda b: b)
    if scheduler == "threads":
        t0 = time.perf_counter()
        y.sum().compute(scheduler="threads")
        return (time.perf_counter() - t0) / (2 * n_tasks)
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as c, Client(c):
        y.sum().compute()  # warm up
        t0 = time.perf_counter()
        dask.compute(y.sum())
        return (time.perf_counter() - t0) / (2 * n_tasks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=10000)
    p.add_argument("--out", default="bench-scaling")
    args = p.parse_args()
    byte_compile()  # the commands start as an installed package's do (benchmarks/_bytecode.py)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = _store(out, args.events)
    import anndata as ad
    import zarr

    n = zarr.open_group(str(store), mode="r").attrs["scipzarr"]["mosaic"]["n_events"]
    py = [sys.executable, "-m", "scipzarr", "process", str(store), "--overwrite", "-q"]
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    runs = [
        ("threads (1 process, 2 threads)", py + ["--scheduler", "threads"]),
        ("local, 1 worker x 1 thread", py + ["--scheduler", "local", "--workers", "1", "--threads-per-worker", "1"]),
        ("local, 2 workers x 1 thread", py + ["--scheduler", "local", "--workers", "2", "--threads-per-worker", "1"]),
    ]
    if mpiexec:
        runs += [("MPI, 3 ranks (1 worker)", [mpiexec, "-n", "3", *py, "--scheduler", "mpi"]),
                 ("MPI, 4 ranks (2 workers)", [mpiexec, "-n", "4", *py, "--scheduler", "mpi"])]
    results, tables = [], []
    for i, (name, cmd) in enumerate(runs):
        table = out / f"t{i}.h5ad"
        seconds = _run_cli(cmd + ["-o", str(table)])
        results.append((name, seconds))
        tables.append(ad.read_h5ad(table))
    same = all(np.array_equal(tables[0].X, t.X) and tables[0].obs.equals(t.obs) for t in tables[1:])
    base = results[0][1]
    print(f"\nscaling: {n} events (6 x 90 x 90), {math.ceil(n / 256)} chunk tasks, {os.cpu_count()} cores; "
          f"tables identical: {same}")
    print(f"{'scheduler':34s} {'seconds':>8s} {'events/s':>9s} {'x threads':>10s}")
    for name, s in results:
        print(f"{name:34s} {s:8.2f} {n / s:9,.0f} {base / s:10.2f}")
    oh_threads, oh_dist = task_overhead("threads"), task_overhead("local")
    print(f"scheduler overhead per task: threads {oh_threads * 1e6:.0f} us, distributed {oh_dist * 1e6:.0f} us")
    one = dict(results)["local, 1 worker x 1 thread"]
    chunks = math.ceil(n / 256)
    startup = 0.0
    per_chunk = one / chunks
    print(f"1-worker time per chunk task (incl. startup, read, write): {per_chunk:.3f} s")
    seed_chunks = math.ceil(270000 / 256)
    for w in (1, 2, 16, 80):
        t = startup + math.ceil(seed_chunks / w) * per_chunk + 3 * seed_chunks * oh_dist
        print(f"model, 270,000 events on {w:3d} workers: {t:8.1f} s  (seed: 484 s on 80 workers)")


if __name__ == "__main__":
    main()
