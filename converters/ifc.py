"""Imaging flow cytometry readers: five input layouts → one list of events.

Layouts (auto-detected from the inputs):

* **cif**: Amnis ``.cif`` files (IDEAS), read by our own decoder
  (:mod:`.cif`) with their masks, channel names, pixel size and acquisition
  facts; several files (or folders of them) in natural order.
* **ideas**: one TIFF per channel per object, ``<object>_Ch<k>[.ome].tif``
  (IDEAS exports; e.g. ``G1/00001_Ch3.tif``). Grouped by object, channels
  ordered by their number.
* **tiff**: one multi-channel TIFF per event (``(C, Y, X)``, ``(Y, X)`` or
  ``(Y, X, S)`` samples-last).
* **npy**: a numpy stack ``(N, C, Y, X)`` (or ``(N, Y, X)``), memory-mapped.
* **montage**: one TIFF per channel that tiles events on a grid of
  ``tile_size`` (CellProfiler's IFC montages); selected by giving a tile size
  with TIFF inputs whose sides are multiples of it.

The first-level sub-folder of an input folder becomes the event's class label.
Everything here is reading; :mod:`scipzarr.store` decides the layout on disk.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from scipzarr.errors import ScipzarrError

from .cif import CIF_SUFFIXES, RIF_SUFFIXES, CifFile, CifIndex, is_cif, read_index

if TYPE_CHECKING:  # tifffile is imported where a TIFF is read: a CIF or .npy convert does not pay it (~0.05 s)
    import tifffile

TIFF_SUFFIXES = (".tif", ".tiff")
_CHANNEL_RE = re.compile(r"^(?P<obj>.+?)[_-]Ch(?P<ch>\d+)(?P<rest>.*?)(\.ome)?\.tiff?$", re.IGNORECASE)
SUPPORTED_DTYPES = {"uint8", "uint16", "uint32", "int8", "int16", "int32", "float32", "float64"}


@dataclass
class EventSource:
    """A list of events and how to read each one as ``(C, h, w)``."""

    layout: str
    channel_names: list[str]
    dtype: np.dtype
    columns: dict[str, np.ndarray]  # event_id, source, class_label (str objects), height, width (int64)
    read: Callable[[int], np.ndarray]
    rejected: list[dict] = field(default_factory=list)  # event_id, source, reason, stage
    pixel_size: tuple[float | None, float | None] = (None, None)  # micrometres (y, x), when the files say
    acquisition: dict = field(default_factory=dict)  # facts from the files, kept in the store's attributes
    read_masks: Callable[[int], np.ndarray | None] | None = None  # the instrument's own masks (C, h, w), if any
    reads_hold_gil: bool = False  # reading is mostly Python steps between small system calls (many small files)
    #: Several events at once (a chunk's), as ``(image, masks or None)`` each, or None for an event to be read
    #: alone (``read``/``read_masks`` then say what is wrong with it).
    read_batch: Callable[[range], list[tuple[np.ndarray, np.ndarray | None] | None]] | None = None

    def __len__(self) -> int:
        return len(self.columns["event_id"])

    @property
    def table(self):
        """The events as a pandas DataFrame (the converter itself works on :attr:`columns`, without pandas:
        its import is ~0.4 s of a ``convert`` command)."""
        import pandas as pd

        return pd.DataFrame(self.columns)


_DIGITS = re.compile(r"(\d+)")


def _natural_key(text: str) -> list:
    """Sort key: runs of digits compare as numbers (``2`` before ``10``), the rest case-blind."""
    parts = _DIGITS.split(text.lower())
    parts[1::2] = map(int, parts[1::2])
    return parts


def _natural_order(files: list[tuple[str, Path]]) -> list[tuple[str, Path]]:
    return sorted(files, key=lambda fr: _natural_key(fr[0]))


def _collect_files(inputs: list[Path]) -> list[tuple[str, Path]]:
    """All files named by the inputs, as (file, the input folder it came from), in no set order (the layouts
    put them in natural order: :func:`_natural_order`); hidden files left out. Files are strings: an IDEAS
    export holds tens of thousands, and pathlib costs more than reading their directories."""
    found = []
    for inp in inputs:
        if not inp.exists():
            raise ScipzarrError(f"{inp}: no such file or folder; check the input path")
        if inp.is_dir():
            for folder, _, names in os.walk(inp, followlinks=True):
                prefix = os.path.join(folder, "")  # the folder and one separator: joined by hand below, 2x faster
                found += [(prefix + n, inp) for n in names if not n.startswith(".")]
        else:
            found.append((str(inp), inp.parent))
    return found


def _class_label(path: str | Path, root: Path) -> str:
    parts = _folder_parts(os.path.dirname(str(path)), root)
    return parts[0] if parts else ""


def _event_name(path: str | Path, root: Path, stem: str) -> str:
    return "/".join((*_folder_parts(os.path.dirname(str(path)), root), stem))


@lru_cache(maxsize=4096)
def _folder_parts(folder: str, root: Path) -> tuple[str, ...]:
    """The parts of a file's folder below the input folder it came from, worked out once per folder (pathlib's
    ``relative_to`` per file of a large export costs more than reading the files' directories)."""
    return Path(folder).relative_to(root).parts


def _tiff_info(path: Path) -> tuple[tuple[int, ...], str, np.dtype]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), series.axes, np.dtype(series.dtype)
    except Exception as exc:
        raise ScipzarrError(f"{path}: not a readable TIFF ({_reason(exc)}); re-export the file or remove it") from None


