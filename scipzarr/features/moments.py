"""Spatial, central, normalized and Hu moments and the inertia tensor of every object.

Definitions follow ``skimage.measure.regionprops`` (``moments``,
``moments_central``, ``moments_normalized``, ``moments_hu``,
``inertia_tensor``), which CellProfiler's MeasureObjectSizeShape reports:
coordinates are relative to the object's bounding box (row ``p``, column
``q``). Sums run over the batch's pixel lists (``backend.segment_sum``), so the
cost follows the number of object pixels. numpy or cupy; on the host the 32 sums
are one compiled pass (:func:`_sums_host`, the same terms summed in the same
order: bit-identical).
"""

from __future__ import annotations

import numba
import numpy as np

from .. import backend
from ..backend import segment_sum
from ._intensity import _reduceat
from .objects import Objects

ORDER = 4


def _powers(v: np.ndarray) -> list[np.ndarray]:
    v2 = v * v
    return [backend.xp_of(v).ones_like(v), v, v2, v2 * v]


@numba.njit(cache=True, nogil=True)
def _sums_host(py, px, box, starts, raw, centred):  # pragma: no cover - compiled
    """``(n, 4, 4)``: ``segment_sum`` of ``ly**p * lx**q`` per object, ``ly``, ``lx`` the pixels' rows ``py`` and
    columns ``px`` relative to the object's box ``box`` (each power as :func:`_powers` forms it; ``starts``:
    where each object's pixels begin), or (``centred``) of the powers of ``ly - cy``, ``lx - cx`` with each
    object's centroid taken from its ``raw`` sums. Each sum as ``np.add.reduceat`` adds it (``_reduceat``)."""
    n = starts.shape[0]
    out = np.zeros((n, 4, 4))
    total = py.shape[0]
    widest = 1
    for k in range(n):
        widest = max(widest, (starts[k + 1] if k + 1 < n else total) - starts[k])
    tmp = np.empty((16, widest))
    for k in range(n):
        lo = starts[k]
        cnt = (starts[k + 1] if k + 1 < n else total) - lo
        cy = cx = 0.0
        if centred:
            cy, cx = raw[k, 1, 0] / raw[k, 0, 0], raw[k, 0, 1] / raw[k, 0, 0]
        by, bx = box[k, 0], box[k, 1]
        for j in range(cnt):
            y, x = float(py[lo + j] - by), float(px[lo + j] - bx)
            if centred:
                y, x = y - cy, x - cx
            y2, x2 = y * y, x * x
            ypow = (1.0, y, y2, y2 * y)
            xpow = (1.0, x, x2, x2 * x)
            for p in range(4):
                for q in range(4):
                    tmp[4 * p + q, j] = ypow[p] * xpow[q]
        for p in range(4):
            for q in range(4):
                out[k, p, q] = _reduceat(tmp[4 * p + q], cnt)
    return out


def moments(obj: Objects) -> dict[str, np.ndarray]:
    """``raw``, ``central``, ``normalized`` ``(M, 4, 4)`` and ``hu`` ``(M, 7)``; normalized is NaN for p + q < 2."""
    xp, n = obj.xp, obj.n
    _, lab, starts = obj.pixels
    y, x = obj.coords
    box = obj.boxes
    raw = xp.zeros((n, ORDER, ORDER))
    central = xp.zeros((n, ORDER, ORDER))
    if n == 0:
        return {"raw": raw, "central": central, "normalized": central.copy(), "hu": xp.zeros((0, 7))}
    if xp is np:  # one compiled pass for each of the two sets of sums
        y, x, box, starts = (np.asarray(a, dtype=np.int64) for a in (y, x, box, starts))
        raw = _sums_host(y, x, box, starts, raw, False)
        central = _sums_host(y, x, box, starts, raw, True)
    else:
        ly = (y - box[lab, 0]).astype(xp.float64)
        lx = (x - box[lab, 1]).astype(xp.float64)
        py, px = _powers(ly), _powers(lx)
        for p in range(ORDER):
            for q in range(ORDER):
                raw[:, p, q] = segment_sum(py[p] * px[q], lab, starts, n)
        cy, cx = raw[:, 1, 0] / raw[:, 0, 0], raw[:, 0, 1] / raw[:, 0, 0]
        py, px = _powers(ly - cy[lab]), _powers(lx - cx[lab])
        for p in range(ORDER):
            for q in range(ORDER):
                central[:, p, q] = segment_sum(py[p] * px[q], lab, starts, n)
    normalized = xp.full((n, ORDER, ORDER), xp.nan)
    mu00 = central[:, 0, 0]
    for p in range(ORDER):
        for q in range(ORDER):
            if p + q >= 2:
                normalized[:, p, q] = central[:, p, q] / mu00 ** ((p + q) / 2 + 1)
    return {"raw": raw, "central": central, "normalized": normalized, "hu": hu_moments(normalized)}


def hu_moments(nu: np.ndarray) -> np.ndarray:
    """The seven Hu invariants from normalized central moments (scikit-image's formulas)."""
    n20, n02, n11 = nu[:, 2, 0], nu[:, 0, 2], nu[:, 1, 1]
    n30, n03, n21, n12 = nu[:, 3, 0], nu[:, 0, 3], nu[:, 2, 1], nu[:, 1, 2]
    a, b = n30 + n12, n21 + n03
    return backend.xp_of(nu).stack([
        n20 + n02,
        (n20 - n02) ** 2 + 4 * n11**2,
        (n30 - 3 * n12) ** 2 + (3 * n21 - n03) ** 2,
        a**2 + b**2,
        (n30 - 3 * n12) * a * (a**2 - 3 * b**2) + (3 * n21 - n03) * b * (3 * a**2 - b**2),
        (n20 - n02) * (a**2 - b**2) + 4 * n11 * a * b,
        (3 * n21 - n03) * a * (a**2 - 3 * b**2) - (n30 - 3 * n12) * b * (3 * a**2 - b**2),
    ], axis=1)
