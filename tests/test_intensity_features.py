import numpy as np
import pytest
from skimage.measure import label

from scipzarr.features import intensity
from scipzarr.features.objects import Objects


def _measure_channel(obj, images, channel=0):
    """The eight basic statistics of one channel inside every object."""
    return intensity.measure(obj, images, (channel,))


def test_known_values():
    local = np.zeros((1, 4, 4), np.int32)
    local[0, :2, :2] = 1
    img = np.zeros((1, 1, 4, 4))
    img[0, 0, :2, :2] = [[1, 2], [3, 10]]
    f = _measure_channel(Objects(local, np.zeros(1, int), np.zeros(1, int)), img)
    assert f["sum"][0] == 16 and f["mean"][0] == 4 and f["min"][0] == 1 and f["max"][0] == 10
    assert f["median"][0] == 2.5
    assert f["q25"][0] == 1.75 and f["q75"][0] == 4.75
    assert f["std"][0] == pytest.approx(np.std([1, 2, 3, 10]))


def test_equal_to_numpy_per_object():
    rng = np.random.default_rng(3)
    local = np.stack([label(rng.random((30, 30)) < 0.45) for _ in range(10)]).astype(np.int32)
    img = rng.normal(100, 30, (10, 3, 30, 30))
    obj = Objects(local, np.zeros(10, int), np.zeros(10, int))
    f = _measure_channel(obj, img, 2)
    k = 0
    for e in range(10):
        for lab in range(1, local[e].max() + 1):
            v = img[e, 2][local[e] == lab]
            assert f["sum"][k] == pytest.approx(v.sum(), rel=1e-12)
            assert f["mean"][k] == pytest.approx(v.mean(), rel=1e-12)
            assert f["std"][k] == pytest.approx(v.std(), rel=1e-9, abs=1e-9)
            assert f["min"][k] == v.min() and f["max"][k] == v.max()
            assert f["median"][k] == np.median(v)
            assert f["q25"][k] == np.percentile(v, 25) and f["q75"][k] == np.percentile(v, 75)
            k += 1
    assert k == obj.n > 100


@pytest.mark.parametrize("dtype, spread", [(np.uint16, 40.0), (np.uint16, 20000.0), (np.uint8, 30.0)])
def test_order_statistics_of_integer_images_equal_numpy(dtype, spread):
    """Median, quartiles, MAD, minimum and maximum of 8- and 16-bit images, exactly numpy's: from a histogram
    where an object's range is small against its pixels (spread 40, 30), from the sorted values where it is
    not (spread 20,000 on objects of a few hundred pixels); objects of 1 and 2 pixels included."""
    rng = np.random.default_rng(4)
    local = np.stack([label(rng.random((30, 30)) < 0.45) for _ in range(8)]).astype(np.int32)
    local[0] = 0
    local[0, 0, 0], local[0, 5, 5:7] = 1, 2  # one- and two-pixel objects
    top = np.iinfo(dtype).max
    img = np.clip(np.round(rng.normal(top / 3, spread, (8, 1, 30, 30))), 0, top).astype(dtype)
    obj = Objects(local, np.zeros(8, int), np.zeros(8, int))
    f = _measure_channel(obj, img)
    k = 0
    for e in range(8):
        for lab in range(1, local[e].max() + 1):
            v = img[e, 0][local[e] == lab].astype(np.float64)
            med = np.median(v)
            assert (f["min"][k], f["max"][k], f["median"][k]) == (v.min(), v.max(), med)
            assert (f["q25"][k], f["q75"][k]) == (np.percentile(v, 25), np.percentile(v, 75))
            assert f["mad"][k] == np.median(np.abs(v - med))
            k += 1
    assert k == obj.n > 50


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float64, np.int32])
def test_sort_within_objects_all_strategies(dtype):
    rng = np.random.default_rng(1)
    counts = rng.integers(1, 50, 40)
    counts[0] = 400  # forces the lexsort path for floats (padded table too large)
    lab = np.repeat(np.arange(40), counts)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    vals = rng.integers(0, 200, len(lab)).astype(dtype)
    expected = np.concatenate([np.sort(vals[lab == i]) for i in range(40)]).astype(np.float64)
    np.testing.assert_array_equal(intensity.sort_within_objects(vals, lab, starts, counts), expected)
    even = np.repeat(np.arange(40), 10)
    v2 = rng.random(400).astype(dtype) if dtype == np.float64 else rng.integers(0, 99, 400).astype(dtype)
    expected2 = np.concatenate([np.sort(v2[even == i]) for i in range(40)]).astype(np.float64)
    np.testing.assert_array_equal(
        intensity.sort_within_objects(v2, even, np.arange(0, 400, 10), np.full(40, 10)), expected2)


def test_compiled_sums_are_numpy_reduceat_bit_for_bit():
    """The intensity kernel's per-object sums reproduce ``np.add.reduceat`` exactly (numpy's pairwise
    summation: blocks of 128, 8 accumulators) for groups of every size, small to far past a block."""
    from scipzarr.features._intensity import _reduceat

    rng = np.random.default_rng(7)
    values = rng.normal(1e3, 300, 50_000)
    for n in [1, 2, 7, 8, 9, 127, 128, 129, 255, 256, 1000, 1537, 4099, 50_000]:
        assert _reduceat(values, n) == np.add.reduceat(values[:n], [0])[0], n


def test_location_columns_only_when_asked():
    """features.intensity.locations: the default table has no Location_* columns; asked for, they are the
    kernel's values (the brightest pixel's row and column, the intensity-weighted centre)."""
    from scipzarr.features import feature_columns, measure

    local = np.zeros((2, 6, 6), np.int32)
    local[0, 1:4, 1:4] = 1
    local[1, 2:6, 0:3] = 1
    img = np.zeros((2, 1, 6, 6))
    img[0, 0, 2, 3] = 5.0
    img[1, 0, 2:6, 0:3] = 1.0
    img[1, 0, 5, 2] = 3.0
    obj = Objects(local, np.zeros(2, int), np.zeros(2, int))
    plain = feature_columns(["intensity"], ["a"])
    assert not any("max_y" in c or "center_mass" in c for c in plain.index) and len(plain) == 15
    params = {"intensity": {"locations": True}}
    full = feature_columns(["intensity"], ["a"], params)
    assert len(full) == 19 and set(plain.index) < set(full.index)
    values = dict(zip(full.index, measure(obj, img, ["intensity"], [0], params).T))
    np.testing.assert_array_equal(values["intensity_max_y_a"], [2, 5])
    np.testing.assert_array_equal(values["intensity_max_x_a"], [3, 2])
    np.testing.assert_allclose(values["intensity_center_mass_y_a"], [2, (3 * (2 + 3 + 4) + 5 * 5) / 14])
    without = dict(zip(plain.index, measure(obj, img, ["intensity"], [0]).T))
    for name, v in without.items():
        np.testing.assert_array_equal(v, values[name])
