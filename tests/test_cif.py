"""Amnis .cif input: our decoder against Bio-Formats' decode of a real FlowSight file, the store it gives,
many files, streaming memory and damaged files."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from .conftest import CIF_REFERENCE, write_cif

from scipzarr.converters import cif as cifmod


def _reference():
    with np.load(CIF_REFERENCE) as ref:
        return {k: ref[k] for k in ref.files}


def test_every_event_channel_and_pixel_equals_bioformats(cif):
    ref = _reference()
    index = cifmod.read_index(cif)
    assert len(index) == 111 and index.channel_names == [f"Ch{k}" for k in range(1, 7)]
    assert index.magnification == 40.0 and index.pixel_size_um == 0.5 and index.brightfield == [5]
    assert index.objects.tolist() == list(range(111)) and index.damaged == []
    with cifmod.CifFile(index) as f:
        for i in range(111):
            np.testing.assert_array_equal(f.image(i), ref[f"image_{i:03d}"])
            np.testing.assert_array_equal(f.masks(i), ref[f"mask_{i:03d}"])
        for start in range(0, 111, 16):  # a convert's batches: one read and one compiled pass for each
            for i, (image, masks) in zip(range(start, min(start + 16, 111)), f.events(list(range(start, start + 16))[:111 - start])):
                np.testing.assert_array_equal(image, ref[f"image_{i:03d}"])
                np.testing.assert_array_equal(masks, ref[f"mask_{i:03d}"])
        assert all(m is None for _, m in f.events([3, 4], masks=False))
    sizes = {ref[f"image_{i:03d}"].shape[1:] for i in range(111)}
    assert len(sizes) > 5  # ragged events


def test_a_batch_that_fails_leaves_each_event_to_its_own_read(cif, tmp_path, monkeypatch):
    """A chunk's batch read that fails (the file changed since it was indexed) costs nothing but speed: each
    event is then read alone, and the store is the same."""
    import zarr

    from scipzarr.converters import convert

    convert([cif], tmp_path / "batch.zarr", chunk_tiles=4, progress=False)

    def broken(self, ks, masks=True):
        raise cifmod.CifError(f"{self.index.path}: objects {ks[0]}-{ks[-1]} lie outside the file")

    monkeypatch.setattr(cifmod.CifFile, "events", broken)
    convert([cif], tmp_path / "alone.zarr", chunk_tiles=4, progress=False)
    a, b = zarr.open_group(str(tmp_path / "batch.zarr"), mode="r"), zarr.open_group(str(tmp_path / "alone.zarr"), mode="r")
    np.testing.assert_array_equal(a["s0"][...], b["s0"][...])
    for k in range(1, 7):
        np.testing.assert_array_equal(a["labels"][f"ideas-Ch{k}"]["s0"][...], b["labels"][f"ideas-Ch{k}"]["s0"][...])
    assert np.asarray(a["s0"][...]).any()


def test_convert_writes_the_mosaic_with_instrument_masks_and_metadata(cif, tmp_path):
    from scipzarr.store import ngff, open_store, validate_store

    out = tmp_path / "cif.zarr"
    r = subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(cif), "-o", str(out), "--chunk-tiles", "4",
                        "-q"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert validate_store(out) == []
    st = open_store(out)
    ref = _reference()
    ev = st.events
    assert ev["event_id"].tolist() == [str(i) for i in range(111)]
    assert set(ev["source"]) == {str(cif)}
    assert st.label_names() == [f"ideas-Ch{k}" for k in range(1, 7)]
    image = st.image().compute()
    masks = [st.labels(f"ideas-Ch{k}").compute() for k in range(1, 7)]
    th, tw = st.mosaic.tile
    rows, cols = st.mosaic.tile_position(np.arange(111))
    for i in range(111):
        e = ev.iloc[i]
        h, w = ref[f"image_{i:03d}"].shape[1:]
        assert (e["height"], e["width"]) == (h, w)
        vy, vx, vh, vw = e["valid_y0"], e["valid_x0"], e["valid_height"], e["valid_width"]
        cy, cx = e["crop_y0"], e["crop_x0"]
        tile = image[:, rows[i] * th:(rows[i] + 1) * th, cols[i] * tw:(cols[i] + 1) * tw]
        np.testing.assert_array_equal(tile[:, vy:vy + vh, vx:vx + vw], ref[f"image_{i:03d}"][:, cy:cy + vh, cx:cx + vw])
        assert tile.sum(dtype=np.int64) == tile[:, vy:vy + vh, vx:vx + vw].sum(dtype=np.int64)  # padding is zero
        for k in range(6):
            lab = masks[k][rows[i] * th:(rows[i] + 1) * th, cols[i] * tw:(cols[i] + 1) * tw]
            np.testing.assert_array_equal(lab[vy:vy + vh, vx:vx + vw],
                                          ref[f"mask_{i:03d}"][k, cy:cy + vh, cx:cx + vw] * (i + 1))
    attrs = st.attrs["scipzarr"]
    assert attrs["acquisition"]["magnification"] == 40.0 and attrs["acquisition"]["instrument"] == "IS100-Lab"
    assert attrs["acquisition"]["brightfield_channels"] == ["Ch5"]
    assert attrs["acquisition"]["camera_bits_per_pixel"] == 10  # compensated values may pass 1023 (1125 here)
    scale = st.attrs["ome"]["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 0.5, 0.5]
    assert [a.get("unit") for a in st.attrs["ome"]["multiscales"][0]["axes"][1:]] == ["micrometer"] * 2
    assert ngff.ngff_problems(out / "labels" / "ideas-Ch5", "labels") == []


def test_channels_select_and_rename(cif, tmp_path):
    from scipzarr.converters import convert
    from scipzarr.store import open_store

    convert([cif], tmp_path / "a.zarr", channels=["Ch5", "Ch3"], progress=False)
    st = open_store(tmp_path / "a.zarr")
    assert st.channel_names == ["Ch5", "Ch3"] and st.label_names() == ["ideas-Ch5", "ideas-Ch3"]
    ref = _reference()["image_000"]
    e = st.events.iloc[0]
    th, tw = st.mosaic.tile
    tile = st.image().compute()[:, :th, :tw][:, e["valid_y0"]:e["valid_y0"] + e["valid_height"],
                                            e["valid_x0"]:e["valid_x0"] + e["valid_width"]]
    np.testing.assert_array_equal(tile, ref[[4, 2]])
    convert([cif], tmp_path / "b.zarr", channels=["SSC", "x", "GFP", "y", "BF", "z"], progress=False)
    assert open_store(tmp_path / "b.zarr").channel_names == ["SSC", "x", "GFP", "y", "BF", "z"]


def test_many_files_and_folders_go_into_one_store_in_a_fixed_order(cif, tmp_path):
    from scipzarr.converters import convert
    from scipzarr.store import open_store

    (tmp_path / "in" / "treated").mkdir(parents=True)
    (tmp_path / "in" / "control").mkdir()
    write_cif(tmp_path / "in" / "treated" / "run2.cif", cif, objects=[3, 4, 5])
    write_cif(tmp_path / "in" / "control" / "run10.cif", cif, objects=[7, 8])
    write_cif(tmp_path / "in" / "control" / "run9.cif", cif, objects=[0])
    res = convert([tmp_path / "in"], tmp_path / "s.zarr", progress=False)
    assert res["events"] == 6
    ev = open_store(tmp_path / "s.zarr").events
    assert ev["event_id"].tolist() == ["control/run9:0", "control/run10:0", "control/run10:1",
                                       "treated/run2:0", "treated/run2:1", "treated/run2:2"]
    assert ev["class_label"].tolist() == ["control"] * 3 + ["treated"] * 3
    assert ev["source"].str.endswith(".cif").all()
    assert ev["height"].tolist() == [_reference()[f"image_{i:03d}"].shape[1] for i in (0, 7, 8, 3, 4, 5)]


def test_decoding_streams_memory_does_not_grow_with_the_file(cif, tmp_path):
    small = write_cif(tmp_path / "small.cif", cif, repeat=1)
    big = write_cif(tmp_path / "big.cif", cif, repeat=20)
    peaks = []
    for path in (small, big):
        index = cifmod.read_index(path)
        with cifmod.CifFile(index) as f:
            f.image(0)
            tracemalloc.start()
            for i in range(len(index)):
                f.image(i)
                f.masks(i)
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert len(cifmod.read_index(big)) == 2220
    assert peaks[1] < 2 * peaks[0] + 200_000, peaks  # a few events' buffers, whatever the file size


def _directories(raw: bytes) -> list[int]:
    """The offsets of the object directories of a little-endian CIF, in chain order (IFD 0 left out)."""
    import struct

    offsets, at = [], struct.unpack("<I", raw[4:8])[0]
    while at:
        n = struct.unpack("<H", raw[at:at + 2])[0]
        at = struct.unpack("<I", raw[at + 2 + 12 * n:at + 6 + 12 * n])[0]
        offsets.append(at)
    return offsets[:-1]


def _index_facts(path):
    try:
        ix = cifmod.read_index(path)
    except cifmod.CifError as exc:
        return str(exc)
    return (ix.objects.tolist(), ix.width.tolist(), ix.height.tolist(), ix.image_strips, ix.mask_strips, ix.damaged)


def test_the_compiled_directory_scan_reads_what_the_general_one_does(cif, tmp_path, monkeypatch):
    """The directories are read by a compiled pass a block of the file at a time; a chain that loops or jumps
    back, a tag that is not a single value, a directory cut by a block's end, and a damaged one are read the
    general way (tag by tag), and every file gives the index that reading it all that way gives."""
    import struct

    raw = cif.read_bytes()
    dirs = _directories(raw)
    assert len(dirs) == 222  # an image and a mask page per object

    def next_of(b: bytearray, k: int, to: int) -> None:
        n = struct.unpack("<H", b[dirs[k]:dirs[k] + 2])[0]
        struct.pack_into("<I", b, dirs[k] + 2 + 12 * n, to)

    cases = {"as written": bytearray(raw)}
    cases["loops back"] = bytearray(raw)
    next_of(cases["loops back"], 150, dirs[40])
    cases["jumps back, then on"] = bytearray(raw)  # 10 -> 12 ... 60 -> 11 -> 61: every page read once
    next_of(cases["jumps back, then on"], 10, dirs[12])
    next_of(cases["jumps back, then on"], 60, dirs[11])
    next_of(cases["jumps back, then on"], 11, dirs[61])
    cases["a tag of two values"] = bytearray(raw)  # object 20's strip byte count claims 2 values
    b = cases["a tag of two values"]
    n = struct.unpack("<H", b[dirs[40]:dirs[40] + 2])[0]
    entry = next(dirs[40] + 2 + 12 * e for e in range(n) if struct.unpack("<H", b[dirs[40] + 2 + 12 * e:][:2])[0] == 279)
    struct.pack_into("<I", b, entry + 4, 2)
    cases["a directory of 0 entries"] = bytearray(raw)
    struct.pack_into("<H", cases["a directory of 0 entries"], dirs[99], 0)
    cases["cut in a directory"] = bytearray(raw[:dirs[170] + 30])
    cases["an image page without its object number"] = bytearray(raw)
    b = cases["an image page without its object number"]
    n = struct.unpack("<H", b[dirs[0]:dirs[0] + 2])[0]
    entry = next(dirs[0] + 2 + 12 * e for e in range(n) if struct.unpack("<H", b[dirs[0] + 2 + 12 * e:][:2])[0] == 33003)
    struct.pack_into("<H", b, entry, 33100)  # the first object's number tag renamed: no object number
    general = {}
    for name, data in cases.items():
        path = tmp_path / f"{name}.cif"
        path.write_bytes(bytes(data))
    with monkeypatch.context() as m:  # every directory the general way
        m.setattr(cifmod, "SCAN_BLOCK", 0)
        for name in cases:
            general[name] = _index_facts(tmp_path / f"{name}.cif")
    for block in (2**20, 5000):  # 5000 bytes: directories cut by the blocks' ends
        monkeypatch.setattr(cifmod, "SCAN_BLOCK", block)
        for name in cases:
            assert _index_facts(tmp_path / f"{name}.cif") == general[name], (name, block)
    assert general["as written"][0] == list(range(111)) and general["as written"][5] == []
    assert general["loops back"][5][0] == (-1, f"the directory chain loops back to byte {dirs[40]}")
    assert general["jumps back, then on"][0] == list(range(111)) and general["jumps back, then on"][5] == []
    assert (20, "image strips lie outside the file") in general["a tag of two values"][5]  # two counts, one offset
    assert "unreadable" in general["a directory of 0 entries"][5][0][1]
    assert len(general["cut in a directory"][0]) == 85
    assert general["an image page without its object number"] == (
        f"{tmp_path / 'an image page without its object number.cif'}: the first object: a page lacks TIFF tag "
        "33003; the file is damaged")


def test_an_acquisition_xml_that_is_not_text_is_one_line(cif, tmp_path):
    """A damaged type of the acquisition XML's tag (found by the byte-flipping test: it reached the XML search
    as a tuple of numbers) is one CifError line."""
    import struct

    raw = bytearray(cif.read_bytes())
    first = struct.unpack("<I", raw[4:8])[0]
    n = struct.unpack("<H", raw[first:first + 2])[0]
    entry = next(first + 2 + 12 * e for e in range(n) if struct.unpack("<H", raw[first + 2 + 12 * e:][:2])[0] == 33027)
    assert struct.unpack("<H", raw[entry + 2:entry + 4])[0] == 2  # ASCII
    struct.pack_into("<H", raw, entry + 2, 1)  # BYTE: the same bytes, read as numbers
    path = tmp_path / "xml.cif"
    path.write_bytes(bytes(raw))
    with pytest.raises(cifmod.CifError) as err:
        cifmod.read_index(path)
    assert str(err.value) == (f"{path}: the acquisition XML (tag 33027) is not text; the file is damaged, export it "
                              "again")


@pytest.mark.parametrize("element, damaged", [("Magnification", "4x"), ("Magnification", "nan"),
                                               ("CameraPixelSize", "0.5."), ("CameraPixelSize", "0")])
def test_a_damaged_number_in_the_xml_is_one_line(cif, tmp_path, element, damaged):
    """The magnification and the pixel size go into the store's scale: text that is not a positive number there
    (a damaged file) is one CifError line, not a traceback."""
    raw = cif.read_bytes()
    start = raw.index(f"<{element}>".encode()) + len(element) + 2
    end = raw.index(b"<", start)
    path = tmp_path / "xml.cif"
    path.write_bytes(raw[:start] + damaged.encode() + raw[end:])
    with pytest.raises(cifmod.CifError) as err:
        cifmod.read_index(path)
    assert str(err.value) == (f"{path}: the XML's {element} is {damaged!r}, not a positive number; the file is "
                              "damaged, export it again")


def test_a_truncated_file_is_one_line_and_nothing_is_left(cif, tmp_path):
    data = cif.read_bytes()
    cut = tmp_path / "cut.cif"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    out = tmp_path / "o.zarr"
    r = subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(cut), "-o", str(out), "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(cut) in lines[0] and ("truncated" in lines[0] or "damaged" in lines[0]), r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.cif"]
    r = subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(cut), "-o", str(out), "-q",
                        "--on-error", "skip"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    from scipzarr.store import open_store

    st = open_store(out)
    rejected = st.rejected()
    assert 30 < st.mosaic.n_events < 111 and len(rejected) >= 1  # the objects before the cut are kept
    assert rejected["source"].str.endswith("cut.cif").all()


def test_rif_files_are_refused_in_one_line(cif, tmp_path):
    rif = tmp_path / "raw.rif"
    rif.write_bytes(cif.read_bytes()[:4096])
    r = subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(rif), "-o", str(tmp_path / "o.zarr")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and ".rif" in r.stderr


hypothesis = pytest.importorskip("hypothesis")


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(hypothesis.strategies.data())
def test_damaged_bytes_never_crash_hang_or_overallocate(tmp_path_factory, data):
    from .conftest import CIF

    if not CIF.exists():
        pytest.skip(f"shared data not present: {CIF}")
    raw = bytearray(CIF.read_bytes())
    for _ in range(data.draw(hypothesis.strategies.integers(1, 8))):
        at = data.draw(hypothesis.strategies.integers(0, len(raw) - 1))
        raw[at] ^= data.draw(hypothesis.strategies.integers(1, 255))
    if data.draw(hypothesis.strategies.booleans()):
        raw = raw[: data.draw(hypothesis.strategies.integers(8, len(raw)))]
    path = tmp_path_factory.mktemp("fuzz") / "f.cif"
    path.write_bytes(bytes(raw))
    tracemalloc.start()
    try:
        index = cifmod.read_index(path)
        with cifmod.CifFile(index) as f:
            alone = {}
            for i in range(len(index)):
                for read in (f.image, f.masks):
                    try:
                        alone[i, read.__name__] = read(i)
                    except cifmod.CifError as exc:
                        assert str(path) in str(exc) and "\n" not in str(exc)
            if index.mask_strips and all(m is not None for m in index.mask_strips):
                # a batch gives an event only where reading it alone does, and the same pixels
                for i, got in enumerate(f.events(list(range(len(index))))):
                    if got is not None:
                        np.testing.assert_array_equal(got[0], alone[i, "image"])
                        np.testing.assert_array_equal(got[1], alone[i, "masks"])
    except cifmod.CifError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 64 * len(raw) + 2**22  # nothing larger than the file could hold


def test_process_measures_in_the_ideas_masks_when_asked(cif, tmp_path):
    """``segmentation.source: ideas``: each event's object is its IDEAS mask of the segmentation channel, so
    its area is the mask's pixel count and its mean intensity the mean under the mask (checked against the
    reference decode)."""
    from scipzarr.config import resolve_config
    from scipzarr.converters import convert
    from scipzarr.pipeline import process

    convert([cif], tmp_path / "s.zarr", chunk_tiles=4, progress=False)
    config = resolve_config({"segmentation": {"source": "ideas", "channels": ["Ch5"]}})
    t = process(tmp_path / "s.zarr", config, tmp_path / "t.h5ad", progress=False)
    ref = _reference()
    with_mask = [i for i in range(111) if ref[f"mask_{i:03d}"][4].any()]
    assert t.n_obs == len(with_mask) > 100
    area = t[:, "shape_area"].X[:, 0]
    mean = t[:, "intensity_mean_Ch3"].X[:, 0]
    for row, i in enumerate(with_mask):
        m = ref[f"mask_{i:03d}"][4].astype(bool)
        assert area[row] == m.sum()
        assert mean[row] == pytest.approx(ref[f"image_{i:03d}"][2][m].mean(), rel=1e-6)
    with pytest.raises(Exception, match="ideas-Ch1"):
        bad = resolve_config({"segmentation": {"source": "ideas", "channels": ["Ch1"]}})
        convert([cif], tmp_path / "n.zarr", channels=["Ch1", "Ch2", "Ch3", "Ch4", "Ch5", "Ch6"], progress=False)
        import shutil

        shutil.rmtree(tmp_path / "n.zarr" / "labels")
        process(tmp_path / "n.zarr", bad, progress=False)


def test_labels_written_by_process_share_the_images_pixel_size(cif, tmp_path):
    from scipzarr.config import resolve_config
    from scipzarr.converters import convert
    from scipzarr.pipeline import process
    from scipzarr.store import ngff, open_store, validate_store

    convert([cif], tmp_path / "s.zarr", progress=False)
    process(tmp_path / "s.zarr", resolve_config({"segmentation": {"channels": ["Ch3"]}}), progress=False)
    st = open_store(tmp_path / "s.zarr")
    assert st.pixel_size == (0.5, 0.5) and validate_store(tmp_path / "s.zarr") == []
    for name in ("cells", "ideas-Ch3"):
        ms = ngff.group_attrs(tmp_path / "s.zarr" / "labels" / name)["ome"]["multiscales"][0]
        assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [1.0, 1.0]
        assert [a["unit"] for a in ms["axes"]] == ["micrometer"] * 2


def _varints_by_the_spec(data: bytes, n: int) -> list[int] | None:
    """The first ``n`` greyscale values of ``data`` as the format describes them, one nibble at a time: low nibble
    first, 3 data bits each, least significant group first; bit 3 set: more groups follow; bit 2 of the last
    group: the sign (the value minus 2 ** (3 * groups)). None when a value read has more than 6 groups (more
    than 16 bits: damaged data)."""
    values, value, shift, longest = [], 0, 0, 0
    for byte in data:
        for nib in (byte & 15, byte >> 4):
            value += (nib & 7) << shift
            shift += 3
            longest = max(longest, shift)
            if not nib & 8:
                values.append(value - ((nib >> 2) & 1) * (1 << shift))
                value = shift = 0
        if len(values) >= n:
            break
    return None if longest > 18 else values[:n]


def test_the_greyscale_values_are_the_formats_on_any_bytes():
    """The compiled varint reader (two one-nibble values per byte in one step, the rest nibble by nibble) gives
    the values the format's description gives, on byte strings of every kind of value."""
    from scipzarr.converters import _cifdecode

    rng = np.random.default_rng(7)
    for trial in range(3000):
        data = rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8)
        if trial % 3 == 0:
            data &= 0x77  # one-nibble values only
        elif trial % 3 == 1:
            data[rng.random(data.size) < 0.8] &= 0x77  # mostly, as in real images
        n = int(rng.integers(1, 2 * data.size + 2))
        want = _varints_by_the_spec(data.tobytes(), n)
        d = np.zeros(n + 2, np.int64)
        k = _cifdecode._varints(data, d)
        if want is None:
            assert k == -1
        else:
            assert k == len(want) and d[:k].tolist() == want, (data.tolist(), n)


