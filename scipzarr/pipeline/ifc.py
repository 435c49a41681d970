"""``process`` on an IFC mosaic store: the dask graph over the store's chunks.

One task per chunk: the chunk is reshaped into an ``(N, C, Y, X)`` batch of
events, normalized, segmented, labelled and measured by the batch kernels,
and its label tile block is written back. Statistics that must not depend
on the chunking (data-set percentiles, data-set thresholds) are reduced from
exact per-chunk histograms in earlier passes.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd

from .. import backend
from ..errors import ScipzarrError
from ..features import Objects, feature_columns, measure, resolve_families
from ..features import masks as mask_features
from ..features.masks import measure_masks
from ..kernels import normalize as norm
from ..kernels import segment as seg
from ..kernels import threshold as thr_k
from ..kernels.batch import event_slices, valid_mask
from ..progress import Bar
from ..store import mosaic as store
from ..work import Stored
from .shards import owns


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
    mask_path: str | None = None  # segmentation.source ideas: the level-0 label mosaic of the instrument's masks
    feat_batch: int | None = None  # events measured at once by the device families (GPU memory); None: all
    method: str = "otsu"  # the threshold method, "auto" resolved
    keep: str = "all"  # "all" or "largest", "auto" resolved
    mask_channels: tuple[int, ...] = ()  # method background: the channels with a mask of their own
    both: tuple[bool, ...] = ()  # per mask channel: departures both ways count (brightfield)
    mask_families: tuple[str, ...] = ()  # per-channel families measured in each channel's own mask


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
    total = np.zeros(thr_k.NBINS, np.int64)
    for events in _sub_batches(plan, len(images)):
        smooth, on_device = _smoothed(plan, images, valid, events)
        xp, n = backend.xp_of(smooth), smooth.shape[0]
        counts, _, _, _ = thr_k.event_histograms(smooth, on_device, thr_k.NBINS, lo=xp.full(n, lo), hi=xp.full(n, hi))
        total += backend.to_host(counts.sum(axis=0))
    return total


def _segment_events(plan: Plan, images: np.ndarray, valid: np.ndarray, threshold):
    """Per-event labels ``(N, Y, X)``, the channel masks attributed to them ``(N, K, Y, X)`` (K = the plan's
    mask channels; ``None`` without) and the pieces of each event's mask before ``keep`` (host) of a
    normalized batch, segmented on the plan's device in sub-batches of ``plan.seg_batch`` events."""
    cfg = plan.config["segmentation"]
    thr_cfg = cfg["threshold"]
    batches = _sub_batches(plan, len(images))
    if plan.method == "background":
        found = [_background_segment(plan, images, valid, events) for events in batches]
        local, masks, bg, noise, pieces = (found[0] if len(found) == 1  # the whole chunk (CPU): no copies
                                           else (np.concatenate(a) for a in zip(*found)))
        return local, (masks, bg, noise), pieces
    local = np.zeros(valid.shape, np.int32)
    parts = np.zeros(len(valid), np.int64)
    for events in batches:
        smooth, on_device = _smoothed(plan, images, valid, events)
        n = smooth.shape[0]
        if plan.method == "fixed":
            thresholds = np.full(n, float(thr_cfg["value"]))
        elif thr_cfg["scope"] == "dataset":
            thresholds = np.full(n, threshold)
        elif plan.method == "otsu":
            thresholds = thr_k.threshold_otsu(smooth, on_device)
        else:
            thresholds = thr_k.threshold_li(smooth, on_device)
        part, _counts, pieces = seg.segment(smooth, on_device, thresholds, fill=cfg["fill_holes"],
                                            min_size=cfg["min_size"], keep=plan.keep, parts=True)
        local[events] = backend.to_host(part)  # written to the store; features.measure copies it back: docs/gpu.md
        parts[events] = backend.to_host(pieces)
    return local, None, parts


