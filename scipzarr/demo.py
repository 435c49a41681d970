"""``scipzarr demo``: a small synthetic IFC data set, converted and processed."""

from __future__ import annotations

import time
from pathlib import Path

from .errors import ScipzarrError


def run_demo(folder: Path, n_events: int = 600, quiet: bool = False) -> dict:
    """Generate IDEAS-style TIFFs in ``folder/raw``, convert, process, summarize."""
    from .config import resolve_config
    from .converters import convert
    from .pipeline import process
    from .progress import compile_note, compile_seconds
    from .synthetic import make_events, write_ideas_export

    if n_events < 1:
        raise ScipzarrError(f"--events must be >= 1, got {n_events}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw, store_path, table_path = folder / "raw", folder / "demo.zarr", folder / "demo.h5ad"
    t0 = time.perf_counter()
    if not raw.exists():
        events, truth = make_events(n_events, channels=3, size=56, seed=1, noise=20.0, vary_size=12)
        write_ideas_export(raw, events, truth["class_label"])
    t_gen = time.perf_counter() - t0
    conv = convert([raw], store_path, channels=["DNA", "membrane", "texture"], chunk_tiles=8,
                   overwrite=True, progress=not quiet)
    config = resolve_config({"segmentation": {"channels": ["DNA", "membrane"], "min_size": 20}})
    with compile_seconds() as compiling:
        adata = process(store_path, config, table_path, overwrite=True, progress=not quiet, table_in_memory=False)
    meta = adata.uns["scipzarr"]
    total = time.perf_counter() - t0
    summary = {
        "events": meta["events"], "objects": meta["objects"], "features": meta["features"],
        "convert_s": conv["seconds"], "process_s": meta["seconds"], "compile_s": compiling.seconds, "total_s": total,
        "store": str(store_path), "table": str(table_path),
    }
    if not quiet:
        print(f"scipzarr demo in {folder}/")
        print(f"  generated  {n_events} IDEAS-style events (3 channels) in {t_gen:.1f} s -> {raw}/")
        print(f"  converted  {conv['events']} events in {conv['seconds']:.1f} s -> {store_path}")
        note = compile_note(compiling.seconds)
        print(f"  processed  {meta['events']} events -> {meta['objects']} objects x {meta['features']} features "
              f"in {meta['seconds']:.1f} s ({meta['events'] / meta['seconds']:,.0f} events/s{note}) -> {table_path}")
        print(f"  total      {total:.1f} s")
        print(f"  next       scipzarr info {table_path}   |   napari {store_path} (gallery of all events)")
    return summary
