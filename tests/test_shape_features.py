"""Shape features on drawn shapes with known values, and equality with regionprops."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk, ellipse, polygon
from skimage.measure import label, regionprops

from scipzarr.features import shape
from scipzarr.features.objects import Objects

REGIONPROPS = {
    "area": "area", "area_convex": "area_convex", "perimeter": "perimeter", "eccentricity": "eccentricity",
    "solidity": "solidity", "extent": "extent", "axis_major_length": "axis_major_length",
    "axis_minor_length": "axis_minor_length", "euler_number": "euler_number",
    "area_filled": "area_filled", "area_bbox": "area_bbox", "equivalent_diameter": "equivalent_diameter_area",
}
#: regionprops arrays: ours[f"{prefix}_{p}_{q}"] == getattr(r, attr)[p, q] (p < 3 for spatial/central, as CellProfiler)
MOMENTS = {"moment_spatial": ("moments", 3), "moment_central": ("moments_central", 3),
           "moment_normalized": ("moments_normalized", 4)}


def measure(local, y0=None, x0=None):
    n = local.shape[0]
    z = np.zeros(n, int)
    obj = Objects(local.astype(np.int32), z if y0 is None else y0, z if x0 is None else x0)
    return obj, shape.measure(obj)


def test_rectangle_exact_values():
    local = np.zeros((1, 10, 12), np.int32)
    local[0, 2:5, 3:7] = 1  # 3 x 4 rectangle
    _, f = measure(local)
    assert f["area"][0] == 12
    assert f["area_convex"][0] == 12
    assert f["solidity"][0] == 1.0 and f["extent"][0] == 1.0
    assert f["euler_number"][0] == 1
    assert (f["bbox_min_y"][0], f["bbox_min_x"][0], f["bbox_max_y"][0], f["bbox_max_x"][0]) == (2, 3, 5, 7)
    assert (f["centroid_y"][0], f["centroid_x"][0]) == (3.0, 4.5)
    # 10 border pixels: 4 corners (weight (1+sqrt2)/2 each... as skimage) -> compare to skimage
    assert f["perimeter"][0] == pytest.approx(regionprops(local[0])[0].perimeter, abs=0)
    # axis lengths from variances: var_y = 2/3, var_x = 5/4
    assert f["axis_major_length"][0] == pytest.approx(4 * np.sqrt(5 / 4))
    assert f["axis_minor_length"][0] == pytest.approx(4 * np.sqrt(2 / 3))


def test_ring_has_euler_zero_and_l_shape_solidity():
    local = np.zeros((2, 12, 12), np.int32)
    local[0, 2:9, 2:9] = 1
    local[0, 4:7, 4:7] = 0  # a hole
    local[1, 1:9, 1:3] = 1
    local[1, 7:9, 1:9] = 1  # L shape: area 16 + 12 = 28
    _, f = measure(local)
    assert f["euler_number"].tolist() == [0.0, 1.0]
    assert f["area"].tolist() == [40.0, 28.0]
    assert f["solidity"][1] < 1.0
    assert f["area_convex"][1] == regionprops(local[1])[0].area_convex


def test_single_pixel_and_border_objects():
    local = np.zeros((1, 6, 6), np.int32)
    local[0, 0, 0] = 1          # one pixel in the corner
    local[0, 3:6, 5] = 2        # a line on the right border
    _, f = measure(local)
    assert f["area"].tolist() == [1.0, 3.0]
    assert f["area_convex"].tolist() == [1.0, 3.0]
    assert f["eccentricity"][0] == 0.0 and f["axis_major_length"][0] == 0.0
    assert f["euler_number"].tolist() == [1.0, 1.0]


def test_filled_area_fills_holes_with_other_objects_but_not_diagonal_leaks():
    """area_filled: a ring's hole is filled, also where another object sits in it (that object's own area is
    unchanged); a hole that reaches the outside through one diagonal step is not a hole (8-connected
    background); an object cut by the tile's border is filled within the tile."""
    local = np.zeros((2, 14, 14), np.int32)
    local[0, 1:10, 1:10] = 1
    local[0, 3:8, 3:8] = 0  # a 5 x 5 hole ...
    local[0, 5, 5] = 2  # ... with another object in it
    local[0, 11:14, 11:14] = 3  # at the tile's corner
    local[0, 12, 13] = 0  # a notch open to the border: no hole
    local[1, 2:7, 2:7] = 1
    local[1, 3:5, 3:5] = 0  # a 2 x 2 hole ...
    local[1, 5, 5] = 0  # ... and a one-pixel gap touching it only diagonally
    local[1, 6, 6] = 0  # that reaches the outside diagonally: one 8-connected background
    _, f = measure(local)
    assert f["area"].tolist() == [56.0, 1.0, 8.0, 19.0]
    assert f["area_filled"].tolist() == [81.0, 1.0, 8.0, 19.0]


