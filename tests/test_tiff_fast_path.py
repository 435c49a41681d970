"""The plain-TIFF fast path of IDEAS exports: the same pixels as tifffile, the general path for the rest, and
one clear line when a file does not hold what the export's other files do."""

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
    """Ragged exports: a file of the same byte size but another shape (45 x 44 beside 44 x 45) is seen as such
    at discovery (its directory is read, not assumed from its size), and a file whose pixels do not match its
    discovered geometry is one clear line when read."""
    from scipzarr.errors import ScipzarrError

    for i in range(3):
        for c in (1, 2):
            tifffile.imwrite(tmp_path / f"{i}_Ch{c}.tif", np.full((20, 30), i + c, np.uint16))
    tifffile.imwrite(tmp_path / "2_Ch2.tif", np.full((30, 20), 9, np.uint16))  # same bytes, transposed shape
    with pytest.raises(ScipzarrError, match=r"channel images differ in size \[\(20, 30\), \(30, 20\)\]"):
        discover([tmp_path])
    source = discover([tmp_path], on_error="skip")
    assert len(source) == 2 and len(source.rejected) == 1
    np.testing.assert_array_equal(source.read(0), np.stack([np.full((20, 30), 1), np.full((20, 30), 2)]))
    tifffile.imwrite(tmp_path / "1_Ch2.tif", np.full((30, 20), 7, np.uint16))  # changed after discovery
    with pytest.raises(ScipzarrError, match=r"1_Ch2.tif: the image is 30x20 uint16 but the export's other files"):
        source.read(1)
