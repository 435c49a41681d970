"""OME-NGFF 0.5 on zarr v3: the pieces both store kinds share, and the only code that touches zarr paths.

Pyramids (2x2 means for images, every second pixel for labels, each level
computed from the one before it as stored), ``omero`` channel metadata,
label images written aside and moved into place, validity checks with
``ome-zarr-models``, and scratch arrays (intermediate results a pipeline
keeps on disk between passes so memory stays at a few chunks).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.core.sync import sync

if TYPE_CHECKING:  # imported where used: a convert never needs dask.array (0.3-0.6 s to import)
    import dask.array as da

NGFF_VERSION = "0.5"
#: blosc lz4 + byte shuffle: ~550 MB/s write, ~2 GB/s read on IFC events
#: (see docs/store.md); zarr v3's default zstd was slower and larger.
COMPRESSOR = BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
MIN_PYRAMID_SIDE = 512
PALETTE = ["FFFFFF", "00FF00", "FF00FF", "00FFFF", "FF0000", "0000FF", "FFFF00", "FF8000"]


# --------------------------------------------------------------------------
# pyramids
# --------------------------------------------------------------------------
def pyramid_levels(shape_yx: tuple[int, int], tile: tuple[int, int]) -> int:
    """Number of pyramid levels: halve until the image is small or its tiles (chunks) are tiny."""
    levels, h, w, t = 1, shape_yx[0], shape_yx[1], min(tile)
    while max(h, w) > MIN_PYRAMID_SIDE and t >= 8:
        h, w, t = h // 2, w // 2, t // 2
        levels += 1
    return levels


def level_chunks(shape: tuple[int, ...], chunk_yx: tuple[int, int]) -> tuple[int, ...]:
    """A level's chunks: ``chunk_yx`` (a level's chunk size in pixels, :func:`pyramid_chunks`) capped by its shape."""
    return tuple(shape[:-2]) + tuple(min(c, s) for c, s in zip(chunk_yx, shape[-2:]))


#: Levels whose chunks are level 0's halved stop at this side; later levels keep that chunk size.
MIN_LEVEL_CHUNK = 256


def pyramid_chunks(chunk_yx: tuple[int, int], n_levels: int) -> tuple[list[tuple[int, int]], int]:
    """The chunk size (y, x) of every level, and how many levels after level 0 its chunks *own*.

    Level ``l``'s chunk is level 0's halved ``l`` times while both sides stay even and at least
    :data:`MIN_LEVEL_CHUNK`: each level-0 chunk then covers exactly one chunk of each such (owned) level, so the
    task writing a level-0 chunk writes those levels too (:func:`write_block`) and no pass over the image reads
    level 0 back. Later levels keep the last owned level's chunk size and are computed from the level before
    them (:func:`write_levels`).
    """
    sides, owned = [tuple(chunk_yx)], 0
    for level in range(1, n_levels):
        cy, cx = sides[-1]
        if owned == level - 1 and cy % 2 == 0 and cx % 2 == 0 and min(cy, cx) // 2 >= MIN_LEVEL_CHUNK:
            sides.append((cy // 2, cx // 2))
            owned = level
        else:
            sides.append((cy, cx))
    return sides, owned


def create_levels(group: zarr.Group, shape, n_levels: int, chunk_yx: tuple[int, int], dtype, dims: list[str],
                  reuse: bool = False) -> list[zarr.Array]:
    """Level 0 and the levels its chunks own (:func:`pyramid_chunks`), created empty. ``reuse``: those already
    there are kept (a resumed write, or shards of one job starting together: created without overwriting, so
    none deletes another's chunks)."""
    sides, owned = pyramid_chunks(chunk_yx, n_levels)
    specs = []
    for level in range(owned + 1):
        shape_l = (*shape[:-2], shape[-2] >> level, shape[-1] >> level)
        specs.append((f"s{level}", shape_l, level_chunks(shape_l, sides[level])))
    made = create_arrays(group, specs, dtype, dims, overwrite=not reuse)
    for k, arr in enumerate(made):
        if isinstance(arr, Exception):  # reuse: there already (zarr's ContainsArrayError)
            if not reuse:
                raise arr
            made[k] = group[specs[k][0]]
    return made


def create_arrays(group: zarr.Group, specs: list[tuple[str, tuple, tuple]], dtype, dims: list[str],
                  overwrite: bool = True) -> list:
    """Empty arrays ``(name, shape, chunks)`` of ``group`` (fill value 0, :data:`COMPRESSOR`, named dimensions:
    what the direct chunk writes, :func:`_put_chunk`, expect), in one pass of zarr's event loop (one round trip
    to it costs about as much as creating the array); an array that could not be created is its exception in
    the list."""
    async def create_all():
        return await asyncio.gather(*(
            group._async_group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0,
                                            compressors=[COMPRESSOR], dimension_names=list(dims), overwrite=overwrite)
            for name, shape, chunks in specs), return_exceptions=True)

    return [a if isinstance(a, Exception) else zarr.Array(a) for a in sync(create_all())]


