"""The plain-TIFF fast path of IDEAS exports: the same pixels as tifffile, the general path for the rest, and
one clear line when a file does not hold what discovery saw."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from scipzarr.converters.ifc import _read_event_file, discover, plain_tiff


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "uint32", "float32", "float64"])
@pytest.mark.parametrize("kwargs", [{}, {"byteorder": ">"}, {"rowsperstrip": 7}, {"photometric": "minisblack"}])
def test_plain_tiffs_read_as_tifffile_reads_them(tmp_path, dtype, kwargs):
    img = (np.random.default_rng(3).random((37, 53)) * 200).astype(dtype)
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, img, **kwargs)
    assert plain_tiff(path.read_bytes()) is not None
    got = _read_event_file(path)
    np.testing.assert_array_equal(got, tifffile.imread(path))
    assert got.dtype == np.dtype(dtype)
    # the export path: geometry from the directory at discovery, pixels read straight into the event
    export = tmp_path / "export"
    export.mkdir()
    for c in (1, 2):
        tifffile.imwrite(export / f"7_Ch{c}.ome.tif", img + c, **kwargs)
    source = discover([export])
    event = source.read(0)
    assert event.dtype == np.dtype(dtype) and event.dtype.isnative
    np.testing.assert_array_equal(event, np.stack([tifffile.imread(export / f"7_Ch{c}.ome.tif") for c in (1, 2)]))


def test_other_tiffs_take_the_general_path(tmp_path):
    img = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30)
    tifffile.imwrite(tmp_path / "z.tif", img, compression="zlib")
    tifffile.imwrite(tmp_path / "m.tif", np.stack([img, img]))  # two pages
    for name in ("z.tif", "m.tif"):
        assert plain_tiff((tmp_path / name).read_bytes()) is None
    np.testing.assert_array_equal(_read_event_file(tmp_path / "z.tif"), img)


def test_each_files_geometry_comes_from_its_own_directory(tmp_path):
    """Ragged exports: discovery reads one directory per object (its first channel's); every other channel
    file's own directory is checked when its pixels are read, so a file of the same byte size but another shape
    (30 x 20 beside 20 x 30) is one clear line, not pixels read into the wrong shape, and ``--on-error skip``
    keeps the event as rejected (its tile empty) with the others intact."""
    from scipzarr.converters import convert
    from scipzarr.errors import ScipzarrError
    from scipzarr.store import open_store

    for i in range(3):
        for c in (1, 2):
            tifffile.imwrite(tmp_path / f"{i}_Ch{c}.tif", np.full((20, 30), i + c, np.uint16))
    tifffile.imwrite(tmp_path / "2_Ch2.tif", np.full((30, 20), 9, np.uint16))  # same bytes, transposed shape
    source = discover([tmp_path])
    assert len(source) == 3 and source.table["height"].tolist() == [20, 20, 20]
    np.testing.assert_array_equal(source.read(0), np.stack([np.full((20, 30), 1), np.full((20, 30), 2)]))
    with pytest.raises(ScipzarrError, match=r"2_Ch2.tif: the image is 30x20 uint16, not 20x30 uint16 as 2_Ch1.tif is"):
        source.read(2)
    with pytest.raises(ScipzarrError, match=r"2_Ch2.tif: the image is 30x20 uint16"):
        convert([tmp_path], tmp_path.parent / "fail.zarr", progress=False)
    assert not (tmp_path.parent / "fail.zarr").exists()
    convert([tmp_path], tmp_path.parent / "skip.zarr", progress=False, on_error="skip")
    store = open_store(tmp_path.parent / "skip.zarr")
    rejected = store.rejected()
    assert rejected["event_id"].tolist() == ["2"] and rejected["stage"].tolist() == ["pixels"]
    assert "30x20" in rejected["reason"].iat[0]
    assert store.events["rejected"].tolist()[:2] == ["", ""]
    img, (th, tw) = store.image(0).compute(), store.mosaic.tile
    tiles = {e.event_id: img[:, e.tile_row * th:(e.tile_row + 1) * th, e.tile_col * tw:(e.tile_col + 1) * tw]
             for e in store.events.itertuples()}
    np.testing.assert_array_equal(tiles["1"], np.stack([np.full((20, 30), 2), np.full((20, 30), 3)]))
    assert tiles["2"].shape == (2, 20, 30) and not tiles["2"].any()  # the rejected event's tile stays empty
    tifffile.imwrite(tmp_path / "1_Ch1.tif", np.full((30, 20), 7, np.uint16))  # changed after discovery
    with pytest.raises(ScipzarrError, match=r"1_Ch1.tif: the image is 30x20 uint16, not 20x30 uint16 when discovered"):
        source.read(1)


def test_an_export_is_read_file_by_file_once(tmp_path, monkeypatch):
    """Each channel file of an IDEAS export is opened once to be converted, and each object's first channel one
    more time at discovery (its directory, for the event's size): 7 opens for an event of six files, not 12."""
    import os

    from scipzarr.converters import convert

    export = tmp_path / "export"
    export.mkdir()
    rng = np.random.default_rng(5)
    for i in range(20):
        for c in range(1, 7):
            tifffile.imwrite(export / f"{i}_Ch{c}.ome.tif", rng.integers(0, 4000, (24 + i % 3, 30), np.uint16))
    opened: dict[str, int] = {}
    real_open = os.open

    def counting_open(path, *args, **kwargs):
        if str(path).startswith(str(export)):
            opened[os.path.basename(path)] = opened.get(os.path.basename(path), 0) + 1
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_open)
    convert([export], tmp_path / "s.zarr", progress=False)
    assert len(opened) == 120
    assert {name: n for name, n in opened.items() if n != 1} == {f"{i}_Ch1.ome.tif": 2 for i in range(20)}


@pytest.mark.parametrize("dtype, shape, kwargs, fast", [
    ("uint16", (6, 40, 30), {"photometric": "minisblack"}, True),  # one page per channel
    ("uint16", (6, 40, 30), {"imagej": True}, True),
    ("uint16", (3, 40, 30), {"ome": True}, True),
    ("uint8", (40, 30, 3), {"photometric": "rgb"}, True),  # samples last
    ("uint8", (3, 40, 30), {"photometric": "rgb", "planarconfig": "separate"}, True),
    ("int16", (4, 40, 30), {"byteorder": ">", "photometric": "minisblack"}, True),
    ("float32", (2, 40, 30), {"photometric": "minisblack"}, True),
    ("uint16", (2, 40, 30), {"bigtiff": True, "photometric": "minisblack"}, True),
    ("uint16", (40, 30), {}, True),
    ("uint16", (2, 40, 30), {"compression": "zlib", "photometric": "minisblack"}, False),
    ("uint16", (2, 64, 48), {"tile": (16, 16), "photometric": "minisblack"}, False),
])
def test_event_tiffs_read_as_tifffile_reads_them(tmp_path, monkeypatch, dtype, shape, kwargs, fast):
    """One multichannel TIFF per event: files tifffile finds uncompressed and contiguous are read by one
    ``preadv`` (their layout learnt from the first file), the rest by tifffile; the same pixels either way."""
    from scipzarr.converters import ifc

    monkeypatch.setattr(ifc, "_KNOWN_SERIES", {})
    rng = np.random.default_rng(11)
    for i in range(3):
        tifffile.imwrite(tmp_path / f"{i}.tif", (rng.random(shape) * 100 - (dtype == "int16") * 50).astype(dtype),
                         **kwargs)
    source = discover([tmp_path])
    assert source.layout == "tiff" and source.table["event_id"].tolist() == ["0", "1", "2"]
    for i in range(3):
        want = tifffile.imread(tmp_path / f"{i}.tif")
        want = np.moveaxis(want, -1, 0) if kwargs.get("photometric") == "rgb" and "planarconfig" not in kwargs \
            else want.reshape((-1, *want.shape[-2:]))
        got = source.read(i)
        assert got.dtype == np.dtype(dtype) and got.dtype.isnative
        np.testing.assert_array_equal(got, want)
    assert (ifc._event_tiff_info(tmp_path / "2.tif")[3] is not None) == fast


def test_event_tiffs_of_one_layout_are_parsed_once(tmp_path, monkeypatch):
    """tifffile parses one file of each layout (here two sizes) and no file a second time: the others are
    recognised by the bytes around their pixels at discovery and read in one system call; the store's pixels
    are the files'."""
    from scipzarr.converters import convert, ifc
    from scipzarr.store import open_store

    monkeypatch.setattr(ifc, "_KNOWN_SERIES", {})
    rng = np.random.default_rng(2)
    events = {f"{i:02d}": rng.integers(0, 4000, (6, 24 if i % 5 else 20, 30), np.uint16) for i in range(30)}
    for name, ev in events.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", ev, photometric="minisblack")
    parsed = []
    real = tifffile.TiffFile

    def counting(*args, **kwargs):
        parsed.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(tifffile, "TiffFile", counting)  # ifc imports tifffile where it reads a TIFF
    convert([tmp_path], tmp_path.parent / "s.zarr", progress=False)
    assert len(parsed) == 2
    store = open_store(tmp_path.parent / "s.zarr")
    img, (th, tw) = store.image(0).compute(), store.mosaic.tile
    for e in store.events.itertuples():
        tile = img[:, e.tile_row * th:(e.tile_row + 1) * th, e.tile_col * tw:(e.tile_col + 1) * tw]
        h, w = e.valid_height, e.valid_width
        np.testing.assert_array_equal(tile[:, e.valid_y0:e.valid_y0 + h, e.valid_x0:e.valid_x0 + w],
                                      events[e.event_id][:, e.crop_y0:e.crop_y0 + h, e.crop_x0:e.crop_x0 + w])


def test_an_event_tiff_changed_after_discovery(tmp_path, monkeypatch):
    """A file rewritten after discovery: compressed, tifffile reads it (same pixels); with another shape, one
    clear line naming the file, not pixels read into the wrong place."""
    from scipzarr.converters import ifc
    from scipzarr.errors import ScipzarrError

    monkeypatch.setattr(ifc, "_KNOWN_SERIES", {})
    ev = np.arange(2 * 20 * 30, dtype=np.uint16).reshape(2, 20, 30)
    for i in range(2):
        tifffile.imwrite(tmp_path / f"{i}.tif", ev + i, photometric="minisblack")
    source = discover([tmp_path])
    tifffile.imwrite(tmp_path / "0.tif", ev + 5, photometric="minisblack", compression="zlib")
    np.testing.assert_array_equal(source.read(0), ev + 5)
    tifffile.imwrite(tmp_path / "1.tif", ev.reshape(2, 30, 20), photometric="minisblack")
    with pytest.raises(ScipzarrError, match=r"1.tif: the image is 2x30x20, not 2x20x30 \(channels x height x width\) "
                                            "when discovered; re-export the event"):
        source.read(1)


def test_event_tiffs_with_headers_of_their_own_are_not_learnt_for_ever(tmp_path, monkeypatch):
    """OME-TIFFs that tifffile writes carry a UUID each: no two files share the bytes around their pixels, so
    after eight layouts learnt and never met again discovery stops learning them (tifffile reads the files, as
    before the fast path, and discovery is no slower: docs/benchmarks.md), and the pixels are the files'."""
    from scipzarr.converters import ifc

    monkeypatch.setattr(ifc, "_KNOWN_SERIES", {})
    learnt = []
    real = ifc._series_layout
    monkeypatch.setattr(ifc, "_series_layout", lambda *a: learnt.append(a[1]) or real(*a))
    events = [np.full((3, 20, 30), i, np.uint16) for i in range(12)]
    for i, ev in enumerate(events):
        tifffile.imwrite(tmp_path / f"{i:02d}.ome.tif", ev)
    source = discover([tmp_path])
    assert len(learnt) == 8 and len(source) == 12
    for i in range(12):
        np.testing.assert_array_equal(source.read(i), events[i])
