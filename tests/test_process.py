"""End to end: known ground truth, chunk and padding invariance, labels in the store."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from skimage.measure import regionprops

import scipzarr
from scipzarr import store
from scipzarr.config import resolve_config
from scipzarr.table import read_table

from .conftest import flat_events

EXACT = {"segmentation": {"smoothing_sigma": 0, "min_size": 0}}


def _convert(tmp_path, events, name, k, **kw):
    src = tmp_path / "events.npy"
    if not src.exists():
        np.save(src, events)
    scipzarr.convert([src], tmp_path / f"{name}.zarr", chunk_tiles=k, progress=False, **kw)
    return tmp_path / f"{name}.zarr"


def test_features_match_ground_truth(tmp_path):
    events, masks = flat_events(30, size=40, channels=2, seed=1)
    path = _convert(tmp_path, events, "gt", 4)
    a = scipzarr.process(path, EXACT, tmp_path / "gt.h5ad", progress=False)
    assert a.n_obs == 30 and a.obs["object"].tolist() == [1] * 30
    assert a.obs["event_id"].tolist() == [str(i) for i in range(30)]
    assert list(a.obs.index[:2]) == ["0_1", "1_1"]
    assert a.X.dtype == np.float32
    df = a.to_df()
    for i in range(30):
        r = regionprops(masks[i].astype(int))[0]
        assert df["shape_area"].iloc[i] == masks[i].sum()
        assert df["shape_perimeter"].iloc[i] == pytest.approx(r.perimeter, rel=1e-6)
        assert df["shape_solidity"].iloc[i] == pytest.approx(r.solidity, rel=1e-6)
        assert df["shape_centroid_y"].iloc[i] == pytest.approx(r.centroid[0], rel=1e-6)
        assert df["intensity_mean_ch0"].iloc[i] == 1000
        vals = events[i, 1][masks[i]].astype(float)
        assert df["intensity_sum_ch1"].iloc[i] == pytest.approx(vals.sum(), rel=1e-6)
        assert df["intensity_median_ch1"].iloc[i] == pytest.approx(np.median(vals), rel=1e-6)
    assert set(a.var["family"]) == {"shape", "intensity", "masks"}
    assert a.var.loc["intensity_q75_ch1", "channel"] == "ch1"
    meta = a.uns["scipzarr"]
    assert meta["events"] == 30 and meta["objects"] == 30 and meta["events_without_objects"] == 0
    assert "dask" in meta["versions"] and '"smoothing_sigma": 0' in meta["config"]
    import anndata as ad

    back = ad.read_h5ad(tmp_path / "gt.h5ad")  # anndata alone reads it
    pd.testing.assert_frame_equal(back.obs, a.obs)
    np.testing.assert_array_equal(back.X, a.X)
    assert back.uns["scipzarr"]["objects"] == 30


def test_a_table_built_from_the_work_folder_equals_one_built_in_memory(tmp_path):
    # with an output, each chunk's features stay in the run's work folder until the table is built (the
    # results held in memory during the run carry only the obs columns); without one, they come back in memory
    events, masks = flat_events(20, size=40, channels=2, seed=4)
    path = _convert(tmp_path, events, "rows", 2)  # 5 chunks of 4 events
    kept = scipzarr.process(path, EXACT, None, progress=False)
    written = scipzarr.process(path, EXACT, tmp_path / "rows.h5ad", progress=False)
    assert written.n_obs == kept.n_obs == 20 and written.X.shape[1] == kept.X.shape[1] > 100
    np.testing.assert_array_equal(written.X, kept.X)
    pd.testing.assert_frame_equal(written.obs, kept.obs)
    assert written.to_df()["shape_area"].tolist() == [float(m.sum()) for m in masks]
    # the command line's way: the features go from the work folder to the file, block by block, not back
    for name in ("cli.h5ad", "cli.zarr"):
        meta_only = scipzarr.process(path, EXACT, tmp_path / name, progress=False, table_in_memory=False)
        assert meta_only.X is None and meta_only.uns["scipzarr"]["objects"] == 20
        back = read_table(tmp_path / name)
        np.testing.assert_array_equal(back.X, kept.X)
        assert back.X.dtype == np.float32
        pd.testing.assert_frame_equal(back.obs, kept.obs)
    assert not any(tmp_path.glob(".*scipzarr-work*"))  # the work folder is gone once the table is written


def test_writing_the_table_does_not_import_distributed(tmp_path):
    # anndata's dask writer would import dask.distributed (0.15-0.4 s of every command) only to look for a
    # client; a threads run writes both kinds of table without it, and a client started later is still found
    events, masks = flat_events(8, size=40, channels=2, seed=4)
    path = _convert(tmp_path, events, "nodist", 2)
    code = f"""
