"""The feature table: one AnnData per run, for both store kinds, with provenance; written atomically.

X: float32 features; var: ``family``, ``feature``, ``channel``,
``definition`` (FOV tables also ``objects``: nuclei or cells); obs: one row per
object, index ``<event_id>_<object>`` (IFC) or ``<fov>_<label>`` (FOV);
``uns['scipzarr']``: ``kind``, versions, the full config, the input store,
timings and counts, checked against ``schemas/table.schema.json``.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from . import atomic
from ._version import __version__
from .schema import validate_document
from .errors import ScipzarrError
from .work import Stored

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


#: obs ``mask_qc``: ``ok``, or ``fills_event`` for an object that touches every edge of its event's valid region
#: or covers at least 90 % of it (the mask took the background for the cell)
MASK_QC = ["ok", "fills_event"]


def _rows(rows: list[dict], key: str, dtype) -> np.ndarray:
    return np.concatenate([np.asarray(r[key], dtype) for r in rows]) if rows else np.zeros(0, dtype)


def _features(rows: list[dict], n_vars: int):
    """The table's float32 ``X`` from the row blocks (each popped from its block). Blocks left in the run's work
    folder (:class:`~scipzarr.work.Stored`, every run with an output table) become one dask array that reads
    each chunk's block when it is written, so the table is written without ever being held whole (200,000
    events x 352 default columns are 282 MB in float32); blocks in memory are copied into one matrix."""
    blocks = [(r.pop("X"), len(r["event_index"])) for r in rows]
    if blocks and all(isinstance(b, Stored) for b, _ in blocks):
        import dask
        import dask.array as da

        parts = [da.from_delayed(dask.delayed(b.load, pure=True)(), (n, n_vars), np.float32)
                 for b, n in blocks if n]
        return da.concatenate(parts) if parts else np.zeros((0, n_vars), np.float32)
    X = np.empty((sum(n for _, n in blocks), n_vars), dtype=np.float32)
    at = 0
    for block, n in blocks:
        X[at:at + n] = block.load() if isinstance(block, Stored) else block
        at += n
    return X


def build_table(st, plan, rows: list[dict], var: pd.DataFrame, config: dict, *, seconds: float,
                thresholds: dict) -> ad.AnnData:
    """Assemble chunk results (in event order) into one AnnData; ``X`` as :func:`_features` gives it (a dask
    array for a run with an output table: :func:`write_table` writes it block by block)."""
    events = st.events
    ev_idx, obj, label = (_rows(rows, key, np.int64) for key in ("event_index", "object", "label"))
    X = _features(rows, len(var))
    ev = events.iloc[ev_idx]
    obs = pd.DataFrame({
        "event_id": ev["event_id"].to_numpy(),
        "event_index": ev_idx.astype(np.int64),
        "object": obj.astype(np.int64),
        "label": label.astype(np.int64),
        "source": ev["source"].to_numpy(),
        "class_label": pd.Categorical(ev["class_label"].to_numpy()),
        "mask_qc": pd.Categorical(np.where(_rows(rows, "fills_event", bool), "fills_event", "ok"),
                                  categories=MASK_QC),
        "mask_parts": _rows(rows, "mask_parts", np.int64),
    })
    obs.index = pd.Index([f"{e}_{o}" for e, o in zip(obs["event_id"], obs["object"])], name="object_id")
    if not obs.index.is_unique:
        raise ScipzarrError("internal error: object ids are not unique; please report this")
    rejected = st.rejected().reset_index(drop=True)
    late = _rows(rows, "rejected", np.int64)
    if len(late):
        rejected = pd.concat([rejected, pd.DataFrame({
            "event_id": events["event_id"].iloc[late].to_numpy(), "source": events["source"].iloc[late].to_numpy(),
            "reason": "NaN or infinite pixel values", "stage": "process"})], ignore_index=True)
    rejected.index = rejected.index.astype(str)
    marked = int((events["rejected"] != "").sum()) if "rejected" in events else 0
    without = int(st.mosaic.n_events - len(np.unique(ev_idx)) - marked - len(late))
    adata = ad.AnnData(X=X, obs=obs, var=var.copy())
    adata.uns["rejected_events"] = rejected.astype(str)
    stats = {k: _jsonable(v) for k, v in thresholds.items()}
    adata.uns["scipzarr"] = _provenance(st, config, seconds, "ifc") | {
        "statistics": json.dumps(stats),
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


def _provenance(st, config: dict, seconds: float, kind: str) -> dict:
    return {
        "format": "scipzarr-feature-table",
        "format_version": 1,
        "kind": kind,
        "scipzarr_version": __version__,
        "versions": versions(),
        "config": json.dumps(config),
        "input_store": str(Path(st.path).resolve()),
        "channels": list(st.channel_names),
        "started": datetime.fromtimestamp(time.time() - seconds, timezone.utc).isoformat(timespec="seconds"),
        "seconds": float(seconds),
    }


def build_fov_table(st, obs: pd.DataFrame, X: np.ndarray, var: pd.DataFrame, meta: dict, config: dict, *,
                    seconds: float) -> ad.AnnData:
    """Assemble the FOV pipeline's objects (in FOV and label order) into one AnnData."""
    adata = ad.AnnData(X=X.astype(np.float32), obs=obs, var=var)
    adata.obsm["spatial"] = obs[["centroid_x", "centroid_y"]].to_numpy(np.float64)
    adata.uns["scipzarr"] = _provenance(st, config, seconds, "fov") | {
        "fovs": int(meta["fovs"]), "objects": int(adata.n_obs), "features": int(adata.n_vars),
        "thresholds": [float(t) for t in meta["thresholds"]], "chunk_size": int(meta["chunk_size"]),
        "objects_per_fov": dict(meta["objects_per_fov"]),
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


@contextmanager
def _without_distributed():
    """Within: ``import distributed`` fails, unless it is imported already.

    anndata writes a dask ``X`` with ``dask.array.store``, which imports ``distributed`` (0.15-0.4 s, its
    tornado and more) only to ask whether a distributed client is running; none can be in a process that has
    not imported it. dask remembers the failed import; that memory is reset on the way out."""
    if "distributed" in sys.modules:
        yield
        return
    import dask.base

    sys.modules["distributed"] = None  # an ImportError for every import of it or its submodules
    try:
        yield
    finally:
        if sys.modules.get("distributed", 0) is None:
            del sys.modules["distributed"]
        if getattr(dask.base, "_DISTRIBUTED_AVAILABLE", None) is False:
            dask.base._DISTRIBUTED_AVAILABLE = None  # ask again next time (a later run may start a cluster)


def write_table(adata: ad.AnnData, path: Path) -> None:
    """Write ``.h5ad`` or ``.zarr`` (by suffix) aside, then move it into place (a dask ``X`` is written block by
    block, by anndata)."""
    check_table_path(path)
    with atomic.atomic_path(path) as work, _without_distributed():
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


def validate_table_file(path: str | Path) -> tuple[str, list[str]]:
    """The kind of a table written by ``process`` and its problems against the table schema (empty: valid)."""
    path = Path(path)
    try:
        adata = read_table(path)
    except ScipzarrError as exc:
        return "?", [str(exc).removeprefix(f"{path}: ")]
    except Exception as exc:  # noqa: BLE001 - h5py/zarr raise many types for damaged files
        return "?", [f"not a readable AnnData table ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"]
    meta = adata.uns.get("scipzarr")
    kind = str(meta.get("kind", "ifc")) if meta is not None else "?"
    problems = []
    try:
        check_table(adata, source=str(path))
    except ScipzarrError as exc:
        problems.append(str(exc).removeprefix(f"{path}: "))
    if meta is not None and "objects" in meta and int(meta["objects"]) != adata.n_obs:
        problems.append(f"uns['scipzarr'] says {meta['objects']} objects but the table has {adata.n_obs} rows")
    if meta is not None and "features" in meta and int(meta["features"]) != adata.n_vars:
        problems.append(f"uns['scipzarr'] says {meta['features']} features but the table has {adata.n_vars} columns")
    return kind, problems