class SeriesLayout(NamedTuple):
    """Where a TIFF whose only series tifffile finds uncompressed in one contiguous run keeps its pixels, and the
    file's bytes around them (header, directories, tag values), which determine how tifffile reads it: a file of
    the same size with the same bytes there is read the same way, without parsing it (one multichannel TIFF per
    event, as tifffile, ImageJ or SCIP write them: ~1 ms of tifffile per file otherwise, twice)."""

    shape: tuple[int, ...]  # tifffile's series shape and axes
    axes: str
    dtype: np.dtype  # the file's byte order
    at: int  # where the pixels start
    end: int  # and end
    head: bytes  # the file's bytes before them
    tail: bytes  # and after them

    @property
    def size(self) -> int:
        return self.end + len(self.tail)


_KNOWN_SERIES: dict[int, list[SeriesLayout]] = {}  # by file size


def _series_layout(tif: tifffile.TiffFile, path) -> SeriesLayout | None:
    """The :class:`SeriesLayout` of ``tif`` (opened on ``path``) when its first series is its only one, uses
    every page, has no SubIFDs, is stored uncompressed in one contiguous run, and no directory or tag value lies
    inside that run (so the bytes around it are all the structure there is); None otherwise."""
    if len(tif.series) != 1 or len(tif.series[0].pages) != len(tif.pages):
        return None
    series, fmt = tif.series[0], tif.tiff
    at = series.dataoffset
    dtype = np.dtype(series.dtype).newbyteorder(tif.byteorder)
    if at is None or dtype.kind not in "uif" or dtype.itemsize * 8 != tif.pages.first.bitspersample:
        return None
    end = at + int(np.prod(series.shape)) * dtype.itemsize
    pages = [tif.pages.get(i, aspage=True) for i in range(len(tif.pages))]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if end > size or sum(page.nbytes for page in pages) != end - at:
            return None
        head, tail = os.pread(fd, at, 0), os.pread(fd, size - end, end)
    finally:
        os.close(fd)
    order = "little" if tif.byteorder == "<" else "big"
    for page in pages:
        if not page.is_final or 330 in page.tags or at - fmt.tagnosize < page.offset < end:
            return None
        count = head[page.offset:page.offset + fmt.tagnosize] if page.offset < at else \
            tail[page.offset - end:page.offset - end + fmt.tagnosize]
        spans = [(page.offset, fmt.tagnosize + fmt.tagsize * int.from_bytes(count, order) + fmt.offsetsize)]
        spans += [(tag.valueoffset, tag.valuebytecount) for tag in page.tags.values()]
        if any(o < end and o + n > at for o, n in spans):
            return None
    return SeriesLayout(tuple(series.shape), series.axes, dtype, at, end, head, tail)


def _known_series(path) -> SeriesLayout | None:
    """The remembered :class:`SeriesLayout` whose bytes around the pixels this file has (two short reads, however
    many layouts of its size are remembered)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        layouts = _KNOWN_SERIES.get(size)
        if not layouts:
            return None
        head = os.pread(fd, max(layout.at for layout in layouts), 0)
        after = min(layout.end for layout in layouts)
        tail = os.pread(fd, size - after, after)
    finally:
        os.close(fd)
    for layout in layouts:
        if head[:layout.at] == layout.head and tail[layout.end - after:] == layout.tail:
            return layout
    return None


def _event_tiff_info(path: Path, learn: bool = True
                     ) -> tuple[tuple[int, ...], str, np.dtype, SeriesLayout | None, bool]:
    """:func:`_tiff_info` of a per-event TIFF, its :class:`SeriesLayout` when it has one (None: tifffile reads
    it), and whether that layout is new (learnt from this file, when ``learn``). A file whose bytes around the
    pixels equal an earlier file's is not parsed again."""
    try:
        layout = _known_series(path)
        if layout is not None:
            return layout.shape, layout.axes, layout.dtype.newbyteorder("="), layout, False
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            info = tuple(series.shape), series.axes, np.dtype(series.dtype)
            try:
                layout = _series_layout(tif, path) if learn else None
            except Exception:  # tifffile's lower levels on an odd file: its general path reads it
                layout = None
    except Exception as exc:
        raise ScipzarrError(f"{path}: not a readable TIFF ({_reason(exc)}); re-export the file or remove it") from None
    if layout is not None:
        if sum(map(len, _KNOWN_SERIES.values())) > 64:
            _KNOWN_SERIES.clear()
        _KNOWN_SERIES.setdefault(layout.size, []).append(layout)
    return (*info, layout, layout is not None)


def _read_series(path, layout: SeriesLayout) -> np.ndarray | None:
    """A file's pixels as tifffile's first series (native byte order), read with the bytes around them in one
    ``preadv``; None when those bytes are not the layout's any more (the file changed since discovery: tifffile
    then reads it and says what is wrong)."""
    out = np.empty(layout.shape, layout.dtype.newbyteorder("="))
    head, tail = _buffer(layout.at, "head"), _buffer(len(layout.tail), "tail")
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            got = os.preadv(fd, [memoryview(head)[:layout.at], out, memoryview(tail)[:len(layout.tail)]], 0)
        finally:
            os.close(fd)
    except OSError:
        return None
    if got != layout.size or head[:layout.at] != layout.head or tail[:len(layout.tail)] != layout.tail:
        return None
    if not layout.dtype.isnative:
        out.byteswap(inplace=True)
    return out


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


_TIFF_DTYPES = {(1, 8): "u1", (1, 16): "u2", (1, 32): "u4", (2, 8): "i1", (2, 16): "i2", (2, 32): "i4",
                (3, 32): "f4", (3, 64): "f8"}


def _ifd_span(data: bytes) -> tuple[str, int, int] | None:
    """Byte order, offset and entry count of the first directory of a classic TIFF, when ``data`` holds the
    whole directory; None otherwise."""
    if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
        return None
    bo = "<" if data[:2] == b"II" else ">"
    off = int.from_bytes(data[4:8], "little" if bo == "<" else "big")
    if off + 2 > len(data):
        return None
    n = int.from_bytes(data[off:off + 2], "little" if bo == "<" else "big")
    if n == 0 or off + 6 + 12 * n > len(data):
        return None
    return bo, off, n


