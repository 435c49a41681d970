"""What the default IFC masks cost per chunk, against the old default's segmentation, in the same run.

One chunk of seed-geometry events (6 channels of 90 x 90, 256 events, synthetic cells) is segmented by
``pipeline.ifc._segment_events`` with:

* ``old``: per-event Otsu on channel 0 (the default before issue #17);
* ``default``: a background-referenced mask for each of the 6 channels, the cell mask from the union of
  the segmentation channels, every channel mask attributed to the objects;

and the added measurements (``features.masks.measure_masks``: the masks columns and intensity in each
channel's own mask) are timed against the intensity family in the cell mask, which they repeat per mask.
Prints milliseconds per chunk (best of ``--repeat``) and the ratios.

Usage: ``python benchmarks/bench_masks.py [--events 256] [--repeat 5]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times) * 1e3


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    import scipzarr
    from scipzarr.config import resolve_config
    from scipzarr.features import Objects, measure
    from scipzarr.features.masks import measure_masks
    from scipzarr.pipeline import ifc
    from scipzarr.store import open_store
    from scipzarr.synthetic import make_events

    ev, _ = make_events(args.events, channels=6, size=90, seed=1, noise=20.0)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "e.npy", np.stack(ev))
        k = int(np.ceil(np.sqrt(args.events)))
        scipzarr.convert([Path(tmp) / "e.npy"], Path(tmp) / "s.zarr", chunk_tiles=k, progress=False)
        st = open_store(Path(tmp) / "s.zarr")
        table = ifc.slot_table(st)
        meta = ifc._slots(table[:, :k, :k])
        plans = {"old": ifc.make_plan(st, resolve_config({"segmentation": {"channels": [0],
                                                                           "threshold": {"method": "otsu"},
                                                                           "keep": "all"}})),
                 "default": ifc.make_plan(st, resolve_config({}))}
        images, valid = ifc._prepared(plans["default"], ifc.read_block(plans["default"], 0), meta, None)
        ms = {}
        for name, plan in plans.items():
            ifc._segment_events(plan, images, valid, None)  # warm (numba, caches)
            ms[name] = best(lambda plan=plan: ifc._segment_events(plan, images, valid, None), args.repeat)
        plan = plans["default"]
        local, channel, _ = ifc._segment_events(plan, images, valid, None)
        obj = Objects(local, meta["valid_y0"], meta["valid_x0"], valid)
        chans = list(plan.mask_channels)
        ms["intensity"] = best(lambda: measure(Objects(local, meta["valid_y0"], meta["valid_x0"], valid), images,
                                               ["intensity"], chans), args.repeat)
        ms["masks"] = best(lambda: measure_masks(obj, images, *channel, chans, ["intensity"]), args.repeat)
    n = int((meta["event"] >= 0).sum())
    print(f"one chunk: {n} events x 6 channels x 90 x 90 (best of {args.repeat}, ms)")
    print(f"  segmentation, old default (Otsu on channel 0)    {ms['old']:8.1f}")
    print(f"  segmentation, default (6 channel masks + cell)   {ms['default']:8.1f}   "
          f"x{ms['default'] / ms['old']:.2f} of the old")
    print(f"  intensity in the cell mask (6 channels)          {ms['intensity']:8.1f}")
    print(f"  masks columns + intensity in the own masks       {ms['masks']:8.1f}   "
          f"x{ms['masks'] / ms['intensity']:.2f} of the cell mask's intensity")
    return 0


if __name__ == "__main__":
    sys.exit(main())
