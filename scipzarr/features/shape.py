"""Size and shape of objects, for a whole batch at once.

Definitions follow ``skimage.measure.regionprops`` (2-D, unit spacing), and
the tests check equality with it. Coordinates (centroid, bounding box) are
relative to the event's own pixels, so padding never changes them.
"""

from __future__ import annotations

from math import sqrt

import numpy as np

from ._convex import convex_areas
from .objects import Objects

#: (name, definition) for docs and var annotations.
FEATURES = [
    ("area", "number of pixels"),
    ("area_convex", "pixels of the convex hull (regionprops area_convex)"),
    ("perimeter", "perimeter of the 4-connected border (regionprops perimeter)"),
    ("eccentricity", "eccentricity of the ellipse with the same second moments"),
    ("solidity", "area / area_convex"),
    ("extent", "area / bounding-box area"),
    ("axis_major_length", "major axis of the ellipse with the same normalized second central moments"),
    ("axis_minor_length", "minor axis of that ellipse"),
    ("orientation", "angle (radians, in [-pi/2, pi/2)) between the row axis and the major axis"),
    ("euler_number", "objects minus holes, 8-connectivity"),
    ("centroid_y", "mean row, relative to the event"),
    ("centroid_x", "mean column, relative to the event"),
    ("bbox_min_y", "first row, relative to the event"),
    ("bbox_min_x", "first column, relative to the event"),
    ("bbox_max_y", "last row + 1, relative to the event"),
    ("bbox_max_x", "last column + 1, relative to the event"),
]
NAMES = [name for name, _ in FEATURES]

#: CellProfiler (MeasureObjectSizeShape) column names for ``scipzarr export``. Orientation is in
#: radians here (CellProfiler: degrees); the bounding box maximum is exclusive in both.
CELLPROFILER = {
    "area": "AreaShape_Area", "area_convex": "AreaShape_ConvexArea", "perimeter": "AreaShape_Perimeter",
    "eccentricity": "AreaShape_Eccentricity", "solidity": "AreaShape_Solidity", "extent": "AreaShape_Extent",
    "axis_major_length": "AreaShape_MajorAxisLength", "axis_minor_length": "AreaShape_MinorAxisLength",
    "orientation": "AreaShape_Orientation", "euler_number": "AreaShape_EulerNumber",
    "centroid_y": "AreaShape_Center_Y", "centroid_x": "AreaShape_Center_X",
    "bbox_min_y": "AreaShape_BoundingBoxMinimum_Y", "bbox_min_x": "AreaShape_BoundingBoxMinimum_X",
    "bbox_max_y": "AreaShape_BoundingBoxMaximum_Y", "bbox_max_x": "AreaShape_BoundingBoxMaximum_X",
}

_PERIMETER_WEIGHTS = np.zeros(50, dtype=np.float64)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + sqrt(2)) / 2
_NEIGHBOURS_8 = [(-1, -1, 10), (-1, 0, 2), (-1, 1, 10), (0, -1, 2), (0, 1, 2), (1, -1, 10), (1, 0, 2), (1, 1, 10)]


