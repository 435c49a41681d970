"""``scipzarr process`` on fields of view: global, chunk-independent labels and per-object features.

FOVs up to ``fov.whole_max_pixels`` are processed whole, one task per FOV
(:func:`_whole_fov`); larger ones as a dask graph over chunks of
``chunk_size`` pixels. Both run the kernels of :mod:`scipzarr.kernels.fov`
and give the same labels and table. Chunk by chunk:

1. the segmentation image (mean of the segmentation channels) is smoothed
   by one task per chunk reading the chunk plus the Gaussian's radius from
   the store (:func:`halo_map`), so every pixel sees exactly the
   neighbourhood it would see in the whole image;
2. the threshold comes from one histogram over all chunks (Otsu, Li or
   fixed; per FOV or over the data set), never per chunk;
3. holes are filled globally (background components that do not reach the
   image border), components are labelled (8-connected) by
   :mod:`scipzarr.kernels.chunklabel` (exact, numbered in raster order of
   their first pixel, so the label image is the same whatever the
   chunking), and objects under ``min_size`` dropped;
4. touching nuclei are split per component; labels are written into the
   store (``<fov>/labels/<name>``, with the image's pyramid);
5. features: objects are grouped by the chunk holding their first row and
   column; one task per group reads the region covering the group's bounding
   boxes once and measures every object on its own crop (bounding box plus
   one pixel, other objects removed) with the batch feature kernels, so an
   object crossing chunk borders is measured exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import zarr
from dask.array.core import normalize_chunks

from . import backend, fovstore
from ._version import __version__
from .errors import ScipzarrError
from .features import feature_columns, resolve_families
from .kernels import chunklabel
from .kernels import fov as kfov
from .kernels import segment as seg


def halo_map(path: str, shape: tuple[int, int], chunk: int, depth: int, fn, dtype, channels=None) -> da.Array:
    """A lazy ``(y, x)`` array over chunks of ``chunk`` pixels: ``fn`` of each chunk read from the zarr array at
    ``path`` with ``depth`` pixels of its neighbours (clipped at the image border), trimmed back to the chunk.

    One task per chunk with no dependencies (``dask.array.map_overlap``
    builds several tasks per chunk and keeps neighbours' pieces alive while
    it runs: 227 MiB peak against 105 MiB for a 512 MiB image). ``channels``
    picks channels of a ``(c, y, x)`` array; ``None`` reads a ``(y, x)`` one.
    """
    h, w = shape
    chunks = normalize_chunks((chunk, chunk), (h, w))

    def run(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        ry0, rx0, ry1, rx1 = max(y0 - depth, 0), max(x0 - depth, 0), min(y1 + depth, h), min(x1 + depth, w)
        src = zarr.open_array(path, mode="r")
        block = src[ry0:ry1, rx0:rx1] if channels is None else src[:, ry0:ry1, rx0:rx1][channels]
        return fn(block)[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]

    return da.map_blocks(run, chunks=chunks, dtype=dtype, meta=np.empty((0, 0), dtype))


def _range(image: da.Array, compute) -> tuple[float, float]:
    """Min and max, reduced inside each chunk's task (a dask ``min()``/``max()`` pair kept smoothed chunks
    alive: 0.9 GB peak for a 512 MiB image)."""
    parts = compute([dask.delayed(lambda b: (float(b.min()), float(b.max())))(blk)
                     for blk in image.to_delayed().ravel()])
    return min(p[0] for p in parts), max(p[1] for p in parts)


def _histogram(image: da.Array, lo: float, hi: float, compute) -> np.ndarray:
    """The 256-bin histogram over ``[lo, hi]``, summed over chunks."""
    parts = compute([dask.delayed(kfov.histogram)(blk, lo, hi) for blk in image.to_delayed().ravel()])
    return np.sum(parts, axis=0)


def _persist(array: da.Array, path: Path, compute) -> da.Array:
    """Write a lazy array to a scratch zarr array (bounded memory) and return it read back lazily."""
    compute([da.to_zarr(array, str(path), overwrite=True, compute=False)])
    return da.from_zarr(str(path))


def fill_holes(mask: da.Array, compute=None) -> da.Array:
    """Fill background components (4-connected) that do not reach the image border, exactly, chunk by chunk
    (``scipy.ndimage.binary_fill_holes`` of the whole image)."""
    bg, comps = chunklabel.label(~mask, connectivity=1, compute=compute)
    h, w = mask.shape
    hole = np.zeros(len(comps) + 1, dtype=bool)
    hole[1:] = ~((comps["ymin"] == 0) | (comps["xmin"] == 0) | (comps["ymax"] == h - 1)
                 | (comps["xmax"] == w - 1)).to_numpy()
    return mask | bg.map_blocks(lambda b: hole[b], dtype=bool)


def _groups(table: pd.DataFrame, chunk: int, width: int) -> list[pd.DataFrame]:
    """Objects grouped by the chunk holding their first row and column."""
    key = (table["ymin"] // chunk) * ((width + chunk - 1) // chunk) + table["xmin"] // chunk
    return [grp for _, grp in table.groupby(key.to_numpy(), sort=True)]


def _box_region(table: pd.DataFrame, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The FOV region covering every object's box plus one pixel."""
    h, w = shape
    return (slice(max(int(table["ymin"].min()) - 1, 0), min(int(table["ymax"].max()) + 2, h)),
            slice(max(int(table["xmin"].min()) - 1, 0), min(int(table["xmax"].max()) + 2, w)))


