"""Size and shape of objects, for a whole batch at once.

Definitions follow ``skimage.measure.regionprops`` (2-D, unit spacing), and
the tests check equality with it. Coordinates (centroid, bounding box) are
relative to the event's own pixels, so padding never changes them.

numpy or cupy: the pixel-wise work (moments, filled area, distances) runs
where the objects live; perimeters and Euler numbers, the convex hulls, Feret
diameters, enclosing circles and Zernike sums are compiled for the CPU
(numba) and run on host copies (``Objects.host``).
"""

from __future__ import annotations

from math import sqrt

import numba
import numpy as np

from ..backend import segment_sum
from ..kernels.batch import object_filled_areas
from . import zernike
from ._convex import convex_areas, hull_geometry
from .column import Column
from .family import Family
from .distance import distance_to_edge
from .intensity import quantile, sort_within_objects
from .moments import moments
from .objects import Objects

#: (name, definition, CellProfiler MeasureObjectSizeShape name) of the base features.
BASE = [
    ("area", "number of pixels", "Area"),
    ("area_convex", "pixels of the convex hull (regionprops area_convex)", "ConvexArea"),
    ("area_filled", "pixels of the object with its holes (background not 8-connected to the outside) filled", "FilledArea"),
    ("area_bbox", "pixels of the bounding box", "BoundingBoxArea"),
    ("perimeter", "perimeter of the 4-connected border (regionprops perimeter)", "Perimeter"),
    ("equivalent_diameter", "diameter of the disk with the same area", "EquivalentDiameter"),
    ("form_factor", "4 pi area / perimeter^2 (1 for a disk; NaN when the perimeter is 0)", "FormFactor"),
    ("compactness", "perimeter^2 / (4 pi area), with the denominator at least 1", "Compactness"),
    ("eccentricity", "eccentricity of the ellipse with the same second moments", "Eccentricity"),
    ("solidity", "area / area_convex", "Solidity"),
    ("extent", "area / bounding-box area", "Extent"),
    ("axis_major_length", "major axis of the ellipse with the same normalized second central moments",
     "MajorAxisLength"),
    ("axis_minor_length", "minor axis of that ellipse", "MinorAxisLength"),
    ("orientation", ("angle (radians, in (-pi/2, pi/2]) between the row axis and the major axis; "
     "CellProfiler reports degrees"), "Orientation"),
    ("euler_number", "objects minus holes, 8-connectivity", "EulerNumber"),
    ("radius_max", "largest distance of an object pixel to the nearest pixel outside the object", "MaximumRadius"),
    ("radius_mean", "mean of those distances", "MeanRadius"),
    ("radius_median", "median of those distances", "MedianRadius"),
    ("feret_min", "smallest distance between two parallel lines touching the hull of the pixel centres",
     "MinFeretDiameter"),
    ("feret_max", "largest distance between two pixel centres", "MaxFeretDiameter"),
    ("centroid_y", "mean row, relative to the event", "Center_Y"),
    ("centroid_x", "mean column, relative to the event", "Center_X"),
    ("bbox_min_y", "first row, relative to the event", "BoundingBoxMinimum_Y"),
    ("bbox_min_x", "first column, relative to the event", "BoundingBoxMinimum_X"),
    ("bbox_max_y", "last row + 1, relative to the event", "BoundingBoxMaximum_Y"),
    ("bbox_max_x", "last column + 1, relative to the event", "BoundingBoxMaximum_X"),
]
NAMES = [name for name, _, _ in BASE]


def _moment_features() -> list[tuple[str, str, str]]:
    out = []
    for p in range(3):
        for q in range(4):
            out.append((f"moment_spatial_{p}_{q}", f"sum of row^{p} column^{q} (bounding-box coordinates)",
                        f"SpatialMoment_{p}_{q}"))
    for p in range(3):
        for q in range(4):
            out.append((f"moment_central_{p}_{q}", f"sum of (row - mean)^{p} (column - mean)^{q}",
                        f"CentralMoment_{p}_{q}"))
    for p in range(4):
        for q in range(4):
            if p + q >= 2:
                out.append((f"moment_normalized_{p}_{q}", f"central moment {p},{q} / area^({p}+{q})/2+1)",
                            f"NormalizedMoment_{p}_{q}"))
    out += [(f"moment_hu_{k}", f"Hu's rotation-invariant moment {k + 1}", f"HuMoment_{k}") for k in range(7)]
    out += [("inertia_tensor_0_0", "inertia tensor, row-row entry (regionprops inertia_tensor)", "InertiaTensor_0_0"),
            ("inertia_tensor_0_1", "inertia tensor, off-diagonal entry", "InertiaTensor_0_1"),
            ("inertia_tensor_1_0", "inertia tensor, off-diagonal entry", "InertiaTensor_1_0"),
            ("inertia_tensor_1_1", "inertia tensor, column-column entry", "InertiaTensor_1_1"),
            ("inertia_eigenvalue_0", "larger eigenvalue of the inertia tensor", "InertiaTensorEigenvalues_0"),
            ("inertia_eigenvalue_1", "smaller eigenvalue of the inertia tensor", "InertiaTensorEigenvalues_1")]
    return out