def _tiff_tags(data: bytes):
    """Byte order and the short/long tags of the first directory of a classic TIFF whose directory lies in
    ``data`` (values may point past it), whether it is the only directory, and where the values stored
    outside the directory lie (``{tag: (offset, nbytes)}``); None otherwise."""
    import struct

    span = _ifd_span(data)
    if span is None:
        return None
    bo, off, n = span
    end = off + 2 + 12 * n
    tags, outside = {}, {}
    for k in range(n):
        tag, typ, count = struct.unpack_from(bo + "HHI", data, off + 2 + 12 * k)
        if typ not in (3, 4):
            continue
        size = 2 if typ == 3 else 4
        at = off + 2 + 12 * k + 8
        if count * size > 4:
            (at,) = struct.unpack_from(bo + "I", data, at)
            outside[tag] = (at, count * size)
            if at + count * size > len(data):
                tags[tag] = None  # out of reach of these bytes
                continue
        tags[tag] = struct.unpack_from(bo + ("H" if typ == 3 else "I") * count, data, at)
    single = struct.unpack_from(bo + "I", data, end)[0] == 0
    return bo, tags, single, outside


def _geometry(bo, tags) -> tuple[tuple[int, int], np.dtype] | None:
    def get(t, d=None):
        v = tags.get(t)
        return d if v is None else v[0]

    width, height = get(256), get(257)
    fmt, bits = get(339, 1), get(258, 1)
    if width is None or height is None or get(259, 1) != 1 or get(277, 1) != 1 or (fmt, bits) not in _TIFF_DTYPES:
        return None
    return (int(height), int(width)), np.dtype(bo + _TIFF_DTYPES[(fmt, bits)])


class PlainLayout(NamedTuple):
    """Where a plain TIFF keeps its pixels, and what its header looks like (to recognise the file again)."""

    shape: tuple[int, int]
    dtype: np.dtype  # the file's byte order
    at: int  # offset of the pixels (one contiguous run)
    key: bytes  # the file's first 8 bytes and its directory
    ifd: int  # where the directory starts
    outside: tuple[tuple[int, bytes], ...]  # strip offsets/counts stored outside the directory: (offset, bytes)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize


def plain_tiff(data: bytes) -> PlainLayout | None:
    """Shape, dtype and pixel offset of a plain TIFF (classic, one uncompressed 2-D image in contiguous
    strips, as IDEAS and tifffile write event images), parsed from its bytes; None for anything else (the
    general path, tifffile, reads those)."""
    return _plain_tiff_cached(data)


def _plain_from_tags(found) -> tuple[tuple[int, int], np.dtype, int] | None:
    if found is None or not found[2]:
        return None
    bo, tags, _, _ = found
    geometry = _geometry(bo, tags)
    if geometry is None or tags.get(273) is None or tags.get(279) is None:
        return None
    (height, width), dtype = geometry
    offsets, counts = np.array(tags[273], np.int64), np.array(tags[279], np.int64)
    nbytes = width * height * dtype.itemsize
    if len(offsets) != len(counts) or int(counts.sum()) != nbytes \
            or not np.array_equal(offsets[1:], offsets[:-1] + counts[:-1]):
        return None
    return (height, width), dtype, int(offsets[0])


_KNOWN_HEADERS: dict[bytes, PlainLayout | None] = {}


def _plain_tiff_cached(data, size: int | None = None) -> PlainLayout | None:
    """:func:`plain_tiff` of a file's bytes, or of its first bytes (``data``) and its ``size``, remembered by the
    bytes of the file's header and directory (the files of one export share them, so most files are not
    parsed again) and checked against the strip offsets and counts the directory points to, which may lie
    outside it. ``data`` may be any bytes-like object (a view of a reused buffer)."""
    span = _ifd_span(data)
    if span is None:
        return None
    _, off, n = span
    key = bytes(data[:8]) + bytes(data[off:off + 6 + 12 * n])
    if key in _KNOWN_HEADERS and _same_outside(data, _KNOWN_HEADERS[key]):
        found = _KNOWN_HEADERS[key]
    else:
        tags = _tiff_tags(data)
        if tags is not None and any(tags[1].get(t, 0) is None for t in (273, 279)):
            return None  # strip offsets beyond these bytes: not known here, and not remembered as "not plain"
        plain = _plain_from_tags(tags)
        found = None if plain is None else PlainLayout(
            *plain, key, off, tuple((at, bytes(data[at:at + nbytes])) for tag, (at, nbytes) in tags[3].items()
                                    if tag in (273, 279)))
        if len(_KNOWN_HEADERS) > 64:
            _KNOWN_HEADERS.clear()
        _KNOWN_HEADERS[key] = found
    fits = found is not None and found.at + found.nbytes <= (len(data) if size is None else size)
    return found if fits else None


def _same_outside(data, layout: PlainLayout | None) -> bool:
    return layout is None or all(data[at:at + len(value)] == value for at, value in layout.outside)


_BUFFER = threading.local()


def _buffer(size: int, name: str = "buf") -> bytearray:
    """A scratch buffer of at least ``size`` bytes that this thread reuses."""
    buf = getattr(_BUFFER, name, None)
    if buf is None or len(buf) < size:
        buf = bytearray(max(size, 1 << 16))
        setattr(_BUFFER, name, buf)
    return buf


