"""End to end against the real SCIP 0.1.12, in the same run, on the same per-channel TIFF events.

The events come from the SCIP anchor's generator (``../shared/anchors/scip/make_synth.py``: 3 x 64 x 64
uint16 cells, one TIFF per event and channel, ``{id}_Ch{c}.tiff``), which is also what SCIP reads. Timed,
each as its own command, wall clock from process start to exit:

  * scipzarr: ``scipzarr convert TIFF_FOLDER -o store.zarr`` + ``scipzarr process store.zarr --features all``
    (first once untimed, so that both tools run with their numba caches filled), ``--repeat`` times, half
    before SCIP's run and half after; the ratio uses the median run (SCIP's one run of minutes averages
    this machine's phases, ours of seconds each land in one phase or another),
  * SCIP: ``run_scip.sh N tiff li`` (its ``--mode local -j 2 -t 1``: shape, intensity, texture and bbox
    features on a Li mask; its own LocalCluster start-up included, as a user pays it),
  * baseline: reading every TIFF's bytes (``cat``-like, in this process).

Each run also says how many CPU-seconds the virtual machine's host took meanwhile (``steal`` in /proc/stat).

SCIP is optional and stays out of the project's dependencies: it runs from its own venv
(``../shared/anchors/scip/install.sh`` makes it at ``$SCIP_VENV``, default /tmp/scip-venv).

    python benchmarks/bench_scip.py --events 2000 [--out /tmp/bench-scip] [--repeat 3] [--no-scip]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from _bytecode import byte_compile

ANCHOR = Path(__file__).resolve().parents[1].parent / "shared" / "anchors" / "scip"


def stolen() -> float:
    """CPU seconds this virtual machine's host has taken from it so far (``steal`` in /proc/stat; 0 elsewhere):
    the difference over a run says how much of its wall clock was not the machine's own."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _timed(cmd: list[str], **kw) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-2000:]}")
    return wall, r.stdout + r.stderr


def _scipzarr(tiffs: Path, work: Path, families: str) -> dict[str, float]:
    store, table = work / "store.zarr", work / "table.h5ad"
    cli = [sys.executable, "-m", "scipzarr"]
    s0 = stolen()
    convert, _ = _timed([*cli, "convert", str(tiffs), "-o", str(store), "--overwrite", "-q"])
    process, _ = _timed([*cli, "process", str(store), "-o", str(table), "--features", families, "--overwrite", "-q"])
    return {"convert": convert, "process": process, "total": convert + process, "stolen": stolen() - s0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path("/tmp/bench-scip"))
    p.add_argument("--families", default="all")
    p.add_argument("--no-scip", action="store_true", help="time scipzarr only (SCIP not installed)")
    p.add_argument("--repeat", type=int, default=3,
                   help="scipzarr runs (half before SCIP's, half after); the ratio uses their median")
    args = p.parse_args()
    byte_compile()  # the commands start as an installed package's do (benchmarks/_bytecode.py)
    n = args.events
    env = {**os.environ, "SCIP_DATA": str(args.out / "scip")}
    venv = Path(os.environ.get("SCIP_VENV", "/tmp/scip-venv"))
    data = args.out / "scip" / f"n{n}_s64"
    if not (data / "meta.json").exists():  # the anchor's generator, with SCIP's own interpreter when there
        py = venv / "bin" / "python" if (venv / "bin" / "python").exists() else Path(sys.executable)
        subprocess.run([str(py), str(ANCHOR / "make_synth.py"), str(n), str(data), "--size", "64",
                        "--formats", "tiff"], check=True, capture_output=True)
    tiffs = data / "tiff"
    files = sorted(tiffs.glob("*.tiff"))
    print(f"{n} events x 3 channels of 64 x 64 uint16, {len(files)} TIFF files; {os.cpu_count()} cores")

    t0 = time.perf_counter()
    size = sum(len(f.read_bytes()) for f in files)
    read = time.perf_counter() - t0
    work = args.out / "scipzarr"
    work.mkdir(parents=True, exist_ok=True)
    _scipzarr(tiffs, work, args.families)  # warm-up: numba's cache filled, files in the page cache
    # several runs of ours, around SCIP's one long run (which averages this machine's phases over minutes;
    # ours last seconds each and land in one phase or another): the ratio uses their median
    before = max(1, args.repeat - args.repeat // 2)
    runs = [_scipzarr(tiffs, work, args.families) for _ in range(before)]
    scip = scip_stolen = None
    if not args.no_scip:
        if not (venv / "bin" / "scip").exists():
            sys.exit(f"no SCIP in {venv}: run {ANCHOR / 'install.sh'} first, or pass --no-scip")
        s0 = stolen()
        wall, out = _timed(["bash", str(ANCHOR / "run_scip.sh"), str(n), "tiff", "li"], env=env)
        scip_stolen = stolen() - s0
        line = out.strip().splitlines()[-1]
        fields = dict(re.findall(r"(\w+)=(\S+)", line))
        scip = float(fields.get("wall_s", wall))
    runs += [_scipzarr(tiffs, work, args.families) for _ in range(args.repeat - before)]
    ours = sorted(runs, key=lambda r: r["total"])[(len(runs) - 1) // 2]  # the median run (lower middle)
    rows = [("read the TIFF bytes (baseline)", read, f"{size / 2**20:.0f} MiB")]
    for i, run in enumerate(runs):
        mark = " (median)" if run is ours else ""
        rows += [(f"scipzarr convert, run {i + 1}", run["convert"], ""),
                 (f"scipzarr process ({args.families}), run {i + 1}", run["process"], ""),
                 (f"scipzarr total, run {i + 1}{mark}", run["total"], f"host took {run['stolen']:.1f} CPU-s")]
    if scip is not None:
        rows.append(("SCIP 0.1.12 end to end (-j 2 -t 1; Li mask)", scip,
                     f"{fields.get('cols', '?')} columns, pipeline {fields.get('scip_runtime_s', '?')} s, "
                     f"host took {scip_stolen:.1f} CPU-s"))
    print(f"{'step':52s}{'seconds':>10s}{'events/s':>11s}  note")
    for name, sec, note in rows:
        print(f"{name:52s}{sec:10.2f}{n / sec:11,.0f}  {note}")
    if scip:
        print(f"scipzarr end to end is {scip / ours['total']:.1f}x faster than SCIP in this run (median of "
              f"{len(runs)} runs: convert {ours['convert']:.2f} s + process {ours['process']:.2f} s against "
              f"{scip:.2f} s; runs {', '.join(f'{scip / r['total']:.1f}x' for r in runs)})")


if __name__ == "__main__":
    main()
