"""Segmentation kernels: thresholds equal scikit-image's, padding never matters."""

import numpy as np
import pytest
from skimage.filters import threshold_li, threshold_otsu

from scipzarr.kernels import normalize as norm
from scipzarr.kernels import segment as seg
from scipzarr.kernels import threshold as thr_k
from scipzarr.kernels.batch import valid_mask


def _images(n=12, size=32, seed=0):
    rng = np.random.default_rng(seed)
    img = rng.gamma(2.0, 10.0, (n, size, size))
    img[:, 8:20, 10:24] += 80
    return img


def test_otsu_equals_skimage_per_event():
    img = _images()
    valid = np.ones(img.shape, bool)
    valid[3, :, 25:] = False  # one event smaller than its tile
    t = thr_k.threshold_otsu(img, valid)
    for e in range(img.shape[0]):
        assert t[e] == threshold_otsu(img[e][valid[e]])


def test_otsu_constant_and_empty_events():
    img = np.full((2, 5, 5), 7.0)
    valid = np.ones(img.shape, bool)
    valid[1] = False
    t = thr_k.threshold_otsu(img, valid)
    assert t[0] == 7.0 and np.isinf(t[1])


def test_li_equals_skimage_per_event():
    img = _images(seed=1)
    valid = np.ones(img.shape, bool)
    t = thr_k.threshold_li(img, valid)
    for e in range(img.shape[0]):
        assert t[e] == pytest.approx(threshold_li(img[e]), rel=1e-9)


def test_dataset_otsu_from_histogram_equals_skimage_on_all_pixels():
    img = _images(seed=2)
    valid = np.ones(img.shape, bool)
    lo, hi = img.min(), img.max()
    counts, edges, _, _ = thr_k.event_histograms(img, valid, lo=np.full(len(img), lo), hi=np.full(len(img), hi))
    centers = (edges[0, :-1] + edges[0, 1:]) / 2
    t = thr_k.otsu_from_histograms(counts.sum(axis=0)[None], centers[None])[0]
    assert t == threshold_otsu(img)


def test_segment_areas_fill_min_size_and_largest():
    img = np.zeros((2, 20, 20))
    img[0, 2:8, 2:8] = 1
    img[0, 4:6, 4:6] = 0        # hole, filled
    img[0, 12:14, 12:14] = 1    # small object (4 px)
    img[1, 1:4, 1:4] = 1        # 9 px
    img[1, 10:15, 10:15] = 1    # 25 px
    valid = np.ones(img.shape, bool)
    lab, counts = seg.segment(img, valid, np.full(2, 0.5), fill=True, min_size=5)
    assert counts.tolist() == [1, 2]
    assert (lab[0] == 1).sum() == 36
    assert sorted(np.bincount(lab[1].ravel())[1:].tolist()) == [9, 25]
    lab, counts = seg.segment(img, valid, np.full(2, 0.5), fill=False, keep="largest")
    assert counts.tolist() == [1, 1]
    assert (lab[0] == 1).sum() == 32 and (lab[1] == 1).sum() == 25


def test_padding_never_changes_segmentation():
    img = _images(n=6, size=30, seed=4)
    ones = np.ones(img.shape, bool)
    padded = np.zeros((6, 40, 44))
    padded[:, 4:34, 9:39] = img
    valid = valid_mask((40, 44), np.full(6, 4), np.full(6, 9), np.full(6, 30), np.full(6, 30))
    a = seg.smooth(img, ones, 1.5)
    b = seg.smooth(padded, valid, 1.5)
    np.testing.assert_array_equal(a, b[:, 4:34, 9:39])
    np.testing.assert_array_equal(thr_k.threshold_otsu(a, ones), thr_k.threshold_otsu(b, valid))
    np.testing.assert_array_equal(thr_k.threshold_li(a, ones), thr_k.threshold_li(b, valid))


def test_percentile_from_exact_histogram_equals_numpy():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 4000, (5, 2, 10, 10)).astype(np.uint16)
    valid = np.ones((5, 10, 10), bool)
    valid[:, :, 7:] = False
    low, high, bins = norm.histogram_spec(np.uint16)
    h = norm.channel_histograms(batch, valid, np.full(2, low), np.full(2, high), bins)
    centers = np.arange(bins, dtype=float)
    for ch in range(2):
        vals = batch[:, ch][valid]
        for q in (0.5, 1, 37.3, 99, 99.9):
            assert norm.percentile_from_histogram(h[ch], centers, q) == pytest.approx(np.percentile(vals, q), rel=1e-12)


def test_normalize_apply_scales_and_clips():
    batch = np.array([[[[0, 50], [100, 200]]]], dtype=np.uint16)
    valid = np.ones((1, 2, 2), bool)
    out = norm.apply(batch, valid, np.array([[50.0, 150.0]]), clip=True)
    assert out[0, 0].tolist() == [[0.0, 0.0], [0.5, 1.0]]
    mm = norm.channel_minmax(batch, valid)
    assert mm[0, 0].tolist() == [0.0, 200.0]
