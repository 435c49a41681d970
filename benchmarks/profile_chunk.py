"""Where the time of one IFC chunk task goes, stage by stage, on the CPU and on a GPU.

Runs the stages of ``pipeline._chunk_process`` on chunks of a synthetic store at the
seed's geometry (6 channels, 90 x 90 px, K x K events per chunk), one thread, best of
``--repeat`` after a warm-up (which pays numba's and CuPy's compilation), and prints
milliseconds per chunk for each stage and device. On a GPU every stage ends with a
device synchronization, so its time is its own.

    python benchmarks/profile_chunk.py [--events 1024] [--chunk-tiles 16] [--device cpu --device gpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def _store(out: Path, n: int, k: int) -> Path:
    import scipzarr
    from scipzarr.synthetic import make_events

    ev, _ = make_events(n, channels=6, size=90, seed=3, noise=20.0)
    np.save(out / "ev.npy", np.stack(ev))
    scipzarr.convert([out / "ev.npy"], out / "ev.zarr", chunk_tiles=k, progress=False, overwrite=True)
    return out / "ev.zarr"


def _sync(device: str) -> None:
    if device == "gpu":
        import cupy

        cupy.cuda.Device().synchronize()


def profile(path: Path, device: str, families: list[str], repeat: int) -> dict[str, float]:
    """Seconds per chunk for each stage (best over ``repeat`` passes over all chunks, after one warm-up pass)."""
    from scipzarr import store
    from scipzarr.pipeline import ifc as pipeline
    from scipzarr.config import resolve_config
    from scipzarr.features import Objects, measure
    from scipzarr.features.masks import measure_masks

    st = store.open_store(path)
    cfg = resolve_config({"features": {"families": families}})
    plan = pipeline.make_plan(st, cfg, device=device)
    table = pipeline.slot_table(st)
    k = st.mosaic.chunk_tiles
    blocks = range(st.mosaic.n_blocks)
    best: dict[str, float] = {}
    spent: dict[str, float] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0
        return out

    for rep in range(repeat + 1):
        spent.clear()
        for b in blocks:
            by, bx = divmod(b, st.mosaic.chunk_grid[1])
            meta = pipeline._slots(table[:, by * k:(by + 1) * k, bx * k:(bx + 1) * k])
            block = timed("read + decode", lambda: pipeline.read_block(plan, b))  # noqa: B023
            images, valid = timed("normalize", lambda: pipeline._prepared(plan, block, meta, None))  # noqa: B023
            local, channel, _parts = timed("segment (to host labels)",
                                           lambda: pipeline._segment_events(plan, images, valid, None))  # noqa: B023
            obj = Objects(local, meta["valid_y0"], meta["valid_x0"], valid)
            for fam in families:
                timed(f"features: {fam}", lambda: measure(obj, images, [fam], list(plan.feat_channels),  # noqa: B023
                                                           cfg["features"], device=device))
            if channel is not None:
                timed("features: channel masks", lambda: measure_masks(  # noqa: B023
                    obj, images, *channel, list(plan.mask_channels), list(plan.mask_families),  # noqa: B023
                    cfg["features"], device=device))
            timed("label images (mosaic)", lambda: pipeline.label_blocks(  # noqa: B023
                plan, meta, local, None if channel is None else channel[0]))  # noqa: B023
        if rep:  # the first pass is the warm-up
            best = {name: min(best.get(name, np.inf), sec) for name, sec in spent.items()}
    return {name: sec / len(blocks) for name, sec in best.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=1024)
    p.add_argument("--chunk-tiles", type=int, default=16)
    p.add_argument("--families", default="shape,intensity")
    p.add_argument("--device", action="append", choices=["cpu", "gpu"])
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    devices = args.device or ["cpu"]
    families = args.families.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        path = _store(Path(tmp), args.events, args.chunk_tiles)
        per = {device: profile(path, device, families, args.repeat) for device in devices}
    per_chunk = args.chunk_tiles**2
    print(f"{args.events} events, chunks of {per_chunk} events (6 x 90 x 90 uint16), one thread; ms per chunk")
    print(f"{'stage':28s}" + "".join(f"{d:>12s}" for d in devices))
    for stage in per[devices[0]]:
        print(f"{stage:28s}" + "".join(f"{per[d][stage] * 1e3:12.1f}" for d in devices))
    totals = {d: sum(per[d].values()) for d in devices}
    print(f"{'total':28s}" + "".join(f"{totals[d] * 1e3:12.1f}" for d in devices))
    print(f"{'events/s (one thread)':28s}" + "".join(f"{per_chunk / totals[d]:12,.0f}" for d in devices))


if __name__ == "__main__":
    main()