def write_block(levels: list[zarr.Array], y0: int, x0: int, block: np.ndarray, nearest: bool = False) -> None:
    """Write one level-0 chunk ``block`` (``(..., y, x)`` at ``y0, x0``) and its halvings into the owned levels
    (:func:`create_levels`), level 0 last: a present level-0 chunk means its levels are written too."""
    write_blocks([(levels, block, nearest)], y0, x0)


def write_blocks(blocks: list[tuple[list[zarr.Array], np.ndarray, bool]], y0: int, x0: int,
                 next_level: bool = False) -> list[np.ndarray] | None:
    """Write the level-0 chunks at ``y0, x0`` of several images (``(levels, block, nearest)`` each, as
    :func:`write_block`) and their halvings, the last image's level 0 last, so a present level-0 chunk of the
    last image means the whole chunk of every image is written. With ``next_level``, returns each image's
    piece of the level after the last one written (the last piece halved once more), for a caller that
    assembles that level in memory (:func:`write_levels`' ``first``).

    Each piece is one chunk, written straight into its chunk file (:func:`_put_chunk`); otherwise in two zarr
    calls, all pieces but the last image's level 0 at once, then that one. One zarr call per piece cost ~6 ms
    on a 2-core machine, two thirds of it zarr's round trip to its event loop rather than the encoding: a CIF
    chunk with six mask label images has 14 pieces (docs/benchmarks.md).
    """
    writes, nexts = [], []
    for levels, block, nearest in blocks:
        piece = block
        for level, arr in enumerate(levels):
            if level:
                piece = halve(piece, nearest)
            writes.append((arr, y0 >> level, x0 >> level, piece))
        if next_level:
            nexts.append(np.ascontiguousarray(halve(piece, nearest)))
    last = writes.pop(len(writes) - len(blocks[-1][0]))  # the last image's level 0
    if all(_put_chunk(*w) for w in writes + [last]):  # the usual case: one chunk each, written directly
        return nexts if next_level else None
    if writes:
        sync(_gather([a.async_array.setitem(_region(a, y, x, v), v) for a, y, x, v in writes]))
    arr, y, x, value = last
    arr[_region(arr, y, x, value)] = value
    return nexts if next_level else None


def _region(arr, y: int, x: int, value) -> tuple:
    return (..., slice(y, y + value.shape[-2]), slice(x, x + value.shape[-1]))


_DIRECT: dict[int, tuple] = {}  # id(array metadata) -> (Blosc or None, the metadata)


