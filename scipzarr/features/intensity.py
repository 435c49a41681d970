"""Intensity statistics of each object in each channel, for a whole batch at once.

Quantiles use numpy's default ('linear') definition; ``std`` is the
population standard deviation (ddof=0), as ``numpy.std``.
"""

from __future__ import annotations

import numpy as np

from .objects import Objects

FEATURES = [
    ("sum", "integrated intensity: sum of pixel values"),
    ("mean", "mean pixel value"),
    ("std", "standard deviation of pixel values (ddof=0)"),
    ("min", "minimum pixel value"),
    ("max", "maximum pixel value"),
    ("median", "median pixel value"),
    ("q25", "lower quartile (numpy 'linear' percentile 25)"),
    ("q75", "upper quartile (numpy 'linear' percentile 75)"),
]
NAMES = [name for name, _ in FEATURES]

#: CellProfiler (MeasureObjectIntensity) column names, channel appended, for ``scipzarr export``.
CELLPROFILER = {
    "sum": "Intensity_IntegratedIntensity", "mean": "Intensity_MeanIntensity", "std": "Intensity_StdIntensity",
    "min": "Intensity_MinIntensity", "max": "Intensity_MaxIntensity", "median": "Intensity_MedianIntensity",
    "q25": "Intensity_LowerQuartileIntensity", "q75": "Intensity_UpperQuartileIntensity",
}


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's interpolation formula for percentiles (bit-identical)."""
    diff = b - a
    out = a + diff * t
    return np.where(t >= 0.5, b - diff * (1 - t), out)


def _quantile(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    pos = q * (counts - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, counts - 1)
    return _lerp(sorted_vals[starts + lo], sorted_vals[starts + hi], pos - lo)


def sort_within_objects(vals: np.ndarray, lab: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Values sorted inside each object (``lab`` is sorted, groups contiguous), as float64.

    Three exact strategies, fastest first (measured on 200k pixels / 256 objects:
    2.8 ms, 6.1 ms, 26 ms): two stable radix sorts for 8/16-bit integers; one
    row-wise sort of a padded (objects x max area) array; a lexsort.
    """
    n_obj = len(counts)
    if vals.dtype.kind in "u" and vals.dtype.itemsize <= 2 and n_obj < 2**16:
        order = np.argsort(vals, kind="stable")
        order = order[np.argsort(lab[order].astype(np.uint16), kind="stable")]
        return vals[order].astype(np.float64)
    vals = vals.astype(np.float64)
    width = int(counts.max())
    if n_obj * width <= 4 * len(vals):
        pos = np.arange(len(vals)) - starts[lab]
        table = np.full((n_obj, width), np.inf)
        table[lab, pos] = vals
        table.sort(axis=1)
        return table[lab, pos]
    return vals[np.lexsort((vals, lab))]


def measure_channel(obj: Objects, images: np.ndarray, channel: int = 0) -> dict[str, np.ndarray]:
    """Statistics of one channel of ``images`` ``(N, C, Y, X)`` inside every object of ``obj``."""
    if obj.n == 0:
        return {name: np.zeros(0) for name in NAMES}
    _, lab, starts = obj.pixels
    counts = obj.areas
    raw = obj.gather(images, channel)
    srt = sort_within_objects(raw, lab, starts, counts)
    vals = raw.astype(np.float64)
    total = np.add.reduceat(vals, starts)
    mean = total / counts
    dev = vals - mean[lab]
    std = np.sqrt(np.add.reduceat(dev * dev, starts) / counts)
    ends = starts + counts - 1
    return {
        "sum": total,
        "mean": mean,
        "std": std,
        "min": srt[starts],
        "max": srt[ends],
        "median": _quantile(srt, starts, counts, 0.5),
        "q25": _quantile(srt, starts, counts, 0.25),
        "q75": _quantile(srt, starts, counts, 0.75),
    }