def _padded_pixels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels padded by one pixel in y and x, flat, with the flat indices of object pixels.

    Neighbours of a pixel ``i`` are then ``flat[i + dy * row + dx]``; work is
    proportional to the number of object pixels, not to the tile area.
    """
    lp = np.pad(labels, ((0, 0), (1, 1), (1, 1)))
    flat = lp.ravel()
    return flat, np.flatnonzero(flat), lp.shape[2]


def perimeters(labels: np.ndarray, n: int) -> np.ndarray:
    """Perimeter of every label 1..n of a ``(N, Y, X)`` label batch.

    scikit-image's estimator (4-connected border pixels weighted by the
    pattern of border pixels around them), each object measured on its own.
    """
    flat, idx, row = _padded_pixels(labels)
    lab = flat[idx]
    interior = np.ones(len(idx), dtype=bool)
    for off in (-row, row, -1, 1):
        interior &= flat[idx + off] == lab
    border_idx, border_lab = idx[~interior], lab[~interior]
    border = np.zeros_like(flat)
    border[border_idx] = border_lab
    code = np.ones(len(border_idx), dtype=np.int64)
    for dy, dx, k in _NEIGHBOURS_8:
        code += k * (border[border_idx + dy * row + dx] == border_lab)
    return np.bincount(border_lab, weights=_PERIMETER_WEIGHTS[code], minlength=n + 1)[1:]


def euler_numbers(labels: np.ndarray, n: int) -> np.ndarray:
    """Euler number (8-connectivity) of every label 1..n.

    scikit-image's 2x2-pattern formula: with its coefficients only three
    patterns count (for each object alone): a top-left pixel alone (+1), an
    anti-diagonal pair (-1) and three pixels without the bottom-right (-1);
    each is found from the object pixel at its top-left or top-right corner.
    """
    flat, idx, row = _padded_pixels(labels)
    lab = flat[idx]
    right, below, below_right = flat[idx + 1], flat[idx + row], flat[idx + row + 1]
    below_left, left = flat[idx + row - 1], flat[idx - 1]
    alone = (right != lab) & (below != lab) & (below_right != lab)
    three = (right == lab) & (below == lab) & (below_right != lab)
    # the pixel is the top-right corner of a window holding only the anti-diagonal pair
    diagonal = (below_left == lab) & (left != lab) & (below != lab)
    weights = alone.astype(np.float64) - three - diagonal
    return np.bincount(lab, weights=weights, minlength=n + 1)[1:]


def measure(obj: Objects, images: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Shape features of every object of a batch (see ``FEATURES``)."""
    n = obj.n
    if n == 0:
        return {name: np.zeros(0) for name in NAMES}
    idx, lab, starts = obj.pixels
    y, x = obj.coords
    box = obj.boxes
    area = obj.areas.astype(np.float64)
    ly, lx = y - box[lab, 0], x - box[lab, 1]  # local coordinates, small exact ints
    s = {k: np.add.reduceat(v, starts) for k, v in
         {"y": ly, "x": lx, "yy": ly * ly, "xx": lx * lx, "xy": ly * lx}.items()}
    cnt = obj.areas
    n2 = area * area
    var_y = (cnt * s["yy"] - s["y"] ** 2) / n2  # exact integer numerators
    var_x = (cnt * s["xx"] - s["x"] ** 2) / n2
    cov = (cnt * s["xy"] - s["y"] * s["x"]) / n2
    a, b, c = var_x, -cov, var_y  # scikit-image's inertia tensor [[a, b], [b, c]]
    half_tr = (a + c) / 2
    root = np.sqrt(((a - c) / 2) ** 2 + b * b)
    l1 = np.maximum(half_tr + root, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        l2 = np.where(l1 > 0, np.maximum(a * c - b * b, 0) / l1, 0.0)
        ecc = np.where(l1 > 0, np.sqrt(np.maximum(1 - l2 / l1, 0)), 0.0)
    orient = np.where(a - c == 0, np.where(b < 0, np.pi / 4, -np.pi / 4), 0.5 * np.arctan2(-2 * b, c - a))
    orient = np.where(orient >= np.pi / 2, orient - np.pi, orient)  # one value for +-pi/2: [-pi/2, pi/2)
    convex = convex_areas(obj.labels, np.arange(1, n + 1), obj.event, box[:, 0], box[:, 2], box[:, 1], box[:, 3])
    bbox_area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
    oy, ox = obj.valid_y0[obj.event], obj.valid_x0[obj.event]
    return {
        "area": area,
        "area_convex": convex.astype(np.float64),
        "perimeter": perimeters(obj.labels, n),
        "eccentricity": ecc,
        "solidity": area / convex,
        "extent": area / bbox_area,
        "axis_major_length": 4 * np.sqrt(l1),
        "axis_minor_length": 4 * np.sqrt(l2),
        "orientation": orient,
        "euler_number": euler_numbers(obj.labels, n),
        "centroid_y": (box[:, 0] - oy) + s["y"] / area,
        "centroid_x": (box[:, 1] - ox) + s["x"] / area,
        "bbox_min_y": (box[:, 0] - oy).astype(np.float64),
        "bbox_min_x": (box[:, 1] - ox).astype(np.float64),
        "bbox_max_y": (box[:, 2] - oy).astype(np.float64),
        "bbox_max_x": (box[:, 3] - ox).astype(np.float64),
    }
