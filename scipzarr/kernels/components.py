"""Connected components: object tables of labelled blocks, and the pure steps of exact chunked labelling.

Labels are numbered in raster order of each object's first pixel, so a label
image does not depend on how it was computed. An object table is an
``(n, 6)`` int64 array with the columns :data:`COLUMNS`: pixel count, first
pixel (raster index in the whole image) and the inclusive bounding box.

Chunked labelling (driven by :func:`scipzarr.pipeline.chunked.label`) is
three pure steps: :func:`scan` labels one block and reports its table and
edge labels; :func:`join` links labels that touch across block edges
(``scipy.sparse.csgraph``) and numbers the components by their first pixel;
:func:`relabel` maps a block's labels (recomputed: scipy's labelling is
deterministic) to the final ones.
"""

from __future__ import annotations

import numpy as np

# scipy is imported inside the functions: they label fields of view, and an IFC run, which never calls them,
# would pay 0.2 s of its start for the import
COLUMNS = ["count", "first", "ymin", "ymax", "xmin", "xmax"]
EIGHT = np.ones((3, 3), bool)


def structure(connectivity: int) -> np.ndarray:
    """The 2-D structuring element of 4- (1) or 8-connectivity (2)."""
    from scipy import ndimage as ndi

    return ndi.generate_binary_structure(2, connectivity)


def objects_table(lab: np.ndarray, n: int, y0: int = 0, x0: int = 0, width: int | None = None) -> np.ndarray:
    """The object table of labels ``1..n`` of scipy's labelling of a block at ``(y0, x0)`` (first pixels as
    raster indices of an image ``width`` wide)."""
    from scipy import ndimage as ndi

    if not n:
        return np.zeros((0, 6), np.int64)
    width = lab.shape[1] if width is None else width
    # scipy numbers labels in raster order of their first pixel: label k first appears where the running
    # maximum reaches k (no per-pixel table)
    first = np.searchsorted(np.maximum.accumulate(lab.ravel()), np.arange(1, n + 1))
    fy, fx = np.divmod(first, lab.shape[1])
    boxes = ndi.find_objects(lab)
    return np.column_stack([
        np.bincount(lab.ravel(), minlength=n + 1)[1:], (fy + y0) * width + fx + x0,
        [b[0].start + y0 for b in boxes], [b[0].stop - 1 + y0 for b in boxes],
        [b[1].start + x0 for b in boxes], [b[1].stop - 1 + x0 for b in boxes]]).astype(np.int64)


def label_whole(mask: np.ndarray, min_size: int) -> tuple[np.ndarray, np.ndarray]:
    """8-connected labels ``1..n`` (uint32) of a whole image, objects under ``min_size`` dropped, and their
    object table (row ``k`` is label ``k + 1``)."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask, structure=EIGHT)
    table = objects_table(lab, n)
    keep = table[:, 0] >= max(min_size, 1)
    lut = np.zeros(n + 1, np.uint32)
    lut[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.uint32)
    return lut[lab], table[keep]


def boxes(labels: np.ndarray, origin: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The labels present in a block starting at ``origin`` and their inclusive boxes ``(ymin, ymax, xmin,
    xmax)`` in image pixels; boxes of the blocks of one image combine by min/max per label."""
    from scipy import ndimage as ndi

    found = ndi.find_objects(labels)
    ids = np.array([k + 1 for k, b in enumerate(found) if b is not None], dtype=np.int64)
    sl = [b for b in found if b is not None]
    y0, x0 = origin
    box = np.array([[b[0].start + y0, b[0].stop - 1 + y0, b[1].start + x0, b[1].stop - 1 + x0] for b in sl],
                   dtype=np.int64).reshape(-1, 4)
    return ids, box


def combine_boxes(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Union of per-block :func:`boxes` results: sorted ids and their boxes."""
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    box = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 4), np.int64)
    uniq, inv = np.unique(ids, return_inverse=True)
    out = np.empty((len(uniq), 4), np.int64)
    out[:, [0, 2]] = np.iinfo(np.int64).max
    out[:, [1, 3]] = -1
    np.minimum.at(out[:, 0], inv, box[:, 0])
    np.maximum.at(out[:, 1], inv, box[:, 1])
    np.minimum.at(out[:, 2], inv, box[:, 2])
    np.maximum.at(out[:, 3], inv, box[:, 3])
    return uniq, out


def scan(block: np.ndarray, y0: int, x0: int, width: int, connectivity: int):
    """Label one block: the number of labels, their object table and the labels on the block's four edges."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(block, structure=structure(connectivity))
    edges = {"top": lab[0].copy(), "bottom": lab[-1].copy(), "left": lab[:, 0].copy(), "right": lab[:, -1].copy()}
    return n, objects_table(lab, n, y0, x0, width), edges


def _pairs(a: np.ndarray, b: np.ndarray, diagonal: bool) -> np.ndarray:
    """Label pairs of two facing edges (a[i] touches b[i], and b[i +- 1] with 8-connectivity), once each."""
    out = [np.stack([a, b], axis=1)]
    if diagonal:
        out += [np.stack([a[1:], b[:-1]], axis=1), np.stack([a[:-1], b[1:]], axis=1)]
    pairs = np.concatenate(out)
    return np.unique(pairs[(pairs[:, 0] > 0) & (pairs[:, 1] > 0)], axis=0)


def join(scans: list, grid: tuple[int, int], connectivity: int, min_size: int = 0):
    """Join the :func:`scan` results of a ``grid`` of blocks (row-major) into global components.

    Returns ``(lut, base, objects)``: block ``k``'s label ``l`` becomes
    ``lut[base[k] + l]`` (0: dropped), and the object table of the final labels
    ``1..n`` (row ``i`` is label ``i + 1``), objects under ``min_size`` dropped.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    counts = np.array([s[0] for s in scans], dtype=np.int64)
    base = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    total = int(counts.sum())
    table = np.zeros((total + 1, 6), np.int64)
    for k, (n, t, _) in enumerate(scans):
        table[base[k] + 1:base[k] + 1 + n] = t
    diag = connectivity == 2

    def gid(k, labels):
        return np.where(labels > 0, labels + base[k], 0)

    pairs = []
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
    n_comp = int(comp.max()) + 1
    agg = np.zeros((n_comp, 6), np.int64)
    agg[:, [1, 2, 4]] = np.iinfo(np.int64).max
    agg[:, [3, 5]] = -1
    ids = comp[1:]
    rows = table[1:]
    np.add.at(agg[:, 0], ids, rows[:, 0])
    for col, op in ((1, np.minimum), (2, np.minimum), (3, np.maximum), (4, np.minimum), (5, np.maximum)):
        op.at(agg[:, col], ids, rows[:, col])
    present = np.zeros(n_comp, bool)
    present[ids] = True
    keep = np.flatnonzero(present & (agg[:, 0] >= max(min_size, 1)))
    keep = keep[np.argsort(agg[keep, 1], kind="stable")]
    number = np.zeros(n_comp, dtype=np.int64)
    number[keep] = np.arange(1, len(keep) + 1)
    lut = number[comp]
    lut[0] = 0
    return lut, base, agg[keep]


def relabel(block: np.ndarray, k: int, lut: np.ndarray, base: np.ndarray, connectivity: int, dtype) -> np.ndarray:
    """Block ``k``'s final labels (:func:`join`)."""
    from scipy import ndimage as ndi

    lab, _ = ndi.label(block, structure=structure(connectivity))
    return np.where(lab > 0, lut[np.minimum(lab + base[k], len(lut) - 1)], 0).astype(dtype)
