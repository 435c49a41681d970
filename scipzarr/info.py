"""Human-readable summaries of stores and tables (``scipzarr info``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import ScipzarrError


def describe_store(path: Path) -> str:
    from .store import ngff, open_store

    st = open_store(path)
    m = st.mosaic
    shape, chunks, dtype = ngff.array_info(path / st.level_paths[0])
    classes = st.events["class_label"].value_counts().sort_index()
    class_text = ", ".join(f"{k} {v}" for k, v in classes.items() if k) or "none"
    lines = [
        f"{path}: scipzarr IFC mosaic store (OME-NGFF {st.attrs['ome'].get('version', '?')}, zarr v3)",
        f"  events     {m.n_events}   tile {m.tile[0]}x{m.tile[1]} px   dtype {dtype}",
        f"  channels   {', '.join(st.channel_names)}",
        f"  mosaic     {m.shape[1]}x{m.shape[2]} px, {m.n_blocks} chunks of {m.chunk_tiles}x{m.chunk_tiles} events "
        f"(chunk {chunks}, {int(np.prod(shape)) * dtype.itemsize / m.n_blocks / 2**20 if m.n_blocks else 0:.1f} MiB raw per chunk)",
        f"  levels     {', '.join(st.level_paths)}",
        f"  classes    {class_text}",
        f"  labels     {', '.join(st.label_names()) or 'none (run scipzarr process)'}",
        f"  rejected   {len(st.rejected())} events (tables/rejected)",
        f"  source     {st.attrs['scipzarr'].get('source', '?')}",
    ]
    return "\n".join(lines)


def describe_fov_store(path: Path) -> str:
    from .store import open_fov_store

    st = open_fov_store(path)
    lines = [f"{path}: scipzarr FOV store (OME-NGFF {st.attrs['ome'].get('version', '?')}, bioformats2raw layout, "
             f"zarr v3)", f"  FOVs       {len(st.fovs)}   chunks {st.attrs['scipzarr']['chunk']} px   "
             f"dtype {st.attrs['scipzarr']['dtype']}", f"  channels   {', '.join(st.channel_names)}"]
    for i, f in enumerate(st.fovs[:10]):
        size = "x".join(map(str, f["shape"][1:]))
        um = "" if None in f["pixel_size_um"] else f", {f['pixel_size_um'][0]} um/px"
        lines.append(f"  {f['path']:>4}: {f['name']}  {size} px{um}, {st.n_levels(i)} levels, labels "
                     f"{', '.join(st.label_names(i)) or 'none'}")
    if len(st.fovs) > 10:
        lines.append(f"  ... and {len(st.fovs) - 10} more")
    return "\n".join(lines)


def describe_table(path: Path) -> str:
    from .table import read_table

    adata = read_table(path)
    meta = adata.uns.get("scipzarr", {})
    fams = adata.var["family"].value_counts() if "family" in adata.var else {}
    lines = [
        f"{path}: feature table, {adata.n_obs} objects x {adata.n_vars} features",
        f"  families   {', '.join(f'{k} {v}' for k, v in fams.items())}",
    ]
    if meta.get("kind") == "fov":
        lines += [f"  FOVs       {meta['fovs']}, {float(meta['seconds']):.1f} s ({meta['chunk_size']} px chunks)"]
        per = meta.get("objects_per_fov")
        if per:
            counts = np.array(list(per.values()))
            lines.append(f"  per FOV    {counts.min()} to {counts.max()} objects (median {np.median(counts):g}), "
                         f"{(counts == 0).sum()} FOVs without objects")
        if "objects" in adata.var:
            kinds = list(adata.var["objects"])
            lines.append("  objects    " + ", ".join(f"{k} ({kinds.count(k)} columns)" for k in dict.fromkeys(kinds)))
        lines.append(f"  input      {meta['input_store']}")
    elif meta:
        cfg = json.loads(meta["config"])
        lines += [
            f"  events     {meta['events']} ({meta.get('events_without_objects', 0)} without objects, "
            f"{meta.get('events_rejected', 0)} rejected)",
            f"  input      {meta['input_store']}",
            f"  run        {meta['started']}, {float(meta['seconds']):.1f} s, scipzarr {meta['scipzarr_version']}",
            f"  segmentation  {cfg['segmentation']['threshold']['method']} ({cfg['segmentation']['threshold']['scope']}) "
            f"on {cfg['segmentation']['channels']}, normalize {cfg['normalize']['method']}",
        ]
    if "class_label" in adata.obs:
        counts = adata.obs["class_label"].value_counts().sort_index()
        lines.append("  classes    " + (", ".join(f"{k} {v}" for k, v in counts.items() if k) or "none"))
    return "\n".join(lines)


def describe(path: Path) -> str:
    path = Path(path)
    if not path.exists():
        raise ScipzarrError(f"{path}: no such file or folder")
    if path.suffix == ".h5ad" or (path / "obs").exists():
        return describe_table(path)
    from .store import store_kind

    return describe_fov_store(path) if store_kind(path) == "fov" else describe_store(path)