def _background_segment(plan: Plan, images: np.ndarray, valid: np.ndarray, events: slice):
    """Labels, attributed channel masks, background, noise and pieces of ``events`` (host): a mask per channel where its smoothed
    image departs from the event's own background by more than ``k`` noise units
    (:func:`kernels.segment.channel_masks`), and the cell mask, the union of the segmentation channels'."""
    cfg = plan.config["segmentation"]
    on_device = backend.to_device(valid[events], plan.device)
    masks, bg, noise = seg.channel_masks(backend.to_device(images[events], plan.device), on_device,
                                         float(cfg["smoothing_sigma"]), float(cfg["threshold"]["k"]),
                                         list(plan.both), fraction=float(cfg["threshold"]["fraction"]),
                                         fill=cfg["fill_holes"], min_size=cfg["min_size"],
                                         channels=list(plan.mask_channels))
    cell = masks[:, [plan.mask_channels.index(c) for c in plan.seg_channels]].any(axis=1)
    part, counts, pieces = seg.segment_mask(cell, on_device, fill=cfg["fill_holes"], min_size=cfg["min_size"],
                                            keep=plan.keep, parts=True)
    return tuple(backend.to_host(a) for a in (part, seg.attribute(masks, part, counts), bg, noise, pieces))


def fills_event(obj: Objects, meta: dict, fraction: float = 0.9) -> np.ndarray:
    """Objects that fill their event (a failed mask): touching all four edges of the event's valid region, or
    covering at least ``fraction`` of it."""
    ev = obj.event
    y0, x0 = meta["valid_y0"][ev], meta["valid_x0"][ev]
    h, w = meta["valid_height"][ev], meta["valid_width"][ev]
    b = np.asarray(obj.boxes)
    edges = (b[:, 0] <= y0) & (b[:, 1] <= x0) & (b[:, 2] >= y0 + h) & (b[:, 3] >= x0 + w)
    return edges | (np.asarray(obj.areas) >= fraction * h * w)


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


def label_blocks(plan: Plan, meta: dict, local: np.ndarray, masks: np.ndarray | None) -> list[np.ndarray]:
    """A chunk's label blocks ``(K*th, K*tw)``, the objects' then each channel mask's, from its events' object
    numbers ``local`` ``(K*K, th, tw)`` and attributed channel masks ``masks`` ``(K*K, C, th, tw)`` (None:
    none): the data-set label ``event index * label_stride + object`` on object pixels, 0 elsewhere (one
    compiled pass, :func:`scipzarr.kernels._tiles.label_tiles_host`)."""
    from ..kernels._tiles import label_tiles_host

    k, (th, tw) = plan.mosaic.chunk_tiles, plan.mosaic.tile
    # channel-major (no copy of :func:`kernels.segment.attribute`'s masks)
    by_channel = np.zeros((0, len(local), th, tw), local.dtype) if masks is None else np.moveaxis(masks, 1, 0)
    out = np.empty((1 + len(by_channel), k * th, k * tw), plan.label_dtype)
    base = (meta["event"].astype(np.int64) * plan.label_stride).astype(plan.label_dtype)
    label_tiles_host(np.ascontiguousarray(local), np.ascontiguousarray(by_channel, dtype=local.dtype), base, k, out)
    return list(out)


def _chunk_process(meta: dict, block_index: int, plan: Plan, lohi, threshold, labels_out, work):
    """Segment and measure one chunk; write its label block; return (and keep) its feature rows."""
    if work is not None and work.done(block_index):
        return work.load_chunk(block_index, stored=("X",))
    block = read_block(plan, block_index)
    bad = _non_finite_events(plan, block, meta)
    images, valid = _prepared(plan, block, meta, lohi)
    channel = None
    if plan.mask_path is None:
        local, channel, parts = _segment_events(plan, images, valid, threshold)
    else:  # the instrument's mask of each event is its one object
        masks = plan.mosaic.to_batch(store.read_chunk(plan.mask_path, plan.mosaic, block_index)[None])[:, 0]
        local = ((masks > 0) & valid).astype(np.int32)
        parts = local.reshape(len(local), -1).max(axis=1).astype(np.int64)
    obj = Objects(local, meta["valid_y0"], meta["valid_x0"], valid)
    values = measure(obj, images, list(plan.families), list(plan.feat_channels), plan.config["features"],
                     device=plan.device, batch=plan.feat_batch)
    if channel is not None:
        values = np.concatenate([values, measure_masks(obj, images, *channel, list(plan.mask_channels),
                                                       list(plan.mask_families), plan.config["features"],
                                                       device=plan.device)], axis=1)
    event = meta["event"][obj.event]
    if labels_out is not None:
        store.write_label_blocks(labels_out, plan.mosaic, block_index,
                                 label_blocks(plan, meta, local, None if channel is None else channel[0]))
    rows = {"event_index": event, "object": obj.number, "label": event * plan.label_stride + obj.number,
            "X": values.astype(np.float32),  # the table's type: half the memory held until the table is built
            "rejected": bad, "mask_parts": parts[obj.event], "fills_event": fills_event(obj, meta)}
    if work is not None:
        work.save_chunk(block_index, rows)  # after the label block: a saved chunk is a complete chunk
        rows["X"] = Stored(work.chunk_file(block_index), "X")  # the features stay on disk until the table is built
    return rows


