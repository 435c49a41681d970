"""``process`` on fields of view: global, chunk-independent labels and per-object features.

FOVs up to ``fov.whole_max_pixels`` are processed whole, one task per FOV
(:func:`whole_fov`); larger ones as a dask graph over chunks of ``chunk``
pixels (:func:`chunked_fov`). Both run the same kernels and give the same
labels and table (tested). Chunk by chunk:

1. the segmentation image (mean of the segmentation channels) is smoothed by
   one task per chunk reading the chunk plus the Gaussian's radius
   (:func:`scipzarr.pipeline.chunked.halo_map`), so every pixel sees exactly
   the neighbourhood it would see in the whole image;
2. the threshold comes from one histogram over all chunks (Otsu, Li or
   fixed; per FOV or over the data set), never per chunk;
3. holes are filled globally, components are labelled (8-connected, numbered
   in raster order of their first pixel: the same label image whatever the
   chunking), objects under ``min_size`` dropped;
4. touching nuclei are split per component; labels are written into the
   store (``<fov>/labels/<name>``, with the image's pyramid);
5. features: objects are grouped by the chunk holding their first row and
   column; one task per group reads the region covering the group's boxes
   once and measures every object on its own crop
   (:func:`scipzarr.features.crops.measure_objects`).
"""

from __future__ import annotations

import copy

import json
import os
from dataclasses import dataclass

import dask
import numpy as np
import pandas as pd

from .. import backend
from .._version import __version__
from ..errors import ScipzarrError
from ..features import feature_columns, resolve_families
from ..features.crops import measure_objects
from ..kernels import components, split
from ..kernels.batch import fill_holes
from ..kernels import segment as seg
from ..kernels import threshold as thr_k
from ..scheduler import local_scheduler
from ..store import FovStore, ngff, write_fov_labels
from . import chunked
from .shards import owns


@dataclass(frozen=True)
class FovPlan:
    """Everything a FOV task needs besides its pixels (small, picklable)."""

    seg_channels: tuple[int, ...]
    feat_channels: tuple[int, ...]
    families: tuple[str, ...]
    config: dict
    chunk: int
    whole_max_pixels: int   # FOVs of at most this many pixels are processed whole; -1: none
    label_name: str
    write_labels: bool
    device: str = "cpu"

    @property
    def sigma(self) -> float:
        return float(self.config["segmentation"]["smoothing_sigma"])

    @property
    def expand(self) -> int:
        return int(self.config["segmentation"]["cells"]["expand"])


