"""Conversion of the four IFC layouts; round trips; NGFF validity by independent tools."""

import csv

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from scipzarr import store
from scipzarr.converters import convert, discover
from scipzarr.errors import ScipzarrError

from .conftest import convert_in_fresh_interpreter, flat_events


def _events_of(path):
    st = store.open_store(path)
    img = st.image(0).compute()
    out = {}
    th, tw = st.mosaic.tile
    for _, row in st.events.iterrows():
        y, x = row.tile_row * th + row.valid_y0, row.tile_col * tw + row.valid_x0
        out[row.event_id] = img[:, y:y + row.valid_height, x:x + row.valid_width]
    return st, out


def test_jurkat_ideas_round_trip_is_pixel_identical(jurkat, tmp_path):
    res = convert([jurkat / "single_cells"], tmp_path / "j.zarr", chunk_tiles=4, progress=False)
    assert res["layout"] == "ideas" and res["events"] == 217 and res["channels"] == ["Ch3", "Ch4", "Ch6"]
    st, events = _events_of(tmp_path / "j.zarr")
    assert st.mosaic.tile == (40, 40) and st.mosaic.chunk_shape == (3, 160, 160)
    labels = {r["cell_id"]: r["label"] for r in csv.DictReader(open(jurkat / "single_cells" / "labels.csv"))}
    assert st.events["class_label"].value_counts().to_dict() == {
        "G1": 40, "S_phase": 40, "G2": 40, "Prophase": 40, "Metaphase": 35, "Telophase": 14, "Anaphase": 8}
    for event_id, pixels in events.items():
        cls, cell = event_id.split("/")
        ref = np.stack([tifffile.imread(jurkat / "single_cells" / cls / f"{cell}_Ch{k}.tif") for k in (3, 4, 6)])
        np.testing.assert_array_equal(pixels, ref)
        assert labels[cell] == cls
    assert store.validate_store(tmp_path / "j.zarr") == []


def test_jurkat_montage_tiles_equal_the_montage(jurkat, tmp_path):
    files = sorted((jurkat / "montages").glob("*.tif"))
    res = convert(files, tmp_path / "m.zarr", tile_size=40, progress=False)
    assert res["layout"] == "montage" and res["events"] == 900 and res["channels"] == ["Ch3", "Ch4", "Ch6"]
    st, events = _events_of(tmp_path / "m.zarr")
    mont = np.stack([tifffile.imread(f) for f in files])
    ev = events["Experiment_1_G1_CP0008_r7_c12"]
    np.testing.assert_array_equal(ev, mont[:, 280:320, 480:520])
    # the single-cell export of the same G1 cell (labels.csv grid position) is identical
    rows = [r for r in csv.DictReader(open(jurkat / "single_cells" / "labels.csv")) if r["label"] == "G1"]
    r = rows[3]
    single = np.stack([tifffile.imread(jurkat / "single_cells" / "G1" / f"{r['cell_id']}_Ch{k}.tif") for k in (3, 4, 6)])
    np.testing.assert_array_equal(events[f"Experiment_1_G1_CP0008_r{r['grid_row']}_c{r['grid_col']}"], single)


def test_per_event_tiffs_with_classes_and_padding(tmp_path):
    ev, _ = flat_events(7, size=30, channels=3)
    src = tmp_path / "in"
    for i, img in enumerate(ev):
        sub = src / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        h = 30 - i  # events differ in size
        tifffile.imwrite(sub / f"event{i}.tif", img[:, :h, : 30 - 2 * i])
    res = convert([src], tmp_path / "s.zarr", chunk_tiles=2, progress=False)
    assert res["layout"] == "tiff" and res["events"] == 7 and res["tile"] == [30, 30]
    st, events = _events_of(tmp_path / "s.zarr")
    for i in range(7):
        cls = "a" if i % 2 else "b"
        np.testing.assert_array_equal(events[f"{cls}/event{i}"], ev[i][:, : 30 - i, : 30 - 2 * i])
        row = st.events.loc[f"{cls}/event{i}"]
        assert (row.height, row.width, row.class_label) == (30 - i, 30 - 2 * i, cls)
    # padding is zero and the event sits in the centre of its tile
    row = st.events.loc["b/event6"]
    assert (row.valid_y0, row.valid_x0) == (3, 6)


