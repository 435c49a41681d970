"""Convex-hull pixel counts of many objects in one compiled pass (numba).

Why not ``skimage.morphology.convex_hull_image``: it is a Python call per
object (~0.3 ms each); here all objects of a batch are done in one compiled
loop with exact integer arithmetic, and the result equals scikit-image's
``regionprops(...).area_convex``: the hull of the pixel-edge midpoints
(pixel centres +- 0.5 along each axis), pixels counted when their centre is
inside the hull or on its boundary.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _cross(ox, oy, ax, ay, bx, by):
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox)


@njit(cache=True)
def _hull(xs, ys, n):
    """Monotone chain on points sorted by (x, y); returns hull vertex count (CCW)."""
    hx = np.empty(2 * n + 1, dtype=np.int64)
    hy = np.empty(2 * n + 1, dtype=np.int64)
    k = 0
    for i in range(n):
        while k >= 2 and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    lower = k + 1
    for i in range(n - 2, -1, -1):
        while k >= lower and _cross(hx[k - 2], hy[k - 2], hx[k - 1], hy[k - 1], xs[i], ys[i]) <= 0:
            k -= 1
        hx[k] = xs[i]
        hy[k] = ys[i]
        k += 1
    return hx[: k - 1], hy[: k - 1]


@njit(cache=True)
def convex_areas(labels, lab_ids, ev, y0, y1, x0, x1):
    """Pixel count of the convex hull of each object.

    ``labels`` is ``(N, Y, X)`` with batch-unique labels; for object ``i``
    (label ``lab_ids[i]``) its event and bounding box (end exclusive) are given.
    """
    m = lab_ids.shape[0]
    out = np.zeros(m, dtype=np.int64)
    for i in range(m):
        lab, e = lab_ids[i], ev[i]
        h, w = y1[i] - y0[i], x1[i] - x0[i]
        # candidate points: first/last pixel of each row and column (doubled coords)
        cap = 4 * 2 * (h + w)
        px = np.empty(cap, dtype=np.int64)
        py = np.empty(cap, dtype=np.int64)
        n = 0
        for r in range(h):
            first, last = -1, -1
            for c in range(w):
                if labels[e, y0[i] + r, x0[i] + c] == lab:
                    if first < 0:
                        first = c
                    last = c
            if first >= 0:
                for c in (first, last):
                    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                        py[n] = 2 * r + dy
                        px[n] = 2 * c + dx
                        n += 1
        for c in range(w):
            first, last = -1, -1
            for r in range(h):
                if labels[e, y0[i] + r, x0[i] + c] == lab:
                    if first < 0:
                        first = r
                    last = r
            if first >= 0:
                for r in (first, last):
                    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
                        py[n] = 2 * r + dy
                        px[n] = 2 * c + dx
                        n += 1
        order = np.argsort(px[:n] * (4 * h + 8) + py[:n])
        sx = px[:n][order]
        sy = py[:n][order]
        # drop duplicates
        ux = np.empty(n, dtype=np.int64)
        uy = np.empty(n, dtype=np.int64)
        u = 0
        for j in range(n):
            if u == 0 or sx[j] != ux[u - 1] or sy[j] != uy[u - 1]:
                ux[u] = sx[j]
                uy[u] = sy[j]
                u += 1
        hx, hy = _hull(ux, uy, u)
        nv = hx.shape[0]
        count = 0
        for r in range(h):
            for c in range(w):
                qx, qy = 2 * c, 2 * r
                inside = True
                for v in range(nv):
                    a = v
                    b = (v + 1) % nv
                    if _cross(hx[a], hy[a], hx[b], hy[b], qx, qy) < 0:
                        inside = False
                        break
                if inside:
                    count += 1
        out[i] = count
    return out
