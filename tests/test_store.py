import numpy as np
import pytest

from scipzarr import store
from scipzarr.errors import ScipzarrError


def test_mosaic_geometry_and_batches_round_trip():
    m = store.Mosaic.plan(n_events=50, n_channels=2, tile=(5, 7), chunk_tiles=3)
    assert m.per_block == 9 and m.n_blocks == 6
    assert m.chunk_grid == (2, 3)
    assert m.shape == (2, 2 * 15, 3 * 21) and m.chunk_shape == (2, 15, 21)
    assert list(m.block_events(5)) == list(range(45, 50))
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 100, (9, 2, 5, 7))
    block = m.from_batch(batch)
    # event 4 of the block is slot (1, 1): rows 5..10, cols 7..14
    np.testing.assert_array_equal(block[:, 5:10, 7:14], batch[4])
    np.testing.assert_array_equal(m.to_batch(block), batch)
    np.testing.assert_array_equal(m.from_batch(batch[:, 0]), block[0])
    rows, cols = m.tile_position(np.array([0, 4, 9, 49]))
    assert rows.tolist() == [0, 1, 0, 4] and cols.tolist() == [0, 1, 3, 7]


def test_fit_to_tile_pads_and_crops_centrally():
    assert store.fit_to_tile((30, 40), (40, 40)) == {
        "valid_y0": 5, "crop_y0": 0, "valid_height": 30, "valid_x0": 0, "crop_x0": 0, "valid_width": 40}
    f = store.fit_to_tile((50, 33), (40, 40))
    assert (f["valid_y0"], f["crop_y0"], f["valid_height"]) == (0, 5, 40)
    assert (f["valid_x0"], f["crop_x0"], f["valid_width"]) == (3, 0, 33)


def test_plan_refuses_nothing_to_store():
    with pytest.raises(ScipzarrError, match="no events"):
        store.Mosaic.plan(0, 1, (4, 4), 2)


@pytest.mark.parametrize("nearest", [False, True])
def test_levels_written_per_chunk_equal_the_whole_image_halved(tmp_path, monkeypatch, nearest):
    """Each level-0 chunk's task writes the levels its chunk owns (chunks halved with the level down to
    MIN_LEVEL_CHUNK, odd image edges included); the later levels are computed from them. Every level equals the
    whole image halved level by level, whatever order the chunks come in."""
    import zarr

    from scipzarr.store import ngff

    monkeypatch.setattr(ngff, "MIN_LEVEL_CHUNK", 4)
    sides, owned = ngff.pyramid_chunks((24, 16), 5)
    assert sides == [(24, 16), (12, 8), (6, 4), (6, 4), (6, 4)] and owned == 2
    image = np.random.default_rng(3).integers(0, 60000, (2, 70, 45), dtype=np.uint16)
    group = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=3)
    levels = ngff.create_levels(group, image.shape, 5, (24, 16), image.dtype, ["c", "y", "x"])
    assert [a.chunks for a in levels] == [(2, 24, 16), (2, 12, 8), (2, 6, 4)]
    blocks = [(y, x) for y in range(0, 70, 24) for x in range(0, 45, 16)]
    for y, x in blocks[::-1]:
        ngff.write_block(levels, y, x, image[:, y:y + 24, x:x + 16], nearest)
    ngff.write_levels(group, 5, (24, 16), lambda tasks: [t.compute() for t in tasks], nearest, start=len(levels))
    expected = image
    for level in range(5):
        np.testing.assert_array_equal(group[f"s{level}"][...], expected)
        assert group[f"s{level}"].chunks[1:] == tuple(min(c, s) for c, s in zip(sides[level], expected.shape[1:]))
        expected = ngff.halve(expected, nearest)


