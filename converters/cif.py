"""Amnis ``.cif`` (compensated image file) and ``.rif`` reading: our own decoder, numpy + numba, no Java.

A CIF is TIFF-like: a little- or big-endian TIFF header and a chain of image
file directories (IFDs), but not valid TIFF (custom compression codes; the
pixels of one object hold every channel side by side). What we rely on, as
documented by Bio-Formats' ``FlowSightReader`` and the R package ``IFC`` and
checked pixel for pixel against Bio-Formats 7.3.1 on a real file:

* IFD 0 holds the acquisition: tag 33027 an XML document with
  ``ChannelInUseIndicators_0_11`` (which of the 12 channels were recorded),
  ``Magnification``, ``ChannelNames_0_11`` / ``Channel<k>Name`` and
  ``BfLedIndicators_0_11`` (brightfield channels); tag 33064 the instrument
  XML (``CameraPixelSize``, micrometres); 33018 the number of objects;
  33004/33005/33006/33026/33066 acquisition time, operator, instrument, raw
  file and IDEAS version.
* Then, per object, an image IFD (tag 33002 = 2, compression 30817) and a mask
  IFD (33002 = 3, compression 30818); tag 33003 is the object number. Width is
  the in-use channel count times the event's width.
* **Greyscale (30817)**: a stream of 4-bit nibbles (low nibble of each byte
  first); a value is a little-endian sequence of 3-bit groups, a set bit 3
  meaning "more groups follow", bit 2 of the last group its sign. Values are
  2-D differences: ``p[y, x] = d + p[y-1, x] + p[y, x-1] - p[y-1, x-1]``
  (16-bit wrap-around), over the full multi-channel row.
* **Bitmask (30818)**: run-length pairs of bytes ``(value, run - 1)``.

Reading streams: one IFD scan keeps a few integers per object; each event is
decoded on its own from its strip bytes, so memory does not grow with the file.
Every length, offset and size is checked against the file before anything is
allocated, and a damaged file gets one :class:`CifError` naming the file, the
object and the problem. The two compiled decoders live in :mod:`._cifdecode`.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scipzarr.errors import ScipzarrError

CIF_SUFFIXES = (".cif",)
RIF_SUFFIXES = (".rif",)
GREYSCALE = 30817
BITMASK = 30818
IMAGE_KIND, MASK_KIND = 2, 3
MAX_SIDE = 4096            #: an IFC event is tens to hundreds of pixels a side
MAX_CHANNELS = 12          #: Amnis instruments record at most 12 channels
MAX_IFD_ENTRIES = 4096
SCAN_BLOCK = 2**20           #: bytes the directory scan reads at a time
SCAN_ROWS = 4096             #: and at most this many directories from them
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
_TIFF_TAGS = {"width": 256, "height": 257, "compression": 259, "offsets": 273, "counts": 279}
_KIND_TAG, _OBJECT_TAG = 33002, 33003


class CifError(ScipzarrError):
    """A damaged or unsupported CIF: one line naming the file, the object and what is wrong."""


@dataclass
class CifIndex:
    """Where each object's image and mask lie in one CIF, and what the file says about its acquisition."""

    path: Path
    byteorder: str
    channels: list[int]                     # in-use channel numbers, 1-based (Ch1 ...)
    channel_names: list[str]
    objects: np.ndarray                     # object numbers, file order
    width: np.ndarray                       # per-event width of one channel
    height: np.ndarray
    image_strips: list[tuple[tuple[int, ...], tuple[int, ...]]]  # (offsets, byte counts) per object
    mask_strips: list[tuple[tuple[int, ...], tuple[int, ...]] | None]
    magnification: float | None = None
    pixel_size_um: float | None = None
    brightfield: list[int] = field(default_factory=list)  # channel numbers lit by the brightfield LED
    facts: dict = field(default_factory=dict)
    damaged: list[tuple[int, str]] = field(default_factory=list)  # (object number, problem) found by the scan

    def __len__(self) -> int:
        return len(self.objects)


def is_cif(path: Path) -> bool:
    """A ``.cif`` file with a TIFF header (the content check behind the suffix)."""
    if path.suffix.lower() not in CIF_SUFFIXES + RIF_SUFFIXES or not path.is_file():
        return False
    with open(path, "rb") as f:
        head = f.read(4)
    return head in (b"II*\x00", b"MM\x00*")