def _read_file(path, head: int | None = None) -> tuple[memoryview, int]:
    """A file's bytes (or its first ``head`` bytes) and its size, read with one ``readv`` into a buffer this
    thread reuses (valid until its next read: copy what you keep). Python's file objects cost about 5x more per
    small file than the read itself."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        want = size if head is None else min(head, size)
        view = memoryview(_buffer(want))[:want]
        got = os.readv(fd, [view]) if want else 0
    finally:
        os.close(fd)
    return view[:got], size


def tiff_layouts(paths: list[str]) -> list[PlainLayout | None]:
    """The plain-TIFF layout (:func:`plain_tiff`) of each file from its first 4 KiB (its directory) and its
    size; None where the file is not plain or unreadable (tifffile then says why). One thread: with a second
    one the two fight over the GIL between their short reads and take twice as long (measured)."""
    out: list = [None] * len(paths)
    for i, path in enumerate(paths):
        try:
            head, size = _read_file(path, 4096)
        except OSError:
            continue
        out[i] = _plain_tiff_cached(head, size)
    return out


def _read_plain(path: str, layout: PlainLayout, out: np.ndarray) -> bool:
    """A plain TIFF's pixels read straight into ``out`` (native byte order) and its header into a scratch
    buffer, in one ``preadv``, when the file still has the header and directory discovery saw; False otherwise
    (the general path then reads it and says what is wrong)."""
    at, ifd = layout.at, layout.ifd
    if ifd + len(layout.key) - 8 > at or any(a + len(v) > at for a, v in layout.outside):
        return False  # the directory lies after the pixels
    head = _buffer(at, "head")
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            got = os.preadv(fd, [memoryview(head)[:at], out], 0)
        finally:
            os.close(fd)
    except OSError:
        return False
    if got != at + layout.nbytes or head[:8] != layout.key[:8] or head[ifd:ifd + len(layout.key) - 8] != layout.key[8:] \
            or not _same_outside(head, layout):
        return False
    if not layout.dtype.isnative:
        out.byteswap(inplace=True)
    return True


def _read_event_file(path: Path, shape: tuple[int, int] | None = None, dtype=None, out: np.ndarray | None = None,
                     seen: str | Path | None = None) -> np.ndarray:
    """One channel image, each file read once: the plain-TIFF fast path (:func:`plain_tiff`), else tifffile on
    the same bytes. ``shape``/``dtype``: what discovery assumed (checked; one clear line if not), from the file
    ``seen`` (the object's first channel; ``path`` itself by default). ``out``: where to put the pixels (an array
    of that shape and dtype)."""
    try:
        data, _ = _read_file(path)
    except OSError as exc:
        raise ScipzarrError(f"{path}: cannot read pixel data ({exc.strerror}); the file is missing or unreadable, "
                            "re-export it") from None
    plain = _plain_tiff_cached(data)
    if plain is not None:
        img = np.frombuffer(data, plain.dtype, count=plain.nbytes // plain.dtype.itemsize, offset=plain.at
                            ).reshape(plain.shape)
    else:
        import tifffile

        try:
            img = tifffile.imread(io.BytesIO(bytes(data)))
        except Exception as exc:
            raise ScipzarrError(f"{path}: cannot read pixel data ({_reason(exc)}); the file is corrupt or truncated, "
                                "re-export it") from None
    native = img.dtype if img.dtype.isnative else img.dtype.newbyteorder("=")
    if shape is not None and (img.shape != shape or (dtype is not None and native != dtype)):
        was = "when discovered" if seen is None or str(seen) == str(path) else f"as {Path(seen).name} is"
        raise ScipzarrError(f"{path}: the image is {'x'.join(map(str, img.shape))} {native}, not "
                            f"{'x'.join(map(str, shape))} {dtype} {was}; re-export the object")
    if out is None:
        return img.astype(native, copy=True)
    out[...] = img
    return out


def _read_tiff(path: Path) -> np.ndarray:
    """A whole TIFF as tifffile's first series (its shape may come from the file's description, e.g. a
    ``(C, Y, X)`` event stored as one page): the general path of per-event TIFFs and montages."""
    import tifffile

    try:
        return tifffile.imread(path)
    except Exception as exc:
        raise ScipzarrError(f"{path}: cannot read pixel data ({_reason(exc)}); the file is corrupt or truncated, "
                            "re-export it") from None


def _to_cyx(arr: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Bring a per-event image to (C, Y, X)."""
    if arr.ndim == 2:
        return arr[np.newaxis]
    if arr.ndim == 3:
        if axes.endswith("S") or (arr.shape[-1] <= 4 < arr.shape[0]):
            return np.moveaxis(arr, -1, 0)
        return arr
    raise ScipzarrError(f"{path}: expected a 2-D or 3-D (C, Y, X) image, got shape {arr.shape}; export one event per file")


def _check_dtype(dtypes: dict[np.dtype, Path]) -> np.dtype:
    if len(dtypes) > 1:
        items = ", ".join(f"{dt} ({p.name})" for dt, p in list(dtypes.items())[:3])
        raise ScipzarrError(f"mixed pixel types in the input: {items}; export all events with one bit depth")
    dtype = next(iter(dtypes))
    if dtype.name not in SUPPORTED_DTYPES:
        raise ScipzarrError(f"{dtypes[dtype]}: pixel type {dtype} is not supported; use integer or float32/64 images")
    return dtype


#: IFC events are tens to hundreds of pixels; a larger "event" is a damaged header or another kind of image.
MAX_EVENT_SIDE = 4096
#: The store format's channel limit (schemas/store.schema.json); more is a damaged header.
MAX_CHANNELS = 1024


def _check_size(shape: tuple[int, int], path: Path | str) -> None:
    if min(shape) < 1:
        raise ScipzarrError(f"{path}: image has zero size {shape}; remove the file or re-export it")
    if max(shape) > MAX_EVENT_SIDE:
        raise ScipzarrError(f"{path}: image is {shape[0]} x {shape[1]} px, larger than an IFC event can be "
                            f"({MAX_EVENT_SIDE} px per side); check the file (a damaged header?) or remove it")