import sys, anndata, numpy as np, scipzarr
import dask.base
for name in ("t.h5ad", "t.zarr"):
    scipzarr.process({str(path)!r}, {EXACT!r}, {str(tmp_path)!r} + "/" + name, progress=False, table_in_memory=False)
    assert "distributed" not in sys.modules, name
assert dask.base._DISTRIBUTED_AVAILABLE is not False
a = anndata.read_h5ad({str(tmp_path)!r} + "/t.h5ad")
b = anndata.read_zarr({str(tmp_path)!r} + "/t.zarr")
assert a.n_obs == 8 and a.X.dtype == np.float32 and np.array_equal(a.X, b.X, equal_nan=True)
assert a.obs_vector("shape_area").tolist() == {[float(m.sum()) for m in masks]!r}
import dask, distributed
from dask.base import get_scheduler
with distributed.Client(processes=False, dashboard_address=None) as client:
    assert get_scheduler() == client.get
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_labels_written_unique_and_consistent(tmp_path):
    events, masks = flat_events(12, size=30, channels=1, seed=2)
    path = _convert(tmp_path, events, "lab", 3)
    a = scipzarr.process(path, EXACT, None, progress=False)
    st = store.open_store(path)
    assert st.label_names() == ["cells", "cells-ch0"]
    lab = st.labels("cells").compute()
    ids, counts = np.unique(lab[lab > 0], return_counts=True)
    assert ids.tolist() == sorted(a.obs["label"].tolist())
    area = dict(zip(ids, counts))
    for row, area_feat in zip(a.obs.itertuples(), a.to_df()["shape_area"]):
        assert area[row.label] == area_feat
        r, c = st.mosaic.tile_position(np.array([row.event_index]))
        tile = lab[r[0] * 30:(r[0] + 1) * 30, c[0] * 30:(c[0] + 1) * 30]
        np.testing.assert_array_equal(tile == row.label, masks[row.event_index])
    assert store.validate_store(path) == []
    assert len(st.level_paths) == len(__import__("zarr").open_group(str(path / "labels" / "cells")).attrs["ome"]["multiscales"][0]["datasets"])


CONFIGS = {
    "default": {},
    "all_families": {"features": {"families": ["all"]}, "normalize": {"method": "minmax", "scope": "dataset"}},
    "dataset": {"normalize": {"method": "percentile", "scope": "dataset"},
                "segmentation": {"threshold": {"method": "otsu", "scope": "dataset"}, "channels": [0, 1]}},
    "li_event_minmax": {"normalize": {"method": "minmax", "scope": "event"},
                        "segmentation": {"threshold": {"method": "li", "scope": "event"}, "keep": "largest"}},
    "li_dataset": {"normalize": {"method": "minmax", "scope": "dataset"},
                   "segmentation": {"threshold": {"method": "li", "scope": "dataset"}}},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_same_table_for_3x3_and_16x16_chunks(tmp_path, name):
    from scipzarr.synthetic import make_events

    ev, _ = make_events(70, channels=2, size=32, seed=3, noise=15)
    events = np.stack(ev)
    small = _convert(tmp_path, events, "k3", 3)
    big = _convert(tmp_path, events, "k16", 16)
    a = scipzarr.process(small, CONFIGS[name], None, progress=False)
    b = scipzarr.process(big, CONFIGS[name], None, progress=False)
    assert a.n_obs >= 70
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.X, b.X)


