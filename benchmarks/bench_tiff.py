"""TIFF export benchmark: ``convert`` of one TIFF per event and channel (IDEAS-style, the default) or of one
multichannel TIFF per event (``--layout event``), against reading the files' bytes in the same run.

    python benchmarks/bench_tiff.py [--events 3000] [--channels 6] [--size 90] [--layout ideas|event]
                                    [--out bench-tiff] [--repeat 3]

Phases (one run, the same files):
  * read      every file's bytes (the baseline),
  * convert   ``scipzarr convert`` of the export (threads scheduler, in this process: no start-up), and the
              same by the command line (start-up and exit included); read, convert and the command alternate
              ``--repeat`` times and the medians are compared (this machine's speed wanders),
  * check     the store's pixels equal the files' (every event),
  * phases    the same convert again with timers on its phases (discovery, input fingerprint, the
              remaining pyramid levels, image metadata, tables; level 0 is what the rest leaves).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _bytecode import byte_compile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=3000)
    p.add_argument("--channels", type=int, default=6)
    p.add_argument("--size", type=int, default=90)
    p.add_argument("--layout", choices=("ideas", "event"), default="ideas",
                   help="ideas: <object>_Ch<k>.ome.tif per event and channel; event: <object>.tif, (C, Y, X) pages")
    p.add_argument("--out", default="bench-tiff")
    p.add_argument("--repeat", type=int, default=3, help="read and convert runs, alternated (medians reported)")
    args = p.parse_args()
    import tifffile

    from scipzarr.converters import convert
    from scipzarr.store import open_store
    from scipzarr.synthetic import make_events

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "in").mkdir(parents=True)
    events, _ = make_events(args.events, channels=args.channels, size=args.size, seed=0, noise=20.0)
    for i, ev in enumerate(events):
        if args.layout == "event":
            tifffile.imwrite(out / "in" / f"{i:06d}.tif", ev, photometric="minisblack")
            continue
        for c in range(args.channels):
            tifffile.imwrite(out / "in" / f"{i:06d}_Ch{c + 1}.ome.tif", ev[c], photometric="minisblack")
    files = sorted((out / "in").iterdir())
    byte_compile()  # the command starts as an installed package's does (benchmarks/_bytecode.py)
    convert([out / "in"], out / "warm.zarr", progress=False)  # imports and compilation outside the timings

    reads, converts, commands = [], [], []
    written = []  # a new store each run, all removed after the check below (bench_cif.py says why)
    for i in range(args.repeat):  # read, convert and the command alternated; each figure is the median of its runs
        t0 = time.perf_counter()
        nbytes = sum(len(f.read_bytes()) for f in files)
        reads.append(time.perf_counter() - t0)
        written += [out / f"s-{i}.zarr", out / f"cli-{i}.zarr"]
        t0 = time.perf_counter()
        convert([out / "in"], written[-2], progress=False)
        converts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(out / "in"), "-o", str(written[-1]), "-q"],
                       check=True)
        commands.append(time.perf_counter() - t0)
    read_s, convert_s, command_s = float(np.median(reads)), float(np.median(converts)), float(np.median(commands))
    st = open_store(written[-2])
    image = st.image().compute()
    th, tw = st.mosaic.tile
    rows, cols = st.mosaic.tile_position(np.arange(args.events))
    ids = st.events["event_id"].tolist()
    same = all(np.array_equal(image[:, rows[i] * th:(rows[i] + 1) * th, cols[i] * tw:(cols[i] + 1) * tw],
                              events[int(ids[i])]) for i in range(args.events))
    n = args.events
    print(f"{n:,} events x {args.channels} channels of {args.size} x {args.size} ({len(files):,} files, "
          f"{nbytes / 2**20:,.0f} MiB)")
    print(f"read bytes  {read_s:7.2f} s  {n / read_s:9,.0f} events/s  (baseline; median of "
          f"{', '.join(f'{v:.2f}' for v in reads)} s)")
    print(f"convert     {convert_s:7.2f} s  {n / convert_s:9,.0f} events/s  ({convert_s / read_s:.1f}x the read; median "
          f"of {', '.join(f'{v:.2f}' for v in converts)} s)")
    print(f"  command   {command_s:7.2f} s  {n / command_s:9,.0f} events/s  (scipzarr convert: start-up and exit "
          f"included; median of {', '.join(f'{v:.2f}' for v in commands)} s)")
    print(f"pixels unchanged: {same}")
    for path in written:
        shutil.rmtree(path)
    phases = _phases(lambda: convert([out / "in"], out / "s3.zarr", progress=False))
    level0 = phases.pop("total") - sum(v for k, v in phases.items() if k != "write_ifc_mosaic")
    print("phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if k != "write_ifc_mosaic")
          + f", level 0 and the rest {level0:.2f}")


def _phases(run) -> dict[str, float]:
    """Seconds spent in convert's main steps during ``run()`` (timers wrapped around the module functions)."""
    import functools
    import sys

    import scipzarr.converters  # noqa: F401 - registers the modules below
    from scipzarr.store import mosaic, ngff

    convert_module = sys.modules["scipzarr.converters.convert"]
    spent: dict[str, float] = {}
    saved = []
    for module, name in ((convert_module, "discover"), (convert_module, "fingerprint"), (ngff, "write_levels"),
                         (ngff, "write_image_metadata"), (mosaic, "write_events_table"),
                         (mosaic, "write_ifc_mosaic"), (convert_module, "event_table")):
        fn = getattr(module, name)
        saved.append((module, name, fn))

        def timed(*a, _fn=fn, _name=name, **k):
            t0 = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                spent[_name] = spent.get(_name, 0.0) + time.perf_counter() - t0

        setattr(module, name, functools.wraps(fn)(timed))
    t0 = time.perf_counter()
    try:
        run()
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)
    return spent | {"total": time.perf_counter() - t0}


if __name__ == "__main__":
    main()