def discover(inputs: list[str | Path], tile_size: int | None = None, channel_names: list[str] | None = None,
             on_error: str = "fail") -> EventSource:
    """Detect the input layout and list its events (headers only, no pixels).

    With ``on_error="skip"``, events whose files are unreadable or inconsistent
    (channels, size, pixel type) are left out and listed in ``source.rejected``.
    """
    reject = Rejects(on_error)
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise ScipzarrError("no input given; name TIFF files, folders or a .npy file")
    if len(inputs) == 1 and inputs[0].suffix == ".npy":
        source = _from_npy(inputs[0])
    else:
        files = _collect_files(inputs)
        ends = [p[-5:].lower() for p, _ in files]  # the suffixes looked up lower-cased, the names' ends only
        cifs = [(Path(p), r) for p, r in _natural_order([f for f, end in zip(files, ends)
                                                         if end.endswith(CIF_SUFFIXES + RIF_SUFFIXES)])]
        tiffs = [f for f, end in zip(files, ends) if end.endswith(TIFF_SUFFIXES)]
        if cifs and tiffs:
            raise ScipzarrError(f"{cifs[0][0]} and {_natural_order(tiffs)[0][0]}: the input mixes .cif files and TIFF exports; "
                                "convert them into separate stores")
        if not tiffs and not cifs:
            where = ", ".join(map(str, inputs))
            raise ScipzarrError(f"{where}: no event files found (.cif, .tif/.tiff); check the input folder")
    if len(inputs) != 1 or inputs[0].suffix != ".npy":
        if cifs:
            source = _from_cifs(cifs, reject)
        elif tile_size is not None and _looks_like_montages(as_paths := [(Path(p), r) for p, r in _natural_order(tiffs)],
                                                            tile_size):
            source = _from_montages(as_paths, tile_size)
        elif (names := _ideas_names(tiffs)) is not None:
            source = _from_ideas(tiffs, reject, names)
        else:
            source = _from_event_tiffs([(Path(p), r) for p, r in _natural_order(tiffs)], reject)
    source.rejected = reject.rows
    if channel_names is not None and len(channel_names) < len(source.channel_names) and \
            set(channel_names) <= set(source.channel_names) and len(set(channel_names)) == len(channel_names):
        return _select_channels(source, [source.channel_names.index(c) for c in channel_names])
    if channel_names is not None:
        if len(channel_names) != len(source.channel_names):
            raise ScipzarrError(
                f"--channels names {len(channel_names)} channels but the input has {len(source.channel_names)} "
                f"({', '.join(source.channel_names)}); give one name per channel"
            )
        if len(set(channel_names)) != len(channel_names):
            raise ScipzarrError(f"--channels has duplicate names: {','.join(channel_names)}; give unique names")
        source.channel_names = list(channel_names)
    return source


def _select_channels(source: EventSource, keep: list[int]) -> EventSource:
    """The source reading only the channels ``keep`` (in that order)."""
    read, masks = source.read, source.read_masks
    source.channel_names = [source.channel_names[k] for k in keep]
    source.read = lambda i: read(i)[keep]
    if masks is not None:
        source.read_masks = lambda i: masks(i)[keep]
    if source.read_batch is not None:
        batch = source.read_batch
        source.read_batch = lambda events: [None if got is None else (got[0][keep], None if got[1] is None else got[1][keep])
                                            for got in batch(events)]
    source.acquisition = dict(source.acquisition) | {"channels_selected": list(source.channel_names)}
    return source


def _from_cifs(cifs: list[tuple[Path, Path]], reject: Rejects) -> EventSource:
    """Events of one or more Amnis .cif files (:mod:`.cif`), in file order (files in natural order)."""
    from . import _cifdecode  # noqa: F401  numba, imported here: before the progress display watches compiles

    indexes = []
    for path, root in cifs:
        if not is_cif(path) and path.suffix.lower() in CIF_SUFFIXES:
            raise ScipzarrError(f"{path}: not a CIF (no TIFF header); give a .cif file written by IDEAS")
        index = read_index(path)
        indexes.append((index, root))
    first = indexes[0][0]
    for index, _ in indexes[1:]:
        if index.channels != first.channels:
            raise ScipzarrError(f"{index.path}: channels {index.channel_names} differ from {first.path}'s "
                                f"{first.channel_names}; convert files of one acquisition setup together")
    many = len(indexes) > 1
    rows, where = [], []
    for f, (index, root) in enumerate(indexes):
        stem = _event_name(index.path, root, index.path.stem)
        label = _class_label(index.path, root)
        bad = {obj: problem for obj, problem in index.damaged}
        if -1 in bad:
            reject(f"{stem}:*", index.path, f"{index.path}: {bad[-1]}; the file is truncated or damaged")
        for i, obj in enumerate(index.objects.tolist()):
            event_id = f"{stem}:{obj}" if many else str(obj)
            if obj in bad:
                reject(event_id, index.path, f"{index.path}: object {obj}: {bad[obj]}; the file is damaged")
                continue
            rows.append({"event_id": event_id, "source": str(index.path), "class_label": label,
                         "height": int(index.height[i]), "width": int(index.width[i])})
            where.append((f, i))
    if not rows:
        raise ScipzarrError("every event was rejected; run with --on-error fail to see the first problem")
    files = [index for index, _ in indexes]

    def read(i: int) -> np.ndarray:
        f, k = where[i]
        return _cif_file(files[f]).image(k)

    def read_masks(i: int) -> np.ndarray | None:
        f, k = where[i]
        return _cif_file(files[f]).masks(k)

    def read_batch(events: range) -> list:
        """The events' images and masks, one read and one compiled pass per file they come from."""
        out = []
        for f, group in itertools.groupby(events, key=lambda i: where[i][0]):
            out += _cif_file(files[f]).events([where[i][1] for i in group], masks=has_masks)
        return out

    px = first.pixel_size_um
    facts = {"format": "Amnis CIF", "files": [str(ix.path) for ix in files],
             "magnification": first.magnification, "pixel_size_um": px,
             "brightfield_channels": [f"Ch{k}" for k in first.brightfield], **first.facts}
    has_masks = all(m is not None for ix in files for m in ix.mask_strips)
    return EventSource("cif", list(first.channel_names), np.dtype(np.uint16), _event_columns(rows), read,
                       pixel_size=(px, px), acquisition={k: v for k, v in facts.items() if v not in (None, [], "")},
                       read_masks=read_masks if has_masks else None, read_batch=read_batch)


