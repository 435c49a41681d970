"""Intensity normalization of event batches, with statistics over real pixels only.

Padding never enters a statistic: every function takes the ``valid`` mask.
"""

from __future__ import annotations

import numpy as np

#: Integer images up to 16 bits get exact histograms (one bin per value).
EXACT_BITS = 16
FLOAT_BINS = 65536


def histogram_spec(dtype) -> tuple[float, float, int] | None:
    """(low, high, bins) of an exact per-value histogram, or None for floats/wide ints."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" and dtype.itemsize * 8 <= EXACT_BITS:
        info = np.iinfo(dtype)
        return float(info.min), float(info.max), int(info.max) - int(info.min) + 1
    return None


def channel_minmax(batch: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per event and channel ``(N, C, 2)`` min and max over valid pixels (NaN if none)."""
    v = valid[:, None]
    lo = np.where(v, batch, np.inf).min(axis=(2, 3)).astype(np.float64)
    hi = np.where(v, batch, -np.inf).max(axis=(2, 3)).astype(np.float64)
    empty = ~valid.any(axis=(1, 2))
    lo[empty], hi[empty] = np.nan, np.nan
    return np.stack([lo, hi], axis=-1)


def channel_histograms(batch: np.ndarray, valid: np.ndarray, low: np.ndarray, high: np.ndarray, bins: int) -> np.ndarray:
    """``(C, bins)`` counts of valid pixels per channel on ``[low_c, high_c]``.

    For integer data with ``histogram_spec`` each bin is one value (exact).
    """
    c = batch.shape[1]
    out = np.zeros((c, bins), dtype=np.int64)
    for ch in range(c):  # channels are few; pixels are vectorized
        vals = batch[:, ch][valid].astype(np.float64)
        span = high[ch] - low[ch]
        if span <= 0:
            idx = np.zeros(vals.shape, dtype=np.int64)
        else:
            idx = np.clip(((vals - low[ch]) / span * (bins - 1) + 0.5).astype(np.int64), 0, bins - 1)
        out[ch] = np.bincount(idx, minlength=bins)
    return out


def percentile_from_histogram(counts: np.ndarray, centers: np.ndarray, q: float) -> float:
    """numpy's 'linear' percentile of the multiset described by a histogram."""
    n = int(counts.sum())
    if n == 0:
        return float("nan")
    pos = q / 100.0 * (n - 1)
    lo_i, frac = int(np.floor(pos)), pos - np.floor(pos)
    cum = np.cumsum(counts)
    a = centers[np.searchsorted(cum, lo_i + 1)]
    b = centers[np.searchsorted(cum, min(lo_i + 2, n))]
    return float(a + (b - a) * frac)


def event_percentiles(batch: np.ndarray, valid: np.ndarray, low: float, high: float) -> np.ndarray:
    """Per event and channel ``(N, C, 2)`` percentiles over valid pixels."""
    vals = np.where(valid[:, None], batch.astype(np.float64), np.nan)
    flat = vals.reshape(*vals.shape[:2], -1)
    empty = ~valid.any(axis=(1, 2))
    flat[empty] = 0.0
    out = np.nanpercentile(flat, [low, high], axis=-1)
    out = np.moveaxis(out, 0, -1)
    out[empty] = np.nan
    return out


def apply(batch: np.ndarray, valid: np.ndarray, lohi: np.ndarray | None, clip: bool) -> np.ndarray:
    """Scale ``batch`` to ``(x - lo) / (hi - lo)`` as float64; padding set to 0.

    ``lohi`` is ``(C, 2)`` (data set statistics) or ``(N, C, 2)`` (per event);
    ``None`` means no normalization: the raw batch is returned as it is when
    there is no padding (padding is zero in the store, and no measurement
    reads it). A channel with ``hi == lo`` maps to 0.
    """
    if lohi is None and valid.all():
        return batch  # raw values, no copy: measurements cast what they gather
    out = batch.astype(np.float64)
    if lohi is not None:
        lohi = np.asarray(lohi, dtype=np.float64)
        if lohi.ndim == 2:
            lohi = np.broadcast_to(lohi, (batch.shape[0], *lohi.shape))
        lo, hi = lohi[..., 0][..., None, None], lohi[..., 1][..., None, None]
        span = hi - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(span > 0, (out - lo) / np.where(span > 0, span, 1.0), 0.0)
        if clip:
            np.clip(out, 0.0, 1.0, out=out)
    out[~np.broadcast_to(valid[:, None], out.shape)] = 0.0
    return out