def test_several_images_written_per_chunk_together_equal_each_halved(tmp_path, monkeypatch):
    """``ngff.write_blocks``: a chunk of an image and of two label images (a CIF's instrument masks), with the
    levels each owns, in two zarr calls; every level of every image equals that image halved whole."""
    import zarr

    from scipzarr.store import ngff

    monkeypatch.setattr(ngff, "MIN_LEVEL_CHUNK", 4)
    rng = np.random.default_rng(5)
    image = rng.integers(0, 60000, (3, 70, 45), dtype=np.uint16)
    labels = [rng.integers(0, 9, (70, 45)).astype(np.uint32) for _ in range(2)]
    root = zarr.open_group(str(tmp_path / "img.zarr"), mode="w", zarr_format=3)
    levels = ngff.create_levels(root, image.shape, 3, (24, 16), image.dtype, ["c", "y", "x"])
    label_levels = [ngff.create_levels(root.require_group(f"lab{i}"), lab.shape, 3, (24, 16), lab.dtype, ["y", "x"])
                    for i, lab in enumerate(labels)]
    assert len(levels) == 3 and all(len(lv) == 3 for lv in label_levels)
    for y in range(0, 70, 24):
        for x in range(0, 45, 16):
            ngff.write_blocks([*[(lv, lab[y:y + 24, x:x + 16], True) for lv, lab in zip(label_levels, labels)],
                               (levels, image[:, y:y + 24, x:x + 16], False)], y, x)
    for group, whole, nearest in [(root, image, False), *[(root[f"lab{i}"], lab, True) for i, lab in enumerate(labels)]]:
        for level in range(3):
            np.testing.assert_array_equal(group[f"s{level}"][...], whole)
            whole = ngff.halve(whole, nearest)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "int32", "uint32", "float32"])
def test_pyramid_halving_is_the_rounded_float_mean(dtype):
    """Integer levels are ``round(mean)`` of each 2x2 block (half to even) computed without float64; an odd
    last row or column is left out; labels take every second pixel."""
    from scipzarr.store.ngff import halve

    info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
    lo, hi = (info.min, info.max) if info else (-1e3, 1e3)
    block = np.random.default_rng(7).uniform(lo, hi, (3, 9, 11)).astype(dtype)
    block[0, :2, :2] = np.array([[1, 2], [2, 1]], dtype)  # mean 1.5: rounds to 2
    block[1, :2, :2] = np.array([[2, 3], [3, 2]], dtype)  # mean 2.5: rounds to 2
    f = block[:, :8, :10].astype(np.float64)
    mean = (f[:, ::2, ::2] + f[:, 1::2, ::2] + f[:, ::2, 1::2] + f[:, 1::2, 1::2]) / 4
    expected = (np.round(mean) if info else mean).astype(dtype)
    np.testing.assert_array_equal(halve(block), expected)
    np.testing.assert_array_equal(halve(block, nearest=True), block[:, :8:2, :10:2])
    if info:
        assert halve(block)[0, 0, 0] == 2 and halve(block)[1, 0, 0] == 2


def _zarr_tree(files: dict) -> dict:
    """Every node's metadata a reader relies on (codecs and chunking left out: both writers' own choice)."""
    import json

    keys = ("node_type", "attributes", "shape", "data_type", "fill_value")
    return {k: {x: json.loads(v.to_bytes()).get(x) for x in keys} for k, v in files.items() if k.endswith("zarr.json")}


def _obs_frames():
    import pandas as pd

    n = 7
    df = pd.DataFrame({
        "event_id": [str(i) for i in range(n)], "tile_row": np.arange(n, dtype=np.int64) * 3,
        "f": np.linspace(0, 1, n), "nan": [0.5, np.nan, 1, 2, 3, 4, 5], "b": np.arange(n) % 3 == 0,
        "u8": np.arange(n, dtype=np.uint8), "s": pd.array(["a", None, "c", "", "e", "é", "g"], dtype="str"),
        "sna": pd.array(["a", None, "c", "d", "e", "f", "g"], dtype="string"),
        "cat": pd.Categorical(["x", "y", "x", "x", "y", "y", "x"]),
        "icat": pd.Categorical([3, 1, 3, 3, 1, 1, 2], ordered=True),
        "obj": pd.Series(["p", "q", "r", "s", "t", "u", "v"], dtype=object)})
    df.index = pd.Index(df["event_id"].astype(str), name="event")
    unnamed = df.drop(columns="event_id").set_axis(pd.Index([f"r{i}" for i in range(n)], dtype=object))
    rejected = pd.DataFrame(columns=store.REJECTED_COLUMNS).astype(str).reset_index(drop=True)
    rejected.index = rejected.index.astype(str)
    return [df, unnamed, df.iloc[:0], rejected]


