"""CIF benchmark: decoding and ``convert`` of many copies of the real FlowSight file, against reading the
files' bytes in the same run.

    python benchmarks/bench_cif.py [--copies 60] [--threads 2] [--out bench-cif] [--repeat 3]

Phases (one run, the same files):
  * read      every file's bytes (the baseline: what the disk and page cache give),
  * decode    every event's image and masks with our decoder (``converters/cif.py``), on ``--threads``
              threads (the numba kernel releases the GIL),
  * convert   ``scipzarr convert`` of all copies into one store (threads scheduler), IDEAS masks included:
              the command line (process start-up and exit included), then the same call in this process
              after a warm-up; each ``--repeat`` times, the command line and the in-process call alternated
              (this machine's speed wanders by tens of percent within minutes): medians, and every run.
              Beside each, the command on one copy: what a convert pays before its first event and after
              its last. Each run writes a new store; they are all removed after the timings.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _bytecode import byte_compile

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ifc_cif_flowsight" / "example.cif"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--copies", type=int, default=60)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench-cif")
    p.add_argument("--source", default=str(SOURCE))
    p.add_argument("--repeat", type=int, default=3, help="command-line and in-process converts, alternated")
    args = p.parse_args()
    from scipzarr.converters import cif

    byte_compile()  # the commands start as an installed package's do (benchmarks/_bytecode.py)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "in").mkdir(parents=True)
    files = []
    for k in range(args.copies):
        files.append(out / "in" / f"run{k:03d}.cif")
        shutil.copyfile(args.source, files[-1])
    cif.CifFile(cif.read_index(files[0])).image(0)  # compile outside the timings

    t0 = time.perf_counter()
    nbytes = sum(len(f.read_bytes()) for f in files)
    read_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    indexes = [cif.read_index(f) for f in files]
    index_s = time.perf_counter() - t0
    n = sum(len(ix) for ix in indexes)

    def decode(ix):
        with cif.CifFile(ix) as f:
            for i in range(len(ix)):
                f.image(i)
                f.masks(i)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(decode, indexes))
    decode_s = time.perf_counter() - t0

    from scipzarr.converters import convert

    convert([out / "in"], out / "warm.zarr", progress=False)  # imports and compilation outside the timing
    # every timed run writes a store of its own, and they are removed after the timings: stores removed just
    # before a run made each of its ~570 file creations skip the inodes freed seconds before (ext4 without a
    # journal, as on this VM, keeps freed inodes for ~30 s): 0.2-0.4 s more kernel time per run
    # the command on one copy (111 events) beside each run: what any convert pays before its first event
    # (interpreter, imports, numba's registries) and after its last, in the same minutes
    cli, inproc, one, written = [], [], [], []
    for i in range(args.repeat):
        cli_out, in_out, one_out = out / f"cli-{i}.zarr", out / f"in-process-{i}.zarr", out / f"one-{i}.zarr"
        written += [cli_out, in_out, one_out]
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(out / "in"), "-o", str(cli_out), "-q"],
                       check=True)
        cli.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        convert([out / "in"], in_out, progress=False)
        inproc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(files[0]), "-o", str(one_out), "-q"],
                       check=True)
        one.append(time.perf_counter() - t0)
    convert_s, in_process_s, one_s = statistics.median(cli), statistics.median(inproc), statistics.median(one)
    for path in [out / "warm.zarr", *written]:  # the next run of this benchmark then starts with none to remove
        shutil.rmtree(path)

    def runs(times: list[float]) -> str:
        return "median of " + ", ".join(f"{t:.2f}" for t in times) + " s"

    print(f"{args.copies} copies, {n:,} events, {nbytes / 2**20:,.0f} MiB")
    print(f"read bytes   {read_s:7.2f} s  {n / read_s:10,.0f} events/s  (baseline)")
    print(f"index        {index_s:7.2f} s  {n / index_s:10,.0f} events/s")
    print(f"decode       {decode_s:7.2f} s  {n / decode_s:10,.0f} events/s  (images + masks, {args.threads} threads; "
          f"{decode_s / read_s:.1f}x the read)")
    print(f"convert      {convert_s:7.2f} s  {n / convert_s:10,.0f} events/s  (process start-up included; "
          f"{convert_s / read_s:.1f}x the read; {runs(cli)})")
    print(f"  in process {in_process_s:7.2f} s  {n / in_process_s:10,.0f} events/s  (the same convert after a "
          f"warm-up: no imports or interpreter start and exit; the command line adds {convert_s - in_process_s:.1f} s; "
          f"{runs(inproc)})")
    n1 = len(indexes[0])
    print(f"  one copy   {one_s:7.2f} s  {n1 / one_s:10,.0f} events/s  (the command on one file, {n1} events: mostly "
          f"its start and exit; {runs(one)})")


if __name__ == "__main__":
    main()
