"""A chunk's label images from its events' object numbers in one compiled pass (numba, ``nogil``).

:func:`label_tiles_host` lays the per-event planes of a chunk (the objects, and each channel's mask
attributed to them) out as the chunk's tiles, each pixel of an object as its data-set label. The array
formulation (``astype`` to the label type, a masked ``add`` of the event's base, a transposed copy into the
mosaic) made three passes over each 8 MB plane: 57-73 ms for a 256-event chunk's seven label images against
24-29 ms here, alternated (docs/benchmarks.md); equal to it (tested).
"""

from __future__ import annotations

import numba


@numba.njit(cache=True, nogil=True)
def label_tiles_host(local, masks, base, k, out):  # pragma: no cover - compiled
    """Fill ``out`` ``(1 + C, k * th, k * tw)`` with the tiles of ``local`` ``(k * k, th, tw)`` (``out[0]``)
    and of each channel ``c`` of ``masks`` ``(C, k * k, th, tw)`` (``out[1 + c]``), event ``e`` at tile row
    ``e // k`` and column ``e % k``: ``base[e] + v`` where a plane holds an object number ``v > 0``, else 0.
    Returns ``out``."""
    n, th, tw = local.shape
    n_masks = masks.shape[0]
    for e in range(n):
        y0, x0 = (e // k) * th, (e % k) * tw
        b = base[e]
        for i in range(1 + n_masks):
            src, dst = (local[e] if i == 0 else masks[i - 1, e]), out[i]
            for y in range(th):
                for x in range(tw):
                    v = src[y, x]
                    dst[y0 + y, x0 + x] = b + v if v > 0 else 0
    return out
