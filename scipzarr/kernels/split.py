"""Splitting touching nuclei: a distance-transform watershed per component, and numbering of the parts.

Each component is split on its own crop, so its parts depend on its own
pixels only, whatever the chunking; the parts of all components are then
numbered ``1..n`` in raster order of their first pixel (:func:`number_parts`)
and painted into label blocks (:func:`paint`). numpy arrays in and out.
"""

from __future__ import annotations

import numpy as np

from . import batch
from .components import COLUMNS


def _crops(region: np.ndarray, origin: tuple[int, int], ids: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]):
    """Each component's box plus one pixel (clipped at the FOV's ``shape``) as one padded ``(m, hc, wc)`` stack:
    the component's pixels, which stack pixels belong to its crop, the crop sizes and where its box starts."""
    h, w = shape
    y0, x0 = origin
    sy, sx = np.maximum(boxes[:, 0] - 1, 0), np.maximum(boxes[:, 2] - 1, 0)
    hk, wk = np.minimum(boxes[:, 1] + 2, h) - sy, np.minimum(boxes[:, 3] + 2, w) - sx
    rows = sy[:, None] + np.arange(int(hk.max()))  # (m, hc) FOV rows of each crop
    cols = sx[:, None] + np.arange(int(wk.max()))
    in_crop = (rows < (sy + hk)[:, None])[:, :, None] & (cols < (sx + wk)[:, None])[:, None, :]
    rr = np.clip(rows - y0, 0, region.shape[0] - 1)  # padding rows read any pixel of the region: masked below
    cc = np.clip(cols - x0, 0, region.shape[1] - 1)
    own = (region[rr[:, :, None], cc[:, None, :]] == ids[:, None, None]) & in_crop
    return own, in_crop, hk, wk, boxes[:, 0] - sy, boxes[:, 2] - sx


def _one_peak(own: np.ndarray, in_crop: np.ndarray, dist: np.ndarray, min_distance: int) -> np.ndarray:
    """Per crop of a stack: True when ``peak_local_max(dist, min_distance, labels=own, exclude_border=False)``
    finds at most one peak, decided without it: the candidates it would rank (pixels equal to the maximum over
    the ``2 * min_distance + 1`` square inside the component) all lie less than ``min_distance`` apart
    (Chebyshev), so its spacing step keeps only the first. False means: ask ``peak_local_max``.

    All crops in one maximum filter over a :func:`batch.mosaic` with ``min_distance`` pixels between crops:
    a window then sees its own component or the minimum only, as on the component's box alone, whose edge
    values ``mode="nearest"`` only repeats.
    """
    from scipy import ndimage as ndi  # here: an IFC run never splits, and the import costs its start 0.2 s

    m, hc, wc = own.shape
    low = np.finfo(np.float64).min
    img = np.where(own, dist, low)
    size = 2 * min_distance + 1
    peak = batch.unmosaic(ndi.maximum_filter(batch.mosaic(img, min_distance, low), size=size, mode="nearest"),
                          m, hc, wc, min_distance)
    cand = (img == peak) & own
    trivial = cand.sum(axis=(1, 2)) == own.sum(axis=(1, 2))  # scikit-image's rule: isolated pixels are candidates
    lowest = np.where(in_crop, dist, np.inf).min(axis=(1, 2))
    cand &= img > lowest[:, None, None]
    ys = np.arange(hc)[None, :, None]
    xs = np.arange(wc)[None, None, :]
    span_y = np.where(cand, ys, -1).max(axis=(1, 2)) - np.where(cand, ys, hc).min(axis=(1, 2))
    span_x = np.where(cand, xs, -1).max(axis=(1, 2)) - np.where(cand, xs, wc).min(axis=(1, 2))
    few = cand.sum(axis=(1, 2)) <= 1
    return ~trivial & (few | ((span_y < min_distance) & (span_x < min_distance)))


def split_components(region: np.ndarray, origin: tuple[int, int], ids: np.ndarray, boxes: np.ndarray,
                     shape: tuple[int, int], min_distance: int) -> list:
    """Split touching nuclei: distance-transform watershed on each component of ``comps`` alone.

    ``region`` holds component labels (``ids``, boxes ``(ymin, ymax, xmin, xmax)``) for the
    FOV pixels starting at ``origin`` and covers each component's box plus
    one pixel (clipped at the FOV's ``shape``). Markers are the peaks of the
    distance to the background at least ``min_distance`` apart within a
    component (``peak_local_max``), basins grow on the negated distance inside
    it. Each component is done on its own crop (scikit-image's flooding
    breaks ties by queue order, which other components would change), so its
    result depends only on its own pixels, whatever the chunking. Returns,
    per component, ``(id, ymin, xmin, parts)`` with the parts numbered
    ``1..k`` in raster order on the component's box.

    The distance transforms and the one-peak test (most nuclei) run on all
    crops of a size class at once (:func:`batch.planes_edt`, :func:`_one_peak`):
    a loop of small calls per component held the GIL for most of a FOV's
    split. Crops clipped at the FOV's edge have no background there: they are
    transformed ``apart``.
    """
    h, w = shape
    ids = np.asarray(ids, np.int64)
    boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
    out: list = [None] * len(ids)
    # size classes (powers of two of the crop's height and width): padding stays under 4x the crops' area
    size_class = np.ceil(np.log2(boxes[:, 1] - boxes[:, 0] + 3)) * 64 + np.ceil(np.log2(boxes[:, 3] - boxes[:, 2] + 3))
    for cls in np.unique(size_class):
        members = np.flatnonzero(size_class == cls)
        own, in_crop, hk, wk, oy, ox = _crops(region, origin, ids[members], boxes[members], shape)
        clipped = (boxes[members, 0] < 1) | (boxes[members, 1] + 2 > h) | (boxes[members, 2] < 1) | \
                  (boxes[members, 3] + 2 > w)
        nothing = own | ~in_crop  # outside the crop (padding) is not background: the FOV ends there
        dist = batch.planes_edt(nothing, apart=clipped)
        single = _one_peak(own, in_crop, dist, min_distance)
        for j, k in enumerate(members):
            ymin, ymax, xmin, xmax = (int(v) for v in boxes[k])
            box = (slice(oy[j], oy[j] + ymax - ymin + 1), slice(ox[j], ox[j] + xmax - xmin + 1))
            crop_own = own[j, :hk[j], :wk[j]]
            if single[j]:  # the whole component is its basin
                out[k] = (int(ids[k]), ymin, xmin, crop_own[box].astype(np.uint32))
            else:
                out[k] = (int(ids[k]), ymin, xmin, _watershed_parts(crop_own, dist[j, :hk[j], :wk[j]], box,
                                                                     min_distance))
    return out


