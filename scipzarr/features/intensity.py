"""Intensity statistics of each object in each channel, for a whole batch at once.

Quantiles use numpy's default ('linear') definition; ``std`` is the
population standard deviation (ddof=0), as ``numpy.std``. numpy or cupy:
every array function comes from the objects' module (``obj.xp``).
"""

from __future__ import annotations

import numpy as np

from .. import backend
from ..backend import segment_min, segment_sum
from .column import Column
from .family import Family
from .objects import Objects

#: (name, definition, CellProfiler name with {ch} for the channel)
FEATURES = [
    ("sum", "integrated intensity: sum of pixel values", "Intensity_IntegratedIntensity_{ch}"),
    ("mean", "mean pixel value", "Intensity_MeanIntensity_{ch}"),
    ("std", "standard deviation of pixel values (ddof=0)", "Intensity_StdIntensity_{ch}"),
    ("min", "minimum pixel value", "Intensity_MinIntensity_{ch}"),
    ("max", "maximum pixel value", "Intensity_MaxIntensity_{ch}"),
    ("median", "median pixel value", "Intensity_MedianIntensity_{ch}"),
    ("q25", "lower quartile (numpy 'linear' percentile 25)", "Intensity_LowerQuartileIntensity_{ch}"),
    ("q75", "upper quartile (numpy 'linear' percentile 75)", "Intensity_UpperQuartileIntensity_{ch}"),
    ("mad", "median absolute deviation from the median", "Intensity_MADIntensity_{ch}"),
    ("mass_displacement", "distance between the intensity-weighted centre and the centroid",
     "Intensity_MassDisplacement_{ch}"),
    ("center_mass_y", "intensity-weighted mean row, relative to the event (NaN if the sum is 0)",
     "Location_CenterMassIntensity_Y_{ch}"),
    ("center_mass_x", "intensity-weighted mean column, relative to the event", "Location_CenterMassIntensity_X_{ch}"),
    ("max_y", "row of the first (row-major) brightest pixel, relative to the event", "Location_MaxIntensity_Y_{ch}"),
    ("max_x", "column of that pixel", "Location_MaxIntensity_X_{ch}"),
    ("edge_sum", ("sum over the object's edge pixels (those with a 4-neighbour outside the object, inside "
     "the event)"), "Intensity_IntegratedIntensityEdge_{ch}"),
    ("edge_mean", "mean over the edge pixels", "Intensity_MeanIntensityEdge_{ch}"),
    ("edge_std", "standard deviation over the edge pixels (ddof=0)", "Intensity_StdIntensityEdge_{ch}"),
    ("edge_min", "minimum over the edge pixels", "Intensity_MinIntensityEdge_{ch}"),
    ("edge_max", "maximum over the edge pixels", "Intensity_MaxIntensityEdge_{ch}"),
]
NAMES = [name for name, _, _ in FEATURES]


def columns(params: dict) -> list[Column]:
    return [Column(name, d, cp) for name, d, cp in FEATURES]


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's interpolation formula for percentiles (bit-identical)."""
    diff = b - a
    out = a + diff * t
    return backend.xp_of(t).where(t >= 0.5, b - diff * (1 - t), out)