def _split_group(label_path: str, comps: pd.DataFrame, shape: tuple[int, int], min_distance: int) -> list:
    sy, sx = _box_region(comps, shape)
    region = np.asarray(zarr.open_array(label_path, mode="r")[sy, sx]).astype(np.int64)
    return kfov.split_components(region, (sy.start, sx.start), comps, shape, min_distance)


def split_touching(labels: da.Array, comps: pd.DataFrame, chunk: int, min_distance: int, scratch: Path, compute):
    """Watershed split of every component; final labels numbered in raster order of their first pixel."""
    h, w = labels.shape
    compute([da.to_zarr(labels, str(scratch), overwrite=True, compute=False)])
    tasks = [dask.delayed(_split_group)(str(scratch), grp, (h, w), min_distance) for grp in _groups(comps, chunk, w)]
    parts = {cid: (y0, x0, sub) for res in compute(tasks) for cid, y0, x0, sub in res}
    objects, final = kfov.number_parts(parts, w)

    def paint(block, block_info=None):  # a closure: dask never walks the (large) dicts
        (by0, _), (bx0, _) = block_info[0]["array-location"]
        return kfov.paint(block, (by0, bx0), parts, final)

    return da.map_blocks(paint, labels, dtype=np.uint32), objects


def _measure_group(image_path: str, label_path: str, objects: pd.DataFrame, shape: tuple[int, int],
                   families: list[str], channels: list[int], params: dict, device: str = "cpu"):
    sy, sx = _box_region(objects, shape)
    img = zarr.open_array(image_path, mode="r")[:, sy, sx]
    lab = zarr.open_array(label_path, mode="r")[sy, sx]
    return kfov.measure_objects(img, lab, (sy.start, sx.start), objects, shape, families, channels, params, device)


def _sync(collections, what=""):
    return dask.compute(*collections, scheduler="sync")


def _smooth(channels: np.ndarray, sigma: float, device: str) -> np.ndarray:
    """:func:`kernels.fov.smooth_plane` on ``device``, back on the host (thresholds, histograms and
    labelling run there: docs/gpu.md)."""
    return backend.to_host(kfov.smooth_plane(backend.to_device(channels, device), sigma))


def _smoothed_stats(image_path: str, seg_ch: list[int], sigma: float, device: str, lo=None, hi=None):
    """Min and max of a whole FOV's smoothed segmentation image, or its histogram over ``[lo, hi]``."""
    s = _smooth(zarr.open_array(image_path, mode="r")[:][seg_ch], sigma, device)
    return (float(s.min()), float(s.max())) if lo is None else kfov.histogram(s, lo, hi)


def _save(work, i: int, result) -> None:
    """Keep a finished FOV's result in the run's work folder (``--resume``)."""
    if work is None:
        return
    thr, objects, centroids, X = result
    work.save_chunk(i, {"threshold": np.array([thr], np.float64), "label": objects.index.to_numpy(np.int64),
                        "objects": objects[chunklabel.COLUMNS].to_numpy(np.int64), "centroids": centroids,
                        "X": np.zeros((0, 0)) if X is None else X, "has_X": np.array([X is not None])})


