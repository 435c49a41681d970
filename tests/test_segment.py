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


def _channel_masks_reference(images, valid, sigma, k, both, fraction, fill, min_size):
    """The background-referenced masks written with scipy.ndimage and numpy, step by step: normalized
    Gaussian smoothing, the 2-px border ring of the valid region (erosion by a cross), its median and
    1.4826 x MAD, the departure threshold, binary_fill_holes, 8-connected pieces by size."""
    from scipy import ndimage as ndi

    n, c = images.shape[:2]
    masks = np.zeros(images.shape, bool)
    bg, noise = np.zeros((n, c)), np.zeros((n, c))
    for e in range(n):
        v = valid[e]
        ring = v & ~ndi.binary_erosion(v, ndi.generate_binary_structure(2, 1), iterations=2, border_value=0)
        den = ndi.gaussian_filter(v.astype(float), sigma, mode="constant") if sigma > 0 else v.astype(float)
        for ch in range(c):
            img = np.where(v, images[e, ch], 0.0)
            num = ndi.gaussian_filter(img, sigma, mode="constant") if sigma > 0 else img
            sm = np.where(v, num / np.maximum(den, 1e-300), 0.0)
            bg[e, ch] = np.median(sm[ring]) if ring.any() else 0.0
            mad = np.median(np.abs(sm[ring] - bg[e, ch])) if ring.any() else 0.0
            noise[e, ch] = max(1.4826 * mad, 1e-12)
            dev = np.where(v, (sm - bg[e, ch]) / noise[e, ch], 0.0)
            if both[ch]:
                m = (dev < -k) | (dev > k)
            else:
                m = (dev > k) & ((dev >= fraction * dev.max()) if fraction > 0 else True)
            m &= v
            if fill:
                m = ndi.binary_fill_holes(m) & v
            if min_size > 1:
                lab, _ = ndi.label(m, structure=np.ones((3, 3)))
                m = (np.bincount(lab.ravel()) >= min_size)[lab] & (lab > 0)
            masks[e, ch] = m
    return masks, bg, noise


@pytest.mark.parametrize("fill, min_size, fraction, sigma", [(True, 10, 0.1, 1.0), (False, 10, 0.0, 1.0),
                                                               (True, 1, 0.3, 2.0), (False, 0, 0.1, 0.0)])