def _random_objects(seed, n=24, size=48):
    rng = np.random.default_rng(seed)
    local = np.zeros((n, size, size), np.int32)
    for e in range(n):
        m = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, 4)):
            kind = rng.integers(0, 3)
            if kind == 0:
                m[ellipse(rng.uniform(5, size - 5), rng.uniform(5, size - 5), rng.uniform(2, 12),
                          rng.uniform(2, 12), m.shape, rotation=rng.uniform(0, np.pi))] = True
            elif kind == 1:
                pts = rng.uniform(0, size, (5, 2))
                m[polygon(pts[:, 0], pts[:, 1], m.shape)] = True
            else:
                m[disk((rng.uniform(0, size), rng.uniform(0, size)), rng.uniform(1, 8), shape=m.shape)] = True
        m ^= ndi.binary_erosion(m, iterations=2) & (rng.random(m.shape) < 0.05)  # some holes
        local[e] = label(m)
    return local


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equal_to_regionprops(seed):
    local = _random_objects(seed)
    obj, f = measure(local)
    k = 0
    for e in range(local.shape[0]):
        for r in regionprops(local[e]):
            for ours, theirs in REGIONPROPS.items():
                assert f[ours][k] == pytest.approx(getattr(r, theirs), rel=1e-9, abs=1e-9), (ours, e, r.label)
            for prefix, (attr, rows) in MOMENTS.items():
                ref = getattr(r, attr)
                for p in range(rows):
                    for q in range(4):
                        if prefix != "moment_normalized" or p + q >= 2:
                            assert f[f"{prefix}_{p}_{q}"][k] == pytest.approx(ref[p, q], rel=1e-9, abs=1e-9)
            np.testing.assert_allclose([f[f"moment_hu_{i}"][k] for i in range(7)], r.moments_hu, rtol=1e-7, atol=1e-12)
            tensor = [[f["inertia_tensor_0_0"][k], f["inertia_tensor_0_1"][k]],
                      [f["inertia_tensor_1_0"][k], f["inertia_tensor_1_1"][k]]]
            np.testing.assert_allclose(tensor, r.inertia_tensor, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose([f["inertia_eigenvalue_0"][k], f["inertia_eigenvalue_1"][k]],
                                       r.inertia_tensor_eigvals, rtol=1e-9, atol=1e-9)
            assert f["centroid_y"][k] == pytest.approx(r.centroid[0], rel=1e-12)
            assert f["centroid_x"][k] == pytest.approx(r.centroid[1], rel=1e-12)
            assert (f["bbox_min_y"][k], f["bbox_min_x"][k], f["bbox_max_y"][k], f["bbox_max_x"][k]) == r.bbox
            # orientation is defined modulo pi; ours is canonical in (-pi/2, pi/2], as CellProfiler reports it
            d = (f["orientation"][k] - r.orientation) % np.pi
            assert min(d, np.pi - d) < 1e-9
            assert -np.pi / 2 < f["orientation"][k] <= np.pi / 2
            k += 1
    assert k == obj.n > 30


def test_padding_never_changes_shape_features():
    local = _random_objects(5, n=8, size=30)
    padded = np.zeros((8, 41, 37), np.int32)
    padded[:, 6:36, 3:33] = local
    _, f = measure(local)
    _, g = measure(padded, np.full(8, 6), np.full(8, 3))
    assert len(f) == len(shape.columns({})) > 100
    for name in f:  # every shape column, moments and Zernike included
        np.testing.assert_array_equal(f[name], g[name], err_msg=name)


def test_hull_points_sorted_as_by_their_keys():
    """The convex hulls' point sort (a counting pass by column, then insertion by row) orders points as
    sorting their keys ``x * m + y`` does, duplicates and negative coordinates included."""
    from scipzarr.features._convex import _sorted_points

    rng = np.random.default_rng(11)
    for _ in range(400):
        n, m = int(rng.integers(0, 120)), int(rng.integers(2, 50))
        px, py = rng.integers(-1, 30, n), rng.integers(-1, m - 1, n)
        sx, sy = _sorted_points(px, py, n)
        keys = np.sort((px + 1) * m + py + 1)
        assert np.array_equal(sx, keys // m - 1) and np.array_equal(sy, keys % m - 1)