def _load(work, i: int):
    d = work.load_chunk(i)
    objects = pd.DataFrame(d["objects"].reshape(-1, 6), columns=chunklabel.COLUMNS,
                           index=pd.Index(d["label"], name="label"))
    return float(d["threshold"][0]), objects, d["centroids"].reshape(-1, 2), d["X"] if d["has_X"][0] else None


def _whole_fov(st: fovstore.FovStore, i: int, seg_ch: list[int], feat_ch: list[int], config: dict,
               thr: float | None, write: bool, label_name: str, device: str = "cpu", work=None):
    """Segment, label (written into the store) and measure one FOV held whole in memory.

    The same kernels as the chunked path on the whole image (scipy's hole
    filling and labelling of the whole image are what the chunked passes
    reproduce), so the labels and the table are the same (tested). With a
    ``work`` folder, the result is kept there once the labels are written,
    and a resumed run takes it from there.
    """
    if work is not None and work.done(i):
        return _load(work, i)
    result = _whole_fov_run(st, i, seg_ch, feat_ch, config, thr, write, label_name, device)
    _save(work, i, result)
    return result


def _whole_fov_run(st, i, seg_ch, feat_ch, config, thr, write, label_name, device):
    cfg_seg, cfg_feat = config["segmentation"], config["features"]
    fov = st.fovs[i]
    h, w = fov["shape"][1:]
    img = np.asarray(zarr.open_array(str(st.path / fov["path"] / "s0"), mode="r")[:])
    plugin = cfg_seg["plugin"]
    if plugin["name"]:
        from . import plugins

        fn = plugins.resolve(plugin["name"], plugin["options"])
        mask = plugins.foreground(fn(img[seg_ch].astype(np.float64), **plugin["options"]), (h, w), plugin["name"])
        thr = float("nan")
    else:
        s = _smooth(img[seg_ch], float(cfg_seg["smoothing_sigma"]), device)
        if thr is None:
            lo, hi = float(s.min()), float(s.max())
            thr = kfov.threshold(kfov.histogram(s, lo, hi), lo, hi, cfg_seg["threshold"]["method"])
        mask = s > thr
        del s
    if cfg_seg["fill_holes"]:
        mask = kfov.fill_holes(mask)
    labels, objects = kfov.label_whole(mask, int(cfg_seg["min_size"]))
    split = cfg_seg["split"]
    if split["method"] != "none" and len(objects):
        res = kfov.split_components(labels, (0, 0), objects, (h, w), int(split["min_distance"]))
        parts = {cid: (y0, x0, sub) for cid, y0, x0, sub in res}
        objects, final = kfov.number_parts(parts, w)
        labels = kfov.paint(labels, (0, 0), parts, final)
    chunk = int(st.attrs["scipzarr"]["chunk"])
    if write:
        fovstore.write_fov_labels(st, i, label_name, labels, _sync,
                                  {"scipzarr": {"threshold": thr, "chunk_size": chunk}})
    families = resolve_families(cfg_feat["families"])
    grow = int(cfg_seg["cells"]["expand"])
    if grow > 0:  # cell bodies: every nucleus grown by up to `grow` pixels into the background, measured too
        from skimage.segmentation import expand_labels

        cells = expand_labels(labels, grow)
        if write:
            fovstore.write_fov_labels(st, i, f"{label_name}_cells", cells, _sync,
                                      {"scipzarr": {"expanded_from": label_name, "distance_px": grow}})
    if not len(objects):
        return thr, objects, np.zeros((0, 2)), None
    centroids, X = kfov.measure_objects(img, labels, (0, 0), objects, (h, w), families, feat_ch, cfg_feat, device)
    if grow > 0:
        cell_boxes = kfov.boxes(cells, (0, 0)).reindex(objects.index)  # a cell for every nucleus (same label)
        X = np.hstack([X, kfov.measure_objects(img, cells, (0, 0), cell_boxes, (h, w), families, feat_ch,
                                               cfg_feat, device)[1]])
    return thr, objects, centroids, X