MOMENTS = _moment_features()


def columns(params: dict) -> list[Column]:
    """The shape family's columns for ``params`` (``zernike_degree``)."""
    cols = [Column(name, d, f"AreaShape_{cp}") for name, d, cp in BASE + MOMENTS]
    degree = params.get("zernike_degree", 9)
    cols += [Column(f"zernike_{n}_{m}", f"|Zernike moment n={n}, m={m}| of the object in its minimum enclosing "
                    "circle, over the circle's area", f"AreaShape_Zernike_{n}_{m}", f"degree={degree}")
             for n, m in zernike.indexes(degree)]
    return cols


_PERIMETER_WEIGHTS = np.zeros(50, dtype=np.float64)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1
_PERIMETER_WEIGHTS[[21, 33]] = sqrt(2)
_PERIMETER_WEIGHTS[[13, 23]] = (1 + sqrt(2)) / 2


@numba.njit(cache=True, nogil=True)
def _borders_host(labels, n, table):  # pragma: no cover - compiled
    """Perimeter and Euler number sums of labels 1..n of a host ``(N, Y, X)`` batch (see :func:`borders`)."""
    m, h, w = labels.shape
    perim = np.zeros(n + 1)
    euler = np.zeros(n + 1)
    border = np.zeros((h + 2, w + 2), dtype=labels.dtype)  # the event's border pixels' labels, framed by zeros
    for e in range(m):
        lab = labels[e]
        for y in range(h):
            for x in range(w):
                v = lab[y, x]
                inner = (v != 0 and y > 0 and y < h - 1 and x > 0 and x < w - 1 and lab[y - 1, x] == v
                         and lab[y + 1, x] == v and lab[y, x - 1] == v and lab[y, x + 1] == v)
                border[y + 1, x + 1] = 0 if inner else v
        for y in range(h):
            for x in range(w):
                v = lab[y, x]
                if v == 0:
                    continue
                if border[y + 1, x + 1] == v:
                    code = 1
                    for dy in range(-1, 2):
                        for dx in range(-1, 2):
                            if (dy != 0 or dx != 0) and border[y + 1 + dy, x + 1 + dx] == v:
                                code += 10 if dy != 0 and dx != 0 else 2
                    perim[v] += table[code]
                right = lab[y, x + 1] if x < w - 1 else 0
                left = lab[y, x - 1] if x > 0 else 0
                below = lab[y + 1, x] if y < h - 1 else 0
                below_right = lab[y + 1, x + 1] if y < h - 1 and x < w - 1 else 0
                below_left = lab[y + 1, x - 1] if y < h - 1 and x > 0 else 0
                term = 0.0
                if right != v and below != v and below_right != v:  # alone
                    term += 1.0
                if right == v and below == v and below_right != v:  # three
                    term -= 1.0
                if below_left == v and left != v and below != v:  # the anti-diagonal pair
                    term -= 1.0
                euler[v] += term
    return perim[1:], euler[1:]


