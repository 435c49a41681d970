"""``scipzarr convert``: inputs → a chunked OME-Zarr mosaic store."""

from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from scipzarr import atomic
from scipzarr.errors import ScipzarrError
from scipzarr.progress import Bar, run_with_progress
from scipzarr.scheduler import ClusterOptions, open_runner
from scipzarr.store import mosaic as store
from scipzarr.store import check_channel_names, ngff, write_fov_store
from scipzarr.store.fov import DEFAULT_CHUNK
from scipzarr.work import Work, config_hash, fingerprint, work_path

from .fov import discover_fovs, looks_like_fovs
from .ifc import EventSource, discover

#: Default K (16 x 16 = 256 events per chunk; ~25 MB for 6 x 90 x 90 uint16).
DEFAULT_CHUNK_TILES = 16


def _tile_for(source: EventSource, tile_size: int | None, fit: str) -> tuple[int, int]:
    events = source.columns
    h, w = events["height"], events["width"]
    if tile_size is not None:
        tile = (tile_size, tile_size)
        too_big = (h > tile_size) | (w > tile_size)
        if fit == "pad" and too_big.any():
            i = int(np.flatnonzero(too_big)[0])
            raise ScipzarrError(
                f"{events['source'][i]}: event {events['event_id'][i]} is {h[i]}x{w[i]}, larger than "
                f"--tile-size {tile_size}; pass --fit crop to centre-crop it or a larger --tile-size"
            )
        return tile
    if fit == "crop":
        # a common size that keeps most events whole: the median event size
        return (int(np.median(h)), int(np.median(w)))
    return (int(h.max()), int(w.max()))


def event_table(source: EventSource, mosaic: store.Mosaic) -> dict[str, np.ndarray]:
    """The store's per-event table (columns :data:`store.EVENT_COLUMNS`, text as str objects, the rest int64):
    the source's columns (already of those types), tile positions and fits; its index is ``event_id``."""
    events = source.columns
    n = len(source)
    fits = [store.fit_to_tile((h, w), mosaic.tile) for h, w in zip(events["height"].tolist(), events["width"].tolist())]
    table = dict(events)
    table["tile_row"], table["tile_col"] = (np.asarray(a, np.int64) for a in mosaic.tile_position(np.arange(n)))
    for col in ("valid_y0", "valid_x0", "valid_height", "valid_width", "crop_y0", "crop_x0"):
        table[col] = np.array([f[col] for f in fits], dtype=np.int64).reshape(n)
    table["rejected"] = np.full(n, "", dtype=object)
    return {col: table[col] for col in store.EVENT_COLUMNS}


def _paths(inputs, output, overwrite: bool) -> tuple[list[Path], Path]:
    """Inputs and output as paths, the output checked (not inside an input, not there unless ``overwrite``)."""
    inputs, output = [Path(p) for p in inputs], Path(output)
    atomic.check_output(output, overwrite, inputs)
    return inputs, output