_CIF_FILES: dict[Path, CifFile] = {}
_CIF_LOCK = threading.Lock()


def _cif_file(index: CifIndex) -> CifFile:
    """One open reader per file and process (positioned reads: threads share it)."""
    with _CIF_LOCK:
        if index.path not in _CIF_FILES:
            _CIF_FILES[index.path] = CifFile(index)
        return _CIF_FILES[index.path]


def _from_npy(path: Path) -> EventSource:
    try:
        arr = np.load(path, mmap_mode="r")
    except Exception as exc:
        raise ScipzarrError(f"{path}: not a readable .npy file ({_reason(exc)}); save it with numpy.save") from None
    if arr.ndim == 3:
        arr = arr[:, np.newaxis]
    if arr.ndim != 4:
        raise ScipzarrError(f"{path}: expected an (N, C, Y, X) or (N, Y, X) stack, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ScipzarrError(f"{path}: the stack holds no events (shape {arr.shape})")
    _check_size(arr.shape[-2:], path)
    dtype = _check_dtype({arr.dtype: path})
    n = arr.shape[0]
    table = {
        "event_id": np.array([str(i) for i in range(n)], dtype=object),
        "source": np.array([f"{path.name}[{i}]" for i in range(n)], dtype=object),
        "class_label": np.array([""] * n, dtype=object),
        "height": np.full(n, arr.shape[2], np.int64),
        "width": np.full(n, arr.shape[3], np.int64),
    }
    return EventSource("npy", [f"ch{i}" for i in range(arr.shape[1])], dtype, table,
                       lambda i: _npy_event(path, i))


class Rejects:
    """The bad-events policy: ``fail`` raises at the first bad event, ``skip`` records it.

    Nothing is ever dropped silently: every skipped event is kept with its
    source and reason, and ends up in the store's ``tables/rejected``.
    """

    def __init__(self, on_error: str = "fail"):
        if on_error not in ("fail", "skip"):
            raise ScipzarrError(f"--on-error {on_error}: choose fail or skip")
        self.skip = on_error == "skip"
        self.rows: list[dict] = []

    def __call__(self, event_id: str, source, message: str) -> None:
        """``message`` is the full one-line error (``<where>: <what>; <remedy>``)."""
        if not self.skip:
            raise ScipzarrError(message)
        self.rows.append({"event_id": event_id, "source": str(source), "reason": message, "stage": "header"})


def _majority(values: dict) -> object:
    """The most common value of ``{item: value}`` (first seen wins ties)."""
    counts: dict = {}
    for v in values.values():
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=counts.get)


def _ideas_names(tiffs: list[tuple[str, Path]]) -> list[tuple[str, re.Match]] | None:
    """Each file's folder and the match of its name with ``<object>_Ch<k>``, when every name matches (an IDEAS
    export); None otherwise."""
    out = []
    sep = os.sep
    for path, _ in tiffs:
        parent, at, name = path.rpartition(sep)  # os.path.split without its checks (2x faster per name)
        m = _CHANNEL_RE.match(name)
        if m is None:
            return None
        out.append((parent or at, m))
    return out


