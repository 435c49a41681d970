"""Pictures of the default IFC masks on real events, for docs/segmentation.md.

Converts and processes (default config) the real FlowSight ``.cif`` and the Jurkat per-event TIFFs of
``../shared/data`` and draws, for a few events, each channel with the outline of its own mask (green), the
cell mask (yellow) and, for the ``.cif``, IDEAS's mask of that channel (magenta, dashed).

Usage: ``python benchmarks/mask_gallery.py [OUT_DIR]`` (default: docs/). Needs matplotlib.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _tiles(store: Path, name: str, events: list[int]):
    import zarr

    from scipzarr.store import open_store

    st = open_store(store)
    th, tw = st.mosaic.tile
    rows, cols = st.mosaic.tile_position(np.asarray(events))
    img = zarr.open_array(str(store / st.level_paths[0]))
    cell = zarr.open_array(str(store / "labels" / name / "s0"))
    own = {ch: zarr.open_array(str(store / "labels" / f"{name}-{ch}" / "s0")) for ch in st.channel_names}
    for e, r, c in zip(events, rows, cols):
        ys, xs = slice(r * th, (r + 1) * th), slice(c * tw, (c + 1) * tw)
        ev = st.events.iloc[e]
        crop = (slice(ev.valid_y0, ev.valid_y0 + ev.valid_height), slice(ev.valid_x0, ev.valid_x0 + ev.valid_width))
        yield (e, ev, img[:, ys, xs][(slice(None), *crop)], cell[ys, xs][crop] > 0,
               {ch: a[ys, xs][crop] > 0 for ch, a in own.items()})


def draw(store: Path, events: list[int], out: Path, title: str, reference=None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scipzarr.store import open_store

    names = open_store(store).channel_names
    fig, axes = plt.subplots(len(events), len(names), figsize=(1.6 * len(names), 1.6 * len(events)), squeeze=False)
    for row, (e, ev, pix, cell, own) in enumerate(_tiles(store, "cells", events)):
        for col, ch in enumerate(names):
            ax = axes[row, col]
            plane = pix[col].astype(float)
            lo, hi = np.percentile(plane, [1, 99.5])
            ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
            ax.contour(own[ch], levels=[0.5], colors="lime", linewidths=0.8)
            ax.contour(cell, levels=[0.5], colors="yellow", linewidths=0.6)
            if reference is not None:
                ideas = reference[f"mask_{e:03d}"][col][ev.crop_y0:ev.crop_y0 + ev.valid_height,
                                                        ev.crop_x0:ev.crop_x0 + ev.valid_width]
                if ideas.any():
                    ax.contour(ideas, levels=[0.5], colors="magenta", linewidths=0.6, linestyles="dashed")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(ch, fontsize=8)
            if col == 0:
                ax.set_ylabel(f"event {e}\n{ev.class_label}" if ev.class_label else f"event {e}", fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
    print(f"{out}: {out.stat().st_size / 1024:.0f} KiB")


def main(argv=None) -> int:
    import scipzarr
    from scipzarr.config import resolve_config
    from scipzarr.pipeline import process

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else ROOT / "docs"
    cif = sorted((DATA / "ifc_cif_flowsight").glob("*.cif"))
    jurkat = DATA / "ifc_jurkat_cellcycle" / "single_cells"
    with tempfile.TemporaryDirectory() as tmp:
        if cif:
            store = Path(tmp) / "cif.zarr"
            scipzarr.convert(cif, store, progress=False)
            process(store, resolve_config({}), progress=False)
            with np.load(DATA / "ifc_cif_flowsight" / "example_cif_reference.npz") as ref:
                reference = {k: ref[k] for k in ref.files if k.startswith("mask_")}
            draw(store, [0, 17, 42, 89, 110], out / "segmentation-flowsight.png",
                 "FlowSight .cif: own mask (green), cell mask (yellow), IDEAS mask (magenta, dashed)", reference)
        if jurkat.is_dir():
            store = Path(tmp) / "jurkat.zarr"
            scipzarr.convert([jurkat], store, progress=False)
            process(store, resolve_config({}), progress=False)
            from scipzarr.store import open_store

            classes = open_store(store).events["class_label"].to_numpy()
            picks = [int(np.flatnonzero(classes == c)[0]) for c in ("G1", "G2", "Prophase", "Metaphase",
                                                                    "Anaphase", "Telophase")]
            draw(store, picks, out / "segmentation-jurkat.png",
                 "Jurkat (Ch3 brightfield, Ch4 DNA, Ch6 darkfield): own mask (green), cell mask (yellow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