def _segment_chunked(st, i, seg_ch, smoothed, thr, chunk, config, label_name, write, compute):
    """Segment one FOV chunk by chunk (module doc); returns the objects and the path of its final labels."""
    cfg_seg = config["segmentation"]
    fov = st.fovs[i]
    h, w = fov["shape"][1:]
    mask_path = st.path / fov["path"] / ".mask-scratch"
    plugin = cfg_seg["plugin"]
    if plugin["name"]:
        from . import plugins

        fn = plugins.resolve(plugin["name"], plugin["options"])

        def run(block):
            return plugins.foreground(fn(block.astype(np.float64), **plugin["options"]), block.shape[1:],
                                      plugin["name"])

        raw_mask = halo_map(str(st.path / fov["path"] / "s0"), (h, w), chunk, int(plugin["overlap"]), run, bool,
                            channels=seg_ch)
    else:
        raw_mask = smoothed > thr
    mask = _persist(raw_mask, mask_path, compute)  # computed once, read back by every pass
    if cfg_seg["fill_holes"]:
        mask = _persist(fill_holes(mask, compute), mask_path.with_name(".filled-scratch"), compute)
    labels, objects = chunklabel.label(mask, connectivity=2, min_size=int(cfg_seg["min_size"]), compute=compute)
    scratch = st.path / fov["path"] / ".components-scratch"
    if cfg_seg["split"]["method"] != "none" and len(objects):
        labels, objects = split_touching(labels, objects, chunk, int(cfg_seg["split"]["min_distance"]), scratch,
                                         compute)
    # on disk first: the pyramid levels then read it chunk by chunk (computing all levels from one lazy
    # graph kept every label chunk in memory: 1.3 GB peak for a 512 MiB image)
    final_path = mask_path.with_name(".labels-final-scratch")
    labels = _persist(labels, final_path, compute)
    for path in (scratch, mask_path, mask_path.with_name(".filled-scratch")):
        shutil.rmtree(path, ignore_errors=True)
    if write:
        fovstore.write_fov_labels(st, i, label_name, labels, compute,
                                  {"scipzarr": {"threshold": thr, "chunk_size": chunk}})
    grow = int(cfg_seg["cells"]["expand"])
    cells_path = None
    if grow > 0:  # cell bodies: every nucleus grown by up to `grow` pixels into the background
        from skimage.segmentation import expand_labels

        cells_path = mask_path.with_name(".cells-scratch")
        cells = _persist(halo_map(str(final_path), (h, w), chunk, grow + 1, lambda b: expand_labels(b, grow),
                                  labels.dtype), cells_path, compute)
        if write:
            fovstore.write_fov_labels(st, i, f"{label_name}_cells", cells, compute,
                                      {"scipzarr": {"expanded_from": label_name, "distance_px": grow}})
    return objects, final_path, cells_path


def _chunk_boxes(labels: da.Array, compute) -> pd.DataFrame:
    """Bounding boxes of every label of a chunked label image, from per-chunk boxes."""
    oy, ox = chunklabel._offsets(labels.chunks)
    blocks = labels.to_delayed()
    parts = compute([dask.delayed(kfov.boxes)(blocks[a, b], (int(oy[a]), int(ox[b])))
                     for a in range(blocks.shape[0]) for b in range(blocks.shape[1])])
    table = pd.concat(parts)
    return table.groupby(level=0).agg({"ymin": "min", "ymax": "max", "xmin": "min", "xmax": "max"})


def _measure_chunked(image_path: str, label_path: str, objects: pd.DataFrame, chunk: int, shape, families,
                     feat_ch, cfg_feat, compute, device: str = "cpu"):
    """Centroids and features of ``objects`` (labels at ``label_path``), one task per group, in label order."""
    groups = _groups(objects, chunk, shape[1])
    if not groups:
        return np.zeros((0, 2)), None
    parts = compute([dask.delayed(_measure_group)(image_path, label_path, grp, shape, families, feat_ch, cfg_feat,
                                                  device) for grp in groups])
    ranked = np.argsort(np.concatenate([grp.index.to_numpy() for grp in groups]))
    return np.concatenate([r[0] for r in parts])[ranked], np.concatenate([r[1] for r in parts])[ranked]