def _from_ideas(tiffs: list[tuple[str, Path]], reject: Rejects, names: list[tuple[str, re.Match]]) -> EventSource:
    """One TIFF per channel per object (``names``: :func:`_ideas_names` of ``tiffs``), the objects in the natural
    order of their first channel's file. Paths are handled as strings and each object's directory is read with one small read (:func:`tiff_layouts`): an
    export holds tens of thousands of files."""
    found: dict[tuple[str, str], dict[int, str]] = {}
    roots: dict[tuple[str, str], Path] = {}
    for (path, root), (parent, m) in zip(tiffs, names):
        key = (parent, m["obj"] + m["rest"])
        chans = found.setdefault(key, {})
        ch = int(m["ch"])
        if ch in chans:
            a, b = sorted((path, chans[ch]), key=_natural_key)
            raise ScipzarrError(f"{b}: channel Ch{ch} of object {m['obj']} appears twice "
                                f"({os.path.basename(a)}); remove the duplicate")
        chans[ch] = path
        roots[key] = root
    # sorting the objects, not their files: one sort key per object instead of one per file
    objects = dict(sorted(found.items(), key=lambda kv: _natural_key(kv[1][min(kv[1])])))
    channels = sorted(set().union(*objects.values()))
    complete = [key for key, chans in objects.items() if len(chans) == len(channels)]
    # one directory per object, its first channel's: an object's channel files share their geometry, and each
    # of the others is checked against it when its pixels are read (its own directory, in the same read)
    layouts = dict(zip(complete, tiff_layouts([objects[k][channels[0]] for k in complete])))

    info: dict[tuple, tuple] = {}
    for key, chans in objects.items():
        parent, obj = key
        event_id = _event_name(chans[min(chans)], roots[key], obj)
        here = os.path.join(parent, obj)
        if sorted(chans) != channels:
            have = ",".join(f"Ch{c}" for c in sorted(chans))
            want = ",".join(f"Ch{c}" for c in channels)
            reject(event_id, here, f"{here}: object has channels {have} but the export has {want}; "
                                   "export every channel for every object")
            continue
        first, path = layouts[key], chans[channels[0]]
        try:
            if first is not None:  # a plain file: the usual export
                shape, dtype = first.shape, first.dtype.newbyteorder("=")
            else:
                shape, _, dtype = _tiff_info(Path(path))
                if len(shape) != 2:
                    raise ScipzarrError(f"{path}: expected one 2-D plane per channel file, got shape {shape}")
            _check_size(shape, path)
        except ScipzarrError as exc:
            reject(event_id, here, str(exc))
            continue
        info[key] = (event_id, shape, dtype)
    dtype = _common_dtype({k: v[2] for k, v in info.items()}, {k: objects[k][channels[0]] for k in info}, reject,
                          {k: v[0] for k, v in info.items()})
    rows, paths, plain = [], [], []
    for key, (event_id, (h, w), dt) in info.items():
        if dt != dtype:
            continue
        chans = objects[key]
        rows.append({"event_id": event_id, "source": ";".join(chans[c] for c in channels),
                     "class_label": _class_label(chans[channels[0]], roots[key]), "height": h, "width": w})
        paths.append([chans[c] for c in channels])
        plain.append(layouts[key])
    if not rows:
        raise ScipzarrError("every event was rejected; see the reasons above or run with --on-error fail")

    shapes = [(r["height"], r["width"]) for r in rows]

    def read(i: int) -> np.ndarray:
        out = np.empty((len(channels), *shapes[i]), dtype)
        layout = plain[i]
        for c, path in enumerate(paths[i]):
            if layout is None or not _read_plain(path, layout, out[c]):
                _read_event_file(path, shapes[i], dtype, out[c], paths[i][0])
        return out

    return EventSource("ideas", [f"Ch{c}" for c in channels], dtype, _event_columns(rows), read,
                       reads_hold_gil=True)


def _common_dtype(dtypes: dict, where: dict, reject: Rejects, ids: dict) -> np.dtype:
    """The events' pixel type; with ``skip``, events of a minority type are rejected."""
    if not dtypes:
        raise ScipzarrError("every event was rejected; run with --on-error fail to see the first problem")
    if len(set(dtypes.values())) > 1:
        if not reject.skip:
            _check_dtype({dt: where[k] for k, dt in reversed(list(dtypes.items()))})
        main = _majority(dtypes)
        for k, dt in dtypes.items():
            if dt != main:
                reject(ids[k], where[k], f"{where[k]}: pixel type {dt} differs from the other events' {main}; "
                                         "export all events with one bit depth")
        return _check_dtype({main: next(where[k] for k, dt in dtypes.items() if dt == main)})
    return _check_dtype({next(iter(dtypes.values())): next(iter(where.values()))})


def _from_event_tiffs(tiffs: list[tuple[Path, Path]], reject: Rejects) -> EventSource:
    info: dict[Path, tuple] = {}
    unmatched = 0  # layouts learnt in a row that no later file had: past 8, each file has its own (an OME UUID)
    for path, root in tiffs:
        event_id = _event_name(path, root, path.name.split(".")[0])
        try:
            shape, axes, dtype, layout, new = _event_tiff_info(path, learn=unmatched < 8)
            if new:
                unmatched += 1
            elif layout is not None:  # a file recognised: the layouts learnt are met again
                unmatched = 0
            if len(shape) == 2:
                c, h, w = 1, *shape
            elif len(shape) == 3 and (axes.endswith("S") or shape[-1] <= 4 < shape[0]):
                h, w, c = shape
            elif len(shape) == 3:
                c, h, w = shape
            else:
                raise ScipzarrError(f"{path}: expected a (C, Y, X) event image, got shape {shape} (axes {axes}); "
                                    "export one event per file")
            _check_size((h, w), path)
            if c > MAX_CHANNELS:
                raise ScipzarrError(f"{path}: header says {c} channels, more than a store holds ({MAX_CHANNELS}); "
                                    "the file is damaged or not an event image: re-export or remove it")
        except ScipzarrError as exc:
            reject(event_id, path, str(exc))
            continue
        info[path] = (event_id, root, axes, c, h, w, dtype, layout)
    if not info:
        raise ScipzarrError("every event was rejected; run with --on-error fail to see the first problem")
    n_channels = {p: v[3] for p, v in info.items()}
    if len(set(n_channels.values())) > 1:
        main = _majority(n_channels) if reject.skip else next(iter(n_channels.values()))
        first = next(p for p, c in n_channels.items() if c == main)
        for p, c in n_channels.items():
            if c != main:
                reject(info[p][0], p, f"{p}: event has {c} channels but {first.name} has {main}; "
                                      "all events need the same channels")
        info = {p: v for p, v in info.items() if v[3] == main}
    dtype = _common_dtype({p: v[6] for p, v in info.items()}, {p: p for p in info}, reject,
                          {p: v[0] for p, v in info.items()})
    info = {p: v for p, v in info.items() if v[6] == dtype}
    rows = [{"event_id": v[0], "source": str(p), "class_label": _class_label(p, v[1]), "height": v[4], "width": v[5]}
            for p, v in info.items()]
    reads = [(p, v[2], v[7], (v[3], v[4], v[5])) for p, v in info.items()]

    def read(i: int) -> np.ndarray:
        path, axes, layout, shape = reads[i]
        img = None if layout is None else _read_series(path, layout)
        img = _to_cyx(_read_tiff(path) if img is None else img, axes, path)
        if img.shape != shape:
            got, want = "x".join(map(str, img.shape)), "x".join(map(str, shape))
            raise ScipzarrError(f"{path}: the image is {got}, not {want} (channels x height x width) when discovered; "
                                "re-export the event")
        return img

    c = next(iter(info.values()))[3]
    return EventSource("tiff", [f"ch{i}" for i in range(c)], dtype, _event_columns(rows), read,
                       reads_hold_gil=True)


