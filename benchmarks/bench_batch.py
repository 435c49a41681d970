"""Batch-system benchmark: the same store processed on threads, a local cluster, MPI under sbatch, dask-jobqueue
workers and a 2-task job array + merge, on a one-node SLURM cluster started here (tests/conftest.py
``start_slurm``; needs root and Debian's slurm-wlm and munge). Each table is checked against the threads one.

    python benchmarks/bench_batch.py [--events 4000] [--out bench-batch]

Times are wall seconds from the command (or ``sbatch``) to the written table, start-up included.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _bytecode import byte_compile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=4000)
    p.add_argument("--out", default="bench-batch")
    args = p.parse_args()
    byte_compile()  # the commands start as an installed package's do (benchmarks/_bytecode.py)
    import anndata as ad
    import numpy as np

    import scipzarr
    from scipzarr.synthetic import make_events
    from tests.conftest import start_slurm, stop_slurm, wait_for_job

    out = Path(args.out).resolve()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    events, _ = make_events(args.events, channels=3, size=64, seed=0, noise=15.0)
    np.save(out / "e.npy", np.stack(events))
    scipzarr.convert([out / "e.npy"], out / "s.zarr", progress=False)
    store = out / "s.zarr"
    env, pids, why = start_slurm(out / "slurm")
    if env is None:
        sys.exit(f"bench_batch: {why}")
    cli = [sys.executable, "-m", "scipzarr"]
    results = {}
    try:
        def timed(name, fn):
            t0 = time.perf_counter()
            table = fn()
            results[name] = (time.perf_counter() - t0, table)

        timed("threads", lambda: subprocess.run([*cli, "process", str(store), "-o", str(out / "threads.h5ad"), "-q"],
                                                check=True) and out / "threads.h5ad")
        timed("local cluster (2 workers)", lambda: subprocess.run(
            [*cli, "process", str(store), "-o", str(out / "local.h5ad"), "-q", "--scheduler", "local", "--workers",
             "2", "--threads-per-worker", "1"], check=True) and out / "local.h5ad")

        def mpi():
            script = out / "mpi.sh"
            script.write_text(subprocess.run([*cli, "jobscript", "--system", "slurm", "--ranks", "4", "--venv",
                                              sys.prefix, "--", "process", str(store), "-o", str(out / "mpi.h5ad"),
                                              "-q"], capture_output=True, text=True, check=True).stdout)
            subprocess.run(["sbatch", "--wait", str(script)], check=True, env=env, cwd=out, capture_output=True)
            return out / "mpi.h5ad"

        timed("MPI under sbatch (4 ranks: 2 workers)", mpi)
        timed("dask-jobqueue (2 worker jobs)", lambda: subprocess.run(
            [*cli, "process", str(store), "-o", str(out / "jq.h5ad"), "-q", "--scheduler", "slurm", "--workers", "2"],
            check=True, env=env, cwd=out) and out / "jq.h5ad")

        def array():
            driver = out / "array.sh"
            driver.write_text(subprocess.run([*cli, "jobscript", "--system", "slurm", "--array", "2", "--cpus", "1",
                                              "--venv", sys.prefix, "--", "process", str(store), "-o",
                                              str(out / "array.h5ad")], capture_output=True, text=True,
                                             check=True).stdout)
            r = subprocess.run(["bash", str(driver)], capture_output=True, text=True, env=env, cwd=out, check=True)
            wait_for_job(env, r.stdout.split("merge job ")[1].split()[0])
            return out / "array.h5ad"

        timed("job array, 2 shards + merge job", array)
    finally:
        stop_slurm(pids)
    ref = ad.read_h5ad(results["threads"][1])
    print(f"{args.events:,} events of 3 x 64 x 64, shape + intensity, 2 cores")
    print(f"{'run':40s} {'seconds':>8s} {'events/s':>9s}  same table")
    for name, (seconds, table) in results.items():
        t = ad.read_h5ad(table)
        same = t.obs.equals(ref.obs) and np.array_equal(t.X, ref.X)
        print(f"{name:40s} {seconds:8.1f} {args.events / seconds:9,.0f}  {same}")


if __name__ == "__main__":
    main()