# ----------------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------------
def _feature_channels(st: store.MosaicStore, config: dict) -> tuple[int, ...]:
    feat = config["features"]["channels"]
    return tuple(range(len(st.channel_names))) if feat is None else tuple(st.channel_index(c) for c in feat)


#: events looked at to tell brightfield channels from the data (the first ones, whatever the chunking)
SAMPLE_EVENTS = 500


def brightfield_channels(st: store.MosaicStore, config: dict) -> tuple[int, ...]:
    """The store's brightfield channels: those a ``.cif`` states, else those whose events depart from their
    background downward as well as upward.

    A brightfield event shows its cell as darker and brighter than a grey background; fluorescence and
    scatter only add light. Over the first :data:`SAMPLE_EVENTS` events (the same whatever the chunking), a
    channel is brightfield when in more than half of them at least ``min_size`` pixels of the smoothed
    channel lie more than ``k`` noise units below the background (:func:`kernels.segment.dark_pixels`).
    """
    stated = st.attrs["scipzarr"].get("acquisition", {}).get("brightfield_channels", [])
    if stated:
        return tuple(st.channel_index(c) for c in stated if c in st.channel_names)
    m = st.mosaic
    n = min(m.n_events, SAMPLE_EVENTS)
    if n == 0:
        return ()
    cfg = config["segmentation"]
    events = st.events
    path = str(st.path / st.level_paths[0])
    sigma, k, min_size = float(cfg["smoothing_sigma"]), float(cfg["threshold"]["k"]), max(int(cfg["min_size"]), 1)

    def dark_events(block: int) -> np.ndarray:  # (C,) events of the block's sample with dark pixels
        ids = [e for e in m.block_events(block) if e < n]
        batch = m.to_batch(store.read_chunk(path, m, block))
        slots = np.asarray(ids) - m.block_events(block).start
        sub = events.iloc[ids]
        valid = valid_mask(batch.shape[-2:], sub["valid_y0"].to_numpy(), sub["valid_x0"].to_numpy(),
                           sub["valid_height"].to_numpy(), sub["valid_width"].to_numpy())
        return (seg.dark_pixels(batch[slots], valid, sigma, k) >= min_size).sum(axis=0)

    blocks = [b for b in range(m.n_blocks) if m.block_events(b).start < n]
    # the sample's blocks on the machine's cores (a compiled kernel without the GIL): a serial step before every
    # run's chunks start, 0.27-0.33 -> 0.18-0.21 s on two cores
    with ThreadPoolExecutor(max(1, min(len(blocks), os.cpu_count() or 1))) as pool:
        down = np.sum(list(pool.map(dark_events, blocks)), axis=0)
    return tuple(int(c) for c in np.flatnonzero(down > n / 2))


