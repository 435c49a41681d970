"""Dask drivers for images larger than one task: halo reads, exact chunked labelling and hole filling,
reductions kept inside each chunk's task.

The pure steps are kernels (:mod:`scipzarr.kernels.components`); here they
become graphs over a chunked image, and results are exact: equal to the
kernel on the whole image, whatever the chunking (tested).
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
from dask.array.core import normalize_chunks

from ..kernels import components
from ..kernels.threshold import histogram as _plane_histogram
from ..store import ngff


def offsets(chunks) -> list[np.ndarray]:
    """Where each chunk of a dask array starts, per axis."""
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(np.int64) for c in chunks]


def halo_map(path: str, shape: tuple[int, int], chunk: int, depth: int, fn, dtype, channels=None) -> da.Array:
    """A lazy ``(y, x)`` array over chunks of ``chunk`` pixels: ``fn`` of each chunk read from the array at
    ``path`` with ``depth`` pixels of its neighbours (clipped at the image border), trimmed back to the chunk.

    One task per chunk with no dependencies (``dask.array.map_overlap``
    builds several tasks per chunk and keeps neighbours' pieces alive while
    it runs). ``channels`` picks channels of a ``(c, y, x)`` array; ``None``
    reads a ``(y, x)`` one.
    """
    h, w = shape
    chunks = normalize_chunks((chunk, chunk), (h, w))

    def run(block_info=None):
        (y0, y1), (x0, x1) = block_info[None]["array-location"]
        ry0, rx0, ry1, rx1 = max(y0 - depth, 0), max(x0 - depth, 0), min(y1 + depth, h), min(x1 + depth, w)
        if channels is None:
            block = ngff.read(path, slice(ry0, ry1), slice(rx0, rx1))
        else:
            block = ngff.read(path, slice(None), slice(ry0, ry1), slice(rx0, rx1))[channels]
        return fn(block)[y0 - ry0:y1 - ry0, x0 - rx0:x1 - rx0]

    return da.map_blocks(run, chunks=chunks, dtype=dtype, meta=np.empty((0, 0), dtype))


def value_range(image: da.Array, compute) -> tuple[float, float]:
    """Min and max, reduced inside each chunk's task (a dask ``min()``/``max()`` pair kept smoothed chunks
    alive)."""
    parts = compute([dask.delayed(lambda b: (float(b.min()), float(b.max())))(blk)
                     for blk in image.to_delayed().ravel()])
    return min(p[0] for p in parts), max(p[1] for p in parts)


def histogram(image: da.Array, lo: float, hi: float, compute) -> np.ndarray:
    """The threshold histogram over ``[lo, hi]`` (:func:`scipzarr.kernels.threshold.histogram`), summed over
    chunks."""
    parts = compute([dask.delayed(_plane_histogram)(blk, lo, hi) for blk in image.to_delayed().ravel()])
    return np.sum(parts, axis=0)


def label(mask: da.Array, connectivity: int = 2, min_size: int = 0, compute=None):
    """Global labels ``1..n`` of a 2-D chunked mask, in raster order of each object's first pixel.

    Returns the lazy label image (uint32/uint64) and the object table
    (:data:`scipzarr.kernels.components.COLUMNS`; row ``i`` is label ``i + 1``).
    Objects smaller than ``min_size`` are left out (background). One task per
    chunk scans it, the driver joins the scans, a second pass relabels.
    """
    compute = compute or (lambda collections: dask.compute(*collections))
    _h, w = mask.shape
    oy, ox = offsets(mask.chunks)
    blocks = mask.to_delayed()
    grid = blocks.shape
    scans = compute([dask.delayed(components.scan)(blocks[i, j], int(oy[i]), int(ox[j]), w, connectivity)
                     for i in range(grid[0]) for j in range(grid[1])])
    lut, base, objects = components.join(scans, grid, connectivity, min_size)
    dtype = np.uint32 if len(objects) < 2**32 - 1 else np.uint64

    def relabel(block, block_info=None):
        i, j = block_info[0]["chunk-location"]
        return components.relabel(block, i * grid[1] + j, lut, base, connectivity, dtype)

    return mask.map_blocks(relabel, dtype=dtype), objects


def fill_holes(mask: da.Array, compute=None) -> da.Array:
    """Fill background components (4-connected) that do not reach the image border, exactly, chunk by chunk
    (``scipy.ndimage.binary_fill_holes`` of the whole image)."""
    bg, comps = label(~mask, connectivity=1, compute=compute)
    h, w = mask.shape
    hole = np.zeros(len(comps) + 1, dtype=bool)
    hole[1:] = ~((comps[:, 2] == 0) | (comps[:, 4] == 0) | (comps[:, 3] == h - 1) | (comps[:, 5] == w - 1))
    return mask | bg.map_blocks(lambda b: hole[b], dtype=bool)


def boxes(labels: da.Array, compute) -> tuple[np.ndarray, np.ndarray]:
    """Ids and inclusive boxes of every label of a chunked label image, from per-chunk boxes."""
    oy, ox = offsets(labels.chunks)
    blocks = labels.to_delayed()
    parts = compute([dask.delayed(components.boxes)(blocks[a, b], (int(oy[a]), int(ox[b])))
                     for a in range(blocks.shape[0]) for b in range(blocks.shape[1])])
    return components.combine_boxes(parts)
