"""Connected components of a chunked image: exact, global, numbered independently of the chunking.

Why not ``dask_image.ndmeasure.label``: on a 900 x 800 mask in 256-pixel
chunks it takes 1.4 s where ``scipy.ndimage.label`` on the whole image takes
9 ms (measured; its graph of per-chunk relabelling steps dominates), and its
numbering depends on the chunking. Here: one pass labels each chunk with
scipy and reports, per chunk label, its size, first pixel (global raster
index) and bounding box, and the labels on the chunk's edges; the driver
joins labels that touch across chunk edges (``scipy.sparse.csgraph``) and
numbers the components by their first pixel; a second pass relabels each
chunk (scipy's labelling is deterministic, so it is recomputed, not stored).
Memory: one chunk per task, plus tables proportional to the number of objects.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def _offsets(chunks) -> list[np.ndarray]:
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64) for c in chunks]


COLUMNS = ["count", "first", "ymin", "ymax", "xmin", "xmax"]


def objects_table(lab: np.ndarray, n: int, y0: int = 0, x0: int = 0, width: int | None = None) -> pd.DataFrame:
    """Per label ``1..n`` of scipy's labelling of a block at ``(y0, x0)``: pixel count, first pixel (raster index
    in an image ``width`` wide) and inclusive bounding box, indexed ``1..n``."""
    if not n:
        return pd.DataFrame(np.zeros((0, 6), np.int64), columns=COLUMNS)
    width = lab.shape[1] if width is None else width
    # scipy numbers labels in raster order of their first pixel: label k first appears where the running
    # maximum reaches k (no per-pixel table: a background scan of a 1024^2 chunk held 100 MiB of them)
    first = np.searchsorted(np.maximum.accumulate(lab.ravel()), np.arange(1, n + 1))
    fy, fx = np.divmod(first, lab.shape[1])
    boxes = ndi.find_objects(lab)
    return pd.DataFrame(np.column_stack([
        np.bincount(lab.ravel(), minlength=n + 1)[1:], (fy + y0) * width + fx + x0,
        [b[0].start + y0 for b in boxes], [b[0].stop - 1 + y0 for b in boxes],
        [b[1].start + x0 for b in boxes], [b[1].stop - 1 + x0 for b in boxes]]).astype(np.int64),
        columns=COLUMNS, index=np.arange(1, n + 1))


def _scan(block: np.ndarray, y0: int, x0: int, width: int, structure: np.ndarray):
    lab, n = ndi.label(block, structure=structure)
    edges = {"top": lab[0].copy(), "bottom": lab[-1].copy(), "left": lab[:, 0].copy(), "right": lab[:, -1].copy()}
    return n, objects_table(lab, n, y0, x0, width), edges


def _pairs(a: np.ndarray, b: np.ndarray, diagonal: bool) -> np.ndarray:
    """Label pairs of two facing edges (a[i] touches b[i], and b[i +- 1] with 8-connectivity)."""
    out = [np.stack([a, b], axis=1)]
    if diagonal:
        out += [np.stack([a[1:], b[:-1]], axis=1), np.stack([a[:-1], b[1:]], axis=1)]
    pairs = np.concatenate(out)
    # once each: a background region along a 1024-pixel edge gives the same pair ~3,000 times
    return np.unique(pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)], axis=0)


def label(mask: da.Array, connectivity: int = 2, min_size: int = 0, compute=None):
    """Global labels ``1..n`` of a 2-D chunked mask, in raster order of each object's first pixel.

    Returns the lazy label image (uint32/uint64) and a table indexed by label
    with ``count``, ``first`` (raster index of the first pixel) and the
    inclusive bounding box ``ymin, ymax, xmin, xmax``. Objects smaller than
    ``min_size`` are left out (background).
    """
    compute = compute or (lambda collections: dask.compute(*collections))
    structure = ndi.generate_binary_structure(2, connectivity)
    _h, w = mask.shape
    oy, ox = _offsets(mask.chunks)
    blocks = mask.to_delayed()
    grid = blocks.shape
    scans = compute([dask.delayed(_scan)(blocks[i, j], int(oy[i]), int(ox[j]), w, structure)
                     for i in range(grid[0]) for j in range(grid[1])])
    counts = np.array([s[0] for s in scans], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(counts)[:-1]])  # global id = base[block] + local id
    total = int(counts.sum())
    tables = []
    for k, (n, table, _) in enumerate(scans):
        if n:
            table = table.copy()
            table.index = table.index + base[k]
            tables.append(table)
    empty = pd.DataFrame(columns=COLUMNS, dtype=np.int64)
    table = pd.concat(tables) if tables else empty
    pairs = []
    diag = connectivity == 2

    def gid(k, labels):
        return np.where(labels > 0, labels + base[k], 0)

    for i in range(grid[0]):
        for j in range(grid[1]):
            k = i * grid[1] + j
            edges = scans[k][2]
            if j + 1 < grid[1]:
                pairs.append(_pairs(gid(k, edges["right"]), gid(k + 1, scans[k + 1][2]["left"]), diag))
            if i + 1 < grid[0]:
                kd = k + grid[1]
                pairs.append(_pairs(gid(k, edges["bottom"]), gid(kd, scans[kd][2]["top"]), diag))
                if diag and j + 1 < grid[1]:  # corner to the block below-right
                    a, b = gid(k, edges["bottom"][-1:]), gid(kd + 1, scans[kd + 1][2]["top"][:1])
                    pairs.append(np.stack([a, b], axis=1)[(a > 0) & (b > 0)])
                if diag and j > 0:  # corner to the block below-left
                    a, b = gid(k, edges["bottom"][:1]), gid(kd - 1, scans[kd - 1][2]["top"][-1:])
                    pairs.append(np.stack([a, b], axis=1)[(a > 0) & (b > 0)])
    pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(total + 1, total + 1))
    _, comp = connected_components(graph, directed=False)
    if total:
        table["comp"] = comp[table.index.to_numpy()]
        objects = table.groupby("comp").agg({"count": "sum", "first": "min", "ymin": "min", "ymax": "max",
                                             "xmin": "min", "xmax": "max"})
        objects = objects[objects["count"] >= max(min_size, 1)].sort_values("first")
    else:
        objects = empty
    number = np.zeros(comp.max() + 1 if len(comp) else 1, dtype=np.int64)
    number[objects.index.to_numpy(np.int64)] = np.arange(1, len(objects) + 1)
    lut = number[comp]  # global chunk-label id -> final label (0: dropped)
    lut[0] = 0
    dtype = np.uint32 if len(objects) < 2**32 - 1 else np.uint64
    objects = objects.reset_index(drop=True).astype(np.int64)
    objects.index = pd.RangeIndex(1, len(objects) + 1, name="label")

    def relabel(block, block_info=None):
        i, j = block_info[0]["chunk-location"]
        lab, _ = ndi.label(block, structure=structure)
        k = i * grid[1] + j
        return np.where(lab > 0, lut[np.minimum(lab + base[k], total)], 0).astype(dtype)

    return mask.map_blocks(relabel, dtype=dtype), objects
