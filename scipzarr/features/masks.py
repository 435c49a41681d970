"""Measurements in each channel's own mask (IFC), as IDEAS and SCIP make them.

An IFC event has a cell mask (its objects) and a mask per channel (e.g. the
nucleus in a DNA channel). Each channel mask's pixels belong to an object
(:func:`scipzarr.kernels.segment.attribute`); here the per-channel families
measure each channel inside its own mask, and the ``masks`` columns say how
each channel mask lies against the cell mask. An object whose channel mask is
empty gets NaN in that channel's columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import FAMILIES, feature_columns, measure
from ._intensity import COLUMNS, measure_labels, overlap_host
from .objects import Objects

#: the mask columns of each channel: (feature, definition)
OVERLAP = [
    ("background", "the event's background level in the channel: median of the 2-pixel ring along the border of "
     "its valid region (of the smoothed channel)"),
    ("noise", "the event's noise in the channel: 1.4826 x the median absolute deviation of that ring (of the "
     "smoothed channel)"),
    ("net_sum", "background-subtracted intensity (as IDEAS's Intensity): sum of (pixel - background) over the "
     "channel's own mask"),
    ("net_sum_cell", "sum of (pixel - background) over the object's (cell) mask"),
    ("area", "pixels of the channel's own mask that belong to the object"),
    ("overlap", "fraction of the channel's mask inside the object's (cell) mask (NaN: empty channel mask)"),
    ("coverage", "fraction of the object's (cell) mask covered by the channel's mask"),
    ("pieces", "8-connected pieces of the channel's own mask (a dividing nucleus: 2)"),
    ("major_axis", "length of the major axis of the ellipse with the channel mask's second moments (as "
     "scikit-image's axis_major_length: 4 x sqrt of the larger eigenvalue of its covariance; NaN: empty mask)"),
    ("minor_axis", "length of its minor axis (4 x sqrt of the smaller eigenvalue)"),
    ("eccentricity", "eccentricity of that ellipse: sqrt(1 - smaller / larger eigenvalue); 0 for a disc"),
]
#: suffix of the columns measured in a channel's own mask
SUFFIX = "own"


def mask_families(families: list[str], masks: list[str] | None) -> list[str]:
    """The families measured in channel masks: ``features.masks`` null: intensity; a list with ``channel``:
    every selected family but the channel pairs (shape: the shape of each channel's mask)."""
    chosen = [f for f in families if FAMILIES[f].scope in ("object", "channel")]
    if masks is None:
        return [f for f in chosen if f == "intensity"]
    return chosen if "channel" in masks else []


def columns(families: list[str], channel_names: list[str], params: dict | None = None) -> pd.DataFrame:
    """var rows of the channel-mask columns: ``masks_<feature>_<channel>`` then, per family and channel,
    ``<family>_<feature>_<channel>_own`` (var ``mask``: ``channel``)."""
    rows = [{"name": f"masks_{feat}_{ch}", "family": "masks", "feature": feat, "channel": ch, "channel2": "",
             "parameters": "", "definition": text, "mask": "channel",
             "cellprofiler_name": f"Masks_{feat.title().replace('_', '')}_{ch}"}  # no CellProfiler equivalent
            for ch in channel_names for feat, text in OVERLAP]
    var = pd.DataFrame(rows).set_index("name")
    parts = [var]
    for fam in families:
        for ch in channel_names:
            part = feature_columns([fam], [ch], params).assign(mask="channel")
            if FAMILIES[fam].scope == "object":  # the mask's own shape: the channel goes into the name
                part = part.assign(channel=ch)
                part.index = [f"{name}_{ch}" for name in part.index]
            part.index = [f"{name}_{SUFFIX}" for name in part.index]
            part = part.assign(cellprofiler_name=part.cellprofiler_name + f"_{ch}Mask")  # CellProfiler: another object
            part.definition = part.definition + " (in the channel's own mask)"
            parts.append(part)
    out = pd.concat(parts)
    out.index.name = "name"
    return out


def channel_objects(obj: Objects, attributed: np.ndarray) -> tuple[Objects, np.ndarray]:
    """The objects of ``obj`` as far as one channel's mask holds them.

    ``attributed`` ``(N, Y, X)``: the object number (as ``obj.local``) of each pixel of the channel's mask.
    Returns objects numbered densely per event and, for each, its row in ``obj``.
    """
    xp = obj.xp
    glob = xp.where(attributed > 0, attributed + obj.offsets[:, None, None], 0)
    rows = xp.flatnonzero(xp.bincount(glob.ravel(), minlength=obj.n + 1)[1:])
    ev = obj.event[rows]
    first = xp.searchsorted(ev, ev, side="left")  # rows are sorted by event
    lut = xp.zeros(obj.n + 1, dtype=xp.int32)
    lut[rows + 1] = (xp.arange(len(rows)) - first + 1).astype(xp.int32)
    return Objects(lut[glob], obj.valid_y0, obj.valid_x0, obj.valid), rows


def overlap(obj: Objects, plane: np.ndarray, attributed: np.ndarray, background: np.ndarray,
            noise: np.ndarray) -> np.ndarray:
    """``(M, 11)``: the ``OVERLAP`` columns of one channel for every object of ``obj``; ``plane`` ``(N, Y, X)``
    the channel's pixels, ``attributed`` its mask's object numbers, ``background`` and ``noise`` ``(N,)``."""
    sums = overlap_host(obj.labels, attributed, np.asarray(obj.offsets), plane, np.asarray(background, np.float64),
                        obj.n)
    net_own, net_cell, area, inside, pieces = sums[:, :5].T
    with np.errstate(invalid="ignore", divide="ignore"):
        my, mx = sums[:, 5] / area, sums[:, 6] / area
        cyy, cxx, cyx = sums[:, 7] / area - my * my, sums[:, 8] / area - mx * mx, sums[:, 9] / area - my * mx
        half, root = (cyy + cxx) / 2, np.sqrt(((cyy - cxx) / 2) ** 2 + cyx ** 2)
        big, small = half + root, np.maximum(half - root, 0.0)
        ecc = np.where(big > 0, np.sqrt(1 - small / np.where(big > 0, big, 1.0)), 0.0)
        ev = obj.event
        return np.stack([background[ev], noise[ev], net_own, net_cell, area, inside / area, inside / obj.areas,
                         pieces, 4 * np.sqrt(big), 4 * np.sqrt(small), np.where(area > 0, ecc, np.nan)], axis=1)


def measure_masks(obj: Objects, images: np.ndarray, attributed: np.ndarray, background: np.ndarray,
                  noise: np.ndarray, channels: list[int], families: list[str], params: dict | None = None,
                  device: str = "cpu") -> np.ndarray:
    """``(M, F)`` float64 in :func:`columns` order for the objects ``obj`` of a batch.

    ``attributed`` ``(N, K, Y, X)`` holds the K channel masks, attributed to the objects; ``background`` and
    ``noise`` ``(N, K)`` each event's background level and noise; ``channels`` their image channels (in
    ``images`` ``(N, C, Y, X)``).
    """
    m = obj.n
    out = [np.asarray(overlap(obj, images[:, ch], attributed[:, i], background[:, i], noise[:, i]))
           for i, ch in enumerate(channels)]
    for fam in families:
        names = FAMILIES[fam].feature_names((params or {}).get(fam, {}))
        width = len(names)
        picked = [COLUMNS.index(f) for f in names] if fam == "intensity" else None  # the kernel's columns
        for i, ch in enumerate(channels):
            if fam == "intensity":  # straight from the attributed labels (NaN rows: objects without mask pixels)
                out.append(measure_labels(attributed[:, i], obj.offsets, obj, images, ch)[:, picked])
                continue
            sub, rows = channel_objects(obj, attributed[:, i])
            block = np.full((m, width), np.nan)
            if sub.n:
                block[np.asarray(rows)] = measure(sub, images, [fam], [ch], params, device=device)
            out.append(block)
    return np.concatenate(out, axis=1) if out else np.zeros((m, 0))
