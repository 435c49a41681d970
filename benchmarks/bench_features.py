"""Feature families at the seed's IFC geometry (6 channels, 90 x 90 px, one cell per event).

Per family: milliseconds per chunk of 256 events on one thread (the unit of work
of ``scipzarr process``) and events/s per core; next to it, in the same run,
CellProfiler's measurements (``cp_measure``, one call per event and module,
as CellProfiler runs them) on the first ``--cp-events`` of the same events and
objects.

    python benchmarks/bench_features.py [--events 1024] [--cp-events 40]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def _events(n: int):
    from scipzarr.kernels import segment as seg
    from scipzarr.kernels import threshold as thr_k
    from scipzarr.synthetic import make_events

    ev, _ = make_events(n, channels=6, size=90, seed=0, noise=20.0)
    images = np.stack(ev)
    valid = np.ones((n, 90, 90), bool)
    smooth = seg.smooth(images[:, 0].astype(np.float64), valid, 1.0)
    local, _ = seg.segment(smooth, valid, thr_k.threshold_otsu(smooth, valid), min_size=10)
    return images, local, valid


def _time(fn, repeat: int = 3) -> float:
    fn()  # compile / warm up
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def ours(images, local, valid, chunk: int = 256) -> dict[str, float]:
    """Seconds per chunk of ``chunk`` events for each family, all 6 channels (and the 15 pairs)."""
    from scipzarr.config import DEFAULT_CONFIG
    from scipzarr.features import FAMILIES, Objects, measure

    params = DEFAULT_CONFIG["features"]
    channels = list(range(images.shape[1]))
    out = {}
    batches = [(images[s:s + chunk], local[s:s + chunk], valid[s:s + chunk]) for s in range(0, len(images), chunk)]
    for name in FAMILIES:
        def run():
            for im, lo, va in batches:
                obj = Objects(lo, np.zeros(len(lo), int), np.zeros(len(lo), int), va)
                measure(obj, im, [name], channels, params)
        out[name] = _time(run) / len(batches)
    return out


def cellprofiler(images, local, n: int) -> dict[str, float]:
    """Seconds per event for each family with cp_measure (one call per event, channel or pair)."""
    from cp_measure.bulk import _CORE, _CORRELATION

    modules = {"shape": ["sizeshape", "zernike", "feret"], "intensity": ["intensity"], "texture": ["texture"],
               "granularity": ["granularity"], "radial": ["radial_distribution"]}
    scaled = images[:n] / 65535.0
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fam, mods in modules.items():
            t0 = time.perf_counter()
            for e in range(n):
                for mod in mods:
                    if fam == "shape":
                        _CORE[mod](local[e], scaled[e, 0])
                    elif fam == "texture":
                        for c in range(6):
                            for d in (3, 5):
                                _CORE[mod](local[e], scaled[e, c], scale=d)
                    else:
                        for c in range(6):
                            _CORE[mod](local[e], scaled[e, c])
            out[fam] = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for e in range(n):
            for a in range(6):
                for b in range(a + 1, 6):
                    for mod, fn in _CORRELATION.items():
                        fn(scaled[e, a], scaled[e, b], local[e], **({"scale_max": 65535} if mod == "costes" else {}))
        out["colocalization"] = (time.perf_counter() - t0) / n
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1024)
    p.add_argument("--cp-events", type=int, default=40)
    args = p.parse_args()
    images, local, valid = _events(args.events)
    n_obj = int((local.reshape(len(local), -1).max(axis=1)).sum())
    print(f"{args.events} events (6 x 90 x 90 uint16), {n_obj} objects; one thread; {os.cpu_count()} cores")
    mine = ours(images, local, valid)
    cp = cellprofiler(images, local, args.cp_events)
    print(f"\n{'family':16s} {'ms/256 events':>14s} {'events/s/core':>14s} {'cp_measure ev/s':>16s} {'speed-up':>9s}")
    for fam, sec in mine.items():
        rate = 256 / sec
        cp_rate = 1 / cp[fam]
        print(f"{fam:16s} {sec * 1e3:14.1f} {rate:14,.0f} {cp_rate:16,.1f} {rate / cp_rate:9,.0f}")
    total = sum(mine.values())
    cp_total = sum(cp.values())
    print(f"{'all families':16s} {total * 1e3:14.1f} {256 / total:14,.0f} {1 / cp_total:16,.2f} "
          f"{256 / total * cp_total:9,.0f}")
    sit = sum(mine[f] for f in ("shape", "intensity", "texture"))
    print(f"{'shape+int+tex':16s} {sit * 1e3:14.1f} {256 / sit:14,.0f}")


if __name__ == "__main__":
    main()
