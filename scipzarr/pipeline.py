"""``scipzarr process``: builds and runs the dask graph over the store's chunks.

One task per chunk: the chunk is reshaped into an ``(N, C, Y, X)`` batch of
events, normalized, segmented, labelled and measured by the batch kernels,
and its label tile block is written back. Statistics that must not depend
on the chunking (data-set percentiles, data-set thresholds) are reduced from
exact per-chunk histograms in earlier passes.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np

from . import atomic, backend, store
from .errors import ScipzarrError
from .features import Objects, feature_columns, measure, resolve_families
from .fovstore import store_kind
from .kernels import normalize as norm
from .kernels import segment as seg
from .kernels.batch import event_slices, valid_mask
from .progress import run_with_progress
from .scheduler import ClusterOptions, open_runner


@dataclass(frozen=True)
class Plan:
    """Everything a chunk task needs besides its pixels (small, picklable)."""

    mosaic: store.Mosaic
    seg_channels: tuple[int, ...]
    feat_channels: tuple[int, ...]
    families: tuple[str, ...]
    config: dict
    label_stride: int
    label_dtype: str
    image_path: str
    on_error: str = "fail"
    device: str = "cpu"
    seg_batch: int | None = None  # events segmented at once (GPU memory); None: the whole chunk
    feat_batch: int | None = None  # events measured at once by the device families (GPU memory); None: all


SLOT_FIELDS = ("event", "valid_y0", "valid_x0", "valid_height", "valid_width")


def slot_table(st: store.MosaicStore) -> np.ndarray:
    """Per-tile event index and valid region, laid out like the tiles: ``(5, rows*K, cols*K)``.

    Chunked K x K, it lines up with the image's chunks, so ``map_blocks`` hands
    every chunk task its own small table (empty tiles: event -1, no pixels).
    """
    m = st.mosaic
    out = np.zeros((len(SLOT_FIELDS), m.chunk_grid[0] * m.chunk_tiles, m.chunk_grid[1] * m.chunk_tiles), np.int64)
    out[0] = -1
    rows, cols = m.tile_position(np.arange(m.n_events))
    kept = (st.events["rejected"] == "").to_numpy() if "rejected" in st.events else np.ones(m.n_events, bool)
    out[0, rows, cols] = np.where(kept, np.arange(m.n_events), -1)  # events rejected at convert are not processed
    for i, col in enumerate(SLOT_FIELDS[1:], start=1):
        out[i, rows, cols] = st.events[col].to_numpy()
    return out


def _slots(block: np.ndarray) -> dict[str, np.ndarray]:
    return {name: block[i].reshape(-1) for i, name in enumerate(SLOT_FIELDS)}


def read_block(plan: Plan, block_index: int) -> np.ndarray:
    """The pixels of one chunk, read inside the task that uses them."""
    return store.read_chunk(plan.image_path, plan.mosaic, block_index)


def map_chunks(slots, fn, *args, name: str):
    """One task per chunk via ``map_blocks`` over the slot table: ``fn(slots, block_index, *args)``.

    Tasks read their own pixels (no block passes between tasks, and a resumed
    run does not even read finished chunks). Returns a dask array of Python
    objects, one per chunk, in the chunk grid; empty chunks give None.
    """
    cols = slots.numblocks[2]

    def call(slot_block, *extra, block_info=None):
        loc = block_info[0]["chunk-location"]
        out = np.empty((1, 1, 1), dtype=object)
        meta = _slots(slot_block)
        out[0, 0, 0] = fn(meta, loc[1] * cols + loc[2], *extra) if (meta["event"] >= 0).any() else None
        return out

    return da.map_blocks(call, slots, *args, dtype=object, chunks=(1, 1, 1), name=name,
                         meta=np.empty((0, 0, 0), object))


def _batch(plan: Plan, block: np.ndarray, meta: dict) -> tuple[np.ndarray, np.ndarray]:
    batch = plan.mosaic.to_batch(block)
    valid = valid_mask(batch.shape[-2:], meta["valid_y0"], meta["valid_x0"], meta["valid_height"], meta["valid_width"])
    return batch, valid


def _normalized(plan: Plan, batch: np.ndarray, valid: np.ndarray, lohi) -> np.ndarray:
    cfg = plan.config["normalize"]
    method = cfg["method"]
    if method == "none":
        return batch  # raw values; padding is zero and never measured
    if cfg["scope"] == "event":
        lohi = (norm.event_percentiles(batch, valid, cfg["low"], cfg["high"]) if method == "percentile"
                else norm.channel_minmax(batch, valid))
    return norm.apply(batch, valid, lohi, clip=method == "percentile")


def _smoothed(plan: Plan, images: np.ndarray, valid: np.ndarray, events: slice):
    """The smoothed segmentation image and valid mask of ``events`` of a batch, on the plan's device."""
    seg_images = backend.to_device(images[events][:, list(plan.seg_channels)], plan.device)
    on_device = backend.to_device(valid[events], plan.device)
    smooth = seg.smooth(seg.combine_channels(seg_images, list(range(len(plan.seg_channels)))), on_device,
                        plan.config["segmentation"]["smoothing_sigma"])
    return smooth, on_device