def quantile(sorted_vals: np.ndarray, starts: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    xp = backend.xp_of(sorted_vals)
    pos = q * (counts - 1)
    lo = xp.floor(pos).astype(xp.int64)
    hi = xp.minimum(lo + 1, counts - 1)
    return _lerp(sorted_vals[starts + lo], sorted_vals[starts + hi], pos - lo)


def sort_within_objects(vals: np.ndarray, lab: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Values sorted inside each object (``lab`` is sorted, groups contiguous), as float64.

    Three exact strategies, fastest first (measured on 200k pixels / 256 objects:
    2.8 ms, 6.1 ms, 26 ms): two stable radix sorts for 8/16-bit integers; one
    row-wise sort of a padded (objects x max area) array; a lexsort.
    """
    xp = backend.xp_of(vals)
    n_obj = len(counts)
    if vals.dtype.kind in "u" and vals.dtype.itemsize <= 2 and n_obj < 2**16:
        order = xp.argsort(vals, kind="stable")
        order = order[xp.argsort(lab[order].astype(xp.uint16), kind="stable")]
        return vals[order].astype(xp.float64)
    vals = vals.astype(xp.float64)
    width = int(counts.max())
    if n_obj * width <= 4 * len(vals):
        pos = xp.arange(len(vals)) - starts[lab]
        table = xp.full((n_obj, width), xp.inf)
        table[lab, pos] = vals
        table.sort(axis=1)
        return table[lab, pos]
    return vals[xp.lexsort(xp.stack([vals, lab]))]


def edge_pixels(obj: Objects) -> np.ndarray:
    """Which object pixels (``pixels`` order) are edge pixels (scikit-image ``find_boundaries(mode="inner")``).

    A pixel is on the edge when one of its 4-neighbours inside the event's
    valid region has another label; neighbours outside the event do not count
    (scikit-image reflects at the image border), so padding changes nothing.
    """
    if "edge" in obj.cache:
        return obj.cache["edge"]
    xp = obj.xp
    idx, lab, _ = obj.pixels
    w = obj.labels.shape[2]
    lp = xp.pad(obj.labels, ((0, 0), (1, 1), (1, 1)))
    vp = xp.pad(obj.valid if obj.valid is not None else xp.ones(obj.labels.shape, bool), ((0, 0), (1, 1), (1, 1)))
    e, y, x = xp.unravel_index(idx, obj.labels.shape)
    flat = xp.ravel_multi_index((e, y + 1, x + 1), lp.shape)
    lf, vf = lp.ravel(), vp.ravel()
    edge = xp.zeros(len(idx), dtype=bool)
    for off in (-(w + 2), w + 2, -1, 1):
        edge |= vf[flat + off] & (lf[flat + off] != lab + 1)
    obj.cache["edge"] = edge
    return edge


def _stats(vals: np.ndarray, lab: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """sum, mean, std, min, max of ``vals`` per object (0 where an object has none)."""
    xp = backend.xp_of(vals)
    cnt = xp.bincount(lab, minlength=n).astype(xp.float64)
    total = xp.bincount(lab, weights=vals, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = xp.where(cnt > 0, total / cnt, 0.0)
    dev = vals - mean[lab]
    with np.errstate(invalid="ignore", divide="ignore"):
        std = xp.where(cnt > 0, xp.sqrt(xp.bincount(lab, weights=dev * dev, minlength=n) / cnt), 0.0)
    lo = xp.full(n, xp.inf)
    hi = xp.full(n, -xp.inf)
    xp.minimum.at(lo, lab, vals)
    xp.maximum.at(hi, lab, vals)
    return {"sum": total, "mean": mean, "std": std, "min": xp.where(cnt > 0, lo, 0.0),
            "max": xp.where(cnt > 0, hi, 0.0)}


def measure(obj: Objects, images: np.ndarray, channels: tuple[int, ...] = (0,), params: dict | None = None
            ) -> dict[str, np.ndarray]:
    """Intensity features of one channel (``channels[0]``) of an ``(N, C, Y, X)`` batch."""
    xp = obj.xp
    if obj.n == 0:
        return {name: xp.zeros(0) for name in NAMES}
    out, srt, vals = _base(obj, images, channels[0])
    _, lab, starts = obj.pixels
    counts = obj.areas
    dev = sort_within_objects(xp.abs(vals - out["median"][lab]), lab, starts, counts)
    out["mad"] = quantile(dev, starts, counts, 0.5)
    y, x = obj.coords
    y = y - obj.valid_y0[obj.event][lab]  # event coordinates: padding never changes a sum
    x = x - obj.valid_x0[obj.event][lab]
    total = out["sum"]
    with np.errstate(invalid="ignore", divide="ignore"):
        cmy = segment_sum(y * vals, lab, starts, obj.n) / total
        cmx = segment_sum(x * vals, lab, starts, obj.n) / total
    cy = segment_sum(y.astype(xp.float64), lab, starts, obj.n) / counts
    cx = segment_sum(x.astype(xp.float64), lab, starts, obj.n) / counts
    out["mass_displacement"] = xp.hypot(cmy - cy, cmx - cx)
    out["center_mass_y"] = cmy
    out["center_mass_x"] = cmx
    top = srt[starts + counts - 1]
    first = segment_min(xp.where(vals == top[lab], xp.arange(len(vals)), len(vals)), lab, starts, obj.n)
    out["max_y"] = y[first].astype(np.float64)
    out["max_x"] = x[first].astype(np.float64)
    edge = edge_pixels(obj)
    out |= {f"edge_{k}": v for k, v in _stats(vals[edge], lab[edge], obj.n).items()}
    return out


def _base(obj: Objects, images: np.ndarray, channel: int):
    _, lab, starts = obj.pixels
    counts = obj.areas
    raw = obj.gather(images, channel)
    srt = sort_within_objects(raw, lab, starts, counts)
    xp = obj.xp
    vals = raw.astype(xp.float64)
    total = segment_sum(vals, lab, starts, obj.n)
    mean = total / counts
    dev = vals - mean[lab]
    std = xp.sqrt(segment_sum(dev * dev, lab, starts, obj.n) / counts)
    ends = starts + counts - 1
    return {
        "sum": total,
        "mean": mean,
        "std": std,
        "min": srt[starts],
        "max": srt[ends],
        "median": quantile(srt, starts, counts, 0.5),
        "q25": quantile(srt, starts, counts, 0.25),
        "q75": quantile(srt, starts, counts, 0.75),
    }, srt, vals


FAMILY = Family(
    "intensity", "channel", columns, measure,
    "intensity statistics, edge intensities and locations (MeasureObjectIntensity)",
    device=True,
    defaults={},
    parameters={},
)