def test_a_channel_name_that_would_nest_the_label_images_is_one_line(cif, tmp_path):
    """Channel names name the store's label images (labels/ideas-<name>, labels/cells-<name>): '/' in one (it
    made a nested, invalid store) or an empty one is refused in one line, before anything is written."""
    for names in ("A/B,Ch2,Ch3,Ch4,Ch5,Ch6", ",Ch2,Ch3,Ch4,Ch5,Ch6"):
        out = tmp_path / "o.zarr"
        r = subprocess.run([sys.executable, "-m", "scipzarr", "convert", str(cif), "-o", str(out), "--channels", names],
                           capture_output=True, text=True, timeout=300)
        bad = names.split(",")[0]
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [
            f"scipzarr: error: channel name {bad!r}: a channel name cannot be empty or hold '/' (it names the store's "
            "label images and table columns); give other names with --channels"], r.stderr
        assert list(tmp_path.iterdir()) == []  # nothing written


def test_a_channel_name_with_a_slash_in_the_file_becomes_an_underscore(cif, tmp_path):
    """A name the file itself gives with '/' (here 'A/B' for Ch1, same length: the file's offsets stay) is kept
    with '_' (a valid file is not refused for it) and the store is valid."""
    from scipzarr.store import validate_store

    raw = cif.read_bytes()
    assert raw.count(b"<Channel1Name>Ch1</Channel1Name>") == 1
    path = tmp_path / "named.cif"
    path.write_bytes(raw.replace(b"<Channel1Name>Ch1</Channel1Name>", b"<Channel1Name>A/B</Channel1Name>"))
    assert cifmod.read_index(path).channel_names == ["A_B", "Ch2", "Ch3", "Ch4", "Ch5", "Ch6"]
    from scipzarr.converters import convert

    convert([path], tmp_path / "o.zarr", progress=False)
    assert validate_store(tmp_path / "o.zarr") == []
    assert (tmp_path / "o.zarr" / "labels" / "ideas-A_B").is_dir()
