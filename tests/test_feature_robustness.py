"""Small, flat, bordering and empty inputs: defined values, NaN only where documented, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

from scipzarr.features import FAMILIES, Objects, feature_columns, measure
from scipzarr.features.reference import render

from .conftest import REPO


def _batch():
    local = np.zeros((4, 20, 20), np.int32)
    img = np.zeros((4, 2, 20, 20))
    local[1, 7, 9] = 1                      # one pixel
    img[1, :, 7, 9] = [0.4, 0.7]
    local[2, 0:10, 0:10] = 1                # a constant square in the corner (touches the border)
    img[2, 0] = 0.5
    img[2, 1, 0:10, 0:10] = np.linspace(0.1, 0.9, 100).reshape(10, 10)
    yy, xx = np.mgrid[:20, :20]
    local[3] = ((yy - 10) ** 2 + (xx - 9) ** 2 <= 36).astype(np.int32)  # a disk, radius 6
    img[3, 0] = np.where(local[3] > 0, 0.2 + 0.03 * xx, 0)
    img[3, 1] = np.where(local[3] > 0, 0.9 - 0.02 * yy, 0)
    return local, img


@pytest.fixture(scope="module")
def table():
    local, img = _batch()
    obj = Objects(local, np.zeros(4, int), np.zeros(4, int), np.ones(local.shape, bool))
    families = list(FAMILIES)
    params = {"intensity": {"locations": True}}
    var = feature_columns(families, ["a", "b"], params)
    with np.errstate(all="raise"):  # no floating-point warning escapes either
        values = measure(obj, img, families, [0, 1], params)
    assert values.shape == (3, len(var))  # the empty event has no row
    return {name: values[:, i] for i, name in enumerate(var.index)}


def test_one_pixel_object(table):
    t = {k: v[0] for k, v in table.items()}
    assert (t["shape_area"], t["shape_perimeter"], t["shape_area_convex"]) == (1, 0, 1)
    assert t["shape_radius_max"] == 1 and t["shape_feret_max"] == 0 and t["shape_feret_min"] == 0
    assert np.isnan(t["shape_form_factor"]) and np.isnan(t["shape_zernike_0_0"])
    assert t["shape_eccentricity"] == 0 and t["shape_euler_number"] == 1
    assert t["intensity_sum_a"] == pytest.approx(0.4) and t["intensity_std_a"] == 0 and t["intensity_mad_a"] == 0
    assert t["intensity_edge_sum_a"] == pytest.approx(0.4)
    assert (t["intensity_max_y_a"], t["intensity_max_x_a"], t["intensity_mass_displacement_a"]) == (7, 9, 0)
    assert all(np.isnan(v) for k, v in t.items() if k.startswith("texture_"))  # no pixel pairs
    assert t["radial_frac_at_d_1of4_a"] == 1 and t["radial_radial_cv_1of4_a"] == 0
    assert np.isnan(t["colocalization_correlation_a_b"]) and np.isnan(t["colocalization_costes_1_a_b"])
    assert t["colocalization_manders_1_a_b"] == 1 and t["colocalization_overlap_a_b"] == pytest.approx(1)


def test_constant_object_touching_the_border(table):
    t = {k: v[1] for k, v in table.items()}
    assert (t["shape_area"], t["shape_bbox_min_y"], t["shape_bbox_min_x"]) == (100, 0, 0)
    assert t["shape_perimeter"] == pytest.approx(36) and t["shape_feret_max"] == pytest.approx(9 * np.sqrt(2))
    assert t["shape_feret_min"] == pytest.approx(9) and t["shape_radius_max"] == 5
    assert t["intensity_std_a"] == 0 and t["intensity_mad_a"] == 0 and t["intensity_mean_a"] == 0.5
    # the image border is not an edge (as CellProfiler): 19 pixels on the two inner sides
    assert t["intensity_edge_sum_a"] == pytest.approx(19 * 0.5)
    assert t["intensity_mass_displacement_a"] == pytest.approx(0, abs=1e-12)
    for d in (3, 5):
        for k in range(4):
            assert t[f"texture_angular_second_moment_{d}_{k:02d}_a"] == 1
            assert t[f"texture_contrast_{d}_{k:02d}_a"] == 0 and t[f"texture_correlation_{d}_{k:02d}_a"] == 1
            assert t[f"texture_entropy_{d}_{k:02d}_a"] == 0
    spectrum = [t[f"granularity_{k}_a"] for k in range(1, 17)]
    assert np.isfinite(spectrum).all()
    assert sum(t[f"radial_frac_at_d_{b}of4_a"] for b in range(1, 5)) == pytest.approx(1)
    assert np.isnan(t["colocalization_correlation_a_b"]) and np.isnan(t["colocalization_costes_1_a_b"])


def test_disk(table):
    t = {k: v[2] for k, v in table.items()}
    assert t["shape_area"] == 113 and t["shape_euler_number"] == 1
    assert t["shape_feret_max"] == 12 and t["shape_eccentricity"] == pytest.approx(0, abs=1e-12)
    assert t["shape_form_factor"] == pytest.approx(4 * np.pi * 113 / t["shape_perimeter"] ** 2)
    assert t["colocalization_correlation_a_b"] == pytest.approx(0, abs=1e-12)  # x-ramp against y-ramp
    assert np.isfinite([v for k, v in t.items() if not k.startswith("colocalization_costes")]).all()


def test_no_objects_gives_no_rows_and_no_error():
    local = np.zeros((3, 10, 10), np.int32)
    obj = Objects(local, np.zeros(3, int), np.zeros(3, int))
    values = measure(obj, np.zeros((3, 2, 10, 10)), list(FAMILIES), [0, 1])
    assert values.shape == (0, len(feature_columns(list(FAMILIES), ["a", "b"])))


def test_features_md_is_generated_from_the_code():
    assert (REPO / "docs" / "features.md").read_text() == render(), (
        "docs/features.md is stale: python -m scipzarr.features.reference > docs/features.md")


@pytest.mark.parametrize("border_is_edge", [True, False])
def test_distance_to_edge_equals_each_object_alone(border_is_edge):
    """The crops of a batch are transformed together; each object's distances must be those of the object alone
    in its event (outside the event: edge, or nothing). Objects touching the event's border, in padded events,
    are where crops laid side by side could see a neighbour's background (they did before this test)."""
    from scipy import ndimage as ndi

    from scipzarr.features import Objects
    from scipzarr.features.distance import distance_to_edge

    rng = np.random.default_rng(0)
    n, size = 60, 30
    smooth = ndi.gaussian_filter(rng.random((n, size, size)), (0, 3, 3))
    mask = smooth > np.quantile(smooth, 0.5, axis=(1, 2), keepdims=True)
    valid = np.ones(mask.shape, bool)
    valid[::3, :, size - 7:] = False  # padded events
    local = np.zeros(mask.shape, np.int32)
    for i in range(n):
        local[i], _ = ndi.label(mask[i] & valid[i], np.ones((3, 3)))
    obj = Objects(local, np.zeros(n, int), np.zeros(n, int), valid)
    got = distance_to_edge(obj, border_is_edge=border_is_edge)
    _, lab, _ = obj.pixels
    y, x = obj.coords
    want = np.empty_like(got)
    for k in range(obj.n):
        e, sel = obj.event[k], lab == k
        own = obj.labels[e] == k + 1
        if border_is_edge:
            d = ndi.distance_transform_edt(np.pad(own, 1))[1:-1, 1:-1]
        else:
            d = np.zeros(own.shape)
            width = size - 7 if e % 3 == 0 else size
            d[:, :width] = ndi.distance_transform_edt(own[:, :width])
        want[sel] = d[y[sel], x[sel]]
    assert obj.n > 100
    np.testing.assert_allclose(got, want)