def convert(
    inputs: list[str | Path],
    output: str | Path,
    *,
    kind: str = "ifc",
    channels: list[str] | None = None,
    chunk_tiles: int = DEFAULT_CHUNK_TILES,
    tile_size: int | None = None,
    fit: str = "pad",
    overwrite: bool = False,
    resume: bool = False,
    on_error: str = "fail",
    progress: bool = True,
    scheduler: str = "threads",
    cluster: ClusterOptions | None = None,
    chunk_size: int | None = None,
    z_projection: str | None = None,
    channel_pattern: str | None = None,
) -> dict:
    """Convert IFC events or fields of view to a scipzarr OME-Zarr store.

    Parameters
    ----------
    inputs : list of path
        TIFF files or folders (per-event TIFFs, IDEAS exports, montages with
        ``tile_size``) or one ``.npy`` stack.
    output : path
        The store to write (``.zarr``); written aside and moved into place.
    kind : {"ifc", "fov", "auto"}
        Imaging flow cytometry events (a mosaic store), fields of view (one
        multiscale image per FOV, see :func:`convert_fovs`), or a guess from
        the first input (large or multi-series images are FOVs).
    channels : list of str, optional
        Channel names (one per channel).
    chunk_tiles : int
        K: each chunk holds K x K events.
    tile_size : int, optional
        Montage grid size, or the common event size (default: largest event).
    fit : {"pad", "crop"}
        Pad smaller events (always), and either refuse or centre-crop larger ones.
    on_error : {"fail", "skip"}
        ``skip`` leaves bad events out (unreadable, wrong channels or pixel
        type, NaN/inf pixels) and lists them in the store's ``tables/rejected``.
    resume : bool
        Continue an interrupted convert (same inputs and options): chunks
        already written are kept.

    Returns
    -------
    dict
        Summary: events, channels, tile, chunks, seconds.
    """
    if kind not in ("ifc", "fov", "auto"):
        raise ScipzarrError(f"--kind {kind}: choose ifc, fov or auto")
    if kind == "auto":
        kind = "fov" if looks_like_fovs(inputs) else "ifc"
    if kind == "fov":
        for option, given in (("--chunk-tiles", chunk_tiles != DEFAULT_CHUNK_TILES), ("--tile-size", tile_size),
                              ("--fit", fit != "pad"), ("--on-error skip", on_error != "fail")):
            if given:
                raise ScipzarrError(f"{option} applies to IFC events, not to FOV stores (--kind fov); leave it out")
        return convert_fovs(inputs, output, channels=channels, chunk_size=chunk_size or DEFAULT_CHUNK,
                            z_projection=z_projection or "max", overwrite=overwrite, resume=resume,
                            progress=progress, scheduler=scheduler, cluster=cluster, channel_pattern=channel_pattern)
    for option, given in (("--channel-pattern", channel_pattern), ("--chunk-size", chunk_size),
                          ("--z-projection", z_projection)):
        if given:
            raise ScipzarrError(f"{option} applies to FOV stores (--kind fov), not to IFC events; leave it out")
    if fit not in ("pad", "crop"):
        raise ScipzarrError(f"--fit {fit}: choose pad or crop")
    inputs, output = _paths(inputs, output, overwrite)
    t0 = time.perf_counter()
    source = discover(inputs, tile_size=tile_size, channel_names=channels, on_error=on_error)
    check_channel_names(source.channel_names)
    tile = _tile_for(source, tile_size, fit)
    mosaic = store.Mosaic.plan(len(source), len(source.channel_names), tile, chunk_tiles)
    chunk_bytes = int(np.prod(mosaic.chunk_shape)) * np.dtype(source.dtype).itemsize
    if chunk_bytes > store.MAX_CHUNK_BYTES:
        raise ScipzarrError(f"--chunk-tiles {chunk_tiles}: chunks of {chunk_bytes / 2**30:.1f} GiB are too large "
                            "(limit 2 GiB); choose a smaller --chunk-tiles")
    table = event_table(source, mosaic)
    with open_runner(scheduler, cluster, quiet=not progress) as runner:
        return _write(output, inputs, source, mosaic, table, tile, chunk_tiles, progress, runner, t0, resume,
                      {"channels": channels, "chunk_tiles": chunk_tiles, "tile_size": tile_size, "fit": fit,
                       "on_error": on_error}, on_error)


_READING = threading.Lock()


def _one_reader() -> threading.Lock:
    """The lock that lets one thread of this process at a time read a source whose reads hold the GIL (many small
    files, each a few system calls between Python steps): two such threads hand the GIL back and forth at every
    call and both slow down; while one reads, the other compresses and halves its chunk (zarr and numpy, without
    the GIL). Looked up where the chunk task runs (a lock cannot travel to another process's workers)."""
    return _READING


def _note(text: str) -> None:
    print(text, file=sys.stderr)


@contextmanager
def _cleanup(work: Work):
    """A failed convert leaves nothing behind; an interrupted one (Ctrl-C, or a kill) keeps its work for
    ``--resume``."""
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException:
        work.close()
        raise


