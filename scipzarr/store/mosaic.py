"""The store: the one place that knows the OME-Zarr layout of a scipzarr store.

An imaging flow cytometry (IFC) data set is stored as one *mosaic*: a
multiscale ``(c, y, x)`` NGFF 0.5 image (zarr v3) on which every event is a
tile of one common size. Each zarr chunk holds a whole ``K x K`` block of
tiles, so one chunk is one batch of ``K*K`` events, and events are numbered
block by block (row-major inside a block), which keeps every batch a
contiguous range of event indices::

    STORE.zarr/
      zarr.json            ome.multiscales + ome.omero (channels) + scipzarr (geometry)
      s0, s1, ...          pyramid levels, (c, y, x); s0 chunks = (C, K*th, K*tw)
      labels/<name>/       NGFF label mosaic (y, x) with the same levels
      tables/events/       per-event table (AnnData, obs only; Fractal-style tables/ group)

Only the store package (this module, :mod:`.fov` and :mod:`.ngff`) opens zarr groups or knows these paths.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr

from .._version import __version__
from ..errors import ScipzarrError
from . import ngff, obs_table

if TYPE_CHECKING:
    import dask.array as da
    import pandas as pd

STORE_FORMAT = "scipzarr-ifc-mosaic"
STORE_FORMAT_VERSION = 1
EVENTS_TABLE = "events"
REJECTED_TABLE = "rejected"
EVENT_COLUMNS = [
    "event_id", "tile_row", "tile_col", "height", "width",
    "valid_y0", "valid_x0", "valid_height", "valid_width",
    "crop_y0", "crop_x0", "source", "class_label", "rejected",
]
MAX_CHUNK_BYTES = 2 * 2**30  # a chunk is one task's batch: refuse absurd ones before allocating anything


# --------------------------------------------------------------------------
# Mosaic geometry
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Mosaic:
    """Geometry of an event mosaic: where each event's tile lies.

    Parameters
    ----------
    n_events, n_channels : int
        Events stored and channels per event.
    tile : (int, int)
        Tile height and width (the common, padded event size).
    chunk_tiles : int
        K: each chunk holds a K x K block of tiles (K*K events).
    chunk_grid : (int, int)
        Number of chunk rows and columns of the mosaic.
    """

    n_events: int
    n_channels: int
    tile: tuple[int, int]
    chunk_tiles: int
    chunk_grid: tuple[int, int]

    @classmethod
    def plan(cls, n_events: int, n_channels: int, tile: tuple[int, int], chunk_tiles: int) -> Mosaic:
        """Lay out ``n_events`` in a near-square grid of K x K blocks."""
        if n_events < 1:
            raise ScipzarrError("no events to store; check the input")
        if chunk_tiles < 1:
            raise ScipzarrError(f"--chunk-tiles must be >= 1, got {chunk_tiles}")
        n_blocks = math.ceil(n_events / chunk_tiles**2)
        cols = math.ceil(math.sqrt(n_blocks))
        rows = math.ceil(n_blocks / cols)
        return cls(n_events, n_channels, (int(tile[0]), int(tile[1])), chunk_tiles, (rows, cols))

    @property
    def per_block(self) -> int:
        return self.chunk_tiles**2

    @property
    def n_blocks(self) -> int:
        return math.ceil(self.n_events / self.per_block)

    @property
    def chunk_shape(self) -> tuple[int, int, int]:
        k = self.chunk_tiles
        return (self.n_channels, k * self.tile[0], k * self.tile[1])

    @property
    def shape(self) -> tuple[int, int, int]:
        c, cy, cx = self.chunk_shape
        return (c, self.chunk_grid[0] * cy, self.chunk_grid[1] * cx)

    def block_of(self, by: int, bx: int) -> int:
        """Block (chunk) number of chunk-grid position ``(by, bx)``."""
        return by * self.chunk_grid[1] + bx

    def block_events(self, block: int) -> range:
        """Event indices held by a block (the last block may be partly empty)."""
        start = block * self.per_block
        return range(min(start, self.n_events), min(start + self.per_block, self.n_events))

    def tile_position(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mosaic tile row and column of each event index."""
        events = np.asarray(events)
        k = self.chunk_tiles
        block, slot = np.divmod(events, self.per_block)
        by, bx = np.divmod(block, self.chunk_grid[1])
        sy, sx = np.divmod(slot, k)
        return by * k + sy, bx * k + sx

    def to_batch(self, block: np.ndarray) -> np.ndarray:
        """Reshape one chunk ``(C, K*th, K*tw)`` into ``(K*K, C, th, tw)``."""
        k, (th, tw) = self.chunk_tiles, self.tile
        c = block.shape[0]
        return block.reshape(c, k, th, k, tw).transpose(1, 3, 0, 2, 4).reshape(k * k, c, th, tw)

    def tiles(self, block: np.ndarray) -> np.ndarray:
        """The tiles of one chunk ``(C, K*th, K*tw)`` as a writable view ``(K, K, C, th, tw)``: the block's
        ``j``-th event is ``tiles[j // K, j % K]`` (events are written in place, no batch copy)."""
        k, (th, tw) = self.chunk_tiles, self.tile
        return block.reshape(block.shape[0], k, th, k, tw).transpose(1, 3, 0, 2, 4)

    def from_batch(self, batch: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`to_batch` (also for ``(K*K, th, tw)`` label batches)."""
        k, (th, tw) = self.chunk_tiles, self.tile
        if batch.ndim == 3:
            return batch.reshape(k, k, th, tw).transpose(0, 2, 1, 3).reshape(k * th, k * tw)
        c = batch.shape[1]
        return batch.reshape(k, k, c, th, tw).transpose(2, 0, 3, 1, 4).reshape(c, k * th, k * tw)

    def to_attrs(self) -> dict:
        return {
            "n_events": self.n_events,
            "n_channels": self.n_channels,
            "tile_size": list(self.tile),
            "chunk_tiles": self.chunk_tiles,
            "chunk_grid": list(self.chunk_grid),
        }

    @classmethod
    def from_attrs(cls, attrs: dict) -> Mosaic:
        return cls(
            int(attrs["n_events"]), int(attrs["n_channels"]), tuple(attrs["tile_size"]),
            int(attrs["chunk_tiles"]), tuple(attrs["chunk_grid"]),
        )


def fit_to_tile(shape: tuple[int, int], tile: tuple[int, int]) -> dict[str, int]:
    """Where an event of ``shape`` goes in a tile: centred, padded or cropped.

    Returns the tile offset of the first kept pixel (``valid_y0/x0``), the
    kept size (``valid_height/width``) and the first kept source pixel
    (``crop_y0/x0``, non-zero only when the event is larger than the tile).
    """
    out = {}
    for axis, (n, t) in zip(("y", "x"), zip(shape, tile)):
        kept = min(n, t)
        out[f"valid_{axis}0"] = (t - kept) // 2
        out[f"crop_{axis}0"] = (n - kept) // 2
        out["valid_height" if axis == "y" else "valid_width"] = kept
    return out


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------
def write_ifc_mosaic(
    path: Path,
    mosaic: Mosaic,
    read_block: Callable[[range, np.ndarray, np.ndarray | None], None],
    tables: Callable[[bool], tuple[pd.DataFrame | obs_table.ObsColumns, pd.DataFrame | obs_table.ObsColumns] | None],
    channel_names: list[str],
    dtype: np.dtype,
    source_description: str,
    compute: Callable[[list, str], None],
    resume: bool = False,
    pixel_size: tuple[float | None, float | None] = (None, None),
    acquisition: dict | None = None,
    mask_labels: list[str] | None = None,
) -> None:
    """Write an IFC mosaic store at ``path``.

    Level 0 and the pyramid levels its chunks own are written by one task per
    chunk: ``read_block(event_range, tiles, mask_tiles)`` puts the events,
    already fitted, into the chunk's zeroed tiles (``(K, K, C, th, tw)``
    views, :meth:`Mosaic.tiles`; the range's ``j``-th event at
    ``[j // K, j % K]``). Chunks already on disk are skipped when ``resume``
    is set (zarr writes each chunk file atomically, and a chunk's levels and
    labels are written before its level-0 chunk, so a present chunk is a
    whole chunk). The other levels are then computed from the last owned one.
    ``compute(collections, layer)`` runs dask collections (the caller chooses
    scheduler and progress). ``tables(final)`` returns the per-event table and
    the rejected-events table: ``tables(False)`` before the chunk tasks run
    (the tables as they are if every event reads; written while the tasks
    run), ``tables(True)`` once level 0 is written (None: the first stand;
    else written in their place). With
    ``mask_labels`` (one label image name per channel, e.g. the instrument's
    masks), ``read_block`` also fills ``mask_tiles`` (0/1); masks become label
    mosaics ``labels/<name>`` whose value is the event's index + 1 where the
    mask is set.
    """
    dtype = np.dtype(dtype)
    c, cy, cx = mosaic.chunk_shape
    n_levels = ngff.pyramid_levels(mosaic.shape[1:], mosaic.tile)
    root = zarr.open_group(str(path), mode="a" if resume else "w-", zarr_format=3)
    # level 0 and the levels its chunks own are written by each chunk's task; the rest from them afterwards
    levels = ngff.create_levels(root, mosaic.shape, n_levels, (cy, cx), dtype, ["c", "y", "x"], reuse=resume)
    label_dtype = np.uint32 if mosaic.n_events < 2**32 - 1 else np.uint64
    # the instrument's masks go straight into their label images (the whole store is written aside anyway)
    mask_levels = [ngff.create_labels(path, name, mosaic.shape[1:], (cy, cx), label_dtype, n_levels, reuse=resume)
                   for name in (mask_labels or [])]

    k, n_masks = mosaic.chunk_tiles, len(mask_levels)
    # the first level no chunk owns, assembled in memory from the tasks' pieces when it is small (so the level
    # before it is not read back: 0.45 s of a 6,660-event CIF convert) and their pieces meet at even seams
    owned = len(levels) - 1
    sides, _ = ngff.pyramid_chunks((cy, cx), n_levels)
    nxt = owned + 1
    next_shape = (mosaic.shape[1] >> nxt, mosaic.shape[2] >> nxt)
    assemble = (nxt < n_levels and sides[owned][0] % 2 == 0 and sides[owned][1] % 2 == 0
                and c * next_shape[0] * next_shape[1] * dtype.itemsize <= ngff.SMALL_LEVEL
                and next_shape[0] * next_shape[1] * np.dtype(label_dtype).itemsize <= ngff.SMALL_LEVEL)

    def write_block(by: int, bx: int):
        idx = mosaic.block_events(mosaic.block_of(by, bx))
        if not len(idx):
            return (by, bx, None, None)  # past the last event: zeros in every level
        if not (resume and ngff.chunk_file(path, "s0", 0, by, bx).exists()):
            pixels = np.zeros((c, cy, cx), dtype=dtype)
            masks = np.zeros((n_masks, cy, cx), np.uint8) if n_masks else None
            read_block(idx, mosaic.tiles(pixels), None if masks is None else mosaic.tiles(masks))
            blocks = []
            if n_masks:  # label = event index + 1 where the mask is set
                ids = np.zeros(mosaic.per_block, label_dtype)
                ids[: len(idx)] = np.arange(idx.start, idx.stop) + 1
                ids = np.repeat(np.repeat(ids.reshape(k, k), mosaic.tile[0], 0), mosaic.tile[1], 1)
                blocks = [(arrays, mask * ids, True) for arrays, mask in zip(mask_levels, masks)]
            # the image's level 0 is written last: a present s0 chunk is a whole chunk
            nexts = ngff.write_blocks([*blocks, (levels, pixels, False)], by * cy, bx * cx, next_level=assemble)
            return (by, bx, nexts[-1], nexts[:-1]) if assemble else None
        return None  # written before (resume): the next level is read back from the store

    # one task per chunk (dask.delayed: convert never needs dask.array, 0.3-0.6 s to import)
    from dask import delayed

    layer = f"scipzarr-read-events-{uuid.uuid4().hex}"
    rows, cols = mosaic.chunk_grid
    # the tables, as they are when every event reads, are written while the tasks run (their ~0.3 s is mostly
    # zarr's Python and the file system: the tasks' compiled decoding and encoding run beside it)
    with ThreadPoolExecutor(1) as pool:
        early = pool.submit(lambda: write_events_table(root, *tables(False)))
        try:
            pieces = list(compute([delayed(write_block, pure=False)(by, bx, dask_key_name=(layer, by, bx))
                                   for by in range(rows) for bx in range(cols)], layer))
        except BaseException:
            wait([early])  # the tasks' error is the one to report
            raise
        early.result()
    firsts = [None] * (1 + n_masks)
    if assemble and all(p is not None for p in pieces):
        firsts = [np.zeros((c, *next_shape), dtype)] + [np.zeros(next_shape, label_dtype) for _ in range(n_masks)]
        hy, hx = cy >> nxt, cx >> nxt
        while pieces:  # each piece let go once placed: at most the level's size twice in memory
            by, bx, image_piece, mask_pieces = pieces.pop()
            if image_piece is None:
                continue
            for whole, piece in zip(firsts, [image_piece, *mask_pieces]):
                whole[..., by * hy:by * hy + piece.shape[-2], bx * hx:bx * hx + piece.shape[-1]] = piece
    del pieces

    def run(collections):  # no progress layer
        return compute(collections, "")

    # the later levels of the image and of each mask label image, two at a time, while this thread rewrites the
    # tables if events were rejected (mostly waits on zarr's event loop; the levels are mostly numpy and codecs)
    pyramids = [(root, False, ("c", "y", "x"))] + [(zarr.open_group(str(path / "labels" / name), mode="r+"), True,
                                                      ("y", "x")) for name in mask_labels or []]
    with ThreadPoolExecutor(2) as pool:
        later = [pool.submit(ngff.write_levels, group, n_levels, (cy, cx), run, nearest, dims, len(levels), first)
                 for (group, nearest, dims), first in zip(pyramids, firsts)]
        try:
            final = tables(True)
            if final is not None:  # events rejected while reading their pixels
                write_events_table(root, *final)
        finally:
            for job in later:
                job.result()
    ngff.write_image_metadata(root, n_levels, "events", channel_names, pixel_size)
    root.attrs["scipzarr"] = {
        "format": STORE_FORMAT,
        "format_version": STORE_FORMAT_VERSION,
        "kind": "ifc",
        "written_by": f"scipzarr {__version__}",
        "mosaic": mosaic.to_attrs(),
        "channel_names": list(channel_names),
        "dtype": dtype.name,
        "source": source_description,
        "events_table": f"tables/{EVENTS_TABLE}",
        **({"acquisition": acquisition} if acquisition else {}),
        **({"instrument_masks": list(mask_labels)} if mask_labels else {}),
    }
    for name in mask_labels or []:
        ngff.finish_labels(path, name, n_levels, (cy, cx), run,
                           {"scipzarr": {"label_rule": "label = event_index + 1 where the mask is set",
                                         "source": "instrument masks"}}, pixel_size, written=n_levels)


REJECTED_COLUMNS = ["event_id", "source", "reason", "stage"]


def events_columns(table: dict[str, np.ndarray]) -> obs_table.ObsColumns:
    """The per-event table of ``table`` (:data:`EVENT_COLUMNS` as numpy arrays: text as str objects, numbers
    int64), indexed by ``event_id`` (index name ``event``): what :func:`write_events_table` takes without pandas."""
    return obs_table.ObsColumns("event", obs_table.Strings(table["event_id"]),
                                {c: obs_table.Strings(table[c]) if table[c].dtype == object else table[c]
                                 for c in EVENT_COLUMNS})


def rejected_columns(rows: list[dict]) -> obs_table.ObsColumns:
    """The rejected-events table of ``rows`` (dicts with :data:`REJECTED_COLUMNS`), every value as text, rows
    numbered from 0: what :func:`write_events_table` makes of the same rows in a DataFrame."""
    def text(values) -> obs_table.Strings:
        return obs_table.Strings(np.array([str(v) for v in values], dtype=object))

    return obs_table.ObsColumns(None, text(range(len(rows))),
                                {c: text(row[c] for row in rows) for c in REJECTED_COLUMNS})


def write_events_table(root: zarr.Group, events: pd.DataFrame | obs_table.ObsColumns,
                       rejected: pd.DataFrame | obs_table.ObsColumns | None = None) -> None:
    """Store the per-event table and the rejected-events table as obs-only AnnData under ``tables/``.

    The tables are written into memory and the finished files then put into the store
    (:func:`ngff.put_files`: one write per file), by :mod:`.obs_table`: anndata's layout without its import
    and its ~500 zarr calls for a 14-column table (anndata writes any column type that module does not know).
    Given as :class:`~.obs_table.ObsColumns` (``convert``: :func:`events_columns` and :func:`rejected_columns`),
    the tables are written without pandas.
    """
    tables = root.require_group("tables")
    if rejected is None:
        rejected = rejected_columns([])
    elif not isinstance(rejected, obs_table.ObsColumns):
        rejected = rejected[REJECTED_COLUMNS].astype(str).reset_index(drop=True)
        rejected.index = rejected.index.astype(str)
    tables.attrs["tables"] = [EVENTS_TABLE, REJECTED_TABLE]
    files: dict = {}
    memory = zarr.open_group(zarr.storage.MemoryStore(store_dict=files), mode="w", zarr_format=3)
    for name, df, kind in ((EVENTS_TABLE, events, "event_table"), (REJECTED_TABLE, rejected, "rejected_events")):
        if isinstance(df, obs_table.ObsColumns):
            obs_table.write_obs_columns(memory, name, df, kind)
            continue
        try:
            obs_table.write_obs_table(memory, name, df, kind)
        except obs_table.Unencodable:  # a column type obs_table does not encode (it wrote nothing)
            import anndata as ad

            table = ad.AnnData(obs=df.copy())
            table.uns["type"] = kind
            ad.io.write_elem(memory, name, table)
    files.pop("zarr.json")  # the in-memory root; the store's tables group is already there
    ngff.put_files(root, "tables", {key: value.to_bytes() for key, value in files.items()})


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------
@dataclass
class MosaicStore:
    """An opened IFC mosaic store (read side)."""

    path: Path
    mosaic: Mosaic
    channel_names: list[str]
    events: pd.DataFrame
    level_paths: list[str]
    attrs: dict

    def image(self, level: int = 0) -> da.Array:
        """The mosaic at a pyramid level as a dask array, one task per chunk."""
        import dask.array as da

        arr = zarr.open_array(str(self.path / self.level_paths[level]), mode="r")
        return da.from_zarr(arr)

    def labels(self, name: str, level: int = 0) -> da.Array:
        import dask.array as da

        arr = zarr.open_array(str(self.path / "labels" / name / self.level_paths[level]), mode="r")
        return da.from_zarr(arr)

    def label_names(self) -> list[str]:
        return ngff.label_names(self.path)

    @property
    def pixel_size(self) -> tuple[float | None, float | None]:
        """Micrometres per pixel (y, x) when the input stated it (e.g. a CIF), else (None, None)."""
        ms = self.attrs["ome"]["multiscales"][0]
        if not all(a.get("unit") for a in ms["axes"][1:]):
            return None, None
        scale = next(t["scale"] for t in ms["datasets"][0]["coordinateTransformations"] if t["type"] == "scale")
        return float(scale[1]), float(scale[2])

    def channel_index(self, channel: str | int) -> int:
        """Resolve a channel name or index; a clear error for unknown ones."""
        if isinstance(channel, int) and not isinstance(channel, bool):
            if 0 <= channel < len(self.channel_names):
                return channel
        elif channel in self.channel_names:
            return self.channel_names.index(channel)
        raise ScipzarrError(
            f"{self.path}: unknown channel {channel!r}; the store has {', '.join(self.channel_names)} "
            f"(names or indices 0..{len(self.channel_names) - 1})"
        )

    def rejected(self) -> pd.DataFrame:
        """Events left out by ``--on-error skip`` (event_id, source, reason, stage)."""
        root = zarr.open_group(str(self.path), mode="r")
        if "tables" not in root or REJECTED_TABLE not in root["tables"]:
            import pandas as pd

            return pd.DataFrame(columns=REJECTED_COLUMNS)
        tables = root["tables"]
        table = obs_table.read_obs_table(tables, REJECTED_TABLE)
        if table is None:  # an encoding obs_table does not read
            import anndata as ad

            table = ad.io.read_elem(tables[REJECTED_TABLE]).obs
        return table


def open_store(path: str | Path) -> MosaicStore:
    """Open a scipzarr IFC store; one clear error if it is not one."""
    path = Path(path)
    if not path.exists():
        raise ScipzarrError(f"{path}: no such store; run 'scipzarr convert' first or check the path")
    try:
        root = zarr.open_group(str(path), mode="r")
        attrs = dict(root.attrs)
    except Exception as exc:  # zarr raises several types for non-zarr folders
        raise ScipzarrError(f"{path}: not a zarr v3 group ({type(exc).__name__}); give a store written by 'scipzarr convert'") from None
    meta = attrs.get("scipzarr")
    if not isinstance(meta, dict) or meta.get("format") != STORE_FORMAT:
        raise ScipzarrError(f"{path}: not a scipzarr IFC store (no 'scipzarr' metadata); convert the data with 'scipzarr convert'")
    from ..schema import validate_document

    validate_document(meta, "store", f"{path} (scipzarr metadata)")
    try:
        multiscale = attrs["ome"]["multiscales"][0]
        level_paths = [d["path"] for d in multiscale["datasets"]]
    except (KeyError, IndexError, TypeError):
        raise ScipzarrError(f"{path}: missing or broken NGFF multiscales metadata; re-run 'scipzarr convert'") from None
    mosaic = Mosaic.from_attrs(meta["mosaic"])
    try:
        events = obs_table.read_obs_table(root["tables"], EVENTS_TABLE)
        if events is None:  # an encoding obs_table does not read
            import anndata as ad

            events = ad.io.read_elem(root["tables"][EVENTS_TABLE]).obs
    except Exception:
        raise ScipzarrError(f"{path}: the per-event table tables/{EVENTS_TABLE} is missing or unreadable; re-run 'scipzarr convert'") from None
    if len(events) != mosaic.n_events:
        raise ScipzarrError(f"{path}: the event table has {len(events)} rows but the metadata says {mosaic.n_events} events; the store is damaged, re-run 'scipzarr convert'")
    chunk_bytes = int(np.prod(mosaic.chunk_shape)) * np.dtype(meta["dtype"]).itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise ScipzarrError(f"{path}: chunks of {chunk_bytes / 2**30:.1f} GiB (K={mosaic.chunk_tiles}, tile "
                            f"{mosaic.tile[0]}x{mosaic.tile[1]}) are too large to process; re-convert with a smaller --chunk-tiles")
    try:
        level0 = zarr.open_array(str(path / level_paths[0]), mode="r")
    except Exception:
        raise ScipzarrError(f"{path}: level {level_paths[0]} is missing or unreadable; the store is damaged, re-run 'scipzarr convert'") from None
    if tuple(level0.shape) != mosaic.shape or tuple(level0.chunks) != mosaic.chunk_shape:
        raise ScipzarrError(f"{path}: level {level_paths[0]} has shape {tuple(level0.shape)} and chunks {tuple(level0.chunks)} "
                            f"but the mosaic metadata implies {mosaic.shape} and {mosaic.chunk_shape}; the store is damaged")
    return MosaicStore(path, mosaic, list(meta["channel_names"]), events, level_paths, attrs)


# --------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------
def label_block_levels(store: MosaicStore, work_name: str, dtype: str, reuse: bool = False) -> list[zarr.Array]:
    """Scratch label levels, one zarr chunk per mosaic chunk at level 0 (:func:`ngff.scratch_levels`).

    Chunk tasks write their label blocks straight into them (:func:`write_label_blocks`: level 0 and the levels
    it owns), so segmentation runs once, inside the measuring task; :func:`write_mosaic_labels` then moves
    them into the NGFF label image and computes the remaining (small) levels. A resumed run keeps its
    finished blocks.
    """
    cy, cx = store.mosaic.chunk_shape[1:]
    return ngff.scratch_levels(store.path / "labels" / f"{work_name}-scratch", store.mosaic.shape[1:],
                               len(store.level_paths), (cy, cx), dtype, reuse=reuse)


def write_label_blocks(images: list[list[zarr.Array]], mosaic: Mosaic, block_index: int,
                       blocks: list[np.ndarray]) -> None:
    """One chunk's labels ``(K*th, K*tw)`` of several label images (their scratch levels ``images``, one block
    each) in two zarr calls (:func:`ngff.write_blocks`; the last image's level 0 last: a present level-0 chunk
    means the chunk is written): a chunk's seven label images took 155 ms of a process chunk task written one
    by one (docs/benchmarks.md)."""
    by, bx = divmod(block_index, mosaic.chunk_grid[1])
    cy, cx = mosaic.chunk_shape[1:]
    ngff.write_blocks([(levels, block, True) for levels, block in zip(images, blocks)], by * cy, bx * cx)


def write_mosaic_labels(store: MosaicStore, name: str, labels, compute, properties: dict | None = None) -> None:
    """Write a label mosaic (numpy, dask or a scratch zarr array) as ``labels/<name>`` with the image's levels."""
    ngff.write_labels(store.path, name, labels, len(store.level_paths), store.mosaic.chunk_shape[1:], compute,
                      properties, store.pixel_size)


def discard_labels(store: MosaicStore, work_name: str | None) -> None:
    """Remove a run's scratch label array (after a failure or once its labels are written)."""
    if work_name:
        ngff.remove(store.path / "labels" / f"{work_name}-scratch")
        for extra in sorted((store.path / "labels").glob(f"{work_name}-c*-scratch")):  # the channel masks'
            ngff.remove(extra)


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------
def validate_store(path: Path) -> list[str]:
    """Problems found in a store (empty list: valid).

    Checks NGFF validity of the image and its labels with ``ome-zarr-models``
    (an independent validator), the ``scipzarr`` metadata against its schema,
    the arrays against the mosaic geometry, and the event table.
    """
    try:
        st = open_store(path)
    except ScipzarrError as exc:
        return [str(exc).removeprefix(f"{path}: ")]
    problems = ngff.ngff_problems(path, "the image")
    m = st.mosaic
    prev = None
    for i, lp in enumerate(st.level_paths):
        arr = zarr.open_array(str(path / lp), mode="r")
        if i == 0 and tuple(arr.chunks) != m.chunk_shape:
            problems.append(f"{lp}: chunks {arr.chunks} differ from the K x K tile block {m.chunk_shape}")
        if arr.dtype != np.dtype(st.attrs["scipzarr"]["dtype"]):
            problems.append(f"{lp}: dtype {arr.dtype} differs from the metadata's {st.attrs['scipzarr']['dtype']}")
        if prev is not None and (arr.shape[1] != prev[1] // 2 or arr.shape[2] != prev[2] // 2):
            problems.append(f"{lp}: shape {arr.shape} is not half of the previous level {prev}")
        prev = arr.shape
    ev = st.events
    missing = [c for c in EVENT_COLUMNS if c not in ev.columns]
    if missing:
        problems.append(f"tables/events: missing columns {', '.join(missing)}")
    else:
        rows, cols = m.tile_position(np.arange(m.n_events))
        if not (np.array_equal(ev["tile_row"].to_numpy(), rows) and np.array_equal(ev["tile_col"].to_numpy(), cols)):
            problems.append("tables/events: tile positions do not match the mosaic geometry")
        th, tw = m.tile
        bad = ((ev["valid_y0"] < 0) | (ev["valid_x0"] < 0) | (ev["valid_height"] < 1) | (ev["valid_width"] < 1)
               | (ev["valid_y0"] + ev["valid_height"] > th) | (ev["valid_x0"] + ev["valid_width"] > tw))
        if bad.any():
            problems.append(f"tables/events: {int(bad.sum())} events have a valid region outside their tile")
        if not ev["event_id"].is_unique:
            problems.append("tables/events: event ids are not unique")
    for name in st.label_names():
        lpath = path / "labels" / name
        problems += ngff.ngff_problems(lpath, f"labels/{name}")
        lg = zarr.open_group(str(lpath), mode="r")
        n_levels = len(lg.attrs.get("ome", {}).get("multiscales", [{}])[0].get("datasets", []))
        if n_levels != len(st.level_paths):
            problems.append(f"labels/{name}: {n_levels} pyramid levels, the image has {len(st.level_paths)}")
        arr = zarr.open_array(str(lpath / st.level_paths[0]), mode="r")
        if tuple(arr.shape) != m.shape[1:]:
            problems.append(f"labels/{name}: shape {arr.shape} differs from the image's {m.shape[1:]}")
    if (path / "labels").exists() and not (path / "labels" / "zarr.json").exists():
        problems.append("labels/: folder without NGFF labels metadata")
    return problems


def read_chunk(level_path: str, mosaic: Mosaic, block: int) -> np.ndarray:
    """The pixels of one mosaic chunk ``(C, K*th, K*tw)`` (or ``(K*th, K*tw)`` of a label mosaic) from a
    level-0 array path."""
    by, bx = divmod(block, mosaic.chunk_grid[1])
    _, cy, cx = mosaic.chunk_shape
    arr = zarr.open_array(level_path, mode="r")
    whole = ngff.get_chunk(arr, by * cy, bx * cx)  # straight from the chunk file (our stores on a local disk)
    return whole if whole is not None else arr[..., by * cy:(by + 1) * cy, bx * cx:(bx + 1) * cx]