def _sub_batches(plan: Plan, n: int) -> list[slice]:
    """Slices of ``plan.seg_batch`` events (every segmentation step is per event, so results are the same
    for any split; tested)."""
    return event_slices(n, plan.seg_batch)


def _prepared(plan: Plan, block: np.ndarray, meta: dict, lohi):
    """Normalized images and valid mask of a chunk's batch (host)."""
    batch, valid = _batch(plan, block, meta)
    return _normalized(plan, batch, valid, lohi), valid


# ----------------------------------------------------------------------------
# chunk tasks
# ----------------------------------------------------------------------------
def _chunk_minmax(meta, block_index, plan):
    batch, valid = _batch(plan, read_block(plan, block_index), meta)
    mm = norm.channel_minmax(batch, valid)
    return np.nanmin(mm[..., 0], axis=0, initial=np.inf), np.nanmax(mm[..., 1], axis=0, initial=-np.inf)


def _chunk_channel_hist(meta, block_index, plan, low, high, bins):
    batch, valid = _batch(plan, read_block(plan, block_index), meta)
    return norm.channel_histograms(batch, valid, low, high, bins)


def _chunk_seg_range(meta, block_index, plan, lohi):
    images, valid = _prepared(plan, read_block(plan, block_index), meta, lohi)
    lo, hi = np.inf, -np.inf
    for events in _sub_batches(plan, len(images)):
        smooth, on_device = _smoothed(plan, images, valid, events)
        if bool(on_device.any()):
            lo = min(lo, backend.scalar(smooth[on_device].min()))
            hi = max(hi, backend.scalar(smooth[on_device].max()))
    return lo, hi


def _chunk_seg_hist(meta, block_index, plan, lohi, lo, hi):
    images, valid = _prepared(plan, read_block(plan, block_index), meta, lohi)
    total = np.zeros(seg.NBINS, np.int64)
    for events in _sub_batches(plan, len(images)):
        smooth, on_device = _smoothed(plan, images, valid, events)
        xp, n = backend.xp_of(smooth), smooth.shape[0]
        counts, _, _, _ = seg.event_histograms(smooth, on_device, seg.NBINS, lo=xp.full(n, lo), hi=xp.full(n, hi))
        total += backend.to_host(counts.sum(axis=0))
    return total