def _watershed_parts(own: np.ndarray, dist: np.ndarray, box: tuple[slice, slice], min_distance: int) -> np.ndarray:
    """The parts of one component (its crop): watershed from ``peak_local_max`` markers, numbered ``1..k`` in
    raster order on the component's box."""
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    peaks = peak_local_max(dist, min_distance=min_distance, labels=own.astype(np.int32), exclude_border=False)
    if len(peaks) > 1:
        markers = np.zeros(own.shape, np.int32)
        markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
        basins = watershed(-dist, markers, mask=own)
    else:
        basins = own.astype(np.int32)
    sub = basins[box]
    inside = sub > 0
    ids = np.unique(sub[inside])
    firsts = np.array([np.flatnonzero(sub.ravel() == b)[0] for b in ids])  # number parts in raster order
    lut = np.zeros(int(sub.max()) + 1, dtype=np.int64)
    lut[ids[np.argsort(firsts)]] = np.arange(1, len(ids) + 1)
    return lut[sub].astype(np.uint32)


PART_BATCH = 2**20  #: part pixels numbered in one batch (8 int64 arrays of this length at most)


def number_parts(parts: dict, width: int) -> tuple[np.ndarray, dict]:
    """Number the parts of all components ``1..n`` in raster order of their first FOV pixel.

    ``parts`` maps component id to ``(ymin, xmin, sub)`` (as from
    :func:`split_components`). Returns the object table of the final labels
    (:data:`COLUMNS`; row ``i`` is label ``i + 1``) and, per component, the
    lookup from part number to final label. All components' part pixels in a
    few vectorized calls (a loop of small calls per component held the GIL).
    """
    if not parts:
        return np.zeros((0, len(COLUMNS)), np.int64), {}
    cids = list(parts)
    subs = [parts[c][2] for c in cids]
    sizes = np.array([sub.size for sub in subs])
    # components in batches of about PART_BATCH part pixels: a few vectorized calls each, bounded memory
    bounds = np.searchsorted(np.cumsum(sizes), np.arange(PART_BATCH, int(sizes.sum()) + PART_BATCH, PART_BATCH),
                             side="right")
    starts = [0, *sorted({int(b) for b in bounds if 0 < b < len(cids)})]
    rows = [_part_table(parts, cids, a, b, width) for a, b in zip(starts, [*starts[1:], len(cids)])]
    table = np.concatenate(rows)
    table = table[np.argsort(table[:, 3])]  # raster order of first pixels (all distinct)
    objects = np.ascontiguousarray(table[:, 2:])
    final = {cid: np.zeros(int(sub.max()) + 1, dtype=np.uint32) for cid, sub in zip(cids, subs)}
    for label_id, (c, part) in enumerate(table[:, :2].tolist(), start=1):
        final[cids[c]][part] = label_id
    return objects, final


def _part_table(parts: dict, cids: list, a: int, b: int, width: int) -> np.ndarray:
    """Rows ``(component index, part, count, first, ymin, ymax, xmin, xmax)`` of the parts of components
    ``cids[a:b]``."""
    subs = [parts[c][2] for c in cids[a:b]]
    flat = np.concatenate([sub.ravel() for sub in subs]).astype(np.int64)
    sizes = np.array([sub.size for sub in subs])
    comp = np.repeat(np.arange(a, b), sizes)
    pos = np.arange(len(flat)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    keep = flat > 0
    comp, pos, flat = comp[keep], pos[keep], flat[keep]
    width_of = np.array([sub.shape[1] for sub in subs])[comp - a]
    ys = pos // width_of + np.array([parts[c][0] for c in cids[a:b]])[comp - a]
    xs = pos % width_of + np.array([parts[c][1] for c in cids[a:b]])[comp - a]
    stride = int(flat.max()) + 1
    key = (comp - a) * stride + flat
    n_keys = (b - a) * stride
    count = np.bincount(key, minlength=n_keys)
    present = np.flatnonzero(count)
    big = np.iinfo(np.int64).max
    first, ymin, xmin = (np.full(n_keys, big) for _ in range(3))
    ymax, xmax = np.full(n_keys, -1), np.full(n_keys, -1)
    np.minimum.at(first, key, ys * width + xs)
    np.minimum.at(ymin, key, ys)
    np.maximum.at(ymax, key, ys)
    np.minimum.at(xmin, key, xs)
    np.maximum.at(xmax, key, xs)
    comp_of, part_of = np.divmod(present, stride)
    return np.column_stack([comp_of + a, part_of, count[present], first[present], ymin[present], ymax[present],
                            xmin[present], xmax[present]])


def paint(block: np.ndarray, origin: tuple[int, int], parts: dict, final: dict) -> np.ndarray:
    """Final labels of a block of the component image (starting at FOV pixel ``origin``) from the split parts."""
    by0, bx0 = origin
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