@pytest.mark.parametrize("case", range(4))
def test_obs_tables_are_written_as_anndata_writes_them(case):
    """The store's tables are written without anndata (:mod:`scipzarr.store.obs_table`): the same nodes, encodings
    and attributes as anndata's writer, read back by anndata into equal frames, for every column type it takes."""
    import anndata as ad
    import pandas as pd
    import zarr

    from scipzarr.store import obs_table

    df = _obs_frames()[case]
    assert obs_table.writable(df)
    theirs, ours = {}, {}
    g_theirs = zarr.open_group(zarr.storage.MemoryStore(store_dict=theirs), mode="w", zarr_format=3)
    g_ours = zarr.open_group(zarr.storage.MemoryStore(store_dict=ours), mode="w", zarr_format=3)
    table = ad.AnnData(obs=df.copy())
    table.uns["type"] = "event_table"
    ad.io.write_elem(g_theirs, "t", table)
    obs_table.write_obs_table(g_ours, "t", df, "event_table")
    assert _zarr_tree(ours) == _zarr_tree(theirs)
    back = ad.io.read_elem(g_ours["t"])
    pd.testing.assert_frame_equal(back.obs, ad.io.read_elem(g_theirs["t"]).obs)
    # anndata reads an object index of strings back as pandas' str dtype (both writers wrote the same)
    pd.testing.assert_frame_equal(back.obs, df.set_axis(df.index.astype(str)))
    assert back.uns == {"type": "event_table"} and back.shape == (len(df), 0)
    for group in (g_ours, g_theirs):  # the reader without anndata returns what anndata's returns
        pd.testing.assert_frame_equal(obs_table.read_obs_table(group, "t"), back.obs)


def test_obs_tables_written_from_columns_are_the_frames_files():
    """``convert`` writes its tables from numpy columns without pandas (:class:`obs_table.ObsColumns`): every
    file (metadata and chunk bytes) is the one the same table as a DataFrame gives, text as pandas' str dtype;
    the empty rejected-events table too."""
    import pandas as pd
    import zarr

    from scipzarr.store import mosaic, obs_table

    ids = np.array(["3", "1", "x:2", "é"], dtype=object)
    rows = np.array([0, 0, 1, 1], np.int64)
    text = np.array(["a", "", "c;d", "e"], dtype=object)
    df = pd.DataFrame({"event_id": ids, "tile_row": rows, "source": text})
    df.index = pd.Index(df["event_id"].astype(str), name="event")
    columns = obs_table.ObsColumns("event", obs_table.Strings(ids), {"event_id": obs_table.Strings(ids),
                                                                     "tile_row": rows, "source": obs_table.Strings(text)})
    rejected = [{"event_id": "7", "source": "a.cif", "reason": "damaged", "stage": "header"}]
    frame_files, column_files = {}, {}
    for files, events, bad in ((frame_files, df, pd.DataFrame(rejected)),
                               (column_files, columns, mosaic.rejected_columns(rejected))):
        root = zarr.open_group(zarr.storage.MemoryStore(store_dict=files), mode="w", zarr_format=3)
        for name, table, kind in (("t", events, "event_table"), ("r", bad, "rejected_events")):
            if isinstance(table, obs_table.ObsColumns):
                obs_table.write_obs_columns(root, name, table, kind)
            else:
                table = table.astype(str) if kind == "rejected_events" else table
                table.index = table.index.astype(str)
                obs_table.write_obs_table(root, name, table, kind)
    assert sorted(frame_files) == sorted(column_files) and len(frame_files) > 30
    assert all(frame_files[k].to_bytes() == column_files[k].to_bytes() for k in frame_files)
    empty = {}
    root = zarr.open_group(zarr.storage.MemoryStore(store_dict=empty), mode="w", zarr_format=3)
    obs_table.write_obs_columns(root, "r", mosaic.rejected_columns([]), "rejected_events")
    assert obs_table.read_obs_table(root, "r").shape == (0, 4)