def _segment_events(plan: Plan, images: np.ndarray, valid: np.ndarray, threshold) -> np.ndarray:
    """Per-event labels ``(N, Y, X)`` (host) of a normalized batch, segmented on the plan's device in
    sub-batches of ``plan.seg_batch`` events."""
    cfg = plan.config["segmentation"]
    thr_cfg = cfg["threshold"]
    local = np.zeros(valid.shape, np.int32)
    for events in _sub_batches(plan, len(images)):
        smooth, on_device = _smoothed(plan, images, valid, events)
        n = smooth.shape[0]
        if thr_cfg["method"] == "fixed":
            thresholds = np.full(n, float(thr_cfg["value"]))
        elif thr_cfg["scope"] == "dataset":
            thresholds = np.full(n, threshold)
        elif thr_cfg["method"] == "otsu":
            thresholds = seg.threshold_otsu(smooth, on_device)
        else:
            thresholds = seg.threshold_li(smooth, on_device)
        part, _counts = seg.segment(smooth, on_device, thresholds, fill=cfg["fill_holes"],
                                    min_size=cfg["min_size"], keep=cfg["keep"])
        local[events] = backend.to_host(part)  # written to the store; features.measure copies it back: docs/gpu.md
    return local


def _non_finite_events(plan: Plan, block: np.ndarray, meta: dict) -> np.ndarray:
    """Events of a float chunk with NaN/inf pixels: an error, or (``skip``) left out of processing."""
    if block.dtype.kind != "f":
        return np.zeros(0, dtype=np.int64)
    batch, valid = _batch(plan, block, meta)
    finite = np.where(valid[:, None], np.isfinite(batch), True).all(axis=(1, 2, 3))
    slots = np.flatnonzero(~finite & (meta["event"] >= 0))
    if len(slots) and plan.on_error != "skip":
        raise ScipzarrError(f"{Path(plan.image_path).parent}: event index {int(meta['event'][slots[0]])} has NaN or "
                            "infinite pixels; rerun with --on-error skip to leave such events out")
    meta["valid_height"][slots] = 0  # no pixels: never measured
    return meta["event"][slots].astype(np.int64)


def _chunk_process(meta: dict, block_index: int, plan: Plan, lohi, threshold, labels_out, work):
    """Segment and measure one chunk; write its label block; return (and keep) its feature rows."""
    if work is not None and work.done(block_index):
        return work.load_chunk(block_index)
    block = read_block(plan, block_index)
    bad = _non_finite_events(plan, block, meta)
    images, valid = _prepared(plan, block, meta, lohi)
    local = _segment_events(plan, images, valid, threshold)
    obj = Objects(local, meta["valid_y0"], meta["valid_x0"], valid)
    values = measure(obj, images, list(plan.families), list(plan.feat_channels), plan.config["features"],
                     device=plan.device, batch=plan.feat_batch)
    event = meta["event"][obj.event]
    if labels_out is not None:
        glob = np.where(local > 0, meta["event"][:, None, None] * plan.label_stride + local, 0)
        by, bx = divmod(block_index, plan.mosaic.chunk_grid[1])
        cy, cx = plan.mosaic.chunk_shape[1:]
        labels_out[by * cy:(by + 1) * cy, bx * cx:(bx + 1) * cx] = plan.mosaic.from_batch(glob.astype(plan.label_dtype))
    rows = {"event_index": event, "object": obj.number, "label": event * plan.label_stride + obj.number,
            "X": values, "rejected": bad}
    if work is not None:
        work.save_chunk(block_index, rows)  # after the label block: a saved chunk is a complete chunk
    return rows


