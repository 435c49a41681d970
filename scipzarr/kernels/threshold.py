"""Thresholds from histograms: per event of a batch, or from one histogram summed over chunks or events.

Otsu and Li follow scikit-image's formulas; :func:`from_histogram` is the one
rule that turns a histogram over ``[lo, hi]`` into a threshold for data-set
scopes (IFC) and fields of view (whole or chunked), so a threshold never
depends on how the pixels were split. numpy or cupy.
"""

from __future__ import annotations

import numpy as np

from ..backend import to_host, xp_of

NBINS = 256


def _event_range(image: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xp = xp_of(image)
    lo = xp.where(valid, image, xp.inf).min(axis=(1, 2))
    hi = xp.where(valid, image, -xp.inf).max(axis=(1, 2))
    return lo, hi


def event_histograms(image: np.ndarray, valid: np.ndarray, nbins: int = NBINS, lo=None, hi=None):
    """Per-event histograms of valid pixels, with numpy's bin edges on [min, max].

    Returns ``counts (N, nbins)``, ``edges (N, nbins + 1)``, ``lo``, ``hi``.
    Bin assignment follows ``np.histogram`` exactly (half-open bins, the last
    one closed), vectorized over events. ``lo``/``hi`` override each event's
    range (the data-set scope uses the global range for every event).
    """
    xp = xp_of(image)
    n = image.shape[0]
    if lo is None:
        lo, hi = _event_range(image, valid)
    empty = ~xp.isfinite(lo)
    flat = (hi == lo) | empty
    start = xp.where(empty, 0.0, lo)
    stop = xp.where(flat, start + 1.0, hi)
    step = (stop - start) / nbins
    edges = xp.arange(nbins + 1, dtype=xp.float64)[None] * step[:, None] + start[:, None]
    edges[:, -1] = stop
    # every pixel at once as an (N, pixels) array (no gathers of valid pixels): per-event values broadcast,
    # edges gathered along each row; pixels outside the event go to an extra bin that is dropped
    vals = image.reshape(n, -1)
    idx = xp.clip(((vals - start[:, None]) / (stop - start)[:, None] * nbins).astype(xp.int64), 0, nbins - 1)
    idx -= vals < xp.take_along_axis(edges, idx, axis=1)
    idx += (vals >= xp.take_along_axis(edges, xp.minimum(idx + 1, nbins), axis=1)) & (idx < nbins - 1)
    idx = xp.where(valid.reshape(n, -1), idx, nbins)
    idx += xp.arange(n)[:, None] * (nbins + 1)
    counts = xp.bincount(idx.ravel(), minlength=n * (nbins + 1)).reshape(n, nbins + 1)[:, :nbins]
    return counts, edges, lo, hi


def otsu_from_histograms(counts: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Otsu thresholds of many histograms ``(N, B)`` at once (scikit-image's formula)."""
    xp = xp_of(counts)
    counts = counts.astype(xp.float64)
    w1 = xp.cumsum(counts, axis=1)
    w2 = xp.cumsum(counts[:, ::-1], axis=1)[:, ::-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        m1 = xp.cumsum(counts * centers, axis=1) / w1
        m2 = (xp.cumsum((counts * centers)[:, ::-1], axis=1) / w2[:, ::-1])[:, ::-1]
    var12 = w1[:, :-1] * w2[:, 1:] * (m1[:, :-1] - m2[:, 1:]) ** 2
    var12 = xp.where(xp.isnan(var12), -xp.inf, var12)
    idx = xp.argmax(var12, axis=1)
    return xp.take_along_axis(centers, idx[:, None], axis=1)[:, 0]


def threshold_otsu(image: np.ndarray, valid: np.ndarray, nbins: int = NBINS) -> np.ndarray:
    """Per-event Otsu thresholds ``(N,)``, equal to ``skimage.filters.threshold_otsu``
    on each event's valid pixels (a constant event returns its value; an empty one +inf).
    """
    xp = xp_of(image)
    counts, edges, lo, hi = event_histograms(image, valid, nbins)
    # the choice on the host: where two modes leave empty bins between them, Otsu's criterion is flat there
    # and a GPU's cumulative sums (parallel scans, other rounding) picked another bin of the gap (seen on an
    # H200); from the same integer counts numpy's choice is exactly the CPU's
    counts, edges, lo, hi = (to_host(a) for a in (counts, edges, lo, hi))
    centers = (edges[:, :-1] + edges[:, 1:]) / 2.0
    t = otsu_from_histograms(counts, centers)
    t = np.where(hi == lo, lo, t)
    return xp.asarray(np.where(np.isfinite(lo), t, np.inf))


def threshold_li(image: np.ndarray, valid: np.ndarray, max_iter: int = 1000) -> np.ndarray:
    """Per-event Li (minimum cross-entropy) thresholds ``(N,)``.

    The iteration of ``skimage.filters.threshold_li`` (initial guess: mean;
    tolerance: half the smallest gap between distinct values), run for all
    events at once until each has converged. Class sums come from a
    sequential cumulative sum over each event's sorted valid pixels, so they
    do not depend on padding. A GPU batch is brought to the host first: the
    iteration compares class means built from long cumulative sums, whose
    rounding differs on a GPU (docs/gpu.md).
    """
    if xp_of(image) is not np:
        return xp_of(image).asarray(threshold_li(to_host(image), to_host(valid), max_iter))
    xp = xp_of(image)
    n = image.shape[0]
    lo, hi = _event_range(image, valid)
    ok = xp.isfinite(lo) & (hi > lo)
    base = xp.where(xp.isfinite(lo), lo, 0.0)
    srt = xp.sort(xp.where(valid, image - base[:, None, None], xp.inf).reshape(n, -1), axis=1)
    cnt = valid.reshape(n, -1).sum(axis=1)
    finite = xp.isfinite(srt)
    gaps = xp.where(finite[:, 1:], xp.diff(xp.where(finite, srt, 0.0), axis=1), 0.0)
    gaps = xp.where(gaps > 0, gaps, xp.inf)
    tol = xp.min(gaps, axis=1) / 2 if gaps.shape[1] else xp.full(n, xp.inf)
    prefix = xp.cumsum(xp.where(finite, srt, 0.0), axis=1)
    total = prefix[xp.arange(n), xp.maximum(cnt - 1, 0)]
    t_next = xp.where(ok, total / xp.maximum(cnt, 1), 0.0)
    t_curr = -2 * tol
    active = ok.copy()
    for _ in range(max_iter):
        active &= xp.abs(t_next - t_curr) > tol
        if not active.any():
            break
        a = xp.flatnonzero(active)
        t_curr[a] = t_next[a]
        n_bg = (srt[a] <= t_curr[a, None]).sum(axis=1)
        s_bg = xp.where(n_bg > 0, prefix[a, xp.maximum(n_bg - 1, 0)], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_b = s_bg / n_bg
            mean_f = (total[a] - s_bg) / (cnt[a] - n_bg)
            new = (mean_b - mean_f) / (xp.log(mean_b) - xp.log(mean_f))
        stop = mean_b == 0
        t_next[a] = xp.where(stop, t_next[a], new)
        active[a[stop]] = False
    out = t_next + base
    out = xp.where(xp.isfinite(lo) & (hi == lo), lo, out)
    return xp.where(xp.isfinite(lo), out, xp.inf)


def li_from_histogram(counts: np.ndarray, centers: np.ndarray, max_iter: int = 1000) -> float:
    """Li threshold of one histogram (the data-set scope: a global histogram)."""
    counts = counts.astype(np.float64)
    nz = counts > 0
    if nz.sum() < 2:
        return float(centers[nz][0]) if nz.any() else float("inf")
    c, w = centers[nz] - centers[nz][0], counts[nz]
    tol = np.min(np.diff(c)) / 2
    t_next, t_curr = np.average(c, weights=w), -2 * tol
    for _ in range(max_iter):
        if abs(t_next - t_curr) <= tol:
            break
        t_curr = t_next
        fg = c > t_curr
        mean_f, mean_b = np.average(c[fg], weights=w[fg]), np.average(c[~fg], weights=w[~fg])
        if mean_b == 0:
            break
        t_next = (mean_b - mean_f) / (np.log(mean_b) - np.log(mean_f))
    return float(t_next + centers[nz][0])


def histogram(plane: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The 256-bin histogram over ``[lo, hi]`` (numpy's bin edges); sums over chunks equal the whole's."""
    return np.histogram(plane, bins=NBINS, range=(lo, hi))[0]


def from_histogram(counts: np.ndarray, lo: float, hi: float, method: str) -> float:
    """Otsu's or Li's threshold from a histogram over ``[lo, hi]`` with numpy's bin edges (:func:`histogram`,
    :func:`event_histograms`): one rule for IFC data-set thresholds and FOVs, whole or summed over chunks."""
    edges = np.linspace(lo, hi, NBINS + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    if hi == lo:
        return lo
    if method == "otsu":
        return float(otsu_from_histograms(counts[None], centers[None])[0])
    return float(li_from_histogram(counts, centers))