def _chunk_codec(arr: zarr.Array):
    """numcodecs' Blosc that encodes ``arr``'s chunks as zarr does, when ``arr`` is one of ours on a local disk
    (little-endian bytes, then :data:`COMPRESSOR`; ``c/``-prefixed chunk keys with ``/``; fill value 0; no
    sharding or filters); None otherwise (zarr then writes)."""
    found = _DIRECT.get(id(arr.metadata))
    if found is not None and found[1] is arr.metadata:
        return found[0]
    from numcodecs import Blosc
    from zarr.codecs import BytesCodec
    from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding
    from zarr.storage import LocalStore

    meta = arr.metadata
    codecs = getattr(meta, "codecs", ())
    ok = (isinstance(arr.store, LocalStore) and len(codecs) == 2 and isinstance(codecs[0], BytesCodec)
          and (str(getattr(codecs[0].endian, "value", codecs[0].endian)) == "little" and np.little_endian
               or codecs[0].endian is None and arr.dtype.itemsize == 1)
          and isinstance(codecs[1], BloscCodec) and _codec(codecs[1]) == _codec(COMPRESSOR)
          and isinstance(meta.chunk_key_encoding, DefaultChunkKeyEncoding)
          and meta.chunk_key_encoding.separator == "/" and not zarr.config.get("array.write_empty_chunks")
          and meta.fill_value == 0 and arr.dtype.kind in "biuf")
    codec = None
    if ok:
        blosc = codecs[1]
        shuffle = str(getattr(blosc.shuffle, "value", blosc.shuffle))
        codec = Blosc(cname=str(getattr(blosc.cname, "value", blosc.cname)), clevel=blosc.clevel,
                      shuffle={"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[shuffle], blocksize=blosc.blocksize,
                      typesize=arr.dtype.itemsize)
    if len(_DIRECT) > 256:  # arrays are opened per task: keep the memo small
        _DIRECT.clear()
    _DIRECT[id(meta)] = (codec, meta)  # the metadata held: its id stays its own
    return codec


def _chunk_path(arr: zarr.Array, y: int, x: int) -> str:
    """The file of ``arr``'s chunk at ``(y, x)`` on a local store (:func:`chunk_file`'s layout, as a string: it
    is asked for every piece a chunk task writes or reads)."""
    cy, cx = arr.chunks[-2:]
    return os.path.join(str(arr.store.root), arr.path, "c", *["0"] * (arr.ndim - 2), str(y // cy), str(x // cx))


def get_chunk(arr: zarr.Array, y: int, x: int) -> np.ndarray | None:
    """The whole chunk of ``arr`` at ``(y, x)`` (cut short at the array's edge), decoded straight from its chunk
    file into the returned array: what zarr reads (tested), without its copy from a decode buffer and its
    round trip to its event loop (19.6 -> 13.0 ms for a 256-event chunk of 6 x 90 x 90 events). A missing
    chunk file is the fill value, 0. None when it cannot be read that way (zarr then reads it)."""
    codec = _chunk_codec(arr)
    chunks, shape = arr.chunks, arr.shape
    if codec is None or y % chunks[-2] or x % chunks[-1] or y >= shape[-2] or x >= shape[-1] \
            or any(c != s for c, s in zip(chunks[:-2], shape[:-2])):
        return None
    path = _chunk_path(arr, y, x)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        out = np.zeros(chunks, arr.dtype)
    else:
        out = np.empty(chunks, arr.dtype)
        codec.decode(data, out=out)
    return out[..., : min(chunks[-2], shape[-2] - y), : min(chunks[-1], shape[-1] - x)]


def _put_chunk(arr: zarr.Array, y: int, x: int, value: np.ndarray) -> bool:
    """Write ``value``, the whole chunk of ``arr`` at ``(y, x)`` (cut short at the array's edge), straight into
    its chunk file: the bytes zarr writes (tested), without zarr's round trip to its event loop, which cost most
    of a CIF convert's ~2 ms per piece (docs/benchmarks.md). As zarr does: an edge chunk padded with the fill
    value, an all-zero chunk not stored (and removed), the file written aside and moved into place. False (and
    nothing written) when it cannot be done that way."""
    codec = _chunk_codec(arr)
    chunks, shape = arr.chunks, arr.shape
    if codec is None or value.shape[:-2] != shape[:-2] or y % chunks[-2] or x % chunks[-1] \
            or value.shape[-2:] != (min(chunks[-2], shape[-2] - y), min(chunks[-1], shape[-1] - x)) \
            or value.dtype != arr.dtype or any(c != s for c, s in zip(chunks[:-2], shape[:-2])):
        return False
    path = _chunk_path(arr, y, x)
    folder = os.path.dirname(path)
    if not value.size or not (value.max() > 0 if value.dtype.kind == "u" else value.any()):  # max: 3x faster
        if os.path.exists(path):
            os.remove(path)
        return True
    if value.shape != chunks:
        full = np.zeros(chunks, value.dtype)
        full[..., : value.shape[-2], : value.shape[-1]] = value
        value = full
    data = codec.encode(np.ascontiguousarray(value))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.partial"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


async def _gather(coroutines) -> None:
    await asyncio.gather(*coroutines)


def create_array(group: zarr.Group, name: str, shape, chunks, dtype, dims: list[str], overwrite: bool = True
                 ) -> zarr.Array:
    """One empty array of ours (fill value 0, :data:`COMPRESSOR`, named dimensions): :func:`create_arrays`'s."""
    (arr,) = create_arrays(group, [(name, shape, chunks)], dtype, dims, overwrite)
    if isinstance(arr, Exception):
        raise arr
    return arr


def halve(block, nearest: bool = False):
    """The next pyramid level of a block (the last two axes; an odd last row or column is left out): every
    second pixel (labels; a view), or the 2x2 mean in the block's dtype, integers rounded half to even (as
    ``round(mean(float64))``, without the float64 copy)."""
    block = block[..., : block.shape[-2] // 2 * 2, : block.shape[-1] // 2 * 2]
    if nearest:
        return block[..., ::2, ::2]
    if block.dtype.kind in "iu":
        acc = np.int32 if block.dtype.itemsize <= 2 else np.int64  # 4 values of 16 bits fit 32
        s = np.add(block[..., ::2, :], block[..., 1::2, :], dtype=acc)
        s = np.add(s[..., ::2], s[..., 1::2])
        # s = 4q + r (q = s >> 2, floor): q, +1 when r is 3, or when r is 2 and q is odd (half to even)
        odd = s >> 2
        odd &= 1
        s += odd
        s += 1
        s >>= 2
        return s.astype(block.dtype)
    mean = (block[..., ::2, ::2].astype(np.float64) + block[..., 1::2, ::2] + block[..., ::2, 1::2]
            + block[..., 1::2, 1::2]) / 4.0
    return mean.astype(block.dtype)


def _halve_region(src: str, dst: str, y0: int, y1: int, x0: int, x1: int, nearest: bool) -> None:
    arr = zarr.open_array(dst, mode="r+")
    arr[..., y0:y1, x0:x1] = halve(zarr.open_array(src, mode="r")[..., 2 * y0:2 * y1, 2 * x0:2 * x1], nearest)


#: Levels up to this size (bytes) are computed in memory in one go, from the level before them read whole.
SMALL_LEVEL = 32 * 2**20


def write_levels(group: zarr.Group, n_levels: int, chunk_yx: tuple[int, int], compute, nearest: bool = False,
                 dims: tuple[str, ...] = ("c", "y", "x"), start: int = 1, first: np.ndarray | None = None
                 ) -> zarr.Array:
    """Write levels ``s<start> .. s<n-1>`` of an image or label image whose earlier levels are on disk, each
    from the level before it as stored: one task per output chunk reads the 2x2 chunks under it (bounded
    memory whatever the image size); a level of at most :data:`SMALL_LEVEL` bytes and the ones after it are
    computed in memory from the level before it read whole and written together at the end (one zarr call:
    the per-task cost of opening arrays and reading chunks, and zarr's round trip per call, are most of the
    time of small levels). The levels' arrays are created in one zarr call. Returns the last level.
    ``chunk_yx``: level 0's chunk (:func:`pyramid_chunks` gives the others). ``first``: level ``start``
    already computed (assembled from the level-0 chunk tasks' pieces, :func:`write_blocks`), so the level
    before it is not read back."""
    import dask

    sides, _ = pyramid_chunks(chunk_yx, n_levels)
    prev = group[f"s{start - 1}"]
    specs, shape = [], prev.shape
    for i in range(start, n_levels):
        shape = (*shape[:-2], shape[-2] // 2, shape[-1] // 2)
        specs.append((f"s{i}", shape, level_chunks(shape, sides[i])))
    made = create_arrays(group, specs, prev.dtype, list(dims))  # all levels' arrays in one zarr call
    for arr in made:
        if isinstance(arr, Exception):
            raise arr
    data, in_memory = None, []
    for i, arr in zip(range(start, n_levels), made):
        shape, chunks = arr.shape, arr.chunks
        if i == start and first is not None:
            if first.shape != shape or first.dtype != prev.dtype:
                raise ValueError(f"level s{i}: given {first.shape} {first.dtype}, expected {shape} {prev.dtype}")
            data = first
            in_memory.append((arr, data))
            prev = arr
            continue
        if data is not None or int(np.prod(shape)) * prev.dtype.itemsize <= SMALL_LEVEL:
            data = halve(prev[...] if data is None else data, nearest)
            in_memory.append((arr, data))
            prev = arr
            continue
        cy, cx = chunks[-2:]  # data is None here: no level is waiting in memory, the one before is on disk
        src, dst = _array_path(group, prev), _array_path(group, arr)
        tasks = [dask.delayed(_halve_region)(src, dst, y, min(y + cy, shape[-2]), x, min(x + cx, shape[-1]), nearest)
                 for y in range(0, shape[-2], cy) for x in range(0, shape[-1], cx)]
        compute(tasks)
        prev = arr
    _flush(in_memory)
    return prev


def _flush(writes: list[tuple[zarr.Array, np.ndarray]]) -> None:
    """Write whole levels computed in memory, all in one zarr call, and empty the list."""
    if writes:
        sync(_gather([arr.async_array.setitem(Ellipsis, data) for arr, data in writes]))
        writes.clear()


def _array_path(group: zarr.Group, arr: zarr.Array) -> str:
    return str(Path(str(group.store.root)) / arr.path)


def image_datasets(n_levels: int, pixel_size=(None, None), labels: bool = False) -> list[dict]:
    """``datasets`` of a multiscale: scale doubles per level; images are 2x2 means (half-pixel shift),
    labels every second pixel (none)."""
    py, px = (1.0 if s is None else float(s) for s in pixel_size)
    out = []
    for i in range(n_levels):
        f = 2.0**i
        scale = [py * f, px * f] if labels else [1.0, py * f, px * f]
        tr = [{"type": "scale", "scale": scale}]
        if not labels:
            tr.append({"type": "translation", "translation": [0.0, py * (f - 1) / 2, px * (f - 1) / 2]})
        out.append({"path": f"s{i}", "coordinateTransformations": tr})
    return out


def axes(pixel_size=(None, None), channel: bool = True) -> list[dict]:
    unit = {"unit": "micrometer"} if None not in pixel_size else {}
    yx = [{"name": "y", "type": "space", **unit}, {"name": "x", "type": "space", **unit}]
    return ([{"name": "c", "type": "channel"}] if channel else []) + yx


def omero(channel_names: list[str], dtype: np.dtype, preview: np.ndarray) -> dict:
    """omero channel metadata; display windows from the 0.1-99.9 percentiles of a small level."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    else:
        lo, hi = float(np.nanmin(preview)), float(np.nanmax(preview))
    channels = []
    for c, name in enumerate(channel_names):
        start, end = (float(v) for v in np.percentile(preview[c], [0.1, 99.9]))
        channels.append({"label": name, "color": PALETTE[c % len(PALETTE)], "active": True,
                         "window": {"min": lo, "max": hi, "start": start, "end": max(end, start + 1e-9)}})
    return {"channels": channels}


def write_multiscales(group: zarr.Group, datasets: list[dict], axes_: list[dict], name: str) -> None:
    """The NGFF 0.5 ``multiscales`` of a group (what ``ome_zarr.writer.write_multiscales_metadata`` writes,
    without importing ome-zarr's reader classes: about 1 s of every convert's start-up). Stores are checked
    with ``ome-zarr-models`` by ``scipzarr validate`` and the tests."""
    ome = dict(group.attrs.get("ome", {}))
    ome["version"] = NGFF_VERSION
    ome["multiscales"] = [{"datasets": datasets, "name": name, "axes": axes_}]
    group.attrs["ome"] = ome


def write_image_metadata(group: zarr.Group, n_levels: int, name: str, channel_names: list[str],
                         pixel_size=(None, None)) -> None:
    """``multiscales`` and ``omero`` of an image group whose levels are written."""
    write_multiscales(group, image_datasets(n_levels, pixel_size), axes(pixel_size), name)
    last = group[f"s{n_levels - 1}"]
    step = max(1, int(np.sqrt(last.shape[1] * last.shape[2] / 1e6)))  # at most ~1 Mpx per channel
    ome = dict(group.attrs["ome"])
    ome["omero"] = omero(channel_names, last.dtype, np.asarray(last[:, ::step, ::step]))
    group.attrs["ome"] = ome


# --------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------
def write_labels(image: Path, name: str, labels, n_levels: int, chunk_yx: tuple[int, int], compute,
                 properties: dict | None = None, pixel_size=(None, None)) -> None:
    """Write ``labels`` (``(y, x)`` on the image's level-0 grid) as ``<image>/labels/<name>`` with ``n_levels``.

    ``labels`` may also be the levels :func:`scratch_levels` made (level 0 and the levels it owns, filled by
    :func:`write_block`): they are moved in as they are and only the later levels are computed.

    A numpy array (in memory anyway): each level is a view of the one before,
    written in one zarr call. A dask array: each level is computed from the one
    before it as stored, so memory stays at a few chunks whatever the image
    size. Written under a temporary name and moved into place, so a failure
    leaves no half-written labels; the ``labels`` group lists it once.
    """
    labels_dir = Path(image) / "labels"
    work = f".{name}-writing"
    shutil.rmtree(labels_dir / work, ignore_errors=True)
    levels = labels if isinstance(labels, list) else [labels]
    sides = pyramid_chunks(chunk_yx, n_levels)[0]
    sources = [_adoptable(level, sides[i]) for i, level in enumerate(levels)]
    if all(source is not None for source in sources):
        # scratch arrays made like levels (:func:`scratch_levels`): moved in, not decoded and re-encoded
        _labels_group(image, work)
        for i, source in enumerate(sources):
            source.rename(labels_dir / work / f"s{i}")
        finish_labels(image, work, n_levels, chunk_yx, compute, properties, pixel_size, written=len(sources),
                      final_name=name)
        return
    labels = levels[0]
    if isinstance(labels, zarr.Array):
        import dask.array as da

        labels = da.from_zarr(labels)
    (s0,) = create_labels(image, work, labels.shape, chunk_yx, labels.dtype)
    if isinstance(labels, np.ndarray):
        s0[...] = labels
        sub = zarr.open_group(str(labels_dir / work), mode="r+")
        prev = labels
        for lv in range(1, n_levels):
            prev = halve(prev, nearest=True)
            create_array(sub, f"s{lv}", prev.shape, level_chunks(prev.shape, sides[lv]), prev.dtype, ["y", "x"])[...] = prev
    else:
        import dask.array as da

        compute([da.store(labels.rechunk(s0.chunks), s0, compute=False, lock=False)])
    finish_labels(image, work, n_levels, chunk_yx, compute, properties, pixel_size,
                  written=n_levels if isinstance(labels, np.ndarray) else 1, final_name=name)


def _adoptable(labels, chunk_yx: tuple[int, int]) -> Path | None:
    """The folder of a zarr array on the local disk that is stored exactly as a label level 0 would be (same
    chunks, compressor, fill value and dimension names), else None."""
    if not isinstance(labels, zarr.Array) or not isinstance(labels.store, zarr.storage.LocalStore):
        return None
    meta = labels.metadata
    same = (tuple(labels.chunks) == level_chunks(labels.shape, chunk_yx) and list(meta.dimension_names or []) == ["y", "x"]
            and meta.fill_value == 0 and len(labels.compressors) == 1
            and _codec(labels.compressors[0]) == _codec(COMPRESSOR) and not labels.filters)
    return Path(labels.store.root) / labels.path if same else None


def _codec(codec) -> dict:
    """A codec's settings, less the ones zarr tunes to the array's dtype (blosc's ``typesize``)."""
    spec = codec.to_dict()
    return {**spec, "configuration": {k: v for k, v in spec.get("configuration", {}).items() if k != "typesize"}}


def _labels_group(image: Path, name: str) -> zarr.Group:
    """A new, empty group ``<image>/labels/<name>`` (the ``labels`` group created when missing)."""
    group = zarr.open_group(str(Path(image) / "labels"), mode="a", zarr_format=3)
    return group.create_group(name, overwrite=True)


def create_labels(image: Path, name: str, shape, chunk_yx: tuple[int, int], dtype, n_levels: int = 1,
                  reuse: bool = False) -> list[zarr.Array]:
    """Level 0 of a label image ``<image>/labels/<name>`` and the levels it owns (:func:`create_levels`; filled
    by the caller, e.g. with :func:`write_block`, then :func:`finish_labels`). ``reuse``: keep what a resumed
    write left."""
    group = _labels_group(image, name) if not reuse or not (Path(image) / "labels" / name / "zarr.json").exists() \
        else zarr.open_group(str(Path(image) / "labels" / name), mode="r+")
    return create_levels(group, shape, n_levels, chunk_yx, dtype, ["y", "x"], reuse=reuse)


def finish_labels(image: Path, name: str, n_levels: int, chunk_yx: tuple[int, int], compute,
                  properties: dict | None = None, pixel_size=(None, None), written: int = 1,
                  final_name: str | None = None) -> None:
    """Complete a label image whose first ``written`` levels are written: the other levels (each from the one
    before it as stored, every second pixel), the NGFF metadata, the move to ``final_name`` and the ``labels``
    listing."""
    labels_dir = Path(image) / "labels"
    final_name = final_name or name
    sub = zarr.open_group(str(labels_dir / name), mode="r+")
    if written < n_levels:
        write_levels(sub, n_levels, chunk_yx, compute, nearest=True, dims=("y", "x"), start=written)
    write_multiscales(sub, image_datasets(n_levels, pixel_size, labels=True), axes(pixel_size, channel=False),
                      final_name)
    ome = dict(sub.attrs["ome"])
    ome["image-label"] = {"version": NGFF_VERSION, "source": {"image": "../../"}} | (properties or {})
    sub.attrs["ome"] = ome
    if final_name != name:
        final = labels_dir / final_name
        if final.exists():
            shutil.rmtree(final)
        (labels_dir / name).rename(final)
    group = zarr.open_group(str(labels_dir), mode="r+")
    names = [n for n in group.attrs.get("ome", {}).get("labels", []) if n not in (final_name, name)]
    group.attrs["ome"] = {"version": NGFF_VERSION, "labels": [*names, final_name]}


def label_names(image: Path) -> list[str]:
    """The label images an image group lists."""
    g = Path(image) / "labels"
    if not (g / "zarr.json").exists():
        return []
    return list(zarr.open_group(str(g), mode="r").attrs.get("ome", {}).get("labels", []))


# --------------------------------------------------------------------------
# scratch arrays, regions, checks
# --------------------------------------------------------------------------
def put_files(group: zarr.Group, name: str, files: dict[str, bytes]) -> None:
    """Put the files of a zarr hierarchy made in memory (``{key: bytes}``, e.g. from a ``MemoryStore``) under
    ``<group>/<name>`` on the local disk, replacing what was there under the same keys."""
    base = Path(str(group.store.root)) / group.path / name
    for key, value in files.items():
        target = base / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(value)


def scratch_levels(path: Path, shape, n_levels: int, chunk_yx: tuple[int, int], dtype, reuse: bool = False
                   ) -> list[zarr.Array]:
    """Scratch label levels (level 0 and the levels it owns, :func:`create_levels`) in a plain group at ``path``,
    for chunk tasks to fill with :func:`write_block` and :func:`write_labels` to adopt. ``reuse``: keep what a
    resumed run or another shard of the same job wrote."""
    group = zarr.open_group(str(path), mode="a" if reuse else "w", zarr_format=3)
    return create_levels(group, shape, n_levels, chunk_yx, dtype, ["y", "x"], reuse=reuse)


def persist(array: da.Array, path: Path, compute) -> da.Array:
    """Write a lazy array to a scratch array (bounded memory) and return it read back lazily."""
    import dask.array as da

    compute([da.to_zarr(array, str(path), overwrite=True, compute=False)])
    return da.from_zarr(str(path))


def lazy(path: Path | str) -> da.Array:
    """An array on disk as a dask array, one task per zarr chunk."""
    import dask.array as da

    return da.from_zarr(zarr.open_array(str(path), mode="r"))


def read(path: Path | str, *index) -> np.ndarray:
    """A region of an array on disk (``index``: slices), read inside the task that needs it."""
    arr = zarr.open_array(str(path), mode="r")
    return np.asarray(arr[tuple(index)] if index else arr[...])


def remove(path: Path) -> None:
    if Path(path).is_dir():
        shutil.rmtree(path, ignore_errors=True)


def ngff_problems(group_path: Path, what: str) -> list[str]:
    """Why a group is not valid OME-NGFF, judged by ``ome-zarr-models`` (an independent validator)."""
    from ome_zarr_models import open_ome_zarr

    try:
        open_ome_zarr(zarr.open_group(str(group_path), mode="r"))
    except Exception as exc:  # noqa: BLE001 - the validator raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [f"{what} is not valid OME-NGFF: {first}"]
    return []


def group_attrs(path: Path | str) -> dict:
    """The attributes of a zarr group (raises for anything that is not one)."""
    return dict(zarr.open_group(str(path), mode="r").attrs)


def array_info(path: Path | str) -> tuple[tuple[int, ...], tuple[int, ...], np.dtype]:
    """Shape, chunks and dtype of an array on disk."""
    arr = zarr.open_array(str(path), mode="r")
    return tuple(arr.shape), tuple(arr.chunks), arr.dtype


def chunk_file(path: Path, level: str, *index: int) -> Path:
    """Where zarr v3 (default chunk-key encoding) keeps one chunk."""
    return Path(path).joinpath(level, "c", *map(str, index))


def chunks_written(path: Path, level: str = "s0") -> int:
    """Number of chunk files written so far at a level (progress on any scheduler)."""
    root = Path(path) / level / "c"
    return sum(len(files) for _, _, files in os.walk(root)) if root.exists() else 0