def test_channel_masks_equal_the_scipy_steps(fill, min_size, fraction, sigma):
    """The compiled channel masks (kernels._masks) equal the same steps written with scipy, bit for bit, on
    noisy synthetic events with ragged valid regions, brightfield-like (both ways) and upward channels."""
    from scipzarr.kernels.segment import channel_masks
    from scipzarr.synthetic import make_events

    ev, _ = make_events(24, channels=3, size=48, seed=3, noise=20.0)
    images = np.stack(ev).astype(np.float64)
    images[:, 0] = 1000.0 - images[:, 0] * 0.5 + np.random.default_rng(1).normal(0, 15, images[:, 0].shape)
    images[:, 0, :, :2] = 900.0  # a darker strip at the border of the brightfield-like channel
    rng = np.random.default_rng(2)
    h, w = rng.integers(12, 49, 24), rng.integers(12, 49, 24)
    valid = valid_mask((48, 48), (48 - h) // 2, rng.integers(0, 48 - w + 1), h, w)
    valid[0] = False  # an empty event
    valid[5:9] = True  # whole events in a row, and a ragged region repeated: the kernel keeps the smoothed
    valid[10:13] = valid[9]  # weights and the ring of the previous event for these
    images = np.where(valid[:, None], images, 0.0)
    both = [True, False, False]
    got = channel_masks(images, valid, sigma, 5.0, both, fraction=fraction, fill=fill, min_size=min_size)
    want = _channel_masks_reference(images, valid, sigma, 5.0, both, fraction, fill, min_size)
    assert want[0].sum() > 1000 and want[0][:, 0].sum() > 0  # something to compare
    for g, r in zip(got, want):
        np.testing.assert_array_equal(g, r)


def test_bucket_median_equals_numpy_median():
    """The channel masks' median (bucket selection, kernels._masks._median) equals np.median on rings of noise,
    ties, one repeated value, negative values, spans too narrow or too wide for buckets, and (through the
    selection among all) with NaN or infinities; odd and even counts."""
    from scipzarr.kernels._masks import _median

    rng = np.random.default_rng(5)
    counts, picked = np.empty(256, np.int64), np.empty(1000)
    cases = [rng.normal(100, 5, 704), rng.normal(100, 5, 703), rng.integers(0, 3, 600).astype(float),
             np.full(51, 7.25), np.full(50, 7.25), rng.exponential(3, 400) - 2, np.array([3.0]), np.array([1.0, 2.0]),
             np.where(rng.random(300) < 0.5, 1e-320, 2e-320), np.array([-1e308, 1e308, 0.0, 5.0]),
             rng.normal(0, 1e-300, 99), np.array([1.0, np.inf, 2.0, 3.0]), np.array([1.0, np.nan, 2.0])]
    for a in cases:
        assert _median(a.copy(), len(a), counts, picked) == pytest.approx(np.median(a), rel=0, abs=0, nan_ok=True)
    assert _median(np.zeros(3), 0, counts, picked) == 0.0  # no values (an event without a ring)


@pytest.mark.parametrize("fill", [True, False])
@pytest.mark.parametrize("min_size", [0, 10, 40])
def test_segment_mask_equals_scipy_labelling(fill, min_size):
    """The compiled labelling (runs joined by union-find) against scipy per event: binary_fill_holes inside
    the valid region, 8-connected ndimage.label, areas by bincount; all objects numbered in raster order, or
    the largest (ties: the first in raster order), and the pieces before keeping it."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(min_size)
    mask = ndi.gaussian_filter(rng.random((120, 50, 50)), (0, 2, 2)) > 0.52
    h, w = rng.integers(15, 51, 120), rng.integers(15, 51, 120)
    valid = valid_mask((50, 50), (50 - h) // 2, rng.integers(0, 50 - w + 1), h, w)
    mask &= valid
    mask[:3] = False  # events without any foreground
    lab_all, n_all, parts = seg.segment_mask(mask, valid, fill=fill, min_size=min_size, keep="all", parts=True)
    lab_big, n_big = seg.segment_mask(mask, valid, fill=fill, min_size=min_size, keep="largest")
    assert parts.max() >= 3 and n_all.tolist() == parts.tolist() and n_big.max() == 1
    for e in range(len(mask)):
        m = (ndi.binary_fill_holes(mask[e]) & valid[e]) if fill else mask[e]
        ref, _ = ndi.label(m, structure=np.ones((3, 3)))  # numbered in raster order of the first pixel
        areas = np.bincount(ref.ravel())
        kept = np.flatnonzero(areas[1:] >= max(min_size, 1)) + 1
        renum = np.zeros(len(areas), np.int32)
        renum[kept] = np.arange(1, len(kept) + 1)
        np.testing.assert_array_equal(lab_all[e], renum[ref])
        big = np.zeros(len(areas), np.int32)
        if len(kept):
            big[kept[np.argmax(areas[kept])]] = 1
        np.testing.assert_array_equal(lab_big[e], big[ref])


def test_framed_planes_edt_equals_scipy():
    """The compiled distance transform of object crops (framed by background) equals scipy's exact one."""
    from scipy import ndimage as ndi

    from scipzarr.kernels.batch import framed_planes_edt

    rng = np.random.default_rng(11)
    planes = ndi.gaussian_filter(rng.random((60, 33, 41)), (0, 3, 3)) > 0.47
    planes[:, [0, -1], :] = False
    planes[:, :, [0, -1]] = False
    planes[0, 1:-1, 1:-1] = True  # one plane: only its frame is background
    got = framed_planes_edt(planes)
    want = np.stack([ndi.distance_transform_edt(p) for p in planes])
    assert planes.sum() > 20_000
    np.testing.assert_array_equal(got, want)


def test_object_edt_equals_scipy_per_object():
    """The distance of each object pixel to the nearest pixel outside its object (kernels.batch.object_edt:
    each object in its own box grown by one pixel, the tile's border counting as outside) equals scipy's exact
    transform of that object alone in its tile padded by background; pixels in raster order per object."""
    from scipy import ndimage as ndi

    from scipzarr.kernels.batch import object_edt

    rng = np.random.default_rng(12)
    mask = ndi.gaussian_filter(rng.random((8, 30, 36)), (0, 2.5, 2.5)) > 0.5
    local, _ = seg.segment_mask(mask, np.ones(mask.shape, bool), fill=False, min_size=1, keep="all")
    counts = local.reshape(len(local), -1).max(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    labels = np.where(local > 0, local + offsets[:, None, None], 0)
    n = int(labels.max())
    event, boxes, want = [], [], []
    for m in range(1, n + 1):
        e = int(np.flatnonzero((labels == m).any(axis=(1, 2)))[0])
        ys, xs = np.nonzero(labels[e] == m)
        event.append(e)
        boxes.append([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1])
        alone = np.pad(labels[e] == m, 1)  # beyond the tile: outside
        want.append(ndi.distance_transform_edt(alone)[1:-1, 1:-1][ys, xs])  # nonzero: raster order
    want = np.concatenate(want)
    got = object_edt(labels, np.array(event), np.array(boxes), len(want))
    assert n > 20 and (np.array(boxes)[:, :2] == 0).any() and (np.array(boxes)[:, 2] == 30).any()  # at the border
    np.testing.assert_array_equal(got, want)


def test_attribute_gives_mask_pixels_their_events_object():
    """kernels.segment.attribute: with at most one object per event, each channel-mask pixel gets that object
    (1) and nothing in an event without objects; with two objects in an event, each mask pixel gets the nearer
    (ties: the first in raster order)."""
    masks = np.zeros((3, 2, 6, 6), bool)
    masks[:, 0, 1:4, 1:4] = True
    masks[:, 1, 5, :] = True
    local = np.zeros((3, 6, 6), np.int32)
    local[0, 2, 2] = 1
    local[2, 0, 0] = 1
    out = seg.attribute(masks, local, np.array([1, 0, 1]))
    assert out.dtype == np.int32 and out.shape == masks.shape
    assert out[:, 0].flags.c_contiguous and out[:, 1].flags.c_contiguous  # each channel whole: no copies
    np.testing.assert_array_equal(out[0], masks[0].astype(np.int32))
    assert not out[1].any()
    np.testing.assert_array_equal(out[2], masks[2].astype(np.int32))
    local[2, 0, 5] = 2  # a second object at the top right of event 2
    out = seg.attribute(masks, local, np.array([1, 0, 2]))
    assert out.dtype == np.int32 and out[:, 1].flags.c_contiguous
    np.testing.assert_array_equal(out[2, 1, 5], [1, 1, 1, 2, 2, 2])  # column 2.5 is the tie line: 0-2 and 3-5
    np.testing.assert_array_equal(out[0], masks[0].astype(np.int32))


@pytest.mark.parametrize("label_dtype", [np.uint32, np.uint64])
def test_label_tiles_equal_the_array_formulation(label_dtype):
    """kernels._tiles.label_tiles_host: each event's object numbers, then each channel mask's, laid out as the
    chunk's k x k tiles (event e at row e // k, column e % k), each set pixel as base[e] + number: the same as
    ``astype``, a masked ``add`` and the mosaic's transposed copy (what the pipeline did before)."""
    from scipzarr.kernels._tiles import label_tiles_host
    from scipzarr.store.mosaic import Mosaic

    rng = np.random.default_rng(4)
    k, th, tw = 3, 5, 7
    local = (rng.integers(0, 4, (k * k, th, tw)) * (rng.random((k * k, th, tw)) < 0.5)).astype(np.int32)
    local[4] = 0  # an event without objects
    masks = (rng.integers(0, 3, (k * k, 2, th, tw)) * (rng.random((k * k, 2, th, tw)) < 0.3)).astype(np.int32)
    stride = 2025
    base = (np.arange(100, 100 + k * k, dtype=np.int64) * stride).astype(label_dtype)
    if label_dtype == np.uint64:
        base += np.uint64(2**33)  # labels past 32 bits
    out = label_tiles_host(local, np.ascontiguousarray(np.moveaxis(masks, 1, 0)), base, k,
                           np.full((3, k * th, k * tw), 99, label_dtype))
    mosaic = Mosaic.plan(k * k, 1, (th, tw), k)
    for i, plane in enumerate([local, masks[:, 0], masks[:, 1]]):
        want = plane.astype(label_dtype)
        np.add(want, base[:, None, None], out=want, where=plane > 0)
        np.testing.assert_array_equal(out[i], mosaic.from_batch(want))
        assert out[i].dtype == label_dtype
    # event 5 (tile row 1, column 2): its first object pixel in the cell labels is base + its number
    y, x = np.argwhere(local[5] > 0)[0]
    assert out[0, th + y, 2 * tw + x] == base[5] + local[5, y, x]
    assert not out[0, th:2 * th, tw:2 * tw].any()  # event 4 has no objects
