"""``scipzarr process``: builds and runs the dask graph over the store's chunks.

One task per chunk: the chunk is reshaped into an ``(N, C, Y, X)`` batch of
events, normalized, segmented, labelled and measured by the batch kernels,
and its label tile block is written back. Statistics that must not depend
on the chunking (data-set percentiles, data-set thresholds) are reduced from
exact per-chunk histograms in earlier passes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import dask
import numpy as np
import pandas as pd

from . import atomic, store
from .errors import ScipzarrError
from .features import Objects, feature_columns, measure
from .kernels import normalize as norm
from .kernels import segment as seg
from .kernels.xp import valid_mask
from .progress import check_scheduler, run_with_progress


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


def _block_meta(st: store.MosaicStore, block: int) -> dict[str, np.ndarray]:
    """Per-slot event index and valid region of a block (empty slots: no pixels)."""
    k2 = st.mosaic.per_block
    rng = st.mosaic.block_events(block)
    ev = st.events.iloc[rng.start:rng.stop]
    meta = {"event": np.full(k2, -1, dtype=np.int64)}
    meta["event"][: len(rng)] = np.arange(rng.start, rng.stop)
    for col in ("valid_y0", "valid_x0", "valid_height", "valid_width"):
        arr = np.zeros(k2, dtype=np.int64)
        arr[: len(rng)] = ev[col].to_numpy()
        meta[col] = arr
    return meta


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


def _seg_image(plan: Plan, block: np.ndarray, meta: dict, lohi) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    batch, valid = _batch(plan, block, meta)
    images = _normalized(plan, batch, valid, lohi)
    smooth = seg.smooth(seg.combine_channels(images, list(plan.seg_channels)), valid,
                        plan.config["segmentation"]["smoothing_sigma"])
    return images, smooth, valid


# ----------------------------------------------------------------------------
# chunk tasks
# ----------------------------------------------------------------------------
def _chunk_minmax(plan, block, meta):
    batch, valid = _batch(plan, block, meta)
    mm = norm.channel_minmax(batch, valid)
    return np.nanmin(mm[..., 0], axis=0, initial=np.inf), np.nanmax(mm[..., 1], axis=0, initial=-np.inf)


def _chunk_channel_hist(plan, block, meta, low, high, bins):
    batch, valid = _batch(plan, block, meta)
    return norm.channel_histograms(batch, valid, low, high, bins)


def _chunk_seg_range(plan, block, meta, lohi):
    _, smooth, valid = _seg_image(plan, block, meta, lohi)
    if not valid.any():
        return np.inf, -np.inf
    return float(smooth[valid].min()), float(smooth[valid].max())


def _chunk_seg_hist(plan, block, meta, lohi, lo, hi):
    _, smooth, valid = _seg_image(plan, block, meta, lohi)
    n = smooth.shape[0]
    counts, _, _, _ = seg.event_histograms(smooth, valid, seg.NBINS, lo=np.full(n, lo), hi=np.full(n, hi))
    return counts.sum(axis=0)


def _chunk_process(plan: Plan, block: np.ndarray, meta: dict, lohi, threshold, block_index: int, labels_out):
    """Segment and measure one chunk; write its label block; return its feature rows."""
    cfg = plan.config["segmentation"]
    images, smooth, valid = _seg_image(plan, block, meta, lohi)
    thr_cfg = cfg["threshold"]
    n = smooth.shape[0]
    if thr_cfg["method"] == "fixed":
        thresholds = np.full(n, float(thr_cfg["value"]))
    elif thr_cfg["scope"] == "dataset":
        thresholds = np.full(n, threshold)
    elif thr_cfg["method"] == "otsu":
        thresholds = seg.threshold_otsu(smooth, valid)
    else:
        thresholds = seg.threshold_li(smooth, valid)
    local, counts = seg.segment(smooth, valid, thresholds, fill=cfg["fill_holes"],
                                min_size=cfg["min_size"], keep=cfg["keep"])
    obj = Objects(local, meta["valid_y0"], meta["valid_x0"])
    values = measure(obj, images, list(plan.families), list(plan.feat_channels))
    event = meta["event"][obj.event]
    if labels_out is not None:
        glob = np.where(local > 0, meta["event"][:, None, None] * plan.label_stride + local, 0)
        by, bx = divmod(block_index, plan.mosaic.chunk_grid[1])
        cy, cx = plan.mosaic.chunk_shape[1:]
        labels_out[by * cy:(by + 1) * cy, bx * cx:(bx + 1) * cx] = plan.mosaic.from_batch(glob.astype(plan.label_dtype))
    return {"event_index": event, "object": obj.number, "label": event * plan.label_stride + obj.number,
            "X": values}


# ----------------------------------------------------------------------------
# orchestration
# ----------------------------------------------------------------------------
def _resolve_channels(st: store.MosaicStore, config: dict) -> tuple[tuple[int, ...], tuple[int, ...]]:
    seg_ch = tuple(st.channel_index(c) for c in config["segmentation"]["channels"])
    feat = config["features"]["channels"]
    feat_ch = tuple(range(len(st.channel_names))) if feat is None else tuple(st.channel_index(c) for c in feat)
    return seg_ch, feat_ch


def make_plan(st: store.MosaicStore, config: dict) -> Plan:
    seg_ch, feat_ch = _resolve_channels(st, config)
    th, tw = st.mosaic.tile
    stride = -(-th // 2) * -(-tw // 2)  # at most one 8-connected object per 2x2 pixels
    top = (st.mosaic.n_events + 1) * stride
    return Plan(st.mosaic, seg_ch, feat_ch, tuple(config["features"]["families"]), config,
                stride, "uint32" if top < 2**32 else "uint64")


def _dataset_normalization(plan: Plan, st: store.MosaicStore, blocks, metas, compute) -> np.ndarray | None:
    cfg = plan.config["normalize"]
    if cfg["method"] == "none" or cfg["scope"] == "event":
        return None
    mins, maxs = zip(*compute([dask.delayed(_chunk_minmax)(plan, b, m) for b, m in zip(blocks, metas)]))
    lo, hi = np.min(mins, axis=0), np.max(maxs, axis=0)
    if cfg["method"] == "minmax":
        return np.stack([lo, hi], axis=-1)
    spec = norm.histogram_spec(st.image().dtype)
    if spec is not None:
        low, high, bins = spec
        low, high = np.full(len(lo), low), np.full(len(lo), high)
    else:
        low, high, bins = lo, hi, norm.FLOAT_BINS
    hists = compute([dask.delayed(_chunk_channel_hist)(plan, b, m, low, high, bins) for b, m in zip(blocks, metas)])
    total = np.sum(hists, axis=0)
    out = np.zeros((len(lo), 2))
    for ch in range(len(lo)):
        span = high[ch] - low[ch]
        centers = low[ch] + np.arange(bins) * (span / (bins - 1) if span > 0 else 0.0)
        out[ch] = [norm.percentile_from_histogram(total[ch], centers, cfg["low"]),
                   norm.percentile_from_histogram(total[ch], centers, cfg["high"])]
    return out


def _dataset_threshold(plan: Plan, blocks, metas, lohi, compute) -> float | None:
    thr = plan.config["segmentation"]["threshold"]
    if thr["method"] == "fixed" or thr["scope"] != "dataset":
        return None
    ranges = compute([dask.delayed(_chunk_seg_range)(plan, b, m, lohi) for b, m in zip(blocks, metas)])
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if not np.isfinite(lo):
        return float("inf")
    if hi == lo:
        return float(lo)
    hists = compute([dask.delayed(_chunk_seg_hist)(plan, b, m, lohi, lo, hi) for b, m in zip(blocks, metas)])
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
    progress: bool = True,
    scheduler: str = "threads",
):
    """Segment and measure every event of a store; return the AnnData table.

    Parameters
    ----------
    store_path : path
        A store written by ``scipzarr convert``.
    config : dict
        A resolved config (:func:`scipzarr.config.resolve_config`).
    output : path, optional
        ``.h5ad`` or ``.zarr`` to write the table to (atomically).
    scheduler : {"threads", "synchronous", "processes"}
        Dask scheduler for the chunk tasks.

    Returns
    -------
    anndata.AnnData
    """
    from .table import build_table, check_table_path, write_table

    check_scheduler(scheduler)
    t0 = time.perf_counter()
    st = store.open_store(store_path)
    if output is not None:
        check_table_path(Path(output))
        atomic.check_output(Path(output), overwrite, [Path(store_path)])
    plan = make_plan(st, config)
    image = st.image(0)
    blocks = list(image.to_delayed().ravel())
    metas = [_block_meta(st, b) for b in range(st.mosaic.n_blocks)]
    blocks = blocks[: st.mosaic.n_blocks]  # chunk-grid order is row-major = block order; the rest is empty

    def compute(tasks):
        return dask.compute(*tasks, scheduler=scheduler)

    lohi = _dataset_normalization(plan, st, blocks, metas, compute)
    threshold = _dataset_threshold(plan, blocks, metas, lohi, compute)

    token = uuid.uuid4().hex[:8]
    prefix = f"scipzarr-process-{token}"
    label_cfg = config["labels"]
    work_name = f".{label_cfg['name']}.scipzarr-work-{token}" if label_cfg["write"] else None
    try:
        scratch = store.label_block_array(st, work_name, plan.label_dtype) if work_name else None
        tasks = [dask.delayed(_chunk_process)(plan, b, m, lohi, threshold, i, scratch, dask_key_name=f"{prefix}-{i}")
                 for i, (b, m) in enumerate(zip(blocks, metas))]
        rows = run_with_progress(
            tasks, total=len(tasks), events_per_task=st.mosaic.per_block, n_events=st.mosaic.n_events,
            description="process", prefix=prefix, enabled=progress, scheduler=scheduler,
        )
        if work_name:
            compute(store.label_writes(st, work_name, scratch))
    except BaseException:
        if work_name:
            store.discard_labels(st, work_name)
        raise
    seconds = time.perf_counter() - t0
    var = feature_columns(list(plan.families), [st.channel_names[c] for c in plan.feat_channels])
    adata = build_table(st, plan, list(rows), var, config, seconds=seconds,
                        thresholds={"dataset": threshold, "normalize": lohi})
    if work_name:
        store.commit_labels(st, label_cfg["name"], work_name,
                            {"scipzarr": {"label_stride": plan.label_stride,
                                          "label_rule": "label = event_index * label_stride + object"}})
    if output is not None:
        write_table(adata, Path(output))
    return adata
