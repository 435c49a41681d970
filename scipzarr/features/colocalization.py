"""Colocalization of two channels inside every object (CellProfiler's MeasureColocalization).

Definitions follow CellProfiler as cp_measure computes them, per object:
Pearson's correlation and the regression slope; Manders' M1/M2, the overlap
coefficient and K1/K2 above a threshold of ``threshold`` percent of the
object's maximum in each channel; rank-weighted colocalization (RWC); and
Manders' coefficients above Costes' automatic thresholds (the bisection
search). Intensities are on CellProfiler's image scale: integers divided by
their type's maximum (which is also Costes' search grid), floats clipped to
[0, 1] with a grid of 65535 steps. All sums are per-object ``bincount``s over
the batch's pixel lists; only Costes' search is a compiled loop per object.
"""

from __future__ import annotations

import numba
import numpy as np

from .column import Column
from .family import Family
from .objects import Objects

FEATURES = [
    ("correlation", "Pearson's correlation of the two channels' pixel values", "Correlation_Correlation_{ch1}_{ch2}"),
    ("slope", "slope of the least-squares line of the second channel on the first", "Correlation_Slope_{ch1}_{ch2}"),
    ("manders_1", ("Manders' M1: first channel's intensity where both are above threshold over its intensity "
     "above threshold"), "Correlation_Manders_{ch1}_{ch2}"),
    ("manders_2", "Manders' M2: the same for the second channel", "Correlation_Manders_{ch2}_{ch1}"),
    ("overlap", "overlap coefficient over the pixels where both are above threshold", "Correlation_Overlap_{ch1}_{ch2}"),
    ("k1", "sum(f s) / sum(f^2) over the pixels where both are above threshold", "Correlation_K_{ch1}_{ch2}"),
    ("k2", "sum(f s) / sum(s^2) over those pixels", "Correlation_K_{ch2}_{ch1}"),
    ("rwc_1", "rank-weighted colocalization of the first channel", "Correlation_RWC_{ch1}_{ch2}"),
    ("rwc_2", "rank-weighted colocalization of the second channel", "Correlation_RWC_{ch2}_{ch1}"),
    ("costes_1", "M1 above Costes' automatic thresholds (NaN where Costes' regression is undefined)",
     "Correlation_Costes_{ch1}_{ch2}"),
    ("costes_2", "M2 above Costes' automatic thresholds", "Correlation_Costes_{ch2}_{ch1}"),
]


def columns(params: dict) -> list[Column]:
    thr = params.get("threshold", 15.0)
    return [Column(name, d, cp, f"threshold={thr}" if name[:3] in ("man", "ove", "k1", "k2", "rwc") else "")
            for name, d, cp in FEATURES]


def scaled(values: np.ndarray) -> tuple[np.ndarray, int]:
    """Values on CellProfiler's [0, 1] image scale and the grid size of Costes' search."""
    if values.dtype.kind in "ui":
        top = int(np.iinfo(values.dtype).max)
        return values.astype(np.float64) / top, top
    return np.clip(values.astype(np.float64), 0, 1), 65535


@numba.njit(cache=True)
def _pearson_below(f, s, tf, ts, at):  # pragma: no cover - compiled
    """Pearson's r of the pixels with f < tf or s < ts (scipy.stats.pearsonr; NaN if < 3 or constant); ``at``
    a scratch array of ``len(f)`` for the chosen pixels' positions (the second pass visits only them)."""
    n = 0
    mf = 0.0
    ms = 0.0
    fmin, fmax, smin, smax = np.inf, -np.inf, np.inf, -np.inf
    for k in range(f.shape[0]):
        if f[k] < tf or s[k] < ts:
            at[n] = k
            n += 1
            mf += f[k]
            ms += s[k]
            fmin, fmax = min(fmin, f[k]), max(fmax, f[k])
            smin, smax = min(smin, s[k]), max(smax, s[k])
    if n < 3 or fmax == fmin or smax == smin:
        return np.nan
    mf /= n
    ms /= n
    sxy = 0.0
    sxx = 0.0
    syy = 0.0
    for i in range(n):
        k = at[i]
        sxy += (f[k] - mf) * (s[k] - ms)
        sxx += (f[k] - mf) ** 2
        syy += (s[k] - ms) ** 2
    r = sxy / np.sqrt(sxx * syy)
    return max(-1.0, min(1.0, r))


