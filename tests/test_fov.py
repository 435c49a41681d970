"""Fields of view: convert (readers, metadata, z projection), chunk-independent processing, quality on real nuclei."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from scipy import ndimage as ndi
from scipzarr.converters import convert

import scipzarr
from scipzarr.config import resolve_config
from scipzarr.store import open_fov_store, validate_fov_store
from scipzarr.quality import match

from .conftest import SHARED_DATA, need
from .conftest import nuclei as _nuclei
from .conftest import run


@pytest.fixture(scope="module")
def fov_store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fov")
    tifffile.imwrite(tmp / "a.ome.tif", _nuclei(), ome=True,
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                               "Channel": {"Name": ["DNA", "GFP"]}})
    tifffile.imwrite(tmp / "b.ome.tif", _nuclei((600, 700), 30, seed=1, touching=1), ome=True,
                     metadata={"axes": "CYX", "Channel": {"Name": ["DNA", "GFP"]}})
    convert([tmp / "a.ome.tif", tmp / "b.ome.tif"], tmp / "f.zarr", kind="fov", chunk_size=256, progress=False)
    return tmp / "f.zarr"


def test_convert_z_stack_projection_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 4000, (4, 2, 300, 200), dtype=np.uint16)  # z, c, y, x
    tifffile.imwrite(tmp_path / "z.ome.tif", stack, ome=True,
                     metadata={"axes": "ZCYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.4,
                               "Channel": {"Name": ["DAPI", "Actin"]}})
    for how, expected in (("max", stack.max(axis=0)), ("mean", stack.mean(axis=0).astype(np.float32))):
        out = tmp_path / f"{how}.zarr"
        res = convert([tmp_path / "z.ome.tif"], out, kind="fov", chunk_size=128, z_projection=how, progress=False)
        assert res["fovs"] == 1 and res["channels"] == ["DAPI", "Actin"]
        np.testing.assert_array_equal(zarr.open_array(str(out / "0" / "s0"))[:], expected)
        assert validate_fov_store(out) == []
        ms = zarr.open_group(str(out / "0")).attrs["ome"]["multiscales"][0]
        assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [1.0, 0.4, 0.325]
        assert [a.get("unit") for a in ms["axes"]] == [None, "micrometer", "micrometer"]
        st = open_fov_store(out)
        assert st.fovs[0]["z_projection"] == how and st.channel_names == ["DAPI", "Actin"]
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = next(iter(Reader(parse_url(str(tmp_path / "max.zarr" / "0")))()))
    assert node.data[0].shape == (2, 300, 200)


def test_multi_series_file_gives_one_fov_per_series_and_auto_detects_it(tmp_path):
    rng = np.random.default_rng(1)
    series = [rng.integers(0, 100, (2, 64, 80), dtype=np.uint16) for _ in range(3)]
    with tifffile.TiffWriter(tmp_path / "m.ome.tif", ome=True) as tw:
        for s in series:
            tw.write(s, metadata={"axes": "CYX"})
    r = run("convert", tmp_path / "m.ome.tif", "-o", tmp_path / "m.zarr", "--kind", "auto", "--chunk-size", "32")
    assert r.returncode == 0, r.stderr
    st = open_fov_store(tmp_path / "m.zarr")
    assert [f["name"] for f in st.fovs] == ["m_s0", "m_s1", "m_s2"]
    for i, s in enumerate(series):
        np.testing.assert_array_equal(st.image(i).compute(), s)
    r = run("validate", tmp_path / "m.zarr")
    assert r.returncode == 0 and "valid" in r.stdout


def test_bad_fov_inputs_give_one_line_errors(tmp_path):
    tifffile.imwrite(tmp_path / "t.ome.tif", np.zeros((3, 2, 32, 32), np.uint16), ome=True,
                     metadata={"axes": "TCYX"})
    r = run("convert", tmp_path / "t.ome.tif", "-o", tmp_path / "t.zarr", "--kind", "fov")
    assert r.returncode == 2 and "3 time points" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "x.czi").write_bytes(b"not really a czi")
    r = run("convert", tmp_path / "x.czi", "-o", tmp_path / "x.zarr", "--kind", "fov")
    assert r.returncode == 2 and "x.czi" in r.stderr and "bioio" in r.stderr
    assert not (tmp_path / "t.zarr").exists() and not (tmp_path / "x.zarr").exists()


def _reference_labels(image: np.ndarray) -> np.ndarray:
    """The same segmentation on the whole image with scipy (no watershed): smoothing, Otsu, holes, size."""
    from skimage.filters import threshold_otsu

    s = ndi.gaussian_filter(image[0].astype(np.float64), 1.0, mode="reflect")
    mask = ndi.binary_fill_holes(s > threshold_otsu(s, nbins=256))
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(lab.ravel())
    keep = np.flatnonzero(sizes >= 10)
    keep = keep[keep > 0]
    lut = np.zeros(n + 1, np.int64)
    lut[keep] = np.arange(1, len(keep) + 1)
    return lut[lab]


@pytest.mark.parametrize("size", [None, 256])
def test_labels_equal_whole_image_segmentation(fov_store, size):
    cfg = resolve_config({"segmentation": {"split": {"method": "none"}}, "labels": {"name": f"plain{size}"}})
    scipzarr.process(fov_store, cfg, None, progress=False, chunk_size=size)
    image = zarr.open_array(str(fov_store / "0" / "s0"))[:]
    ours = zarr.open_array(str(fov_store / "0" / "labels" / f"plain{size}" / "s0"))[:]
    np.testing.assert_array_equal(ours, _reference_labels(image))


@pytest.mark.parametrize("method", ["otsu", "li"])
def test_data_set_threshold_is_the_same_whole_or_chunked(fov_store, method):
    # FOV a chunked (over the limit), b whole, against both chunked: one histogram over both FOVs either way
    tables = []
    for limit, size in ((700 * 700, None), (0, None), (None, 512)):
        over = {"threshold": {"method": method, "scope": "dataset"}}
        cfg = resolve_config({"segmentation": over, "features": {"families": ["intensity"]},
                              "labels": {"write": False}, **({} if limit is None else {"fov": {"whole_max_pixels": limit}})})
        tables.append(scipzarr.process(fov_store, cfg, None, progress=False, chunk_size=size))
    for t in tables[1:]:
        assert t.uns["scipzarr"]["thresholds"] == tables[0].uns["scipzarr"]["thresholds"]
        pd.testing.assert_frame_equal(tables[0].obs, t.obs)
        np.testing.assert_array_equal(tables[0].X, t.X)
    thr = tables[0].uns["scipzarr"]["thresholds"]
    assert thr[0] == thr[1] and 50 < thr[0] < 900 and tables[0].n_obs > 90


def test_same_table_and_labels_for_chunk_sizes_256_512_1024_and_whole(fov_store):
    families = ["shape", "intensity", "texture", "radial", "colocalization"]
    tables, labels = [], []
    for size in (None, 256, 512, 1024):  # None: each FOV whole in one task (both fit fov.whole_max_pixels)
        cfg = resolve_config({"features": {"families": families}, "labels": {"name": f"c{size}"}})
        tables.append(scipzarr.process(fov_store, cfg, None, progress=False, chunk_size=size))
        labels.append([zarr.open_array(str(fov_store / p / "labels" / f"c{size}" / "s0"))[:] for p in ("0", "1")])
    a = tables[0]
    assert a.n_obs > 90 and a.obs["touches_border"].dtype == bool
    for b, lab in zip(tables[1:], labels[1:]):
        pd.testing.assert_frame_equal(a.obs, b.obs)
        np.testing.assert_array_equal(a.X, b.X)
        for x, y in zip(labels[0], lab):
            np.testing.assert_array_equal(x, y)
    # obs: FOV, label, centroids in pixels and micrometres; obsm spatial = (x, y)
    first = a.obs[a.obs["fov"] == "a"].iloc[0]
    assert first["centroid_y_um"] == pytest.approx(first["centroid_y"] * 0.5)
    assert np.isnan(a.obs[a.obs["fov"] == "b"]["centroid_x_um"]).all()  # no pixel size in b
    np.testing.assert_array_equal(a.obsm["spatial"], a.obs[["centroid_x", "centroid_y"]].to_numpy())


def test_touching_nuclei_are_split_and_measured(fov_store):
    cfg = resolve_config({"features": {"families": ["shape"]}, "labels": {"name": "split"}})
    t = scipzarr.process(fov_store, cfg, None, progress=False)
    plain = resolve_config({"features": {"families": ["shape"]}, "segmentation": {"split": {"method": "none"}},
                            "labels": {"name": "nosplit"}})
    u = scipzarr.process(fov_store, plain, None, progress=False)
    assert t.n_obs >= u.n_obs + 4  # the four touching pairs became two nuclei each (random disks may add more)
    lab = zarr.open_array(str(fov_store / "0" / "labels" / "split" / "s0"))[:]
    plain_lab = zarr.open_array(str(fov_store / "0" / "labels" / "nosplit" / "s0"))[:]
    for k in range(3):  # the designed pairs, across chunk borders: one blob, two whole nuclei
        r, c = 100 + 300 * k, 255 + 256 * k
        two, one = np.unique(lab[r, c - 15:c + 16]), np.unique(plain_lab[r, c - 15:c + 16])
        assert len(two[two > 0]) == 2 and len(one[one > 0]) == 1
    areas = t.obs["area_px"].to_numpy()
    np.testing.assert_array_equal(areas, t[:, "shape_area"].X.ravel().astype(int))


def test_quality_on_real_nuclei_with_ground_truth(tmp_path):
    folder = need(SHARED_DATA / "dsb2018_nuclei_stardist")
    convert([folder / "img2d.tif"], tmp_path / "dsb.zarr", kind="fov", progress=False)
    scipzarr.process(tmp_path / "dsb.zarr", resolve_config({}), None, progress=False)
    pred = zarr.open_array(str(tmp_path / "dsb.zarr" / "0" / "labels" / "cells" / "s0"))[:]
    q = match(tifffile.imread(folder / "mask2d.tif"), pred, 0.5)
    # measured 2026-11-25: F1 0.714, mean matched IoU 0.770 (125 true nuclei, 116 found); see docs/fov.md
    assert q["f1"] >= 0.70 and q["mean_matched_iou"] >= 0.75, json.dumps(q)


def test_info_and_table_output_through_the_cli(fov_store, tmp_path):
    r = run("info", fov_store)
    assert r.returncode == 0 and "FOV store" in r.stdout and "2 levels" not in r.stderr
    assert "a  1100x1000 px, 0.5 um/px" in r.stdout
    r = run("process", fov_store, "-o", tmp_path / "t.h5ad", "--chunk-size", "512", "--features", "shape")
    assert r.returncode == 0, r.stderr
    assert "2 FOVs" in r.stdout
    r = run("info", tmp_path / "t.h5ad")
    assert r.returncode == 0 and "FOVs       2" in r.stdout and "shape 106" in r.stdout
    assert "0 FOVs without objects" in r.stdout and "objects    nuclei (106 columns)" in r.stdout
    r = run("report", tmp_path / "t.h5ad", "-o", tmp_path / "r.html")
    assert r.returncode == 2 and "a FOV table" in r.stderr and not (tmp_path / "r.html").exists()
    r = run("process", fov_store, "-o", tmp_path / "g.h5ad", "--features", "granularity")
    assert r.returncode == 2 and "granularity" in r.stderr and not (tmp_path / "g.h5ad").exists()


def test_plugin_segmenter_runs_per_chunk_and_gives_chunk_independent_labels(fov_store):
    plugin = {"name": "tests.segmenter_plugin:threshold_instances", "overlap": 16, "options": {"level": 500.0}}
    labels = []
    for size in (None, 256, 1024):
        cfg = resolve_config({"segmentation": {"plugin": plugin, "split": {"method": "none"}},
                              "features": {"families": ["shape"]}, "labels": {"name": f"p{size}"}})
        t = scipzarr.process(fov_store, cfg, None, progress=False, chunk_size=size)
        labels.append(zarr.open_array(str(fov_store / "0" / "labels" / f"p{size}" / "s0"))[:])
    np.testing.assert_array_equal(labels[0], labels[1])
    np.testing.assert_array_equal(labels[0], labels[2])
    image = zarr.open_array(str(fov_store / "0" / "s0"))[:]
    ref, _n = ndi.label(ndi.binary_fill_holes(image[0] > 500), structure=np.ones((3, 3)))
    sizes = np.bincount(ref.ravel())[1:]
    assert labels[0].max() == (sizes >= 10).sum() and t.n_obs > 90


@pytest.mark.parametrize("name,message", [
    ("cellpose", "cellpose"), ("no_such_module_xyz:fn", "cannot import no_such_module_xyz"),
    ("tests.segmenter_plugin:nope", "has no function nope"), ("justaname", "package.module:function")])
def test_unusable_plugins_give_one_line_errors(fov_store, tmp_path, name, message):
    import yaml

    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"segmentation": {"plugin": {"name": name}}}))
    r = run("process", fov_store, "-c", cfg, "-o", tmp_path / "t.h5ad")
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cell_bodies_grown_from_nuclei_are_chunk_independent_and_measured(fov_store):
    from skimage.segmentation import expand_labels

    cells, tables = [], []
    for size in (None, 256, 1024):
        cfg = resolve_config({"segmentation": {"cells": {"expand": 6}}, "features": {"families": ["shape", "intensity"]},
                              "labels": {"name": f"n{size}"}})
        tables.append(scipzarr.process(fov_store, cfg, None, progress=False, chunk_size=size))
        cells.append(zarr.open_array(str(fov_store / "0" / "labels" / f"n{size}_cells" / "s0"))[:])
    nuclei = zarr.open_array(str(fov_store / "0" / "labels" / "n1024" / "s0"))[:]
    np.testing.assert_array_equal(cells[0], cells[1])
    np.testing.assert_array_equal(cells[0], cells[2])
    np.testing.assert_array_equal(cells[1], expand_labels(nuclei, 6))
    assert (cells[1] > 0).sum() > (nuclei > 0).sum() * 1.5
    assert validate_fov_store(fov_store) == []
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    found = {n.metadata.get("name"): [type(sp).__name__ for sp in n.specs] for n in Reader(parse_url(str(fov_store / "0")))()}
    for name in ("nNone", "nNone_cells", "n256_cells"):  # what napari-ome-zarr shows: each as a Label layer
        assert "Label" in found[name] and "Multiscales" in found[name], found
    for t in tables[1:]:  # the cell bodies' columns too: the same whole or in any chunking
        pd.testing.assert_frame_equal(tables[0].obs, t.obs)
        np.testing.assert_array_equal(tables[0].X, t.X)
    t = tables[0]
    a = t[t.obs["fov"] == "a"]
    assert list(t.var["objects"].unique()) == ["nuclei", "cells"] and t.n_vars == 2 * (t.var["objects"] == "nuclei").sum()
    # exact values from the label images: areas and GFP sums of every cell body of FOV a
    image = zarr.open_array(str(fov_store / "0" / "s0"))[:]
    n = int(cells[2].max())
    np.testing.assert_array_equal(a[:, "cells_shape_area"].X.ravel(), np.bincount(cells[2].ravel(), minlength=n + 1)[1:])
    gfp = np.bincount(cells[2].ravel(), weights=image[1].ravel().astype(np.float64), minlength=n + 1)[1:]
    np.testing.assert_allclose(a[:, "cells_intensity_sum_GFP"].X.ravel(), gfp.astype(np.float32), rtol=1e-6)
    assert (a[:, "cells_shape_area"].X >= a[:, "shape_area"].X).all()


def test_fov_tables_do_not_depend_on_the_scheduler(fov_store):
    cfg = resolve_config({"features": {"families": ["shape", "intensity"]}, "labels": {"name": "sched"}})
    a = scipzarr.process(fov_store, cfg, None, progress=False)
    lab = zarr.open_array(str(fov_store / "0" / "labels" / "sched" / "s0"))[:]
    b = scipzarr.process(fov_store, cfg, None, progress=False, scheduler="processes")
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(lab, zarr.open_array(str(fov_store / "0" / "labels" / "sched" / "s0"))[:])
    assert a.n_obs > 90 and validate_fov_store(fov_store) == []


def test_one_file_per_channel_becomes_one_fov_on_real_data(tmp_path):
    folder = need(SHARED_DATA / "cellprofiler_examplehuman")
    files = sorted(folder.glob("*.tif"))
    r = run("convert", *files, "-o", tmp_path / "eh.zarr", "--kind", "fov", "--channel-pattern", r"d(\d)$",
            "--channels", "DNA,PH3,cellbody")
    assert r.returncode == 0, r.stderr
    st = open_fov_store(tmp_path / "eh.zarr")
    assert [f["name"] for f in st.fovs] == ["AS_09125_050116030001_D03f00"] and st.channel_names == ["DNA", "PH3",
                                                                                                      "cellbody"]
    s0 = zarr.open_array(str(tmp_path / "eh.zarr" / "0" / "s0"))[:]
    for k, f in enumerate(files):  # channel k is file d<k>, pixel for pixel
        np.testing.assert_array_equal(s0[k], tifffile.imread(f))
    cfg = resolve_config({"segmentation": {"channels": ["DNA"], "cells": {"expand": 10}},
                          "features": {"families": ["shape", "intensity"]}})
    t = scipzarr.process(tmp_path / "eh.zarr", cfg, None, progress=False)
    # CellProfiler's ExampleHuman: ~300 nuclei (a plain Otsu gives ~285 merged objects; ours splits them)
    assert 280 <= t.n_obs <= 380, t.n_obs
    ph3 = t[:, "intensity_mean_PH3"].X.ravel()
    assert (ph3 > 4 * np.median(ph3)).sum() >= 3  # a few mitotic (PH3-bright) nuclei stand out
    assert (t[:, "cells_shape_area"].X > t[:, "shape_area"].X).mean() > 0.9


@pytest.mark.parametrize("pattern,message", [
    (r"d\d", "needs exactly one group"), (r"x(\d)", "does not match --channel-pattern"),
    (r"(\d)$", "also comes from"), ("d([", "not a regular expression")])
def test_bad_channel_patterns_give_one_line_errors(tmp_path, pattern, message):
    for name in ("a_d0", "a_d1", "b_d0"):
        tifffile.imwrite(tmp_path / f"{name}.tif", np.zeros((40, 30), np.uint16))
    if pattern == r"(\d)$":  # two files give channel 0 of the same FOV name
        tifffile.imwrite(tmp_path / "a_e0.tif", np.zeros((40, 30), np.uint16))
        pattern = r"[de](\d)$"
    r = run("convert", *sorted(tmp_path.glob("*.tif")), "-o", tmp_path / "o.zarr", "--kind", "fov",
            "--channel-pattern", pattern)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_a_fov_missing_a_channel_file_is_named(tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a_d0", "a_d1", "b_d0"):
        tifffile.imwrite(tmp_path / "in" / f"{name}.tif", np.zeros((40, 30), np.uint16))
    r = run("convert", tmp_path / "in", "-o", tmp_path / "o.zarr", "--kind", "fov", "--channel-pattern", r"d(\d)")
    assert r.returncode == 2 and "FOV b: no file for channel 'd1'" in r.stderr, r.stderr


@pytest.mark.parametrize("size", [None, 128])
def test_a_fov_without_objects_is_listed_not_dropped(tmp_path, size):
    tifffile.imwrite(tmp_path / "a.tif", _nuclei((300, 260), 10, seed=1, touching=0))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((2, 300, 260), np.uint16))
    convert([tmp_path / "a.tif", tmp_path / "b.tif"], tmp_path / "s.zarr", kind="fov", progress=False)
    cfg = resolve_config({"segmentation": {"cells": {"expand": 4}}})
    t = scipzarr.process(tmp_path / "s.zarr", cfg, tmp_path / "t.h5ad", progress=False, chunk_size=size)
    counts = t.obs["fov"].value_counts(sort=False).to_dict()
    assert counts["b"] == 0 and counts["a"] == t.n_obs >= 8
    assert t.uns["scipzarr"]["objects_per_fov"] == counts
    assert t.uns["scipzarr"]["thresholds"][1] == 0.0  # a constant FOV: its value, nothing above it
    assert zarr.open_array(str(tmp_path / "s.zarr" / "1" / "labels" / "cells" / "s0"))[:].max() == 0


@pytest.mark.parametrize("attrs, expected", [
    ('PhysicalSizeX="0.5" PhysicalSizeY="0.25"', (0.25, 0.5)),                      # µm by default
    ('PhysicalSizeX="500" PhysicalSizeXUnit="nm" PhysicalSizeY="0.001" PhysicalSizeYUnit="mm"', (1.0, 0.5)),
    ('PhysicalSizeX="0.00005" PhysicalSizeXUnit="cm" PhysicalSizeY="5000" PhysicalSizeYUnit="Å"', (0.5, 0.5)),
    ('PhysicalSizeX="2" PhysicalSizeXUnit="pixel" PhysicalSizeY="abc"', (None, None)),  # not a length; not a number
    ('PhysicalSizeX="0" PhysicalSizeY="-1"', (None, None)),                            # not positive
])
def test_pixel_sizes_from_ome_xml_in_micrometres(attrs, expected):
    """An OME-TIFF's pixel size goes into the store's scale in micrometres: converted from any OME length unit;
    a size that is not a positive length (an unknown unit, text, 0) is left out, not guessed."""
    from scipzarr.converters.fov import _ome_info

    xml = (f'<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" '
           f'DimensionOrder="XYCZT" Type="uint16" SizeX="4" SizeY="4" SizeC="1" SizeZ="1" SizeT="1" {attrs}>'
           '<Channel ID="Channel:0" Name="DNA"/></Pixels></Image></OME>')
    names, sizes = _ome_info(xml, 0)
    assert names == ["DNA"]
    if None in expected:
        assert sizes == expected
    else:
        assert sizes == pytest.approx(expected)