def test_npy_stack_and_independent_readers(tmp_path):
    ev, _ = flat_events(20, size=24, channels=2)
    np.save(tmp_path / "x.npy", ev)
    convert([tmp_path / "x.npy"], tmp_path / "x.zarr", chunk_tiles=3, channels=["a", "b"], progress=False)
    st, events = _events_of(tmp_path / "x.zarr")
    for i in range(20):
        np.testing.assert_array_equal(events[str(i)], ev[i])
    # plain zarr + dask: a chunk reshapes into an (N, C, Y, X) batch
    arr = da.from_zarr(zarr.open_array(str(tmp_path / "x.zarr" / "s0"), mode="r"))
    assert arr.chunksize == (2, 72, 72)
    np.testing.assert_array_equal(st.mosaic.to_batch(arr.blocks[0, 0, 1].compute())[0], ev[9])
    # independent validator and reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models import open_ome_zarr

    open_ome_zarr(zarr.open_group(str(tmp_path / "x.zarr"), mode="r"))
    node = next(iter(Reader(parse_url(str(tmp_path / "x.zarr")))()))
    assert node.data[0].shape == st.mosaic.shape
    assert node.metadata["channel_names"] == ["a", "b"]


def test_crop_mode_centre_crops_larger_events(tmp_path):
    ev = np.arange(2 * 1 * 12 * 12, dtype=np.uint16).reshape(2, 1, 12, 12)
    np.save(tmp_path / "x.npy", ev)
    with pytest.raises(ScipzarrError, match="--fit crop"):
        convert([tmp_path / "x.npy"], tmp_path / "x.zarr", tile_size=8, progress=False)
    assert not (tmp_path / "x.zarr").exists()
    convert([tmp_path / "x.npy"], tmp_path / "x.zarr", tile_size=8, fit="crop", progress=False)
    st, events = _events_of(tmp_path / "x.zarr")
    np.testing.assert_array_equal(events["1"], ev[1][:, 2:10, 2:10])
    assert st.events.loc["1", "height"] == 12 and st.events.loc["1", "crop_y0"] == 2


def test_ideas_names_group_by_object_and_order_channels(tmp_path):
    src = tmp_path / "ideas"
    src.mkdir()
    for obj in (1, 2, 10):
        for ch in (9, 2, 11):  # channel order must follow the number, not the name
            tifffile.imwrite(src / f"sample_{obj}_Ch{ch}.ome.tif", np.full((5, 6), obj * 100 + ch, np.uint16))
    src_info = discover([src])
    assert src_info.layout == "ideas" and src_info.channel_names == ["Ch2", "Ch9", "Ch11"]
    assert src_info.table["event_id"].tolist() == ["sample_1", "sample_2", "sample_10"]
    assert src_info.read(2)[:, 0, 0].tolist() == [1002, 1009, 1011]


def test_an_ifc_convert_imports_neither_anndata_nor_dask_array(tmp_path):
    """Their imports (0.4-1.3 s and 0.3-0.6 s) were a third of a CIF convert's command line: the events table is
    written by :mod:`scipzarr.store.obs_table` and the chunk tasks are dask.delayed. Run in a fresh interpreter."""
    import tifffile

    (tmp_path / "in").mkdir()
    for i in range(5):
        for ch in (1, 2):
            tifffile.imwrite(tmp_path / "in" / f"{i}_Ch{ch}.ome.tif", np.full((6, 7), 10 * i + ch, np.uint16))
    imported = "sorted(m for m in ('anndata', 'dask.array', 'h5py') if m in sys.modules)"
    assert convert_in_fresh_interpreter([tmp_path / "in"], tmp_path / "s.zarr", imported) == "[]"
    st = store.open_store(tmp_path / "s.zarr")
    assert st.events["event_id"].tolist() == ["0", "1", "2", "3", "4"]
    assert st.events["height"].tolist() == [6] * 5 and st.events["width"].tolist() == [7] * 5
    assert st.events["valid_width"].tolist() == [7] * 5 and st.events["source"].nunique() == 5
    import anndata as ad
    import pandas as pd

    tables = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["tables"]  # read without anndata, as it reads
    pd.testing.assert_frame_equal(st.events, ad.io.read_elem(tables["events"]).obs)
    pd.testing.assert_frame_equal(st.rejected(), ad.io.read_elem(tables["rejected"]).obs)


def test_a_stack_convert_does_not_import_tifffile(tmp_path):
    """tifffile (~0.05 s of a command's start) is imported where a TIFF is read: a ``.npy`` (or CIF) convert does
    not pay it. Run in a fresh interpreter."""
    stack = np.arange(4 * 2 * 5 * 6, dtype=np.uint16).reshape(4, 2, 5, 6)
    np.save(tmp_path / "ev.npy", stack)
    assert convert_in_fresh_interpreter([tmp_path / "ev.npy"], tmp_path / "s.zarr", "'tifffile' in sys.modules") \
        == "False"
    _, events = _events_of(tmp_path / "s.zarr")
    assert len(events) == 4
    for i, pixels in enumerate(events.values()):
        np.testing.assert_array_equal(pixels, stack[i])
