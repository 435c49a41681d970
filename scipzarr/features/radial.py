"""Radial intensity distribution of every object (CellProfiler's MeasureObjectIntensityDistribution).

As CellProfiler defines it: the object's centre is its pixel farthest from
the edge (first in row-major order on ties); every pixel gets the normalized
distance ``d_centre / (d_centre + d_edge + 0.001)``, where ``d_centre`` is the
geodesic distance from the centre inside the object (8-connected steps of 1
and sqrt(2)) and ``d_edge`` the distance to the nearest background pixel of the event
(the image border is not an edge here, unlike for the shape radii); the
distance range is cut into ``bins`` rings. Per ring: the fraction of the
object's intensity (FracAtD), that fraction over the fraction of pixels
(MeanFrac), and the coefficient of variation of the mean intensity over eight
sectors (RadialCV). Geodesic distances come from one Dijkstra per object, on
its bounding box (numba).
"""

from __future__ import annotations

import heapq

import numba
import numpy as np

from .column import Column
from .family import Family
from .distance import distance_to_edge
from .objects import Objects


def columns(params: dict) -> list[Column]:
    bins = params.get("bins", 4)
    cols = []
    for b in range(1, bins + 1):
        cols += [
            Column(f"frac_at_d_{b}of{bins}", f"fraction of the object's intensity in ring {b} of {bins}",
                   f"RadialDistribution_FracAtD_{{ch}}_{b}of{bins}", f"bins={bins}"),
            Column(f"mean_frac_{b}of{bins}", f"fraction of intensity in ring {b} over its fraction of pixels",
                   f"RadialDistribution_MeanFrac_{{ch}}_{b}of{bins}", f"bins={bins}"),
            Column(f"radial_cv_{b}of{bins}", f"coefficient of variation of the mean intensity of the 8 sectors "
                   f"of ring {b} (sectors without pixels left out; 0 if none)",
                   f"RadialDistribution_RadialCV_{{ch}}_{b}of{bins}", f"bins={bins}"),
        ]
    return cols


@numba.njit(cache=True, nogil=True)
def _geodesic(labels, event, boxes, centre_y, centre_x, starts, total):  # pragma: no cover - compiled
    """Distance from each object's centre pixel inside the object (8-connected steps of 1 and sqrt(2)) of
    every object pixel, in ``Objects.pixels`` order. One Dijkstra per object on its bounding box: objects
    never reach each other, and in a box the pixels' order is their order in the batch, so the heap pops
    them as one Dijkstra over the whole batch would (the same sums, the same values; 160 -> 62 ms a chunk
    of 256 events: no batch-sized heap or distance image)."""
    out = np.empty(total)
    diag = np.sqrt(2.0)
    dist = np.empty(0)
    for m in range(boxes.shape[0]):
        e = event[m]
        y0, x0, y1, x1 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
        h, w = y1 - y0, x1 - x0
        if dist.shape[0] < h * w:
            dist = np.empty(h * w)
        dist[:h * w] = np.inf
        lab = m + 1
        s = (centre_y[m] - y0) * w + (centre_x[m] - x0)
        dist[s] = 0.0
        heap = [(0.0, np.int64(s))]
        while len(heap):
            d, i = heapq.heappop(heap)
            if d > dist[i]:
                continue
            y = i // w
            x = i - y * w
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    if dy == 0 and dx == 0:
                        continue
                    yy, xx = y + dy, x + dx
                    if yy < 0 or yy >= h or xx < 0 or xx >= w:
                        continue
                    if labels[e, y0 + yy, x0 + xx] != lab:
                        continue
                    nd = d + (diag if dy != 0 and dx != 0 else 1.0)
                    j = yy * w + xx
                    if nd < dist[j]:
                        dist[j] = nd
                        heapq.heappush(heap, (nd, np.int64(j)))
        k = starts[m]
        for y in range(h):
            for x in range(w):
                if labels[e, y0 + y, x0 + x] == lab:
                    out[k] = dist[y * w + x]
                    k += 1
    return out


def _geometry(obj: Objects, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Ring and sector of every object pixel (``pixels`` order); the same for every channel, so cached."""
    key = ("radial", bins)
    if key not in obj.cache:
        idx, lab, starts = obj.pixels
        y, x = obj.coords
        d_edge = distance_to_edge(obj, border_is_edge=False)
        # centre: first (row-major) pixel with the largest distance to the edge
        top = np.maximum.reduceat(d_edge, starts)
        pos = np.where(d_edge == top[lab], np.arange(len(idx)), len(idx))
        centre = np.minimum.reduceat(pos, starts)
        d_centre = _geodesic(obj.labels, obj.event, obj.boxes, y[centre], x[centre], starts, len(idx))
        norm = d_centre / (d_centre + d_edge + 0.001)
        ring = np.minimum((norm * bins).astype(np.int64), bins)
        cy, cx = y[centre][lab], x[centre][lab]
        sector = (y > cy).astype(np.int64) + 2 * (x > cx) + 4 * (np.abs(y - cy) > np.abs(x - cx))
        obj.cache[key] = ring, sector
    return obj.cache[key]


def measure(obj: Objects, images: np.ndarray, channels: tuple[int, ...] = (0,), params: dict | None = None
            ) -> dict[str, np.ndarray]:
    """Radial distribution of one channel (``channels[0]``) in ``bins`` rings."""
    params = params or {}
    bins = params.get("bins", 4)
    n = obj.n
    names = [c.feature for c in columns(params)]
    if n == 0:
        return {k: np.zeros(0) for k in names}
    _, lab, _ = obj.pixels
    ring, sector = _geometry(obj, bins)
    vals = obj.gather(images, channels[0]).astype(np.float64)
    hist = np.bincount(lab * (bins + 1) + ring, weights=vals, minlength=n * (bins + 1)).reshape(n, bins + 1)
    count = np.bincount(lab * (bins + 1) + ring, minlength=n * (bins + 1)).reshape(n, bins + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = hist / hist.sum(axis=1, keepdims=True)
        pix_frac = count / count.sum(axis=1, keepdims=True)
        mean_frac = frac / (pix_frac + np.finfo(float).eps)
    key = (lab * (bins + 1) + ring) * 8 + sector
    s_sum = np.bincount(key, weights=vals, minlength=n * (bins + 1) * 8).reshape(n, bins + 1, 8)
    s_cnt = np.bincount(key, minlength=n * (bins + 1) * 8).reshape(n, bins + 1, 8)
    have = s_cnt > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(have, s_sum / np.where(have, s_cnt, 1), 0.0)
        k = have.sum(axis=2)
        mu = means.sum(axis=2) / k
        sd = np.sqrt(np.where(have, (means - mu[..., None]) ** 2, 0.0).sum(axis=2) / k)
        cv = np.where(k == 0, 0.0, sd / mu)
    out = {}
    for b in range(bins):
        out[f"frac_at_d_{b + 1}of{bins}"] = frac[:, b]
        out[f"mean_frac_{b + 1}of{bins}"] = mean_frac[:, b]
        out[f"radial_cv_{b + 1}of{bins}"] = cv[:, b]
    return out


FAMILY = Family(
    "radial", "channel", columns, measure,
    "radial intensity distribution (MeasureObjectIntensityDistribution)",
    device=False,
    defaults={"bins": 4},
    parameters={
        "bins": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "description": "Number of rings from the centre to the edge."
        }
    },
)