def make_plan(st: store.MosaicStore, config: dict, on_error: str = "fail", device: str = "cpu") -> Plan:
    """Check the config against an IFC store and resolve channels, families, label numbering and (on a GPU)
    batch sizes; one clear line for options that only apply to FOV stores."""
    cfg_seg = config["segmentation"]
    fov_only = [("segmentation.plugin.name", cfg_seg["plugin"]["name"] is not None),
                ("segmentation.cells.expand", int(cfg_seg["cells"]["expand"]) > 0),
                ("segmentation.split.method watershed", cfg_seg["split"]["method"] == "watershed")]
    for option, used in fov_only:
        if used:
            raise ScipzarrError(f"{st.path}: {option} applies to FOV stores, not to IFC stores (one cell per "
                                "event); remove it from the config")
    feat_ch = _feature_channels(st, config)
    thr_cfg = cfg_seg["threshold"]
    method = thr_cfg["method"]
    if method == "auto":  # each event against its own background; one data-set threshold: Otsu's
        method = "otsu" if thr_cfg["scope"] == "dataset" else "background"
    direction = thr_cfg.get("direction", "auto")
    # only the background masks use them (Otsu's 'auto' channels are channel 0): no data scan otherwise
    wanted = method == "background" and (direction == "auto" or cfg_seg["channels"] == "auto")
    bright = brightfield_channels(st, config) if wanted else ()
    if cfg_seg["channels"] == "auto":  # the cell mask: the brightfield channel(s), else every channel
        seg_ch = bright if (bright and method == "background") else (
            tuple(range(st.mosaic.n_channels)) if method == "background" else (0,))
    else:
        seg_ch = tuple(st.channel_index(c) for c in cfg_seg["channels"])
    mask_ch, both, mask_fams = (), (), ()
    if method == "background":
        if thr_cfg["scope"] == "dataset":
            raise ScipzarrError(f"{st.path}: segmentation.threshold.method background refers every event to its own "
                                "background; use scope event")
        mask_ch = tuple(sorted(set(seg_ch) | set(feat_ch)))
        both = tuple((c in bright) if direction == "auto" else direction == "both" for c in mask_ch)
        mask_fams = tuple(mask_features.mask_families(resolve_families(config["features"]["families"]),
                                                      config["features"].get("masks")))
    elif config["features"].get("masks") and "channel" in config["features"]["masks"]:
        raise ScipzarrError(f"{st.path}: features.masks channel needs a mask per channel, made by "
                            "segmentation.threshold.method background (or auto); drop channel from features.masks")
    mask_path = None
    if cfg_seg["source"] == "ideas":
        name = f"ideas-{st.channel_names[seg_ch[0]]}"
        if name not in st.label_names():
            raise ScipzarrError(f"{st.path}: segmentation.source ideas needs the instrument's masks ({name}); the "
                                "store has none for that channel: convert a .cif, or use source threshold")
        mask_path = str(st.path / "labels" / name / st.level_paths[0])
    bits = st.attrs["scipzarr"].get("acquisition", {}).get("camera_bits_per_pixel")
    if bits and config["features"].get("texture", {}).get("bit_depth", 0) is None:
        config = copy.deepcopy(config)  # texture on the camera's scale (the store says it: a .cif)
        config["features"]["texture"]["bit_depth"] = int(bits)
    th, tw = st.mosaic.tile
    stride = -(-th // 2) * -(-tw // 2)  # at most one 8-connected object per 2x2 pixels
    top = (st.mosaic.n_events + 1) * stride
    plan = Plan(st.mosaic, seg_ch, feat_ch, tuple(resolve_families(config["features"]["families"])), config,
                stride, "uint32" if top < 2**32 else "uint64", str(st.path / st.level_paths[0]), on_error, device,
                mask_path=mask_path, method=method,
                keep=("largest" if cfg_seg["keep"] == "auto" else cfg_seg["keep"]),
                mask_channels=mask_ch if mask_path is None else (), both=both, mask_families=mask_fams)
    if device == "gpu":
        plan = dataclasses.replace(plan, seg_batch=gpu_seg_batch(st, plan), feat_batch=gpu_feat_batch(st, plan))
    return plan


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
    counts = np.sum(per_chunk(_chunk_seg_hist, plan, lohi, lo, hi), axis=0)
    return thr_k.from_histogram(counts, lo, hi, thr["method"])


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


def label_work_name(config: dict, work, token: str, shard: tuple[int, int] | None = None) -> str | None:
    """The run's scratch label array inside the store: fixed per output (resumable), else per run; shards of
    one job share one (their chunks are disjoint) that ``scipzarr merge`` turns into the label image."""
    if not config["labels"]["write"]:
        return None
    if shard is not None:
        return shard_labels_name(config, shard[1])
    suffix = token if work is None else work.key("output")
    return f".{config['labels']['name']}.scipzarr-work-{suffix}"


def shard_labels_name(config: dict, count: int) -> str:
    from ..work import config_hash

    return f".{config['labels']['name']}.scipzarr-shards-{count}-{config_hash(config)[:10]}"


def scratch_arrays(st: store.MosaicStore, plan: Plan, work_name: str, reuse: bool) -> list:
    """The run's scratch label arrays: the objects', then one per mask channel (``<work_name>-c<index>``)."""
    names = [work_name] + [f"{work_name}-c{c}" for c in plan.mask_channels]
    return [store.label_block_levels(st, name, plan.label_dtype, reuse=reuse) for name in names]


def write_labels(st: store.MosaicStore, plan: Plan, scratches: list, compute) -> None:
    """The label images ``labels/<labels.name>`` and ``labels/<labels.name>-<channel>`` (each channel's own
    mask, with the label of the object its pixels belong to) from the scratch arrays the chunk tasks filled."""
    name = plan.config["labels"]["name"]
    names = [name] + [f"{name}-{st.channel_names[c]}" for c in plan.mask_channels]
    for i, (label_name, scratch) in enumerate(zip(names, scratches)):
        props = {"label_stride": plan.label_stride, "label_rule": "label = event_index * label_stride + object"}
        if i:
            props["channel"] = st.channel_names[plan.mask_channels[i - 1]]
            props["mask"] = "the channel's own mask; each pixel carries the label of the object it belongs to"
        store.write_mosaic_labels(st, label_name, scratch, compute, {"scipzarr": props})


def _shard_chunk(meta, block_index: int, shard, *args):
    return _chunk_process(meta, block_index, *args) if owns(shard, block_index) else None


def run(st: store.MosaicStore, plan: Plan, runner, *, progress: bool, work=None, say=None,
        shard: tuple[int, int] | None = None):
    """Process every chunk (of the shard): data-set statistics (over all chunks, so every shard has the same),
    then one task per chunk (segment, measure, label block), then the label pyramid (not for a shard:
    ``scipzarr merge`` writes it). Returns the chunks' rows (in chunk order), the statistics and the scratch
    label name (to discard once the table is safe; None for a shard, whose scratch the merge needs)."""
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
    work_name = label_work_name(plan.config, work, token, shard)
    resumed = work.n_done() if work is not None else 0
    owned = [b for b in range(st.mosaic.n_blocks) if owns(shard, b)]
    try:
        scratch = None
        if work_name:
            scratch = scratch_arrays(st, plan, work_name, reuse=resumed > 0 or shard is not None)
        results = map_chunks(slots, _shard_chunk, shard, plan, lohi, threshold, scratch, work, name=prefix)
        if resumed and say:
            say(f"scipzarr: resuming: {resumed} of {len(owned)} chunks already done")
        n_events = sum(len(st.mosaic.block_events(b)) for b in owned)
        with Bar(n_events, description="process", enabled=progress, runner=runner) as bar:
            (grid,) = bar.compute([results], prefix, per_task=st.mosaic.per_block)
        rows = [r for r in grid.ravel() if r is not None]
        if shard is not None:
            return rows, {"dataset": threshold, "normalize": lohi}, None
        if work_name:
            write_labels(st, plan, scratch, compute)
    except BaseException:
        if work_name and work is None and shard is None:
            store.discard_labels(st, work_name)
        raise
    return rows, {"dataset": threshold, "normalize": lohi}, work_name


def columns(st: store.MosaicStore, plan: Plan):
    """The var table: the families' columns, then (with channel masks) the channel-mask columns."""
    var = feature_columns(list(plan.families), [st.channel_names[c] for c in plan.feat_channels],
                          plan.config["features"])
    if not plan.mask_channels:
        return var
    own = mask_features.columns(list(plan.mask_families), [st.channel_names[c] for c in plan.mask_channels],
                                plan.config["features"])
    return pd.concat([var, own])