def make_plan(st: FovStore, config: dict, chunk_size: int | None = None, device: str = "cpu") -> FovPlan:
    """Check the config against a FOV store and resolve channels, families and sizes; one clear line for what
    FOV stores cannot do."""
    config = copy.deepcopy(config)
    cfg_seg, cfg_feat = config["segmentation"], config["features"]
    # the IFC-first defaults, resolved for fields of view (docs/config.md)
    if cfg_seg["threshold"]["method"] == "auto":
        cfg_seg["threshold"]["method"] = "otsu"
    if cfg_seg["keep"] == "auto":
        cfg_seg["keep"] = "all"
    if cfg_seg["channels"] == "auto":
        cfg_seg["channels"] = [0]
    if cfg_seg["threshold"]["method"] == "background":
        raise ScipzarrError(f"{st.path}: segmentation.threshold.method background refers each IFC event to its own "
                            "background; FOV stores use otsu, li or fixed")
    if cfg_feat.get("masks") and "channel" in cfg_feat["masks"]:
        raise ScipzarrError(f"{st.path}: features.masks channel applies to IFC events (a mask per channel); FOV "
                            "stores measure in each object's mask: drop channel")
    if config["normalize"]["method"] != "none":
        raise ScipzarrError(f"{st.path}: normalize.method {config['normalize']['method']} does not apply to FOV "
                            "stores; use none")
    if cfg_seg["source"] != "threshold":
        raise ScipzarrError(f"{st.path}: segmentation.source {cfg_seg['source']} applies to IFC stores converted "
                            "from .cif files; FOV stores are segmented by scipzarr: use threshold")
    if cfg_seg["keep"] != "all":
        raise ScipzarrError(f"{st.path}: segmentation.keep {cfg_seg['keep']} applies to IFC events (one cell per "
                            "event); FOV stores keep all objects: use all")
    families = resolve_families(cfg_feat["families"])
    if "granularity" in families:
        raise ScipzarrError(f"{st.path}: the granularity family is measured on whole events and is not "
                            "available for FOV stores; leave it out of features.families")
    seg_ch = tuple(st.channel_index(c) for c in cfg_seg["channels"])
    feat_ch = tuple(range(len(st.channel_names))) if cfg_feat["channels"] is None else tuple(
        st.channel_index(c) for c in cfg_feat["channels"])
    chunk = chunk_size or int(st.attrs["scipzarr"]["chunk"])
    limit = -1 if chunk_size else int(config["fov"]["whole_max_pixels"])
    if device == "gpu" and limit > 0:  # a whole FOV's planes must fit the GPU's memory too
        limit = min(limit, backend.gpu_pixel_budget(workers=os.cpu_count() or 1))
    if cfg_seg["plugin"]["name"]:
        from .. import plugins

        plugins.resolve(cfg_seg["plugin"]["name"], cfg_seg["plugin"]["options"])  # one clear line before any work
    return FovPlan(seg_ch, feat_ch, tuple(families), config, int(chunk), int(limit), config["labels"]["name"],
                   bool(config["labels"]["write"]), device)


def _sync(collections):
    return dask.compute(*collections, scheduler=local_scheduler("sync"))


def _smooth(channels: np.ndarray, plan: FovPlan) -> np.ndarray:
    """:func:`kernels.segment.smooth_plane` on the plan's device, back on the host."""
    return backend.to_host(seg.smooth_plane(backend.to_device(channels, plan.device), plan.sigma))


def _smoothed_stats(path: str, plan: FovPlan, lo=None, hi=None):
    """Min and max of a whole FOV's smoothed segmentation image, or its histogram over ``[lo, hi]``."""
    s = _smooth(ngff.read(path)[list(plan.seg_channels)], plan)
    return (float(s.min()), float(s.max())) if lo is None else thr_k.histogram(s, lo, hi)