class _Reader:
    """Bounded reads from one open file; every read outside the file is a :class:`CifError`."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, n: int, what: str) -> bytes:
        """``n`` bytes at ``offset`` (positioned reads: threads may share one reader)."""
        if offset < 0 or n < 0 or offset + n > self.size:
            raise CifError(f"{self.path}: {what} lies outside the file ({offset} + {n} > {self.size} bytes); "
                           "the file is truncated or damaged, export it again from IDEAS")
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise CifError(f"{self.path}: {what}: the file ended early; it is truncated, export it again")
        return data

    def close(self) -> None:
        os.close(self.fd)


def _entries(r: _Reader, bo: str, offset: int) -> tuple[dict[int, tuple[int, int, int]], int]:
    """The tags of the IFD at ``offset`` as ``{tag: (type, count, value or offset)}`` (the entry's last four
    bytes as an unsigned integer in the file's byte order) and the next IFD's offset. One ``struct.unpack`` per
    directory: a CIF has two per object, and this scan is most of a CIF's indexing time."""
    (n,) = struct.unpack(bo + "H", r.read(offset, 2, f"the directory at byte {offset}"))
    if n == 0 or n > MAX_IFD_ENTRIES:
        raise CifError(f"{r.path}: the directory at byte {offset} claims {n} entries; the file is damaged")
    vals = struct.unpack(bo + "HHII" * n + "I", r.read(offset + 2, 12 * n + 4, f"the directory at byte {offset}"))
    return dict(zip(vals[0:-1:4], zip(vals[1::4], vals[2::4], vals[3::4]))), vals[-1]


def _values(r: _Reader, bo: str, entry, what: str, limit: int = 1 << 16):
    """The values of a tag (integers or floats as a tuple; ASCII as str)."""
    typ, count, voff = entry
    if count == 1 and typ == 4:  # one LONG, stored in place (most tags of an object's directory)
        return (voff,)
    if count == 1 and typ == 3:  # one SHORT: the first two of the four bytes
        return (voff & 0xFFFF if bo == "<" else voff >> 16,)
    size = _TYPE_SIZES.get(typ)
    if size is None or count > limit:
        raise CifError(f"{r.path}: {what}: tag type {typ} with {count} values is not readable; the file is damaged")
    nbytes = size * count
    data = voff.to_bytes(4, "little" if bo == "<" else "big")[:nbytes] if nbytes <= 4 else r.read(voff, nbytes, what)
    if typ == 2:
        return data.split(b"\x00", 1)[0].decode("latin-1")
    fmt = {1: "B", 3: "H", 4: "I", 5: "II", 6: "b", 7: "B", 8: "h", 9: "i", 10: "ii", 11: "f", 12: "d",
           16: "Q"}[typ]
    vals = struct.unpack(bo + fmt * count, data)
    if typ in (5, 10):
        vals = tuple(a / b if b else float("nan") for a, b in zip(vals[::2], vals[1::2]))
    return vals


def _strips_inside(offs: tuple, counts: tuple, size: int) -> bool:
    """Whether strips ``(offsets, byte counts)`` pair up and lie inside a file of ``size`` bytes."""
    if len(offs) == 1 == len(counts):  # the usual case
        return offs[0] >= 0 and counts[0] >= 0 and offs[0] + counts[0] <= size
    return len(offs) == len(counts) and (not offs or (min(offs) >= 0 and min(counts) >= 0
                                                      and max(o + c for o, c in zip(offs, counts)) <= size))


def _number(path: Path, text: str, name: str) -> float:
    """A positive number the file's XML states (``name``: its element); one CifError line when it is not one."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise CifError(f"{path}: the XML's {name} is {text[:40]!r}, not a positive number; the file is damaged, "
                       "export it again")
    return value


def _xml_field(text: str, name: str) -> str | None:
    m = re.search(rf"<{name}>([^<]*)</{name}>", text)
    return m.group(1).strip() if m else None


def read_index(path: str | Path) -> CifIndex:
    """Scan a CIF's directories (no pixels): channels, metadata and where every object's strips lie."""
    path = Path(path)
    if path.suffix.lower() in RIF_SUFFIXES:
        raise CifError(f"{path}: .rif files (raw, uncompensated) are not supported; open the file in IDEAS and "
                       "save the compensated .cif, then convert that")
    r = _Reader(path)
    try:
        return _scan(r)
    finally:
        r.close()


def _scan(r: _Reader) -> CifIndex:
    path = r.path
    head = r.read(0, 8, "the file header")
    if head[:4] not in (b"II*\x00", b"MM\x00*"):
        raise CifError(f"{path}: not a CIF (no TIFF header); give a .cif file written by IDEAS")
    bo = "<" if head[:2] == b"II" else ">"
    (offset,) = struct.unpack(bo + "I", head[4:8])
    tags, offset = _entries(r, bo, offset)
    xml = _values(r, bo, tags[33027], "the acquisition XML", limit=1 << 26) if 33027 in tags else ""
    if not isinstance(xml, str):
        raise CifError(f"{path}: the acquisition XML (tag 33027) is not text; the file is damaged, export it again")
    in_use = _xml_field(xml, "ChannelInUseIndicators_0_11")
    if in_use is None:
        raise CifError(f"{path}: no channel list (ChannelInUseIndicators) in the acquisition XML; not a CIF "
                       "written by IDEAS")
    flags = in_use.split()
    channels = [k + 1 for k, v in enumerate(flags) if v == "1"][:MAX_CHANNELS]
    if not channels:
        raise CifError(f"{path}: the acquisition XML marks no channel as in use; the file is damaged")
    # a name the file gives with '/' would nest the store's label images (labels/ideas-<name>): '_' instead
    names = [(_xml_field(xml, f"Channel{k}Name") or f"Ch{k}").replace("/", "_") for k in channels]
    bf = _xml_field(xml, "BfLedIndicators_0_11")
    brightfield = [k + 1 for k, v in enumerate((bf or "").split()) if v == "1" and k + 1 in channels]
    mag = _xml_field(xml, "Magnification")
    mag = _number(path, mag, "Magnification") if mag else None
    facts = {}
    for tag, key in ((33004, "acquisition_time"), (33005, "operator"), (33006, "instrument"),
                     (33026, "raw_file"), (33066, "ideas_version")):
        if tag in tags:
            value = _values(r, bo, tags[tag], key)
            if isinstance(value, str) and value:
                facts[key] = value
    pixel = None
    if 33064 in tags:  # the instrument XML: a megabyte and more, searched as bytes
        typ, count, voff = tags[33064]
        if typ == 2 and 0 < count <= 1 << 26:
            # IDEAS writes the camera section near the end of this document: its last 64 KiB first
            pattern = rb"<CameraPixelSize>([0-9.]+)</CameraPixelSize>"
            tail = min(count, 1 << 16)
            text = r.read(voff + count - tail, tail, "the instrument XML")
            m = re.search(pattern, text)
            if m is None and tail < count:
                text = r.read(voff, count, "the instrument XML")
                m = re.search(pattern, text)
            pixel = _number(path, m.group(1).decode("latin-1"), "CameraPixelSize") if m else None
            bits = re.search(rb"<CameraBitsPerPixel>([0-9]+)</CameraBitsPerPixel>", text)
            if bits and 1 <= int(bits.group(1)) <= 16:
                facts["camera_bits_per_pixel"] = int(bits.group(1))  # texture quantizes on this scale
    n_expected = _values(r, bo, tags[33018], "the object count")[0] if 33018 in tags else None
    objects, widths, heights, images, masks, damaged = [], [], [], [], [], []
    last = None

    def page(kind: int, obj, width: int, height: int, compression: int, offs: tuple, counts: tuple) -> None:
        """An image or mask page: the image starts an object, its mask page follows it."""
        nonlocal last
        if kind == IMAGE_KIND:
            if obj is None:
                raise CifError(f"{path}: the first object: a page lacks TIFF tag {_OBJECT_TAG}; the file is damaged")
            problem = None
            if width % len(channels) or not 0 < width // len(channels) <= MAX_SIDE or not 0 < height <= MAX_SIDE:
                problem = (f"image of {width} x {height} px does not hold {len(channels)} channels of at most "
                           f"{MAX_SIDE} px")
            elif compression != GREYSCALE:
                problem = f"image compression {compression}, expected {GREYSCALE}"
            elif not _strips_inside(offs, counts, r.size):
                problem = "image strips lie outside the file"
            objects.append(int(obj))
            widths.append(width // len(channels) if not problem else 0)
            heights.append(int(height) if not problem else 0)
            images.append((offs, counts))
            masks.append(None)
            if problem:
                damaged.append((int(obj), problem))
            last = obj
        elif objects and obj == objects[-1] and not (damaged and damaged[-1][0] == obj):
            ok = (compression == BITMASK and width == widths[-1] * len(channels) and height == heights[-1]
                  and _strips_inside(offs, counts, r.size))
            masks[-1] = (offs, counts) if ok else None

    def general(tags: dict) -> None:
        """A directory read tag by tag (:func:`_entries`)."""
        kind = _values(r, bo, tags[_KIND_TAG], "the page kind")[0] if _KIND_TAG in tags else None
        if kind not in (IMAGE_KIND, MASK_KIND):
            return
        where = f"object {last}" if last is not None else "the first object"
        try:
            obj = _values(r, bo, tags[_OBJECT_TAG], "the object number")[0] if _OBJECT_TAG in tags else last
            width, height = (_values(r, bo, tags[_TIFF_TAGS[k]], k)[0] for k in ("width", "height"))
            where = f"object {obj}"
            compression = _values(r, bo, tags[_TIFF_TAGS["compression"]], "compression")[0]
            offs = _values(r, bo, tags[_TIFF_TAGS["offsets"]], "strip offsets")
            counts = _values(r, bo, tags[_TIFF_TAGS["counts"]], "strip byte counts")
        except KeyError as exc:
            raise CifError(f"{path}: {where}: a page lacks TIFF tag {exc.args[0]}; the file is damaged") from None
        page(kind, obj, width, height, compression, offs, counts)

    # Plain directories further on than any read so far are read a block of the file at a time by a compiled
    # pass (:func:`._cifdecode._page_rows`: ~0.5 us a page instead of ~20 us); the rest, and any directory at
    # or before the furthest one read (a chain that loops back is caught there), the general way.
    from . import _cifdecode

    rows = np.empty((SCAN_ROWS, 9), np.int64)
    seen, passed = set(), []  # offsets read; those of the compiled pass join ``seen`` when a chain turns back
    furthest = 0
    while offset:
        if offset > furthest:
            buf = np.frombuffer(os.pread(r.fd, SCAN_BLOCK, offset), np.uint8)
            n = _cifdecode._page_rows(buf, offset, bo == "<", MAX_IFD_ENTRIES, rows)
            if n:
                passed.append(rows[:n, 0].copy())
                furthest = int(rows[n - 1, 0])
                for _, kind, obj, width, height, compression, off, count, offset in rows[:n].tolist():
                    if kind == IMAGE_KIND or kind == MASK_KIND:
                        page(kind, obj if obj >= 0 else last, width, height, compression, (off,), (count,))
                continue
        if passed and offset <= furthest:
            seen.update(np.concatenate(passed).tolist())
            passed.clear()
        if offset in seen:
            damaged.append((-1, f"the directory chain loops back to byte {offset}"))
            break
        seen.add(offset)
        furthest = max(furthest, offset)
        try:
            tags, offset = _entries(r, bo, offset)
        except CifError as exc:  # a cut or damaged directory: the objects before it are still readable
            after = f" after object {objects[-1]}" if objects else ""
            damaged.append((-1, f"a directory{after} is unreadable ({str(exc).split(': ', 1)[-1].split(';')[0]})"))
            break
        general(tags)
    if n_expected is not None and len(objects) != n_expected:
        damaged.append((-1, f"the file lists {n_expected} objects but holds {len(objects)}"))
    return CifIndex(path, bo, channels, names, np.array(objects, np.int64), np.array(widths, np.int64),
                    np.array(heights, np.int64), images, masks, mag, pixel, brightfield,
                    facts, damaged)


class CifFile:
    """An open CIF for reading events: ``image(i)`` and ``masks(i)`` as ``(C, h, w)``."""

    def __init__(self, index: CifIndex):
        from . import _cifdecode  # numba: imported when a CIF is opened for its pixels, not by every convert

        self._decode = _cifdecode
        self.index = index
        self._r = _Reader(index.path)

    def close(self) -> None:
        self._r.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _strips(self, strips, what: str) -> np.ndarray:
        offs, counts = strips
        if len(offs) == 1:  # the usual case: one strip, no join
            return np.frombuffer(self._r.read(int(offs[0]), int(counts[0]), what), np.uint8)
        return np.frombuffer(b"".join(self._r.read(int(o), int(c), what) for o, c in zip(offs, counts)), np.uint8)

    def _shape(self, i: int) -> tuple[int, int, int]:
        return int(self.index.height[i]), int(self.index.width[i]), len(self.index.channels)

    def image(self, i: int) -> np.ndarray:
        """Event ``i`` (file order) as ``(C, h, w)`` uint16, exactly as stored."""
        h, w, c = self._shape(i)
        obj = int(self.index.objects[i])
        if h == 0:
            raise CifError(f"{self.index.path}: object {obj}: damaged image header; remove the object in IDEAS or "
                           "export the file again")
        data = self._strips(self.index.image_strips[i], f"object {obj}'s image")
        out = np.empty((c, h, w), np.uint16)
        got = self._decode._greyscale(data, out)
        if got != out.size:
            what = "a value longer than 16 bits" if got < 0 else f"{got} of {out.size} pixels"
            raise CifError(f"{self.index.path}: object {obj}: the image data holds {what}; the file is damaged "
                           "or truncated, export it again from IDEAS")
        return out

    #: A batch read of more bytes than this goes object by object.
    MAX_BATCH_BYTES = 64 * 2**20

    def events(self, ks: list[int], masks: bool = True) -> list[tuple[np.ndarray, np.ndarray | None] | None]:
        """Events ``ks`` (file order) as :meth:`image` and :meth:`masks` give them, ``(image, masks)`` each, from one
        read of the file region that holds them all and one compiled pass (a chunk of a convert: one call
        instead of two reads and two kernel calls per event). None for an event this cannot give (damaged,
        split into several strips, or a region too large): :meth:`image` and :meth:`masks` then say why."""
        ix = self.index
        at = np.full((len(ks), 4), -1, np.int64)
        shapes = np.zeros((len(ks), 3), np.int64)
        usable = np.zeros(len(ks), np.bool_)
        for e, k in enumerate(ks):
            strips, mstrips = ix.image_strips[k], ix.mask_strips[k] if masks else None
            h, w, c = self._shape(k)
            if h == 0 or len(strips[0]) != 1 or (masks and (mstrips is None or len(mstrips[0]) != 1)) \
                    or c * h * w > 2 * strips[1][0]:  # at least a nibble per value: more is damage, said alone
                continue
            at[e, 0], at[e, 1] = strips[0][0], strips[1][0]
            if masks:
                at[e, 2], at[e, 3] = mstrips[0][0], mstrips[1][0]
            shapes[e] = c, h, w
            usable[e] = True
        out: list = [None] * len(ks)
        if not usable.any():
            return out
        starts = np.where(at[:, 3] >= 0, np.minimum(at[:, 0], at[:, 2]), at[:, 0])[usable]
        ends = np.maximum(at[:, 0] + at[:, 1], at[:, 2] + at[:, 3])[usable]
        lo, hi = int(starts.min()), int(ends.max())
        if hi - lo > self.MAX_BATCH_BYTES:
            return out
        data = np.frombuffer(self._r.read(lo, hi - lo, f"objects {ix.objects[ks[0]]}-{ix.objects[ks[-1]]}"), np.uint8)
        at[usable, 0] -= lo
        at[usable, 2] = np.where(at[usable, 3] >= 0, at[usable, 2] - lo, -1)
        sizes = shapes.prod(axis=1)
        images = np.empty(int(sizes.sum()), np.uint16)
        mask_flat = np.empty(int(sizes.sum()), np.uint8) if masks else np.empty(0, np.uint8)
        ok = self._decode._decode_many(data, at[usable], shapes[usable], images, mask_flat)
        pos = 0
        for e, good in zip(np.flatnonzero(usable).tolist(), ok.tolist()):
            c, h, w = shapes[e].tolist()
            n = c * h * w
            if good:
                out[e] = (images[pos:pos + n].reshape(c, h, w), mask_flat[pos:pos + n].reshape(c, h, w) if masks else None)
            pos += n
        return out

    def masks(self, i: int) -> np.ndarray | None:
        """IDEAS's masks of event ``i`` as ``(C, h, w)`` uint8 (0/1 as stored), or None when the file has none."""
        strips = self.index.mask_strips[i]
        if strips is None:
            return None
        h, w, c = self._shape(i)
        obj = int(self.index.objects[i])
        data = self._strips(strips, f"object {obj}'s mask")
        if data.size % 2:
            raise CifError(f"{self.index.path}: object {obj}: the mask data has an odd length; the file is damaged")
        out = np.empty((c, h, w), np.uint8)
        covered = self._decode._mask_runs(data, out)
        if covered != h * w * c:
            raise CifError(f"{self.index.path}: object {obj}: the mask runs cover {covered} of {h * w * c} "
                           "pixels; the file is damaged")
        return out
