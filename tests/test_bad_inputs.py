"""Every bad input: one clear error line, a non-zero exit, no partial output, inputs untouched."""

import json
import resource
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import zarr

import scipzarr

from .conftest import flat_events, tree_digest
from .conftest import assert_one_line_error, run


@pytest.fixture
def store_path(tmp_path):
    ev, _ = flat_events(8, size=16, channels=2)
    np.save(tmp_path / "e.npy", ev)
    scipzarr.convert([tmp_path / "e.npy"], tmp_path / "s.zarr", chunk_tiles=2, progress=False)
    return tmp_path / "s.zarr"


def _leftovers(folder, name):
    return [p.name for p in folder.iterdir() if name in p.name]


def test_zero_size_image(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", np.zeros((2, 8, 8), np.uint16))
    tifffile.imwrite(src / "b.tif", np.zeros((2, 0, 8), np.uint16))
    r = run("convert", src, "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "b.tif")
    assert _leftovers(tmp_path, "o.zarr") == []


def test_one_pixel_and_all_zero_events_are_processed_without_error(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "one.tif", np.full((2, 1, 1), 7, np.uint16))
    tifffile.imwrite(src / "zero.tif", np.zeros((2, 12, 12), np.uint16))
    img = np.zeros((2, 12, 12), np.uint16)
    img[:, 3:9, 3:9] = 500
    tifffile.imwrite(src / "square.tif", img)
    assert run("convert", src, "-o", tmp_path / "o.zarr", "-q").returncode == 0
    (tmp_path / "c.yml").write_text("segmentation: {smoothing_sigma: 0}\n")
    r = run("process", tmp_path / "o.zarr", "-c", tmp_path / "c.yml", "-o", tmp_path / "t.h5ad")
    assert r.returncode == 0, r.stderr
    import anndata as ad

    t = ad.read_h5ad(tmp_path / "t.h5ad")
    assert t.obs["event_id"].tolist() == ["square"]
    assert t.to_df()["shape_area"].tolist() == [36.0]
    assert t.uns["scipzarr"]["events_without_objects"] == 2
    assert np.isfinite(t.X).all()


def test_mixed_dtypes(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    tifffile.imwrite(src / "a.tif", np.zeros((2, 8, 8), np.uint16))
    tifffile.imwrite(src / "b.tif", np.zeros((2, 8, 8), np.uint8))
    r = run("convert", src, "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "mixed pixel types", "one bit depth")
    assert _leftovers(tmp_path, "o.zarr") == []


@pytest.mark.parametrize("edit,needle", [
    (lambda meta: meta.update(shape=[2, 10**12, 10**12]), "the store is damaged"),
    (lambda meta: meta["chunk_grid"]["configuration"].update(chunk_shape=[2, 10**9, 10**9]), "the store is damaged"),
])
def test_absurd_array_metadata_is_refused_without_allocating(store_path, tmp_path, edit, needle):
    meta_file = store_path / "s0" / "zarr.json"
    meta = json.loads(meta_file.read_text())
    edit(meta)
    meta_file.write_text(json.dumps(meta))
    before = tree_digest(store_path)
    r = run("process", store_path, "-o", tmp_path / "t.h5ad")
    assert_one_line_error(r, "s.zarr", needle)
    assert tree_digest(store_path) == before and not (tmp_path / "t.h5ad").exists()
    assert run("validate", store_path).returncode == 1


def test_absurd_mosaic_metadata_is_refused(store_path, tmp_path):
    root = zarr.open_group(str(store_path), mode="r+")
    attrs = dict(root.attrs["scipzarr"])
    attrs["mosaic"] = dict(attrs["mosaic"], chunk_tiles=1000, tile_size=[60000, 60000])
    root.attrs["scipzarr"] = attrs
    r = run("process", store_path, "-o", tmp_path / "t.h5ad")
    assert_one_line_error(r, "too large to process", "--chunk-tiles")
    attrs["mosaic"] = dict(attrs["mosaic"], n_events=10**15)
    root.attrs["scipzarr"] = attrs
    r = run("info", store_path)
    assert_one_line_error(r, "mosaic.n_events")


def test_zarr_that_is_not_ngff(tmp_path):
    g = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    g.create_array("x", shape=(4, 4), dtype="u2")
    r = run("process", tmp_path / "plain.zarr", "-o", tmp_path / "t.h5ad")
    assert_one_line_error(r, "plain.zarr", "not a scipzarr IFC store")
    r = run("validate", tmp_path / "plain.zarr")
    assert r.returncode == 1 and "not a scipzarr IFC store" in r.stderr


def test_read_only_output_location(tmp_path):
    np.save(tmp_path / "e.npy", flat_events(2, size=16)[0])
    r = run("convert", tmp_path / "e.npy", "-o", "/proc/scipzarr-test.zarr")
    assert_one_line_error(r, "/proc", "not writable", "choose another output location")


def test_full_disk_leaves_no_partial_output(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "e.npy", rng.integers(0, 60000, (400, 3, 40, 40), dtype=np.uint16))  # incompressible
    before = tree_digest(tmp_path / "e.npy")
    limit = 256 * 1024  # a write beyond 256 KiB in one file fails like a full disk (EFBIG)

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    r = subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(tmp_path / "e.npy"), "-o",
                        str(tmp_path / "o.zarr"), "--chunk-tiles", "8"], capture_output=True, text=True,
                       preexec_fn=small_disk, timeout=300)
    assert_one_line_error(r, "free disk space")
    assert _leftovers(tmp_path, "o.zarr") == []
    assert tree_digest(tmp_path / "e.npy") == before