def test_convert_does_not_import_pandas(tmp_path):
    """A convert of TIFF events reads, writes its store and its tables without importing pandas (~0.4 s of the
    command's start); the events table then reads back with it."""
    import tifffile

    from .conftest import convert_in_fresh_interpreter

    (tmp_path / "in").mkdir()
    for i in range(3):
        tifffile.imwrite(tmp_path / "in" / f"{i}_Ch1.tif", np.full((12, 14), i + 1, np.uint16))
    assert convert_in_fresh_interpreter([tmp_path / "in"], tmp_path / "s.zarr", "'pandas' in sys.modules") == "False"
    from scipzarr.store import open_store

    events = open_store(tmp_path / "s.zarr").events
    assert events["event_id"].tolist() == ["0", "1", "2"] and events["height"].tolist() == [12, 12, 12]


def test_obs_tables_hand_unknown_column_types_to_anndata(tmp_path):
    import pandas as pd
    import zarr

    from scipzarr.store import mosaic, obs_table

    df = pd.DataFrame({"n": pd.array([1, None, 3], dtype="Int64"), "k": [1, 2, 3]}, index=["a", "b", "c"])
    assert not obs_table.writable(df) and obs_table.writable(df[["k"]])
    assert not obs_table.writable(df[["k"]].rename(columns={"k": "_index"}))
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="w", zarr_format=3)
    mosaic.write_events_table(root, df)  # anndata writes it: a nullable integer column
    import anndata as ad

    tables = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")["tables"]
    pd.testing.assert_frame_equal(ad.io.read_elem(tables["events"]).obs, df)
    assert obs_table.read_obs_table(tables, "events") is None  # not one it reads: the store asks anndata
    assert obs_table.read_obs_table(tables, "rejected").shape == (0, 4)


@pytest.mark.parametrize("input_kind", ["npy", "cif"])
def test_first_level_no_chunk_owns_is_assembled_from_the_chunk_tasks(tmp_path, monkeypatch, input_kind, request):
    """The chunk tasks hand back their piece of the first level no chunk owns (when small), so it is not read
    back from the store; every level of the image and of the instrument's mask label images equals level 0
    halved level by level, and the store equals one written by reading that level back."""
    import zarr

    import scipzarr
    from scipzarr.store import ngff

    monkeypatch.setattr(ngff, "MIN_LEVEL_CHUNK", 40)  # owned levels and later ones on small inputs
    monkeypatch.setattr(ngff, "MIN_PYRAMID_SIDE", 32)
    if input_kind == "npy":
        rng = np.random.default_rng(11)
        src = tmp_path / "ev.npy"
        np.save(src, rng.integers(0, 4000, (150, 2, 48, 40), dtype=np.uint16))
    else:
        src = request.getfixturevalue("cif")
    given = []
    write_levels = ngff.write_levels

    def spy(*args, **kwargs):
        given.append(args[7] is not None)
        return write_levels(*args, **kwargs)

    monkeypatch.setattr(ngff, "write_levels", spy)
    scipzarr.convert([src], tmp_path / "a.zarr", chunk_tiles=4, progress=False)
    assert given and all(given), given  # the image (and each mask label image) got its assembled level
    monkeypatch.setattr(ngff, "SMALL_LEVEL", 0)  # no level is small: each is read back (the other path)
    given.clear()
    scipzarr.convert([src], tmp_path / "b.zarr", chunk_tiles=4, progress=False)
    assert given and not any(given)
    a, b = zarr.open_group(str(tmp_path / "a.zarr"), mode="r"), zarr.open_group(str(tmp_path / "b.zarr"), mode="r")
    groups = [("", False)] + [(f"labels/{n}/", True) for n in ngff.label_names(tmp_path / "a.zarr")]
    assert len(groups) == (1 if input_kind == "npy" else 7)
    n_levels = len(a.attrs["ome"]["multiscales"][0]["datasets"])
    assert n_levels == 4 and a["s2"].chunks[-2:] == a["s3"].chunks[-2:]  # s0-s2 owned by the chunks, s3 not
    for prefix, nearest in groups:
        whole = a[f"{prefix}s0"][...]
        for level in range(n_levels):
            np.testing.assert_array_equal(a[f"{prefix}s{level}"][...], whole)
            np.testing.assert_array_equal(b[f"{prefix}s{level}"][...], whole)
            whole = ngff.halve(whole, nearest)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "uint32", "uint64", "float32", "float64"])