# ----------------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------------
def _resolve_channels(st: store.MosaicStore, config: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    seg_ch = tuple(st.channel_index(c) for c in config["segmentation"]["channels"])
    feat = config["features"]["channels"]
    feat_ch = tuple(range(len(st.channel_names))) if feat is None else tuple(st.channel_index(c) for c in feat)
    return seg_ch, feat_ch


def make_plan(st: store.MosaicStore, config: dict, on_error: str = "fail", device: str = "cpu") -> Plan:
    seg_ch, feat_ch = _resolve_channels(st, config)
    th, tw = st.mosaic.tile
    stride = -(-th // 2) * -(-tw // 2)  # at most one 8-connected object per 2x2 pixels
    top = (st.mosaic.n_events + 1) * stride
    return Plan(st.mosaic, seg_ch, feat_ch, tuple(resolve_families(config["features"]["families"])), config,
                stride, "uint32" if top < 2**32 else "uint64", str(st.path / st.level_paths[0]), on_error, device)


def _dataset_normalization(plan: Plan, st: store.MosaicStore, per_chunk) -> np.ndarray | None:
    cfg = plan.config["normalize"]
    if cfg["method"] == "none" or cfg["scope"] == "event":
        return None
    mins, maxs = zip(*per_chunk(_chunk_minmax, plan))
    lo, hi = np.min(mins, axis=0), np.max(maxs, axis=0)
    if cfg["method"] == "minmax":
        return np.stack([lo, hi], axis=-1)
    spec = norm.histogram_spec(st.image().dtype)
    if spec is not None:
        low, high, bins = spec
        low, high = np.full(len(lo), low), np.full(len(lo), high)
    else:
        low, high, bins = lo, hi, norm.FLOAT_BINS
    hists = per_chunk(_chunk_channel_hist, plan, low, high, bins)
    total = np.sum(hists, axis=0)
    out = np.zeros((len(lo), 2))
    for ch in range(len(lo)):
        span = high[ch] - low[ch]
        centers = low[ch] + np.arange(bins) * (span / (bins - 1) if span > 0 else 0.0)
        out[ch] = [norm.percentile_from_histogram(total[ch], centers, cfg["low"]),
                   norm.percentile_from_histogram(total[ch], centers, cfg["high"])]
    return out


def _dataset_threshold(plan: Plan, per_chunk, lohi) -> float | None:
    thr = plan.config["segmentation"]["threshold"]
    if thr["method"] == "fixed" or thr["scope"] != "dataset":
        return None
    ranges = per_chunk(_chunk_seg_range, plan, lohi)
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if not np.isfinite(lo):
        return float("inf")
    if hi == lo:
        return float(lo)
    hists = per_chunk(_chunk_seg_hist, plan, lohi, lo, hi)
    counts = np.sum(hists, axis=0)
    step = (hi - lo) / seg.NBINS
    edges = np.arange(seg.NBINS + 1) * step + lo
    edges[-1] = hi
    centers = (edges[:-1] + edges[1:]) / 2.0
    if thr["method"] == "otsu":
        return float(seg.otsu_from_histograms(counts[None], centers[None])[0])
    return seg.li_from_histogram(counts, centers)


def process(
    store_path: str | Path,
    config: dict,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    on_error: str = "fail",
    progress: bool = True,
    scheduler: str = "threads",
    cluster: ClusterOptions | None = None,
    chunk_size: int | None = None,
    device: str = "cpu",
):
    """Segment and measure every event (IFC) or FOV of a store; return the AnnData table.

    Parameters
    ----------
    store_path : path
        A store written by ``scipzarr convert``.
    config : dict
        A resolved config (:func:`scipzarr.config.resolve_config`).
    output : path, optional
        ``.h5ad`` or ``.zarr`` to write the table to (atomically). With an
        output, progress is kept per chunk in ``.<output>.scipzarr-work``.
    resume : bool
        Continue an interrupted run with the same config and input: only the
        missing chunks are computed.
    on_error : {"fail", "skip"}
        Events with NaN/inf pixels: an error, or left out and listed in
        ``uns["rejected_events"]`` (with the events rejected at convert).
    scheduler : str
        ``threads``, ``synchronous``, ``processes``, ``local``, ``mpi``, ``slurm``,
        ``pbs`` or a scheduler address (see :mod:`scipzarr.scheduler`).
    cluster : ClusterOptions, optional
        Worker counts and sizes for clusters started here.
    chunk_size : int, optional
        FOV stores: process in chunks of this many pixels (default: the store's).
    device : {"cpu", "gpu", "auto"}
        Where the segmentation kernels run (:mod:`scipzarr.backend`); ``auto``
        takes a GPU when there is one and says so in one line.

    Returns
    -------
    anndata.AnnData
    """
    t0 = time.perf_counter()
    device = backend.resolve_device(device, say=_note if progress else None)
    if store_kind(store_path) == "fov":
        return _process_fovs(store_path, config, output, overwrite, resume, progress, scheduler, cluster, chunk_size,
                             device)
    if chunk_size is not None:
        raise ScipzarrError("--chunk-size applies to FOV stores; IFC stores are processed by their own chunks")
    st = store.open_store(store_path)
    if on_error not in ("fail", "skip"):
        raise ScipzarrError(f"--on-error {on_error}: choose fail or skip")
    plan = make_plan(st, config, on_error, device)
    output, work = _open_work(store_path, config, output, overwrite, resume, progress)
    if device == "gpu":
        plan = dataclasses.replace(plan, seg_batch=gpu_seg_batch(st, plan), feat_batch=gpu_feat_batch(st, plan))
    try:
        with open_runner(scheduler, cluster, quiet=not progress, device=device) as runner:
            return _process(st, plan, config, output, progress=progress, runner=runner, t0=t0, work=work)
    except ScipzarrError:
        if work is not None:  # bad input or config: nothing worth resuming
            work.close()
            store.discard_labels(st, _label_work_name(config, work, None))
        raise


def _open_work(store_path, config: dict, output, overwrite: bool, resume: bool, progress: bool, extra=None):
    """The checked output path and the run's work folder (:class:`scipzarr.resume.Work`; None without an output).

    The work folder's identity (config, input fingerprint, store and output
    paths, and ``extra``) must match for ``resume`` to continue it.
    """
    from .resume import Work, config_hash, fingerprint, work_path
    from .table import check_table_path

    if output is None:
        if resume:
            raise ScipzarrError("--resume needs an output table (-o): progress is kept beside it")
        return None, None
    output = Path(output)
    check_table_path(output)
    # a resumed run may find its own table already written (killed while cleaning up)
    atomic.check_output(output, overwrite or (resume and work_path(output).exists()), [Path(store_path)])
    identity = {"config": config_hash(config), "input": fingerprint([Path(store_path)]),
                "store": str(Path(store_path).resolve()), "output": str(output.resolve()), **(extra or {})}
    return output, Work(work_path(output), identity, resume=resume, say=None if not progress else _note)


def gpu_seg_batch(st: store.MosaicStore, plan: Plan) -> int | None:
    """Events segmented at once on the GPU: as many of a chunk's events as fit half its free memory shared by
    the tasks that may run at once (~48 bytes per pixel of an event plane and segmentation channel); None
    when the whole chunk fits."""
    import os

    n, (y, x) = st.mosaic.per_block, st.mosaic.tile
    per_event = y * x * len(plan.seg_channels)
    budget = backend.gpu_pixel_budget(bytes_per_pixel=48, workers=os.cpu_count() or 1)
    if per_event > budget:
        raise ScipzarrError(f"{st.path}: one event ({per_event:,} px) does not fit the GPU's free memory for "
                            f"{os.cpu_count()} tasks at once ({budget:,} px each); run with --scheduler local "
                            "(one worker per GPU) or --device cpu")
    return None if n * per_event <= budget else budget // per_event


def gpu_feat_batch(st: store.MosaicStore, plan: Plan) -> int | None:
    """Events measured at once by the device feature families: as many as fit the same share of GPU memory as
    :func:`gpu_seg_batch`, at 160 bytes per tile pixel (measured on the host with tracemalloc: 142 bytes per
    pixel for shape + intensity with objects on 80% of the tiles) plus 8 per pixel and channel (the images,
    float64 when normalized); None when the whole chunk fits."""
    import os

    n, (y, x) = st.mosaic.per_block, st.mosaic.tile
    per_event = y * x * (160 + 8 * st.mosaic.n_channels)  # bytes
    budget = backend.gpu_pixel_budget(bytes_per_pixel=1, workers=os.cpu_count() or 1)  # bytes
    return None if n * per_event <= budget else max(budget // per_event, 1)


def _label_work_name(config: dict, work, token: str | None) -> str | None:
    """Label work folder inside the store: fixed per output (resumable), else per run."""
    from .resume import config_hash

    if not config["labels"]["write"]:
        return None
    suffix = token if work is None else config_hash(work.identity["output"])[:10]
    return f".{config['labels']['name']}.scipzarr-work-{suffix}"


def _note(text: str) -> None:
    import sys

    print(text, file=sys.stderr)


def _process(st: store.MosaicStore, plan: Plan, config: dict, output, *, progress: bool, runner, t0: float, work):
    from .table import build_table, write_table

    k = st.mosaic.chunk_tiles
    slots = da.from_array(slot_table(st), chunks=(len(SLOT_FIELDS), k, k), name=False)
    token = uuid.uuid4().hex[:8]
    compute = runner.compute

    def per_chunk(fn, *args):
        res = compute([map_chunks(slots, fn, *args, name=f"scipzarr-{fn.__name__.strip('_')}-{token}")])[0]
        return [r for r in res.ravel() if r is not None]

    def stat(name, fn):
        return fn() if work is None else work.stat(name, fn)

    lohi = stat("normalization", lambda: _dataset_normalization(plan, st, per_chunk))
    threshold = stat("threshold", lambda: _dataset_threshold(plan, per_chunk, lohi))

    prefix = f"scipzarr-process-{token}"
    label_cfg = config["labels"]
    work_name = _label_work_name(config, work, token)
    resumed = work.n_done() if work is not None else 0
    try:
        scratch = store.label_block_array(st, work_name, plan.label_dtype, reuse=resumed > 0) if work_name else None
        results = map_chunks(slots, _chunk_process, plan, lohi, threshold, scratch, work, name=prefix)
        if resumed and progress:
            _note(f"scipzarr: resuming: {resumed} of {st.mosaic.n_blocks} chunks already done")
        (grid,) = run_with_progress(
            [results], events_per_task=st.mosaic.per_block, n_events=st.mosaic.n_events,
            description="process", prefix=prefix, enabled=progress, runner=runner,
        )
        rows = [r for r in grid.ravel() if r is not None]
        if work_name:
            compute(store.label_writes(st, work_name, scratch))
    except BaseException:
        if work_name and work is None:
            store.discard_labels(st, work_name)
        raise
    seconds = time.perf_counter() - t0
    var = feature_columns(list(plan.families), [st.channel_names[c] for c in plan.feat_channels], config["features"])
    adata = build_table(st, plan, list(rows), var, config, seconds=seconds,
                        thresholds={"dataset": threshold, "normalize": lohi})
    if output is not None:
        write_table(adata, Path(output))
    if work_name:
        store.commit_labels(st, label_cfg["name"], work_name,
                            {"scipzarr": {"label_stride": plan.label_stride,
                                          "label_rule": "label = event_index * label_stride + object"}})
    if work is not None:
        work.close()
    store.discard_labels(st, work_name)  # the scratch label blocks, last: a resume before this rebuilds from them
    return adata


def _process_fovs(store_path, config, output, overwrite, resume, progress, scheduler, cluster, chunk_size, device):
    """FOV stores: :func:`scipzarr.fovpipeline.process_fovs` on the chosen scheduler, table written atomically."""
    from .fovpipeline import process_fovs
    from .table import write_table

    output, work = _open_work(store_path, config, output, overwrite, resume, progress, {"chunk_size": chunk_size})
    if work is not None and resume and work.n_done() and progress:
        _note(f"scipzarr: resuming: {work.n_done()} FOVs already done")
    try:
        with open_runner(scheduler, cluster, quiet=not progress, device=device) as runner:
            adata = process_fovs(store_path, config, chunk_size=chunk_size, device=device, work=work,
                                 compute=lambda collections, what="": runner.compute(collections))
    except ScipzarrError:
        if work is not None:  # bad input or config: nothing worth resuming
            work.close()
        raise
    if output is not None:
        write_table(adata, output)
        work.close()
    return adata