def test_padding_never_changes_features(tmp_path):
    from scipzarr.synthetic import make_events

    ev, _ = make_events(20, channels=2, size=32, seed=4, noise=10)
    np.save(tmp_path / "same.npy", np.stack(ev))
    src = tmp_path / "tiffs"
    src.mkdir()
    import tifffile

    for i, img in enumerate(ev):
        tifffile.imwrite(src / f"e{i:02d}.tif", img)
    tifffile.imwrite(src / "z_big.tif", np.zeros((2, 45, 41), np.uint16))  # forces 45x41 tiles
    scipzarr.convert([tmp_path / "same.npy"], tmp_path / "same.zarr", progress=False)
    scipzarr.convert([src], tmp_path / "pad.zarr", chunk_tiles=3, progress=False)
    assert store.open_store(tmp_path / "pad.zarr").mosaic.tile == (45, 41)
    cfg = {"normalize": {"method": "percentile", "scope": "event"}, "segmentation": {"smoothing_sigma": 2.0},
           "features": {"families": ["all"]}}
    a = scipzarr.process(tmp_path / "same.zarr", cfg, None, progress=False)
    b = scipzarr.process(tmp_path / "pad.zarr", cfg, None, progress=False)
    b = b[b.obs["event_id"] != "z_big"]
    assert a.n_obs == b.n_obs >= 20
    np.testing.assert_array_equal(a.X, b.X)
    assert b.uns["scipzarr"]["events_without_objects"] == 1


@pytest.mark.parametrize("scheduler", ["synchronous", "processes"])
def test_schedulers_give_identical_tables(tmp_path, scheduler):
    from scipzarr.synthetic import make_events

    ev, _ = make_events(40, channels=2, size=32, seed=5, noise=10)
    path = _convert(tmp_path, np.stack(ev), "s", 3)
    cfg = {"features": {"families": ["all"]}}
    a = scipzarr.process(path, cfg, None, progress=False, scheduler="threads")
    b = scipzarr.process(path, cfg, None, progress=False, scheduler=scheduler)
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.X, b.X)


def test_demo_data_segmentation_recovers_truth(tmp_path):
    """The synthetic cells with noise: nuclei segmented by Otsu match the drawn ones closely (the default
    background-referenced masks keep a rim of the smoothing: tests/test_background_masks.py)."""
    from scipzarr.synthetic import make_events

    ev, truth = make_events(50, channels=3, size=48, seed=6, noise=20)
    path = _convert(tmp_path, np.stack(ev), "n", 4)
    cfg = resolve_config({"segmentation": {"channels": [0], "keep": "largest", "threshold": {"method": "otsu"}}})
    a = scipzarr.process(path, cfg, None, progress=False)
    assert a.n_obs == 50
    area = a.to_df()["shape_area"].to_numpy()
    true = np.array([m.sum() for m in truth["nucleus"]])
    assert np.all(np.abs(area - true) <= 0.08 * true)


def test_real_jurkat_cells_dna_content_follows_the_cell_cycle(jurkat, tmp_path):
    """Integrated DNA intensity of the real IFC cells orders the phases as biology says: G1 < S < G2."""
    scipzarr.convert([jurkat / "single_cells"], tmp_path / "j.zarr", channels=["BF", "DNA", "DF"], progress=False)
    a = scipzarr.process(tmp_path / "j.zarr", {"segmentation": {"channels": ["DNA"], "keep": "largest"}}, None,
                         progress=False)
    assert a.n_obs == 217 and a.uns["scipzarr"]["events_without_objects"] == 0
    dna = a.to_df()["intensity_sum_DNA"].groupby(a.obs["class_label"].to_numpy()).median()
    assert dna["G1"] * 1.2 < dna["S_phase"] < dna["G2"] / 1.2
    assert 1.6 < dna["G2"] / dna["G1"] < 2.4  # twice the DNA after replication