@numba.njit(cache=True)
def _costes_one(f, s, scale):  # pragma: no cover - compiled
    n = f.shape[0]
    nan2 = (np.nan, np.nan)
    if n < 3:
        return nan2
    nz = (f > 0) | (s > 0)
    if nz.sum() < 3:
        return nan2
    fz, sz = f[nz], s[nz]
    if fz.max() == fz.min() or sz.max() == sz.min():
        return nan2
    m = fz.shape[0]
    xmean, ymean = fz.mean(), sz.mean()
    xvar = ((fz - xmean) ** 2).sum() / (m - 1)
    yvar = ((sz - ymean) ** 2).sum() / (m - 1)
    z = fz + sz
    zvar = ((z - z.mean()) ** 2).sum() / (m - 1)
    covar = 0.5 * (zvar - (xvar + yvar))
    if abs(covar) <= 8 * 2.220446049250313e-16 * max(xvar, yvar):
        return nan2
    a = ((yvar - xvar) + np.sqrt((yvar - xvar) * (yvar - xvar) + 4 * covar * covar)) / (2 * covar)
    b = ymean - a * xmean
    if not (np.isfinite(a) and np.isfinite(b)):
        return nan2
    left, right = 1.0, float(scale)
    mid = ((right - left) // (6 / 5)) + left
    lastmid = 0.0
    valid = -1.0
    it = 0
    f_top, s_top = f.max(), s.max()
    at = np.empty(n, np.int64)
    r_all = 0.0
    have_all = False
    while lastmid != mid:
        it += 1
        if it > 256:
            return nan2
        tf = mid / scale
        ts = a * tf + b
        if tf > f_top or ts > s_top:  # every pixel lies below a threshold: the same r as the last time so
            if not have_all:
                r_all = _pearson_below(f, s, tf, ts, at)
                have_all = True
            r = r_all
        else:
            r = _pearson_below(f, s, tf, ts, at)
        if not np.isfinite(r) or r < 0:
            left = mid - 1
        else:
            right = mid + 1
            valid = mid
        lastmid = mid
        divisor = 6 / 5 if right - left > 6 else 2.0
        mid = ((right - left) // divisor) + left
    if valid < 0:
        return nan2
    tf = (valid - 1) / scale
    ts = a * tf + b
    if not np.isfinite(_pearson_below(f, s, tf, ts, at)):
        return nan2
    tot_f = 0.0
    tot_s = 0.0
    co_f = 0.0
    co_s = 0.0
    for k in range(n):
        if f[k] >= tf:
            tot_f += f[k]
        if s[k] >= ts:
            tot_s += s[k]
        if f[k] > tf and s[k] > ts:
            co_f += f[k]
            co_s += s[k]
    if tot_f <= 0 or tot_s <= 0:
        return nan2
    return co_f / tot_f, co_s / tot_s


@numba.njit(cache=True, nogil=True)
def costes(f, s, starts, counts, scale):  # pragma: no cover - compiled
    """Manders' M1, M2 above Costes' thresholds for every object (pixels grouped by object)."""
    out = np.empty((starts.shape[0], 2))
    for m in range(starts.shape[0]):
        a, b = starts[m], starts[m] + counts[m]
        out[m, 0], out[m, 1] = _costes_one(f[a:b], s[a:b], scale)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _pair_stats(f, s, r1, r2, starts, counts, thr):  # pragma: no cover - compiled
    """Pearson, slope, Manders, overlap, K and RWC of every object (pixels grouped by object)."""
    out = np.zeros((starts.shape[0], 9))
    for m in range(starts.shape[0]):
        a, b = starts[m], starts[m] + counts[m]
        n = b - a
        mf = 0.0
        ms = 0.0
        fmax = -np.inf
        smax = -np.inf
        rmax = 0
        for p in range(a, b):
            mf += f[p]
            ms += s[p]
            fmax = max(fmax, f[p])
            smax = max(smax, s[p])
            rmax = max(rmax, r1[p], r2[p])
        mf /= n
        ms /= n
        sxy = 0.0
        sxx = 0.0
        syy = 0.0
        tf, ts = thr * fmax, thr * smax
        tot_f = 0.0
        tot_s = 0.0
        co_f = 0.0
        co_s = 0.0
        ff = 0.0
        ss = 0.0
        fs = 0.0
        w_f = 0.0
        w_s = 0.0
        big = rmax + 1.0
        both = False
        for p in range(a, b):
            df, ds = f[p] - mf, s[p] - ms
            sxy += df * ds
            sxx += df * df
            syy += ds * ds
            if f[p] >= tf:
                tot_f += f[p]
            if s[p] >= ts:
                tot_s += s[p]
            if f[p] >= tf and s[p] >= ts:
                both = True
                co_f += f[p]
                co_s += s[p]
                ff += f[p] * f[p]
                ss += s[p] * s[p]
                fs += f[p] * s[p]
                w = (big - abs(r1[p] - r2[p])) / big
                w_f += f[p] * w
                w_s += s[p] * w
        out[m, 0] = sxy / np.sqrt(sxx * syy)
        out[m, 1] = sxy / sxx
        if both:
            out[m, 2] = co_f / tot_f
            out[m, 3] = co_s / tot_s
            out[m, 4] = fs / np.sqrt(ff * ss)
            out[m, 5] = fs / ff
            out[m, 6] = fs / ss
            out[m, 7] = w_f / tot_f
            out[m, 8] = w_s / tot_s
    return out


def _dense_ranks(vals: np.ndarray, lab: np.ndarray, n: int) -> np.ndarray:
    """Rank of every value among the distinct values of its object (0 = smallest)."""
    if vals.dtype.kind == "u" and vals.dtype.itemsize <= 2 and n < 2**16:  # two stable radix sorts
        order = np.argsort(vals, kind="stable")
        order = order[np.argsort(lab[order].astype(np.uint16), kind="stable")]
    else:
        order = np.lexsort((vals, lab))
    v, o = vals[order], lab[order]
    change = np.concatenate([[False], (v[1:] != v[:-1]) & (o[1:] == o[:-1])])
    csum = np.cumsum(change)
    first = np.searchsorted(o, np.arange(n))
    ranks = np.empty(len(vals), dtype=np.int64)
    ranks[order] = csum - csum[first[o]]
    return ranks


def _cached(obj: Objects, key, compute):
    """Per-channel intermediates shared by the pairs of one batch (``obj.cache`` lives as long as the batch)."""
    if key not in obj.cache:
        obj.cache[key] = compute()
    return obj.cache[key]


def measure(obj: Objects, images: np.ndarray, channels: tuple[int, int] = (0, 1), params: dict | None = None
            ) -> dict[str, np.ndarray]:
    """Colocalization of channels ``channels[0]`` and ``channels[1]`` in every object."""
    params = params or {}
    thr = params.get("threshold", 15.0) / 100
    n = obj.n
    if n == 0:
        return {name: np.zeros(0) for name, _, _ in FEATURES}
    _, lab, starts = obj.pixels
    counts = obj.areas
    def channel(c):
        """Scaled values and dense ranks of one channel, shared by the pairs it is in."""
        raw = obj.gather(images, c)
        vals, top = scaled(raw)
        # for integers the ranks of the raw values: scaling is monotonic, so they are the ranks of vals
        return vals, top, _dense_ranks(raw if raw.dtype.kind in "ui" else vals, lab, n)

    (f, scale, r1), (s, _, r2) = (_cached(obj, ("colocalization", id(images), c), lambda c=c: channel(c))
                                  for c in channels)
    res = _pair_stats(f, s, r1, r2, starts, counts, thr)
    c = costes(f, s, starts, counts, scale)
    names = ["correlation", "slope", "manders_1", "manders_2", "overlap", "k1", "k2", "rwc_1", "rwc_2"]
    return {**{k: res[:, i] for i, k in enumerate(names)}, "costes_1": c[:, 0], "costes_2": c[:, 1]}


FAMILY = Family(
    "colocalization", "pair", columns, measure,
    "colocalization of channel pairs (MeasureColocalization)",
    device=False,
    defaults={"threshold": 15.0},
    parameters={
        "threshold": {
            "type": "number",
            "minimum": 0,
            "maximum": 100,
            "description": "Manders/overlap/RWC threshold, percent of each channel's maximum in the object."
        }
    },
)
