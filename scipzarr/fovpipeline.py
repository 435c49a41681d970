"""``scipzarr process`` on fields of view: chunked segmentation with global, chunk-independent labels.

Per FOV, as a dask graph over chunks of ``chunk_size`` pixels:

1. the segmentation image (mean of the segmentation channels) is smoothed
   with ``map_overlap`` (the overlap is the Gaussian's radius, so every pixel
   sees exactly the neighbourhood it would see in the whole image);
2. the threshold comes from one histogram over all chunks (Otsu, Li or
   fixed; per FOV or over the data set), never per chunk;
3. holes are filled globally (background components that do not reach the
   image border), components are labelled (8-connected) by
   :mod:`scipzarr.kernels.chunklabel` (exact, numbered in raster order of
   their first pixel, so the label image is the same whatever the
   chunking), and objects under ``min_size`` dropped;
4. labels are written into the store (``<fov>/labels/<name>``, with the
   image's pyramid);
5. features: objects are grouped by the chunk holding their first row and
   column; one task per group reads the region covering the group's bounding
   boxes once and measures every object on its own crop (bounding box plus
   one pixel, other objects removed) with the batch feature kernels, so an
   object crossing chunk borders is measured exactly.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pandas as pd
import zarr
from scipy import ndimage as ndi

from . import fovstore
from ._version import __version__
from .errors import ScipzarrError
from .features import Objects, feature_columns, measure, resolve_families
from .features.moments import moments
from .kernels import chunklabel
from .kernels import segment as seg

_EIGHT = np.ones((3, 3), bool)
_CROSS = ndi.generate_binary_structure(2, 1)


def smooth(channels: da.Array, sigma: float) -> da.Array:
    """Mean of ``(c, y, x)`` channels, Gaussian-smoothed (scipy's, reflect at the image border), as float64.

    One task per chunk over the chunk plus the kernel's radius of its
    neighbours (``overlap``): every pixel equals scipy's on the whole image.
    The float64 image only exists inside a task; the overlap moves the
    stored (e.g. uint16) pixels, which keeps memory per task small.
    """
    radius = int(4.0 * sigma + 0.5) if sigma > 0 else 0  # scipy's truncate=4 radius

    def run(block):
        plane = block.astype(np.float64).mean(axis=0)
        return ndi.gaussian_filter(plane, sigma, mode="reflect") if sigma > 0 else plane

    if radius == 0:
        return channels.map_blocks(run, drop_axis=0, dtype=np.float64)
    padded = da.overlap.overlap(channels, depth={0: 0, 1: radius, 2: radius}, boundary="none")
    out = padded.map_blocks(run, drop_axis=0, dtype=np.float64)
    return da.overlap.trim_internal(out, {0: radius, 1: radius}, boundary="none")


def _range(image: da.Array, compute) -> tuple[float, float]:
    """Min and max, reduced inside each chunk's task (a dask ``min()``/``max()`` pair kept smoothed chunks
    alive: 0.9 GB peak for a 512 MiB image)."""
    parts = compute([dask.delayed(lambda b: (float(b.min()), float(b.max())))(blk)
                     for blk in image.to_delayed().ravel()])
    return min(p[0] for p in parts), max(p[1] for p in parts)


def _histogram(image: da.Array, lo: float, hi: float, compute) -> np.ndarray:
    """The 256-bin histogram over ``[lo, hi]`` (numpy's bin edges), summed over chunks."""
    parts = compute([dask.delayed(lambda b: np.histogram(b, bins=seg.NBINS, range=(lo, hi))[0])(blk)
                     for blk in image.to_delayed().ravel()])
    return np.sum(parts, axis=0)


def _threshold(counts: np.ndarray, lo: float, hi: float, method: str) -> float:
    edges = np.linspace(lo, hi, seg.NBINS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    if hi == lo:
        return lo
    if method == "otsu":
        return float(seg.otsu_from_histograms(counts[None], centers[None])[0])
    return float(seg.li_from_histogram(counts, centers))


def plugin_mask(image: da.Array, fn, options: dict, overlap: int, name: str) -> da.Array:
    """Foreground from a plug-in segmenter run on every chunk with ``overlap`` pixels around it."""
    from . import plugins

    ov = {0: 0, 1: overlap, 2: overlap}
    padded = da.overlap.overlap(image, depth=ov, boundary="none")

    def run(block):
        return plugins.foreground(fn(block, **options), block.shape[1:], name)

    out = padded.map_blocks(run, drop_axis=0, dtype=bool)
    return da.overlap.trim_internal(out, {0: overlap, 1: overlap}, boundary="none")


def expand(labels: da.Array, distance: int) -> da.Array:
    """``skimage.segmentation.expand_labels`` with an overlap of ``distance + 1``: each background pixel
    within ``distance`` of a label takes the nearest label (CellProfiler's IdentifySecondaryObjects,
    distance method)."""
    from skimage.segmentation import expand_labels

    return da.map_overlap(lambda b: expand_labels(b, distance), labels, depth=distance + 1, boundary="none",
                          dtype=labels.dtype)


def _persist(array: da.Array, path: Path, compute) -> da.Array:
    """Write a lazy array to a scratch zarr array (bounded memory) and return it read back lazily."""
    compute([da.to_zarr(array, str(path), overwrite=True, compute=False)])
    return da.from_zarr(str(path))


def fill_holes(mask: da.Array, compute=None) -> da.Array:
    """Fill background components (4-connected) that do not reach the image border, exactly, chunk by chunk."""
    bg, comps = chunklabel.label(~mask, connectivity=1, compute=compute)
    h, w = mask.shape
    hole = np.zeros(len(comps) + 1, dtype=bool)
    hole[1:] = ~((comps["ymin"] == 0) | (comps["xmin"] == 0) | (comps["ymax"] == h - 1)
                 | (comps["xmax"] == w - 1)).to_numpy()
    return mask | bg.map_blocks(lambda b: hole[b], dtype=bool)


def _split_group(label_path: str, comps: pd.DataFrame, shape: tuple[int, int], min_distance: int) -> list:
    """Split touching nuclei of a group of components: distance-transform watershed on each component alone.

    Markers are the peaks of the distance to the background at least
    ``min_distance`` apart within a component (``peak_local_max``), basins grow
    on the negated distance inside the component. Each component is done on
    its own crop (a loop over components: scikit-image's flooding breaks ties
    by queue order, which other components in the same image would change),
    so its result depends only on its own pixels, whatever the chunking. Returns, per
    component, its crop origin and the sub-object numbers of the crop.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    h, w = shape
    y0, x0 = max(int(comps["ymin"].min()) - 1, 0), max(int(comps["xmin"].min()) - 1, 0)
    y1, x1 = min(int(comps["ymax"].max()) + 2, h), min(int(comps["xmax"].max()) + 2, w)
    region = np.asarray(zarr.open_array(label_path, mode="r")[y0:y1, x0:x1]).astype(np.int64)
    out = []
    for comp_id, o in comps.iterrows():  # each component alone: watershed ties then never depend on neighbours
        sl = (slice(max(int(o["ymin"]) - 1 - y0, 0), int(o["ymax"]) + 2 - y0),
              slice(max(int(o["xmin"]) - 1 - x0, 0), int(o["xmax"]) + 2 - x0))
        own = region[sl] == comp_id
        dist = ndi.distance_transform_edt(own)
        peaks = peak_local_max(dist, min_distance=min_distance, labels=own.astype(np.int32), exclude_border=False)
        if len(peaks) > 1:
            markers = np.zeros(own.shape, np.int32)
            markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
            basins = watershed(-dist, markers, mask=own)
        else:  # one marker: the whole component is its basin (most nuclei; skips the flooding)
            basins = own.astype(np.int32)
        oy, ox = int(o["ymin"]) - (sl[0].start + y0), int(o["xmin"]) - (sl[1].start + x0)
        sub = basins[oy:oy + int(o["ymax"]) - int(o["ymin"]) + 1, ox:ox + int(o["xmax"]) - int(o["xmin"]) + 1]
        inside = sub > 0
        ids = np.unique(sub[inside])
        firsts = np.array([np.flatnonzero(sub.ravel() == b)[0] for b in ids])  # number parts in raster order
        lut = np.zeros(int(sub.max()) + 1, dtype=np.int64)
        lut[ids[np.argsort(firsts)]] = np.arange(1, len(ids) + 1)
        out.append((int(comp_id), int(o["ymin"]), int(o["xmin"]), lut[sub].astype(np.uint32)))
    return out


def _paint(block: np.ndarray, parts: dict, final: dict, block_info=None) -> np.ndarray:
    """Final labels of one chunk of the component image, from the components' split crops."""
    (by0, _), (bx0, _) = block_info[0]["array-location"]
    out = np.zeros(block.shape, dtype=np.uint32)
    for comp in np.unique(block[block > 0]):
        cy, cx, sub = parts[int(comp)]
        ys, xs = max(cy, by0), max(cx, bx0)
        ye, xe = min(cy + sub.shape[0], by0 + block.shape[0]), min(cx + sub.shape[1], bx0 + block.shape[1])
        if ye <= ys or xe <= xs:
            continue
        piece = sub[ys - cy:ye - cy, xs - cx:xe - cx]
        mine = (block[ys - by0:ye - by0, xs - bx0:xe - bx0] == comp) & (piece > 0)
        lut = final[int(comp)]
        out[ys - by0:ye - by0, xs - bx0:xe - bx0][mine] = lut[piece[mine]]
    return out


def split_touching(labels: da.Array, comps: pd.DataFrame, chunk: int, min_distance: int, scratch: Path, compute):
    """Watershed split of every component; final labels numbered in raster order of their first pixel."""
    h, w = labels.shape
    compute([da.to_zarr(labels, str(scratch), overwrite=True, compute=False)])
    comps = comps.copy()
    comps["group"] = (comps["ymin"] // chunk) * ((w + chunk - 1) // chunk) + comps["xmin"] // chunk
    tasks = [dask.delayed(_split_group)(str(scratch), grp, (h, w), min_distance)
             for _, grp in comps.groupby("group", sort=True)]
    parts = {cid: (y0, x0, sub) for res in compute(tasks) for cid, y0, x0, sub in res}
    stats = []
    for cid, (y0, x0, sub) in parts.items():  # per component: a few vectorized numpy calls, no pandas
        k = int(sub.max())
        flat = sub.ravel()
        idx = np.flatnonzero(flat)
        lab = flat[idx]
        ys, xs = np.divmod(idx, sub.shape[1])
        first = np.full(k + 1, np.iinfo(np.int64).max)
        np.minimum.at(first, lab, (ys + y0) * w + xs + x0)
        boxes = ndi.find_objects(sub)
        stats.append(np.column_stack([
            np.full(k, cid), np.arange(1, k + 1), np.bincount(lab, minlength=k + 1)[1:], first[1:],
            [b[0].start + y0 for b in boxes], [b[0].stop - 1 + y0 for b in boxes],
            [b[1].start + x0 for b in boxes], [b[1].stop - 1 + x0 for b in boxes]]))
    cols = ["comp", "sub", "count", "first", "ymin", "ymax", "xmin", "xmax"]
    objects = pd.DataFrame(np.concatenate(stats) if stats else np.zeros((0, 8), np.int64), columns=cols)
    objects = objects.astype(np.int64).sort_values("first").reset_index(drop=True)
    objects.index = pd.RangeIndex(1, len(objects) + 1, name="label")
    final = {cid: np.zeros(int(sub.max()) + 1, dtype=np.uint32) for cid, (_, _, sub) in parts.items()}
    for label_id, (cid, sub) in zip(objects.index, objects[["comp", "sub"]].to_numpy()):
        final[int(cid)][int(sub)] = label_id

    def paint(block, block_info=None):  # a closure: dask never walks the (large) dicts
        return _paint(block, parts, final, block_info)

    painted = da.map_blocks(paint, labels, dtype=np.uint32)
    return painted, objects.drop(columns=["comp", "sub"]).astype(np.int64)


def _measure_group(image_path: str, label_path: str, objects: pd.DataFrame, shape: tuple[int, int],
                   families: list[str], channels: list[int], params: dict) -> np.ndarray:
    """Centroids ``(n, 2)`` and features of a group of objects, each on its own crop (bounding box + 1 pixel,
    other objects removed)."""
    h, w = shape
    y0 = max(int(objects["ymin"].min()) - 1, 0)
    x0 = max(int(objects["xmin"].min()) - 1, 0)
    y1 = min(int(objects["ymax"].max()) + 2, h)
    x1 = min(int(objects["xmax"].max()) + 2, w)
    img = zarr.open_array(image_path, mode="r")[:, y0:y1, x0:x1]
    lab = zarr.open_array(label_path, mode="r")[y0:y1, x0:x1]
    ch = int((objects["ymax"] - objects["ymin"]).max()) + 3
    cw = int((objects["xmax"] - objects["xmin"]).max()) + 3
    n = len(objects)
    local = np.zeros((n, ch, cw), np.int32)
    images = np.zeros((n, img.shape[0], ch, cw), img.dtype)
    valid = np.zeros((n, ch, cw), bool)
    for k, (label_id, o) in enumerate(objects.iterrows()):  # crops only: the measuring itself is one batch
        cy0, cx0 = int(o["ymin"]) - 1, int(o["xmin"]) - 1
        ry0, rx0 = max(cy0, 0), max(cx0, 0)
        ry1, rx1 = min(int(o["ymax"]) + 2, h), min(int(o["xmax"]) + 2, w)
        oy, ox = ry0 - cy0, rx0 - cx0
        sl = (slice(ry0 - y0, ry1 - y0), slice(rx0 - x0, rx1 - x0))
        local[k, oy:oy + ry1 - ry0, ox:ox + rx1 - rx0] = lab[sl] == label_id
        images[k, :, oy:oy + ry1 - ry0, ox:ox + rx1 - rx0] = img[(slice(None), *sl)]
        valid[k, oy:oy + ry1 - ry0, ox:ox + rx1 - rx0] = True
    # the crop of object k starts at FOV (ymin - 1, xmin - 1): coordinates come out in FOV pixels
    origin_y = (1 - objects["ymin"].to_numpy()).astype(np.int64)
    origin_x = (1 - objects["xmin"].to_numpy()).astype(np.int64)
    obj = Objects(local, origin_y, origin_x, valid)
    # centroids for obs whatever the families (the shape family's formula: box corner + mean offset)
    raw = moments(obj)["raw"]
    area = obj.areas.astype(np.float64)
    centroid = np.column_stack([(obj.boxes[:, 0] - origin_y) + raw[:, 1, 0] / area,
                                (obj.boxes[:, 1] - origin_x) + raw[:, 0, 1] / area])
    return centroid, measure(obj, images, families, channels, params)


def process_fovs(store_path: str | Path, config: dict, *, chunk_size: int | None = None,
                 label_name: str | None = None, write_labels: bool = True, compute=None):
    """Segment and measure every FOV of a FOV store; return the AnnData table (see module doc)."""
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
    split_cfg = cfg_seg["split"]
    split = "watershed" if split_cfg["method"] == "auto" else split_cfg["method"]
    t0 = time.perf_counter()
    images = [st.image(i) for i in range(len(st.fovs))]
    images = [img.rechunk((img.shape[0], chunk, chunk))[seg_ch] for img in images]  # the segmentation channels
    smoothed = [smooth(img, float(cfg_seg["smoothing_sigma"])) for img in images]
    thr_cfg = cfg_seg["threshold"]
    plugin = cfg_seg["plugin"]
    if plugin["name"]:
        from . import plugins

        fn = plugins.resolve(plugin["name"], plugin["options"])
        thresholds = [float("nan")] * len(smoothed)
    elif thr_cfg["method"] == "fixed":
        thresholds = [float(thr_cfg["value"])] * len(smoothed)
    else:
        ranges = [_range(s, compute) for s in smoothed]
        if thr_cfg["scope"] == "dataset":
            lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
            counts = sum(_histogram(s, lo, hi, compute) for s in smoothed)
            thresholds = [_threshold(counts, lo, hi, thr_cfg["method"])] * len(smoothed)
        else:
            thresholds = [_threshold(_histogram(s, *r, compute), r[0], r[1], thr_cfg["method"])
                          for s, r in zip(smoothed, ranges)]
    label_name = label_name or config["labels"]["name"]
    obs_parts, rows = [], []
    for i, fov in enumerate(st.fovs):
        mask_path = st.path / fov["path"] / ".mask-scratch"
        if plugin["name"]:
            raw_mask = plugin_mask(images[i].astype(np.float64), fn, plugin["options"], int(plugin["overlap"]),
                                   plugin["name"])
        else:
            raw_mask = smoothed[i] > thresholds[i]
        mask = _persist(raw_mask, mask_path, compute)  # computed once, read back by every pass
        if cfg_seg["fill_holes"]:
            mask = _persist(fill_holes(mask, compute), mask_path.with_name(".filled-scratch"), compute)
        labels, objects = chunklabel.label(mask, connectivity=2, min_size=int(cfg_seg["min_size"]), compute=compute)
        scratch = st.path / fov["path"] / ".components-scratch"
        if split == "watershed" and len(objects):
            labels, objects = split_touching(labels, objects, chunk, int(split_cfg["min_distance"]), scratch, compute)
        # on disk first: the pyramid levels then read it chunk by chunk (computing all levels from one lazy
        # graph kept every label chunk in memory: 1.3 GB peak for a 512 MiB image)
        final_path = mask_path.with_name(".labels-final-scratch")
        labels = _persist(labels, final_path, compute)
        label_path = str(final_path)  # features read the labels from here
        if write_labels and config["labels"]["write"]:
            fovstore.write_fov_labels(st, i, label_name, labels, compute,
                                      {"scipzarr": {"threshold": thresholds[i], "chunk_size": chunk}})
            grow = int(cfg_seg["cells"]["expand"])
            if grow > 0:  # cell bodies: every nucleus grown by up to `grow` pixels into the background
                cells = expand(da.from_zarr(str(st.path / fov["path"] / "labels" / label_name / "s0")), grow)
                fovstore.write_fov_labels(st, i, f"{label_name}_cells", cells, compute,
                                          {"scipzarr": {"expanded_from": label_name, "distance_px": grow}})
        h, w = fov["shape"][1:]
        objects["group"] = (objects["ymin"] // chunk) * ((w + chunk - 1) // chunk) + objects["xmin"] // chunk
        groups = [grp for _, grp in objects.groupby("group", sort=True)]
        results = compute([dask.delayed(_measure_group)(str(st.path / fov["path"] / "s0"), label_path, grp, (h, w),
                                                        families, feat_ch, cfg_feat) for grp in groups])
        for path in (scratch, mask_path, mask_path.with_name(".filled-scratch"), final_path):
            shutil.rmtree(path, ignore_errors=True)
        ranked = np.argsort(np.concatenate([grp.index.to_numpy() for grp in groups])) if groups else None
        centroids = np.concatenate([r[0] for r in results])[ranked] if groups else np.zeros((0, 2))
        rows.append(np.concatenate([r[1] for r in results])[ranked] if groups else np.zeros((0, 0)))
        obs = pd.DataFrame({"fov": fov["name"], "label": objects.index.to_numpy(np.int64)})
        obs_parts.append((obs, objects, centroids, fov["pixel_size_um"], (h, w)))
    var = feature_columns(families, [st.channel_names[c] for c in feat_ch], cfg_feat)
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
    obs["fov"] = pd.Categorical(obs["fov"])
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    adata.obsm["spatial"] = obs[["centroid_x", "centroid_y"]].to_numpy(np.float64)
    adata.uns["scipzarr"] = {"kind": "fov", "input_store": str(st.path), "fovs": len(st.fovs),
                             "config": json.dumps(config), "scipzarr_version": __version__,
                             "objects": int(adata.n_obs), "features": int(adata.n_vars),
                             "thresholds": [float(t) for t in thresholds], "chunk_size": int(chunk),
                             "seconds": time.perf_counter() - t0}
    return adata