def _groups(table: np.ndarray, ids: np.ndarray, chunk: int, width: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(ids, boxes)`` of objects grouped by the chunk holding their first row and column."""
    box = table[:, 2:6]
    key = (box[:, 0] // chunk) * ((width + chunk - 1) // chunk) + box[:, 2] // chunk
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    return [(ids[g], box[g]) for g in np.split(order, bounds) if len(g)]


def _box_region(box: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    """The FOV region covering every box plus one pixel."""
    h, w = shape
    return (slice(max(int(box[:, 0].min()) - 1, 0), min(int(box[:, 1].max()) + 2, h)),
            slice(max(int(box[:, 2].min()) - 1, 0), min(int(box[:, 3].max()) + 2, w)))


def _split_group(label_path: str, ids, box, shape: tuple[int, int], min_distance: int) -> list:
    sy, sx = _box_region(box, shape)
    region = ngff.read(label_path, sy, sx).astype(np.int64)
    return split.split_components(region, (sy.start, sx.start), ids, box, shape, min_distance)


def _measure_group(image_path: str, label_path: str, ids, box, shape: tuple[int, int], plan: FovPlan):
    sy, sx = _box_region(box, shape)
    img = ngff.read(image_path, slice(None), sy, sx)
    lab = ngff.read(label_path, sy, sx)
    return measure_objects(img, lab, (sy.start, sx.start), ids, box, shape, list(plan.families),
                           list(plan.feat_channels), plan.config["features"], plan.device)


# ----------------------------------------------------------------------------
# whole FOVs: one task each
# ----------------------------------------------------------------------------
def whole_fov(st: FovStore, i: int, plan: FovPlan, thr: float | None, work=None):
    """Segment, label (written into the store) and measure one FOV held whole in memory; returns
    ``(threshold, objects table, centroids, X)``. With a ``work`` folder the result is kept there once the
    labels are written, and a resumed run takes it from there."""
    if work is not None and work.done(i):
        return _load(work, i)
    result = _whole_fov_run(st, i, plan, thr)
    _save(work, i, result)
    return result


def _whole_fov_run(st: FovStore, i: int, plan: FovPlan, thr: float | None):
    cfg_seg = plan.config["segmentation"]
    h, w = st.fovs[i]["shape"][1:]
    img = ngff.read(st.level_path(i))
    plugin = cfg_seg["plugin"]
    if plugin["name"]:
        from .. import plugins

        fn = plugins.resolve(plugin["name"], plugin["options"])
        mask = plugins.foreground(fn(img[list(plan.seg_channels)].astype(np.float64), **plugin["options"]), (h, w),
                                  plugin["name"])
        thr = float("nan")
    else:
        s = _smooth(img[list(plan.seg_channels)], plan)
        if thr is None:
            lo, hi = float(s.min()), float(s.max())
            thr = thr_k.from_histogram(thr_k.histogram(s, lo, hi), lo, hi, cfg_seg["threshold"]["method"])
        mask = s > thr
        del s
    if cfg_seg["fill_holes"]:
        mask = fill_holes(mask, 1)
    labels, objects = components.label_whole(mask, int(cfg_seg["min_size"]))
    if cfg_seg["split"]["method"] != "none" and len(objects):
        ids = np.arange(1, len(objects) + 1)
        res = split.split_components(labels, (0, 0), ids, objects[:, 2:6], (h, w),
                                     int(cfg_seg["split"]["min_distance"]))
        parts = {cid: (y0, x0, sub) for cid, y0, x0, sub in res}
        objects, final = split.number_parts(parts, w)
        labels = split.paint(labels, (0, 0), parts, final)
    if plan.write_labels:
        write_fov_labels(st, i, plan.label_name, labels, _sync,
                         {"scipzarr": {"threshold": thr, "chunk_size": plan.chunk}})
    cells = None
    if plan.expand > 0:  # cell bodies: every nucleus grown by up to `expand` pixels into the background
        from skimage.segmentation import expand_labels

        cells = expand_labels(labels, plan.expand)
        if plan.write_labels:
            write_fov_labels(st, i, f"{plan.label_name}_cells", cells, _sync,
                             {"scipzarr": {"expanded_from": plan.label_name, "distance_px": plan.expand}})
    if not len(objects):
        return thr, objects, np.zeros((0, 2)), None
    ids = np.arange(1, len(objects) + 1)
    centroids, X = measure_objects(img, labels, (0, 0), ids, objects[:, 2:6], (h, w), list(plan.families),
                                   list(plan.feat_channels), plan.config["features"], plan.device)
    if cells is not None:
        cell_ids, cell_box = components.boxes(cells, (0, 0))  # a cell for every nucleus (same label)
        X = np.hstack([X, measure_objects(img, cells, (0, 0), ids, cell_box[np.searchsorted(cell_ids, ids)],
                                          (h, w), list(plan.families), list(plan.feat_channels),
                                          plan.config["features"], plan.device)[1]])
    return thr, objects, centroids, X


# ----------------------------------------------------------------------------
# chunked FOVs: a graph per pass
# ----------------------------------------------------------------------------
def _smoothed(st: FovStore, i: int, plan: FovPlan):
    return chunked.halo_map(st.level_path(i), tuple(st.fovs[i]["shape"][1:]), plan.chunk,
                            seg.smoothing_radius(plan.sigma), lambda b: _smooth(b, plan), np.float64,
                            channels=list(plan.seg_channels))


def _split_touching(labels, objects: np.ndarray, plan: FovPlan, scratch, compute):
    """Watershed split of every component; final labels numbered in raster order of their first pixel."""
    h, w = labels.shape
    ngff.persist(labels, scratch, compute)  # the split tasks read their regions from it
    ids = np.arange(1, len(objects) + 1)
    md = int(plan.config["segmentation"]["split"]["min_distance"])
    tasks = [dask.delayed(_split_group)(str(scratch), gi, gb, (h, w), md)
             for gi, gb in _groups(objects, ids, plan.chunk, w)]
    parts = {cid: (y0, x0, sub) for res in compute(tasks) for cid, y0, x0, sub in res}
    objects, final = split.number_parts(parts, w)

    def paint(block, block_info=None):  # a closure: dask never walks the (large) dicts
        (by0, _), (bx0, _) = block_info[0]["array-location"]
        return split.paint(block, (by0, bx0), parts, final)

    return labels.map_blocks(paint, dtype=np.uint32), objects


def _segment_chunked(st: FovStore, i: int, plan: FovPlan, thr: float, compute):
    """Segment one FOV chunk by chunk (module doc); returns its object table and the scratch paths of its
    final labels and cell bodies (None without)."""
    cfg_seg = plan.config["segmentation"]
    h, w = st.fovs[i]["shape"][1:]
    plugin = cfg_seg["plugin"]
    if plugin["name"]:
        from .. import plugins

        fn = plugins.resolve(plugin["name"], plugin["options"])

        def run(block):
            return plugins.foreground(fn(block.astype(np.float64), **plugin["options"]), block.shape[1:],
                                      plugin["name"])

        raw_mask = chunked.halo_map(st.level_path(i), (h, w), plan.chunk, int(plugin["overlap"]), run, bool,
                                    channels=list(plan.seg_channels))
    else:
        raw_mask = _smoothed(st, i, plan) > thr
    mask = ngff.persist(raw_mask, st.scratch(i, "mask"), compute)  # computed once, read back by every pass
    if cfg_seg["fill_holes"]:
        mask = ngff.persist(chunked.fill_holes(mask, compute), st.scratch(i, "filled"), compute)
    labels, objects = chunked.label(mask, connectivity=2, min_size=int(cfg_seg["min_size"]), compute=compute)
    if cfg_seg["split"]["method"] != "none" and len(objects):
        labels, objects = _split_touching(labels, objects, plan, st.scratch(i, "components"), compute)
    # on disk first: the pyramid levels then read it chunk by chunk
    final_path = st.scratch(i, "labels-final")
    labels = ngff.persist(labels, final_path, compute)
    for name in ("components", "mask", "filled"):
        ngff.remove(st.scratch(i, name))
    if plan.write_labels:
        write_fov_labels(st, i, plan.label_name, labels, compute,
                         {"scipzarr": {"threshold": thr, "chunk_size": plan.chunk}})
    cells_path = None
    if plan.expand > 0:  # cell bodies: every nucleus grown by up to `expand` pixels into the background
        from skimage.segmentation import expand_labels

        cells_path = st.scratch(i, "cells")
        grow = plan.expand
        cells = ngff.persist(chunked.halo_map(str(final_path), (h, w), plan.chunk, grow + 1,
                                              lambda b: expand_labels(b, grow), labels.dtype), cells_path, compute)
        if plan.write_labels:
            write_fov_labels(st, i, f"{plan.label_name}_cells", cells, compute,
                             {"scipzarr": {"expanded_from": plan.label_name, "distance_px": grow}})
    return objects, final_path, cells_path


def _measure_chunked(image_path: str, label_path, ids: np.ndarray, box: np.ndarray, shape, plan: FovPlan,
                     compute):
    """Centroids and features of the objects ``ids`` (labels at ``label_path``), one task per group, in the
    order of ``ids``."""
    table = np.zeros((len(ids), 6), np.int64)
    table[:, 2:6] = box
    groups = _groups(table, ids, plan.chunk, shape[1])
    if not groups:
        return np.zeros((0, 2)), None
    parts = compute([dask.delayed(_measure_group)(image_path, str(label_path), gi, gb, shape, plan)
                     for gi, gb in groups])
    order = np.argsort(np.concatenate([gi for gi, _ in groups]))  # ids are sorted: back to their order
    return np.concatenate([r[0] for r in parts])[order], np.concatenate([r[1] for r in parts])[order]


def chunked_fov(st: FovStore, i: int, plan: FovPlan, thr: float, compute, work=None):
    """One large FOV chunk by chunk; the result as :func:`whole_fov` gives it."""
    if work is not None and work.done(i):
        return _load(work, i)
    h, w = st.fovs[i]["shape"][1:]
    objects, final_path, cells_path = _segment_chunked(st, i, plan, thr, compute)
    ids = np.arange(1, len(objects) + 1)
    centroids, X = _measure_chunked(st.level_path(i), final_path, ids, objects[:, 2:6], (h, w), plan, compute)
    if cells_path is not None and X is not None:
        cell_ids, cell_box = chunked.boxes(ngff.lazy(cells_path), compute)
        X = np.hstack([X, _measure_chunked(st.level_path(i), cells_path, ids,
                                           cell_box[np.searchsorted(cell_ids, ids)], (h, w), plan, compute)[1]])
    st.discard(i)
    result = (thr, objects, centroids, X)
    _save(work, i, result)
    return result


# ----------------------------------------------------------------------------
# thresholds, resume, the run
# ----------------------------------------------------------------------------
def thresholds(st: FovStore, plan: FovPlan, whole: list[bool], compute, mine=None) -> list[float | None]:
    """Each FOV's threshold (None: a whole FOV finds its own in its task): fixed, per FOV from its own
    histogram (FOVs ``mine`` only, default all), or one over the data set from the histograms of all FOVs."""
    n = len(st.fovs)
    mine = set(range(n)) if mine is None else set(mine)
    thr_cfg = plan.config["segmentation"]["threshold"]
    if plan.config["segmentation"]["plugin"]["name"]:
        return [float("nan")] * n
    if thr_cfg["method"] == "fixed":
        return [float(thr_cfg["value"])] * n
    whole_ids = [i for i in range(n) if whole[i]]
    smoothed = {i: _smoothed(st, i, plan) for i in range(n) if not whole[i]}
    out: list[float | None] = [None] * n
    if thr_cfg["scope"] != "dataset":
        for i, s in smoothed.items():
            if i not in mine:
                continue
            lo, hi = chunked.value_range(s, compute)
            out[i] = thr_k.from_histogram(chunked.histogram(s, lo, hi, compute), lo, hi, thr_cfg["method"])
        return out
    ranges = list(compute([dask.delayed(_smoothed_stats)(st.level_path(i), plan) for i in whole_ids])
                  if whole_ids else [])
    ranges += [chunked.value_range(s, compute) for s in smoothed.values()]
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    counts = sum(compute([dask.delayed(_smoothed_stats)(st.level_path(i), plan, lo, hi) for i in whole_ids])
                 if whole_ids else [np.zeros(thr_k.NBINS, np.int64)])
    counts = counts + sum((chunked.histogram(s, lo, hi, compute) for s in smoothed.values()),
                          np.zeros(thr_k.NBINS, np.int64))
    return [thr_k.from_histogram(counts, lo, hi, thr_cfg["method"])] * n


def _save(work, i: int, result) -> None:
    """Keep a finished FOV's result in the run's work folder (``--resume``)."""
    if work is None:
        return
    thr, objects, centroids, X = result
    work.save_chunk(i, {"threshold": np.array([thr], np.float64), "objects": objects, "centroids": centroids,
                        "X": np.zeros((0, 0)) if X is None else X, "has_X": np.array([X is not None])})


def _load(work, i: int):
    d = work.load_chunk(i)
    return (float(d["threshold"][0]), d["objects"].reshape(-1, 6), d["centroids"].reshape(-1, 2),
            d["X"] if d["has_X"][0] else None)


def run(st: FovStore, plan: FovPlan, compute, bar, work=None, shard: tuple[int, int] | None = None) -> dict:
    """Every FOV's result ``{index: (threshold, objects, centroids, X)}`` (of the shard's FOVs: every n-th
    from i): whole FOVs one task each (progress per task), then the chunked ones one after the other."""
    mine = [i for i in range(len(st.fovs)) if owns(shard, i)]
    whole = [f["shape"][1] * f["shape"][2] <= plan.whole_max_pixels for f in st.fovs]
    thr = thresholds(st, plan, whole, compute, mine)
    whole_ids = [i for i in mine if whole[i]]
    results = {}
    if whole_ids:
        prefix = f"scipzarr-fov-{os.getpid()}-{id(plan)}"
        tasks = [dask.delayed(whole_fov)(st, i, plan, thr[i], work, dask_key_name=f"{prefix}-{i}")
                 for i in whole_ids]
        results = dict(zip(whole_ids, bar.compute(tasks, prefix, per_task=1)))
    for i in mine:
        if not whole[i]:
            results[i] = chunked_fov(st, i, plan, thr[i], compute, work)
            bar.advance(1)
    return results


def build_obs_x(st: FovStore, plan: FovPlan, results: dict):
    """obs, X and var of the table from the FOVs' results (in FOV order, labels in order)."""
    var = feature_columns(list(plan.families), [st.channel_names[c] for c in plan.feat_channels],
                          plan.config["features"])
    var.insert(0, "objects", "nuclei")
    if plan.expand > 0:  # the cell bodies' columns follow the nuclei's, prefixed cells_
        cells = var.assign(objects="cells")
        cells.index = "cells_" + cells.index
        var = pd.concat([var, cells])
    frames, rows, thresholds_used = [], [], []
    for i, fov in enumerate(st.fovs):
        if i not in results:  # another shard's FOV
            thresholds_used.append(float("nan"))
            continue
        thr, objects, centroids, X = results[i]
        thresholds_used.append(float(thr))
        if X is not None:
            rows.append(X)
        h, w = fov["shape"][1:]
        py, px = fov["pixel_size_um"]
        obs = pd.DataFrame({"fov": fov["name"], "label": np.arange(1, len(objects) + 1, dtype=np.int64)})
        cy, cx = centroids[:, 0], centroids[:, 1]
        obs["centroid_y"], obs["centroid_x"] = cy, cx
        obs["centroid_y_um"] = cy * (py if py is not None else np.nan)
        obs["centroid_x_um"] = cx * (px if px is not None else np.nan)
        obs["touches_border"] = ((objects[:, 2] == 0) | (objects[:, 4] == 0) | (objects[:, 3] == h - 1)
                                 | (objects[:, 5] == w - 1))
        obs["area_px"] = objects[:, 0].astype(np.int64)
        frames.append(obs)
    X = np.concatenate([r for r in rows if len(r)]) if any(len(r) for r in rows) else np.zeros((0, len(var)))
    obs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["fov", "label"])
    obs.index = pd.Index([f"{f}_{lab}" for f, lab in zip(obs["fov"], obs["label"])], name="object")
    obs["fov"] = pd.Categorical(obs["fov"], categories=[f["name"] for f in st.fovs])  # also FOVs without objects
    meta = {"kind": "fov", "fovs": len(st.fovs), "thresholds": thresholds_used, "chunk_size": int(plan.chunk),
            "objects_per_fov": {n: int(c) for n, c in obs["fov"].value_counts(sort=False).items()},
            "config": json.dumps(plan.config), "scipzarr_version": __version__}
    return obs, X, var, meta