def process_fovs(store_path: str | Path, config: dict, *, chunk_size: int | None = None,
                 label_name: str | None = None, write_labels: bool = True, compute=None, device: str = "cpu",
                 work=None):
    """Segment and measure every FOV of a FOV store; return the AnnData table (see module doc).

    FOVs of at most ``config["fov"]["whole_max_pixels"]`` pixels are each
    processed whole by one task (:func:`_whole_fov`), larger ones chunk by
    chunk; ``chunk_size`` processes every FOV in chunks of that size. With a
    ``work`` folder (:class:`scipzarr.resume.Work`) every finished FOV is kept
    there and a resumed run does only the others.
    """
    import anndata as ad

    st = fovstore.open_fov_store(store_path)
    compute = compute or (lambda collections, what="": dask.compute(*collections))
    cfg_seg, cfg_feat = config["segmentation"], config["features"]
    if config["normalize"]["method"] != "none":
        raise ScipzarrError(f"{store_path}: normalize.method {config['normalize']['method']} is not supported for "
                            "FOV stores yet; use none")
    families = resolve_families(cfg_feat["families"])
    if "granularity" in families:
        raise ScipzarrError(f"{store_path}: the granularity family is measured on whole events and is not "
                            "available for FOV stores; leave it out of features.families")
    seg_ch = [st.channel_index(c) for c in cfg_seg["channels"]]
    feat_ch = list(range(len(st.channel_names))) if cfg_feat["channels"] is None else [
        st.channel_index(c) for c in cfg_feat["channels"]]
    chunk = chunk_size or int(st.attrs["scipzarr"]["chunk"])
    limit = -1 if chunk_size else int(config["fov"]["whole_max_pixels"])
    if device == "gpu" and limit > 0:  # a whole FOV's planes must fit the GPU's memory too
        limit = min(limit, backend.gpu_pixel_budget(workers=os.cpu_count() or 1))
    whole = [fov["shape"][1] * fov["shape"][2] <= limit for fov in st.fovs]
    t0 = time.perf_counter()
    sigma = float(cfg_seg["smoothing_sigma"])
    s0 = [str(st.path / fov["path"] / "s0") for fov in st.fovs]
    smoothed = [None if whole[i] else halo_map(s0[i], tuple(fov["shape"][1:]), chunk, kfov.smoothing_radius(sigma),
                                               lambda b: _smooth(b, sigma, device), np.float64, channels=seg_ch)
                for i, fov in enumerate(st.fovs)]
    thr_cfg = cfg_seg["threshold"]
    whole_ids = [i for i in range(len(st.fovs)) if whole[i]]
    thresholds: list[float | None] = [None] * len(st.fovs)  # None: a whole FOV finds its own
    if cfg_seg["plugin"]["name"]:
        from . import plugins

        plugins.resolve(cfg_seg["plugin"]["name"], cfg_seg["plugin"]["options"])  # one clear line before any work
        thresholds = [float("nan")] * len(st.fovs)
    elif thr_cfg["method"] == "fixed":
        thresholds = [float(thr_cfg["value"])] * len(st.fovs)
    else:
        # per FOV, a whole FOV finds its threshold in its own task: ranges of whole FOVs only for the data set
        pre = whole_ids if thr_cfg["scope"] == "dataset" else []
        ranges = dict(zip(pre, compute([dask.delayed(_smoothed_stats)(s0[i], seg_ch, sigma, device) for i in pre],
                                       "ranges") if pre else []))
        ranges |= {i: _range(smoothed[i], compute) for i in range(len(st.fovs)) if not whole[i]}
        if thr_cfg["scope"] == "dataset":
            lo, hi = min(r[0] for r in ranges.values()), max(r[1] for r in ranges.values())
            counts = sum(compute([dask.delayed(_smoothed_stats)(s0[i], seg_ch, sigma, device, lo, hi) for i in whole_ids],
                                 "histograms") if whole_ids else [np.zeros(seg.NBINS, np.int64)])
            counts = counts + sum((_histogram(smoothed[i], lo, hi, compute) for i in range(len(st.fovs))
                                   if not whole[i]), np.zeros(seg.NBINS, np.int64))
            thresholds = [kfov.threshold(counts, lo, hi, thr_cfg["method"])] * len(st.fovs)
        else:
            for i in range(len(st.fovs)):
                if not whole[i]:
                    thresholds[i] = kfov.threshold(_histogram(smoothed[i], *ranges[i], compute), *ranges[i],
                                                   thr_cfg["method"])
    label_name = label_name or config["labels"]["name"]
    write = write_labels and config["labels"]["write"]
    results = {}
    if whole_ids:
        done = compute([dask.delayed(_whole_fov)(st, i, seg_ch, feat_ch, config, thresholds[i], write, label_name,
                                                 device, work) for i in whole_ids], "FOVs")
        results = dict(zip(whole_ids, done))
    for i, fov in enumerate(st.fovs):
        if whole[i]:
            continue
        if work is not None and work.done(i):
            results[i] = _load(work, i)
            continue
        h, w = fov["shape"][1:]
        objects, final_path, cells_path = _segment_chunked(st, i, seg_ch, smoothed[i], thresholds[i], chunk,
                                                           config, label_name, write, compute)
        centroids, X = _measure_chunked(s0[i], str(final_path), objects, chunk, (h, w), families, feat_ch,
                                        cfg_feat, compute, device)
        if cells_path is not None and X is not None:
            cell_boxes = _chunk_boxes(da.from_zarr(str(cells_path)), compute).reindex(objects.index)
            X = np.hstack([X, _measure_chunked(s0[i], str(cells_path), cell_boxes, chunk, (h, w), families,
                                               feat_ch, cfg_feat, compute, device)[1]])
        for path in (final_path, cells_path):
            if path is not None:
                shutil.rmtree(path, ignore_errors=True)
        results[i] = (thresholds[i], objects, centroids, X)
        _save(work, i, results[i])
    obs_parts, rows = [], []
    for i, fov in enumerate(st.fovs):
        thr, objects, centroids, X = results[i]
        thresholds[i] = thr
        if X is not None:
            rows.append(X)
        obs = pd.DataFrame({"fov": fov["name"], "label": objects.index.to_numpy(np.int64)})
        obs_parts.append((obs, objects, centroids, fov["pixel_size_um"], tuple(fov["shape"][1:])))
    var = feature_columns(families, [st.channel_names[c] for c in feat_ch], cfg_feat)
    var.insert(0, "objects", "nuclei")
    if int(cfg_seg["cells"]["expand"]) > 0:  # the cell bodies' columns follow the nuclei's, prefixed cells_
        cells = var.assign(objects="cells")
        cells.index = "cells_" + cells.index
        var = pd.concat([var, cells])
    X = np.concatenate([r for r in rows if len(r)]) if any(len(r) for r in rows) else np.zeros((0, len(var)))
    obs_frames = []
    for obs, objects, centroids, (py, px), (h, w) in obs_parts:
        cy, cx = centroids[:, 0], centroids[:, 1]
        obs["centroid_y"], obs["centroid_x"] = cy, cx
        obs["centroid_y_um"] = cy * (py if py is not None else np.nan)
        obs["centroid_x_um"] = cx * (px if px is not None else np.nan)
        obs["touches_border"] = ((objects["ymin"] == 0) | (objects["xmin"] == 0) | (objects["ymax"] == h - 1)
                                 | (objects["xmax"] == w - 1)).to_numpy()
        obs["area_px"] = objects["count"].to_numpy(np.int64)
        obs_frames.append(obs)
    obs = pd.concat(obs_frames, ignore_index=True) if obs_frames else pd.DataFrame(columns=["fov", "label"])
    obs.index = pd.Index([f"{f}_{lab}" for f, lab in zip(obs["fov"], obs["label"])], name="object")
    names = [fov["name"] for fov in st.fovs]
    obs["fov"] = pd.Categorical(obs["fov"], categories=names)  # every FOV a category, also one without objects
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    adata.obsm["spatial"] = obs[["centroid_x", "centroid_y"]].to_numpy(np.float64)
    adata.uns["scipzarr"] = {"kind": "fov", "input_store": str(st.path), "fovs": len(st.fovs),
                             "config": json.dumps(config), "scipzarr_version": __version__,
                             "objects": int(adata.n_obs), "features": int(adata.n_vars),
                             "thresholds": [float(t) for t in thresholds], "chunk_size": int(chunk),
                             "objects_per_fov": {n: int(c) for n, c in obs["fov"].value_counts(sort=False).items()},
                             "seconds": time.perf_counter() - t0}
    return adata