def _write(output, inputs, source, mosaic, table, tile, chunk_tiles, progress, runner, t0, resume, options,
           on_error) -> dict:
    fits = np.stack([table[c] for c in ("valid_y0", "valid_x0", "valid_height", "valid_width", "crop_y0", "crop_x0")],
                    axis=1).tolist()
    n_channels = len(source.channel_names)
    work = Work(work_path(output), {"input": fingerprint(inputs), "options": config_hash(options)}, resume=resume,
                say=_note if progress else None)
    rejected_dir = work.path / "rejected"
    is_float = np.dtype(source.dtype).kind == "f"

    masks = source.read_masks is not None

    one_at_a_time = source.reads_hold_gil

    def read_block(events: range, tiles: np.ndarray, mask_tiles: np.ndarray | None) -> None:
        with _one_reader() if one_at_a_time else nullcontext():
            _read_block(events, tiles, mask_tiles)

    def _read_block(events: range, tiles: np.ndarray, mask_tiles: np.ndarray | None) -> None:
        k = tiles.shape[1]
        bad = {}
        batch = [None] * len(events)
        if source.read_batch is not None:
            try:
                batch = source.read_batch(events)
            except ScipzarrError:  # e.g. the file changed since discovery: each event alone says what is wrong
                pass
        for j, i in enumerate(events):
            try:
                if batch[j] is not None:
                    img, mask = batch[j]
                else:
                    img = source.read(i)
                    mask = source.read_masks(i) if masks else None
                if img.shape[0] != n_channels or img.dtype != source.dtype:
                    raise ScipzarrError(
                        f"{table['source'][i]}: pixel data is {img.shape[0]} x {img.dtype} but the header said "
                        f"{n_channels} x {source.dtype}; re-export the file"
                    )
                if is_float and not np.isfinite(img).all():
                    raise ScipzarrError(f"{table['source'][i]}: NaN or infinite pixel values; "
                                        "fix or remove the event")
            except ScipzarrError as exc:
                if on_error != "skip":
                    raise
                bad[int(i)] = str(exc)  # the tile stays empty; the event is marked rejected
                continue
            vy, vx, vh, vw, cy, cx = fits[i]
            tiles[j // k, j % k, :, vy:vy + vh, vx:vx + vw] = img[:, cy:cy + vh, cx:cx + vw]
            if masks:
                mask_tiles[j // k, j % k, :, vy:vy + vh, vx:vx + vw] = mask[:, cy:cy + vh, cx:cx + vw]
        if bad:
            rejected_dir.mkdir(exist_ok=True)
            (rejected_dir / f"{events.start:09d}.json").write_text(json.dumps(bad))

    def tables(final: bool):
        """The events and rejected tables (store.write_ifc_mosaic): before the chunks are read, as if every event
        reads; afterwards None unless events were rejected while reading their pixels (``--on-error skip``)."""
        if final and not rejected_dir.exists():
            return None
        bad = {}
        if final:  # kept with the work until the store is done: a resumed run's rejections of earlier chunks
            for f in sorted(rejected_dir.glob("*.json")):
                bad.update({int(k): v for k, v in json.loads(f.read_text()).items()})
        reasons = np.full(len(source), "", dtype=object)
        for i, reason in bad.items():
            reasons[i] = reason
        events = store.events_columns(table | {"rejected": reasons})
        pixel_rows = [{"event_id": table["event_id"][i], "source": table["source"][i],
                       "reason": reason, "stage": "pixels"} for i, reason in sorted(bad.items())]
        rows = source.rejected + pixel_rows
        counts["rejected"] = len(rows)
        return events, store.rejected_columns(rows)

    counts = {}
    desc = f"{source.layout}: " + ", ".join(map(str, inputs[:3])) + (" ..." if len(inputs) > 3 else "")

    def compute(collections, layer):
        if not layer:
            return runner.compute(collections)
        return run_with_progress(
            collections, runner=runner, events_per_task=mosaic.per_block, n_events=mosaic.n_events,
            description="convert", prefix=layer, enabled=progress,
            poll=lambda: ngff.chunks_written(work.output) * mosaic.per_block,
        )

    if resume and work.output.exists() and progress:
        _note(f"scipzarr: resuming convert: {ngff.chunks_written(work.output)} of {mosaic.n_blocks} chunks already "
              "written")
    with _cleanup(work), atomic.atomic_path(output, work=work.output) as target:
        store.write_ifc_mosaic(target, mosaic, read_block, tables, source.channel_names, source.dtype, desc,
                               compute=compute, resume=True, pixel_size=source.pixel_size,
                               acquisition=source.acquisition,
                               mask_labels=[f"ideas-{c}" for c in source.channel_names] if masks else None)
    work.close()
    return {
        "store": str(output), "layout": source.layout, "events": mosaic.n_events,
        "channels": source.channel_names, "tile": list(tile), "chunk_tiles": chunk_tiles,
        "chunks": mosaic.n_blocks, "classes": sorted(set(table["class_label"]) - {""}),
        "rejected": counts.get("rejected", 0),
        "seconds": time.perf_counter() - t0,
    }


def convert_fovs(inputs: list[str | Path], output: str | Path, *, channels: list[str] | None = None,
                 chunk_size: int = DEFAULT_CHUNK, z_projection: str = "max", overwrite: bool = False,
                 resume: bool = False, progress: bool = True, scheduler: str = "threads",
                 cluster: ClusterOptions | None = None, channel_pattern: str | None = None) -> dict:
    """Fields of view (TIFF/OME-TIFF, vendor formats via bioio) → a store with one multiscale image per FOV.

    Images are read lazily and written chunk by chunk (``chunk_size`` pixels
    square), so a FOV larger than memory converts in bounded memory. With
    ``resume``, the FOVs an interrupted convert finished are kept.
    ``channel_pattern`` joins one-file-per-channel inputs into multichannel
    FOVs (:func:`scipzarr.converters.fov.group_channel_files`).
    """
    if chunk_size < 16:
        raise ScipzarrError(f"--chunk-size {chunk_size}: use at least 16 pixels (default {DEFAULT_CHUNK})")
    if z_projection not in ("max", "mean"):
        raise ScipzarrError(f"--z-projection {z_projection}: choose max or mean")
    inputs, output = _paths(inputs, output, overwrite)
    t0 = time.perf_counter()
    fovs = discover_fovs(inputs, z_projection, channel_pattern)
    n_channels = fovs[0].data.shape[0]
    names = channels or fovs[0].channel_names or [f"ch{i}" for i in range(n_channels)]
    if len(names) != n_channels:
        raise ScipzarrError(f"--channels: {len(names)} names for {n_channels} channels; give one name per channel")
    options = {"channels": list(names), "chunk_size": chunk_size, "z_projection": z_projection,
               "channel_pattern": channel_pattern}
    work = Work(work_path(output), {"input": fingerprint(inputs), "options": config_hash(options)}, resume=resume,
                say=_note if progress else None)
    if resume and work.n_done() and progress:
        _note(f"scipzarr: resuming convert: {work.n_done()} of {len(fovs)} FOVs already written")
    with _cleanup(work), open_runner(scheduler, cluster, quiet=not progress) as runner, \
            atomic.atomic_path(output, work=work.output) as target, \
            Bar(len(fovs), description="convert", unit="FOVs", enabled=progress, runner=runner) as bar:
        bar.set(work.n_done())

        def written(i: int) -> None:
            work.mark(i)
            bar.advance(1)

        write_fov_store(target, fovs, list(names), chunk_size, runner.compute, done=work.done, mark_done=written)
    work.close()
    seconds = time.perf_counter() - t0
    return {"store": str(output), "kind": "fov", "fovs": len(fovs), "channels": list(names),
            "chunk": chunk_size, "seconds": seconds,
            "pixels": int(sum(f.data.shape[1] * f.data.shape[2] for f in fovs))}