def borders(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Perimeter and Euler number of every label 1..n of a host ``(N, Y, X)`` label batch, one compiled pass.

    Perimeter: scikit-image's estimator (4-connected border pixels weighted by
    the pattern of border pixels around them), each object measured on its own.
    Euler number (8-connectivity): scikit-image's 2x2-pattern formula; with its
    coefficients only three patterns count (for each object alone): a top-left
    pixel alone (+1), an anti-diagonal pair (-1) and three pixels without the
    bottom-right (-1), each found from the object pixel at its top-left or
    top-right corner. Each object's terms are added in raster order (as a
    weighted ``np.bincount`` of its pixels), so the sums are the array
    formulation's, bit for bit.
    """
    return _borders_host(np.ascontiguousarray(labels), int(n), _PERIMETER_WEIGHTS)


def filled_areas(obj: Objects) -> np.ndarray:
    """Area of every object with its holes filled, each object in its own box (regionprops ``area_filled``:
    8-connected background not reaching the box grown by one pixel, other objects inside included)."""
    return obj.xp.asarray(object_filled_areas(obj.host("labels"), obj.host("event"), obj.host("boxes")))


def measure(obj: Objects, images: np.ndarray | None = None, channels=(), params: dict | None = None
            ) -> dict[str, np.ndarray]:
    """Shape features of every object of a batch (see ``columns``)."""
    params = params or {}
    xp, n = obj.xp, obj.n
    if n == 0:
        return {c.feature: xp.zeros(0) for c in columns(params)}
    _, lab, starts = obj.pixels
    box = obj.boxes
    area = obj.areas.astype(xp.float64)
    mom = moments(obj)
    central = mom["central"]
    a, b, c = central[:, 2, 0] / area, central[:, 1, 1] / area, central[:, 0, 2] / area  # row, cross, column
    half_tr = (a + c) / 2
    root = xp.sqrt(((a - c) / 2) ** 2 + b * b)
    l1 = xp.maximum(half_tr + root, 0)
    l2 = xp.maximum(half_tr - root, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ecc = xp.where(l1 > 0, xp.sqrt(xp.maximum(1 - l2 / l1, 0)), 0.0)
    ia, ib, ic = c, -b, a  # scikit-image's inertia tensor [[ia, ib], [ib, ic]]
    orient = xp.where(ia - ic == 0, xp.where(ib < 0, np.pi / 4, -np.pi / 4), 0.5 * xp.arctan2(-2 * ib, ic - ia))
    # one value for +-pi/2, (-pi/2, pi/2]; angles within 1e-9 of -pi/2 are +pi/2, so that an axis-aligned object,
    # whose cross moment is 0 up to the rounding of its sums, gets one orientation whatever the order of the sums
    # (CPU, GPU)
    orient = xp.where(orient <= -np.pi / 2 + 1e-9, np.pi / 2, orient)
    # the compiled hull kernels run on the host
    labels, event, hbox = obj.host("labels"), obj.host("event"), obj.host("boxes")
    convex = xp.asarray(convex_areas(labels, np.arange(1, n + 1), event, hbox[:, 0], hbox[:, 2], hbox[:, 1],
                                     hbox[:, 3]).astype(np.float64))
    hull_host = hull_geometry(labels, event, hbox[:, 0], hbox[:, 2], hbox[:, 1], hbox[:, 3])
    hull = xp.asarray(hull_host)
    bbox_area = ((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])).astype(xp.float64)
    perim_host, euler_host = borders(labels, n)
    perim = xp.asarray(perim_host)
    dist = distance_to_edge(obj, border_is_edge=True)
    dist_sorted = sort_within_objects(dist, lab, starts, obj.areas)
    oy, ox = obj.valid_y0[obj.event], obj.valid_x0[obj.event]
    with np.errstate(invalid="ignore", divide="ignore"):
        form_factor = xp.where(perim > 0, 4 * np.pi * area / perim**2, xp.nan)  # undefined without a perimeter
    out = {
        "area": area,
        "area_convex": convex,
        "area_filled": filled_areas(obj),
        "area_bbox": bbox_area,
        "perimeter": perim,
        "equivalent_diameter": xp.sqrt(4 * area / np.pi),
        "form_factor": form_factor,
        "compactness": perim**2 / xp.maximum(4 * np.pi * area, 1),
        "eccentricity": ecc,
        "solidity": area / convex,
        "extent": area / bbox_area,
        "axis_major_length": 4 * xp.sqrt(l1),
        "axis_minor_length": 4 * xp.sqrt(l2),
        "orientation": orient,
        "euler_number": xp.asarray(euler_host),
        "radius_max": dist_sorted[starts + obj.areas - 1],
        "radius_mean": segment_sum(dist, lab, starts, n) / area,
        "radius_median": quantile(dist_sorted, starts, obj.areas, 0.5),
        "feret_min": hull[:, 0],
        "feret_max": hull[:, 1],
        "centroid_y": (box[:, 0] - oy) + mom["raw"][:, 1, 0] / area,
        "centroid_x": (box[:, 1] - ox) + mom["raw"][:, 0, 1] / area,
        "bbox_min_y": (box[:, 0] - oy).astype(xp.float64),
        "bbox_min_x": (box[:, 1] - ox).astype(xp.float64),
        "bbox_max_y": (box[:, 2] - oy).astype(xp.float64),
        "bbox_max_x": (box[:, 3] - ox).astype(xp.float64),
    }
    for p in range(3):
        for q in range(4):
            out[f"moment_spatial_{p}_{q}"] = mom["raw"][:, p, q]
            out[f"moment_central_{p}_{q}"] = central[:, p, q]
    for p in range(4):
        for q in range(4):
            if p + q >= 2:
                out[f"moment_normalized_{p}_{q}"] = mom["normalized"][:, p, q]
    for k in range(7):
        out[f"moment_hu_{k}"] = mom["hu"][:, k]
    out |= {"inertia_tensor_0_0": ia, "inertia_tensor_0_1": ib, "inertia_tensor_1_0": ib,
            "inertia_tensor_1_1": ic, "inertia_eigenvalue_0": l1, "inertia_eigenvalue_1": l2}
    degree = params.get("zernike_degree", 9)
    z = zernike.zernike(obj, hull_host[:, 2:5], degree)  # host
    with np.errstate(invalid="ignore", divide="ignore"):
        zs = xp.asarray(np.abs(z) / (np.pi * hull_host[:, 4:5] ** 2))
    for k, (zn, zm) in enumerate(zernike.indexes(degree)):
        out[f"zernike_{zn}_{zm}"] = zs[:, k]
    return out


FAMILY = Family(
    "shape", "object", columns, measure,
    "size and shape of the mask (CellProfiler MeasureObjectSizeShape)",
    device=True,
    defaults={"zernike_degree": 9},
    parameters={
        "zernike_degree": {
            "type": "integer",
            "minimum": 0,
            "maximum": 20,
            "description": "Highest degree n of the Zernike shape moments."
        }
    },
)
