"""Chunked labelling and the FOV kernels equal scipy on the whole image, whatever the chunking."""

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from scipzarr.kernels import components
from scipzarr.kernels import segment as seg
from scipzarr.kernels.batch import fill_holes
from scipzarr.pipeline import chunked


def _mask(seed, shape=(230, 170)):
    return ndi.gaussian_filter(np.random.default_rng(seed).random(shape), 2) > 0.52


@pytest.mark.parametrize("connectivity", [1, 2])
@pytest.mark.parametrize("chunks", [(37, 41), (64, 170), (230, 23)])
def test_chunked_labels_equal_scipys_for_any_chunking(connectivity, chunks):
    mask = _mask(connectivity)
    ref, n = ndi.label(mask, structure=ndi.generate_binary_structure(2, connectivity))
    lab, table = chunked.label(da.from_array(mask, chunks=chunks), connectivity=connectivity)
    np.testing.assert_array_equal(lab.compute(), ref)
    assert len(table) == n > 20
    col = {name: k for k, name in enumerate(components.COLUMNS)}
    np.testing.assert_array_equal(table[:, col["count"]], np.bincount(ref.ravel())[1:])
    boxes = ndi.find_objects(ref)
    np.testing.assert_array_equal(table[:, col["ymin"]], [b[0].start for b in boxes])
    np.testing.assert_array_equal(table[:, col["xmax"]], [b[1].stop - 1 for b in boxes])
    first = np.unique(ref.ravel(), return_index=True)[1][1:]
    np.testing.assert_array_equal(table[:, col["first"]], first)


def test_min_size_drops_small_objects_and_renumbers_like_the_whole_image_kernel():
    mask = _mask(5)
    lab, table = chunked.label(da.from_array(mask, chunks=50), connectivity=2, min_size=30)
    whole, wtable = components.label_whole(mask, 30)
    np.testing.assert_array_equal(lab.compute(), whole)
    np.testing.assert_array_equal(table, wtable)
    assert table[:, 0].min() >= 30 and lab.compute().max() == len(table)


def test_fill_holes_equals_scipy():
    for seed in range(10):
        mask = _mask(seed)
        np.testing.assert_array_equal(fill_holes(mask), ndi.binary_fill_holes(mask))


@pytest.mark.parametrize("chunk", [64, 100, 300])
def test_halo_reads_equal_dask_map_overlap_and_the_whole_image(tmp_path, chunk):
    import zarr


    image = (np.random.default_rng(chunk).random((2, 230, 170)) * 1000).astype(np.uint16)
    zarr.create_array(str(tmp_path / "a.zarr"), data=image, chunks=(2, 128, 128))
    sigma = 2.0
    r = seg.smoothing_radius(sigma)
    ours = chunked.halo_map(str(tmp_path / "a.zarr"), (230, 170), chunk, r, lambda b: seg.smooth_plane(b, sigma),
                    np.float64, channels=[0, 1]).compute()
    theirs = da.map_overlap(lambda b: seg.smooth_plane(b, sigma), da.from_array(image, chunks=(2, chunk, chunk)),
                            depth={0: 0, 1: r, 2: r}, boundary="none", drop_axis=0, dtype=np.float64).compute()
    whole = seg.smooth_plane(image, sigma)
    np.testing.assert_array_equal(ours, whole)
    np.testing.assert_array_equal(theirs, whole)


def test_batch_hole_filling_equals_scipy_per_event_plane():
    from scipzarr.kernels.batch import plane_structure

    rng = np.random.default_rng(3)
    filled = 0
    for k in range(6):
        mask = ndi.gaussian_filter(rng.random((12, 50, 40)), (0, 2, 2)) > 0.45 + 0.01 * k
        for connectivity in (1, 2):
            structure = plane_structure(connectivity)
            ours = fill_holes(mask, connectivity)
            np.testing.assert_array_equal(ours, ndi.binary_fill_holes(mask, structure=structure))
            filled += int(ours.sum() - mask.sum())
    assert filled > 100  # there were holes to fill