@pytest.mark.parametrize("channels", [None, 3])
def test_chunks_written_directly_are_the_bytes_zarr_writes(tmp_path, dtype, channels):
    """``ngff._put_chunk`` writes a chunk file itself (without zarr's event loop): the same files and bytes as
    zarr's own write of the same values, edge chunks (padded) and an all-zero chunk (not stored) included, on
    the main thread and on another (blosc compresses differently there: contexts, not its global state); and
    ``ngff.get_chunk`` reads each chunk back as zarr does."""
    import threading

    import zarr

    from scipzarr.store import ngff

    shape = ((channels,) if channels else ()) + (53, 70)  # 2 x 3 chunks of 32 x 32, cut short at the edges
    chunks = ((channels,) if channels else ()) + (32, 32)
    dims = (["c"] if channels else []) + ["y", "x"]
    rng = np.random.default_rng(7)
    data = (rng.random(shape) * 1000).astype(dtype)
    data[..., :32, 32:64] = 0  # an empty chunk
    data[..., 40:, :] = 3  # a constant edge
    trees = {}
    for how in ("zarr", "direct", "thread"):
        root = zarr.open_group(str(tmp_path / f"{how}.zarr"), mode="w-", zarr_format=3)
        arr = ngff.create_array(root, "s0", shape, chunks, dtype, dims)
        for y in range(0, shape[-2], 32):
            for x in range(0, shape[-1], 32):
                piece = data[..., y:y + 32, x:x + 32]
                if how == "zarr":
                    arr[..., y:y + 32, x:x + 32] = piece
                elif how == "direct":
                    assert ngff._put_chunk(arr, y, x, piece)
                else:
                    done = []
                    t = threading.Thread(target=lambda: done.append(ngff._put_chunk(arr, y, x, piece)))
                    t.start()
                    t.join()
                    assert done == [True]
        base = tmp_path / f"{how}.zarr" / "s0"
        trees[how] = {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}
        np.testing.assert_array_equal(zarr.open_array(str(base), mode="r")[...], data)
        for y in range(0, shape[-2], 32):  # read back straight from the chunk files, edges and the empty one too
            for x in range(0, shape[-1], 32):
                got = ngff.get_chunk(zarr.open_array(str(base), mode="r"), y, x)
                assert got.dtype == data.dtype
                np.testing.assert_array_equal(got, data[..., y:y + 32, x:x + 32])
    assert len(trees["zarr"]) == 1 + 5  # zarr.json and five chunks: the empty one is not stored
    assert trees["direct"] == trees["zarr"] and trees["thread"] == trees["zarr"]


def test_chunks_are_left_to_zarr_when_not_written_as_ours(tmp_path):
    """Another codec, a region that is not one whole chunk, or a value of another dtype: not written (nor
    read) directly."""
    import zarr

    from scipzarr.store import ngff

    root = zarr.open_group(str(tmp_path / "a.zarr"), mode="w-", zarr_format=3)
    ours = ngff.create_array(root, "ours", (40, 40), (16, 16), "uint16", ["y", "x"])
    theirs = root.create_array("theirs", shape=(40, 40), chunks=(16, 16), dtype="uint16", fill_value=0)
    block = np.ones((16, 16), np.uint16)
    assert not ngff._put_chunk(theirs, 0, 0, block)
    assert not ngff._put_chunk(ours, 8, 0, block)  # not on the chunk grid
    assert not ngff._put_chunk(ours, 0, 0, block[:8])  # part of a chunk
    assert not ngff._put_chunk(ours, 0, 0, block.astype(np.int32))
    theirs[...] = 5
    assert ngff.get_chunk(theirs, 0, 0) is None  # zarr reads those
    assert ngff.get_chunk(ours, 8, 0) is None and ngff.get_chunk(ours, 48, 0) is None  # off the grid, outside
    assert not (tmp_path / "a.zarr" / "ours" / "c").exists()
    assert ngff._put_chunk(ours, 32, 32, block[:8, :8])  # the corner chunk, cut short by the edge
    np.testing.assert_array_equal(ours[32:, 32:], block[:8, :8])