def _looks_like_montages(tiffs: list[tuple[Path, Path]], tile: int) -> bool:
    for path, _ in tiffs:
        shape, _, _ = _tiff_info(path)
        if len(shape) != 2 or shape[0] % tile or shape[1] % tile or shape[0] == tile == shape[1]:
            return False
    return True


def _from_montages(tiffs: list[tuple[Path, Path]], tile: int) -> EventSource:
    """Montage sets: files that differ only by their Ch<k> tag are one set."""
    sets: dict[tuple[Path, str], dict[int, Path]] = {}
    roots = {}
    for i, (path, root) in enumerate(tiffs):
        m = _CHANNEL_RE.match(path.name)
        key, ch = ((path.parent, m["obj"] + "*" + m["rest"]), int(m["ch"])) if m else ((path.parent, "*"), i)
        sets.setdefault(key, {})[ch] = path
        roots[key] = root
    channel_sets = {tuple(sorted(c)) for c in sets.values()}
    if len(channel_sets) > 1:
        raise ScipzarrError(f"montage sets have different channels: {sorted(channel_sets)}; give one file per channel for every set")
    channels = sorted(next(iter(channel_sets)))
    rows, where, dtypes = [], [], {}
    for key, chans in sets.items():
        shapes = {_tiff_info(chans[c])[0] for c in channels}
        for c in channels:
            dtypes.setdefault(_tiff_info(chans[c])[2], chans[c])
        if len(shapes) > 1:
            raise ScipzarrError(f"{chans[channels[0]]}: montage channels differ in size {sorted(shapes)}")
        h, w = shapes.pop()
        name = chans[channels[0]].name.split(".")[0]
        m = _CHANNEL_RE.match(chans[channels[0]].name)
        stem = (m["obj"] + m["rest"]) if m else name
        for r in range(h // tile):
            for c in range(w // tile):
                rows.append({
                    "event_id": _event_name(chans[channels[0]], roots[key], f"{stem}_r{r}_c{c}"),
                    "source": ";".join(f"{chans[ch]}[{r * tile}:{(r + 1) * tile},{c * tile}:{(c + 1) * tile}]" for ch in channels),
                    "class_label": _class_label(chans[channels[0]], roots[key]),
                    "height": tile, "width": tile,
                })
                where.append((key, r, c))
    dtype = _check_dtype(dtypes)
    files = {key: tuple(chans[ch] for ch in channels) for key, chans in sets.items()}

    def read(i: int) -> np.ndarray:
        key, r, c = where[i]
        montage = _load_montage(files[key])
        return montage[:, r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]

    names = [f"Ch{c}" for c in channels] if all(_CHANNEL_RE.match(p.name) for p, _ in tiffs) else [f"ch{i}" for i in range(len(channels))]
    return EventSource("montage", names, dtype, _event_columns(rows), read)


# Per-process caches, reached from the read functions by reference (so tasks
# pickle small for process and cluster schedulers).
_MONTAGES: dict[tuple, np.ndarray] = {}
_MONTAGE_LOCK = threading.Lock()


def _load_montage(paths: tuple[Path, ...]) -> np.ndarray:
    """Decode one montage set (all channels); keep the last two sets (events are read set by set)."""
    with _MONTAGE_LOCK:
        if paths not in _MONTAGES:
            if len(_MONTAGES) >= 2:
                _MONTAGES.pop(next(iter(_MONTAGES)))
            _MONTAGES[paths] = np.stack([_read_tiff(p) for p in paths])
        return _MONTAGES[paths]


@lru_cache(maxsize=4)
def _npy_layout(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """Data offset, shape and dtype of a C-ordered .npy file."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if fortran:
            raise ScipzarrError(f"{path}: Fortran-ordered arrays are not supported; save with numpy.save(np.ascontiguousarray(a))")
        return f.tell(), shape, dtype


def _npy_event(path: Path, i: int) -> np.ndarray:
    """One event read with plain file reads: a memory map would keep every page it touched
    resident (the 200,000-event benchmark's convert reached 18.9 GB RSS that way)."""
    offset, shape, dtype = _npy_layout(path)
    per_event = int(np.prod(shape[1:]))
    with open(path, "rb") as f:
        f.seek(offset + i * per_event * dtype.itemsize)
        data = np.fromfile(f, dtype=dtype, count=per_event)
    if data.size != per_event:
        raise ScipzarrError(f"{path}: the file ends inside event {i}; it is truncated, save it again")
    data = data.reshape(shape[1:])
    return data if len(shape) == 4 else data[np.newaxis]


def _event_columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """The events' columns (:attr:`EventSource.columns`) from one dict per event; one clear line when two
    events share an id."""
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["event_id"]] = seen.get(row["event_id"], 0) + 1
    if len(seen) < len(rows):
        first = next(row["event_id"] for row in rows if seen[row["event_id"]] > 1)
        srcs = [row["source"] for row in rows if row["event_id"] == first][:2]
        raise ScipzarrError(f"two events share the id {first!r} ({' and '.join(srcs)}); give each event a unique file name")
    return {key: np.array([row[key] for row in rows], dtype=np.int64 if key in ("height", "width") else object)
            for key in ("event_id", "source", "class_label", "height", "width")}
