"""Haralick texture features of every object of a batch, from sparse co-occurrence counts.

Definitions follow CellProfiler's MeasureTexture as cp_measure computes it
(mahotas ``haralick(crop, distance, ignore_zeros=True)`` on each object's crop
of a uint8-quantized image): for each direction (0, 1), (1, 1), (1, 0),
(1, -1) times the distance, a symmetric grey-level co-occurrence matrix of the
pixel pairs that lie in the same object with both grey levels non-zero, then
Haralick's 13 features. Instead of one dense 256 x 256 matrix per object and
direction, the non-zero entries of all objects are counted at once and every
feature is a weighted ``bincount`` over them.

Not registered as a feature family yet (issue #4): the kernel and its parity
test come first.
"""

from __future__ import annotations

import numpy as np

from .objects import Objects

NAMES = ["AngularSecondMoment", "Contrast", "Correlation", "Variance", "InverseDifferenceMoment",
         "SumAverage", "SumVariance", "SumEntropy", "Entropy", "DifferenceVariance", "DifferenceEntropy",
         "InfoMeas1", "InfoMeas2"]
DIRECTIONS = [(0, 1), (1, 1), (1, 0), (1, -1)]
LEVELS = 256


def _xlog2x(p: np.ndarray) -> np.ndarray:
    return np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)


def _pairs(labels: np.ndarray, q: np.ndarray, dy: int, dx: int):
    """Object index and grey levels (a, b) of every same-object pair at offset (dy, dx)."""
    _, h, w = labels.shape
    ys, yd = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    xs, xd = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    la, lb = labels[:, ys, xs], labels[:, yd, xd]
    qa, qb = q[:, ys, xs], q[:, yd, xd]
    sel = (la == lb) & (la > 0) & (qa > 0) & (qb > 0)
    return la[sel] - 1, qa[sel].astype(np.int64), qb[sel].astype(np.int64)


def haralick(obj: Objects, q: np.ndarray, distance: int, direction: tuple[int, int]) -> dict[str, np.ndarray]:
    """The 13 Haralick features of every object for one direction; NaN where an object has no pairs.

    ``q`` is the ``(N, Y, X)`` uint8 grey-level image (0 is ignored).
    """
    n = obj.n
    dy, dx = direction[0] * distance, direction[1] * distance
    o, a, b = _pairs(obj.labels, q, dy, dx)
    # symmetric matrix: every pair counts as (a, b) and (b, a)
    o, a, b = np.concatenate([o, o]), np.concatenate([a, b]), np.concatenate([b, a])
    codes, counts = np.unique((o * LEVELS + a) * LEVELS + b, return_counts=True)
    o, rest = np.divmod(codes, LEVELS * LEVELS)
    i, j = np.divmod(rest, LEVELS)
    total = np.bincount(o, weights=counts, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / total[o]
    # per-object number of grey levels of the crop (mahotas: f.max() + 1), for Difference Variance
    qmax = np.zeros(n, dtype=np.int64)
    np.maximum.at(qmax, obj.pixels[1], obj.gather(q[:, None], 0).astype(np.int64))
    maxv = qmax + 1

    def osum(w):
        return np.bincount(o, weights=w, minlength=n)

    def marginal(idx, size):
        flat = np.bincount(o * size + idx, weights=p, minlength=n * size).reshape(n, size)
        return flat

    px = marginal(i, LEVELS)  # symmetric: px == py
    k = np.arange(LEVELS, dtype=np.float64)
    ux = px @ k
    vx = px @ (k * k) - ux**2
    sx = np.sqrt(vx)
    p_plus = marginal(i + j, 2 * LEVELS)
    p_minus = marginal(np.abs(i - j), LEVELS)
    tk = np.arange(2 * LEVELS, dtype=np.float64)
    asm = osum(p * p)
    contrast = p_minus @ (k * k)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(sx == 0, 1.0, (osum(i * j * p) - ux * ux) / (sx * sx))
    idm = osum(p / (1.0 + (i - j) ** 2))
    sum_avg = p_plus @ tk
    sum_var = p_plus @ (tk * tk) - sum_avg**2
    sum_ent = -_xlog2x(p_plus).sum(axis=1)
    ent = -osum(_xlog2x(p))
    # numpy var over the maxv entries of P(|x-y|) (mahotas' default interpretation)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff_var = (p_minus**2).sum(axis=1) / maxv - (p_minus.sum(axis=1) / maxv) ** 2
    diff_ent = -_xlog2x(p_minus).sum(axis=1)
    hx = -_xlog2x(px).sum(axis=1)
    log_px = np.log2(np.where(px > 0, px, 1.0))
    hxy1 = -osum(p * (log_px[o, i] + log_px[o, j]))
    hxy2 = 2 * hx  # -sum px_i py_j log2(px_i py_j) = HX + HY, and HY = HX for a symmetric matrix
    with np.errstate(invalid="ignore", divide="ignore"):
        info1 = np.where(hx == 0, ent - hxy1, (ent - hxy1) / hx)
    info2 = np.sqrt(np.maximum(0.0, 1 - np.exp(-2.0 * (hxy2 - ent))))
    out = dict(zip(NAMES, [asm, contrast, corr, vx, idm, sum_avg, sum_var, sum_ent, ent, diff_var, diff_ent,
                           info1, info2]))
    empty = total == 0
    return {name: np.where(empty, np.nan, v) for name, v in out.items()}


def measure(obj: Objects, q: np.ndarray, distance: int = 3) -> dict[str, np.ndarray]:
    """All directions at one distance: ``{f"{Feature}_{distance}_{dir:02d}": values}``.

    As in CellProfiler, an object without pairs in any one direction gets NaN
    in every direction.
    """
    res = {d: haralick(obj, q, distance, direction) for d, direction in enumerate(DIRECTIONS)}
    missing = np.zeros(obj.n, dtype=bool)
    for r in res.values():
        missing |= np.isnan(r["AngularSecondMoment"])
    return {f"{name}_{distance}_{d:02d}": np.where(missing, np.nan, r[name])
            for d, r in res.items() for name in NAMES}
