"""The feature table: one AnnData per run, with provenance; written atomically.

obs: one row per object, index ``<event_id>_<object>``; X: float32 features;
var: ``family``, ``feature``, ``channel``, ``definition``; ``uns['scipzarr']``:
versions, the full config, the input store, timings and counts.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from . import atomic
from ._version import __version__
from .config import validate_document
from .errors import ScipzarrError

DEPENDENCIES = ["numpy", "scipy", "dask", "distributed", "zarr", "numcodecs", "ome-zarr", "dask-image",
                "scikit-image", "anndata", "tifffile", "numba", "pandas"]
TABLE_SUFFIXES = (".h5ad", ".zarr")


def versions() -> dict[str, str]:
    out = {"python": __import__("sys").version.split()[0]}
    for name in DEPENDENCIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _jsonable(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def build_table(st, plan, rows: list[dict], var: pd.DataFrame, config: dict, *, seconds: float,
                thresholds: dict) -> ad.AnnData:
    """Assemble chunk results (in event order) into one AnnData."""
    events = st.events
    ev_idx = np.concatenate([r["event_index"] for r in rows]) if rows else np.zeros(0, int)
    obj = np.concatenate([r["object"] for r in rows]) if rows else np.zeros(0, int)
    label = np.concatenate([r["label"] for r in rows]) if rows else np.zeros(0, int)
    X = np.concatenate([r["X"] for r in rows]) if rows else np.zeros((0, len(var)))
    ev = events.iloc[ev_idx]
    obs = pd.DataFrame({
        "event_id": ev["event_id"].to_numpy(),
        "event_index": ev_idx.astype(np.int64),
        "object": obj.astype(np.int64),
        "label": label.astype(np.int64),
        "source": ev["source"].to_numpy(),
        "class_label": pd.Categorical(ev["class_label"].to_numpy()),
    })
    obs.index = pd.Index([f"{e}_{o}" for e, o in zip(obs["event_id"], obs["object"])], name="object_id")
    if not obs.index.is_unique:
        raise ScipzarrError("internal error: object ids are not unique; please report this")
    rejected = st.rejected().reset_index(drop=True)
    late = np.concatenate([r["rejected"] for r in rows]).astype(int) if rows else np.zeros(0, int)
    if len(late):
        rejected = pd.concat([rejected, pd.DataFrame({
            "event_id": events["event_id"].iloc[late].to_numpy(), "source": events["source"].iloc[late].to_numpy(),
            "reason": "NaN or infinite pixel values", "stage": "process"})], ignore_index=True)
    rejected.index = rejected.index.astype(str)
    marked = int((events["rejected"] != "").sum()) if "rejected" in events else 0
    without = int(st.mosaic.n_events - len(np.unique(ev_idx)) - marked - len(late))
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var.copy())
    adata.uns["rejected_events"] = rejected.astype(str)
    stats = {k: _jsonable(v) for k, v in thresholds.items()}
    adata.uns["scipzarr"] = {
        "format": "scipzarr-feature-table",
        "format_version": 1,
        "scipzarr_version": __version__,
        "versions": versions(),
        "config": json.dumps(config),
        "statistics": json.dumps(stats),
        "input_store": str(Path(st.path).resolve()),
        "channels": list(st.channel_names),
        "started": datetime.fromtimestamp(time.time() - seconds, timezone.utc).isoformat(timespec="seconds"),
        "seconds": float(seconds),
        "events": int(st.mosaic.n_events),
        "events_without_objects": without,
        "events_rejected": int(len(rejected)),
        "objects": int(adata.n_obs),
        "features": int(adata.n_vars),
        "label_stride": int(plan.label_stride),
        "labels": config["labels"]["name"] if config["labels"]["write"] else "",
    }
    check_table(adata)
    return adata


def check_table(adata: ad.AnnData, source: str = "table") -> None:
    """Validate a feature table's metadata against ``schemas/table.schema.json``."""
    meta = adata.uns.get("scipzarr")
    if meta is None:
        raise ScipzarrError(f"{source}: not a scipzarr feature table (no uns['scipzarr'])")
    doc = {"uns": {k: _jsonable(v) for k, v in dict(meta).items()},
           "var_columns": list(adata.var.columns), "obs_columns": list(adata.obs.columns)}
    doc["uns"]["versions"] = {k: str(v) for k, v in dict(meta.get("versions", {})).items()}
    validate_document(doc, "table", source)


def check_table_path(path: Path) -> None:
    if path.suffix not in TABLE_SUFFIXES:
        raise ScipzarrError(f"{path}: the table must end in .h5ad or .zarr; choose one of those")


def write_table(adata: ad.AnnData, path: Path) -> None:
    """Write ``.h5ad`` or ``.zarr`` (by suffix) aside, then move it into place."""
    check_table_path(path)
    with atomic.atomic_path(path) as work:
        if path.suffix == ".h5ad":
            adata.write_h5ad(work)
        else:
            adata.write_zarr(work)


def read_table(path: str | Path) -> ad.AnnData:
    path = Path(path)
    check_table_path(path)
    if not path.exists():
        raise ScipzarrError(f"{path}: no such table")
    return ad.read_h5ad(path) if path.suffix == ".h5ad" else ad.read_zarr(path)
