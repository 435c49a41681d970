"""``scipzarr merge``: the partial tables of ``process --shard I/N`` jobs joined into the table of one run.

Shards split the chunks (IFC) or FOVs of one store (every N-th from I), so
the rows of all parts, in chunk (event) or FOV order, are the rows of a
single run; data-set statistics were computed by every shard over the whole
store. For IFC stores the shards wrote their label blocks into one shared
scratch array; the merge writes the label image from it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .. import atomic
from ..errors import ScipzarrError
from ..store import mosaic as mosaic_store
from ..store import open_fov_store, open_store
from ..table import build_fov_table, build_table, check_table_path, read_table, write_table
from . import ifc
from .shards import owns


def _parts(paths: list[Path]):
    tables = []
    for p in paths:
        t = read_table(p)
        meta = t.uns.get("scipzarr", {})
        if "shard" not in meta:
            raise ScipzarrError(f"{p}: not a partial table (written without --shard); merge the parts of one "
                                "'process --shard I/N' job")
        tables.append((p, t, dict(meta)))
    first = tables[0][2]
    n = int(first["shard"]["count"])
    for p, _, meta in tables[1:]:
        for key, what in (("input_store", "store"), ("config", "config"), ("kind", "store kind")):
            if meta.get(key) != first.get(key):
                raise ScipzarrError(f"{p}: its {what} differs from {paths[0]}'s; merge the parts of one job only")
        if int(meta["shard"]["count"]) != n:
            raise ScipzarrError(f"{p}: a part of {meta['shard']['count']} shards, {paths[0]} of {n}; merge the parts "
                                "of one job only")
    seen: dict[int, Path] = {}
    for p, _, meta in tables:
        i = int(meta["shard"]["index"])
        if i in seen:
            raise ScipzarrError(f"{p}: shard {i}/{n} is also {seen[i]}; give each part once")
        seen[i] = p
    missing = sorted(set(range(n)) - set(seen))
    if missing:
        raise ScipzarrError(f"missing shards {', '.join(f'{i}/{n}' for i in missing)} of {n}; run them "
                            "(process --shard I/N) and merge all parts")
    return sorted(tables, key=lambda t: int(t[2]["shard"]["index"])), n


def merge(parts: list[str | Path], output: str | Path, *, overwrite: bool = False, store: str | Path | None = None):
    """Join partial tables into one and write it (and, for IFC stores, the label image); returns the AnnData."""
    t0 = time.perf_counter()
    paths = [Path(p) for p in parts]
    if not paths:
        raise ScipzarrError("merge: give the partial tables, e.g. part-*.h5ad")
    output = Path(output)
    check_table_path(output)
    atomic.check_output(output, overwrite)
    tables, n = _parts(paths)
    first = tables[0][2]
    store_path = Path(store) if store else Path(first["input_store"])
    config = json.loads(first["config"])
    var = tables[0][1].var
    X = np.concatenate([np.asarray(t.X) for _, t, _ in tables]) if tables else np.zeros((0, len(var)))
    obs = pd.concat([t.obs for _, t, _ in tables])
    kind = first.get("kind", "ifc")
    if kind == "fov":
        st = open_fov_store(store_path)
        order = np.lexsort((obs["label"].to_numpy(), obs["fov"].cat.codes.to_numpy()))
        obs, X = obs.iloc[order], X[order]
        thresholds = [float("nan")] * len(st.fovs)
        for _, _, meta in tables:
            for i, v in enumerate(meta["thresholds"]):
                if owns((int(meta["shard"]["index"]), n), i):
                    thresholds[i] = float(v)
        meta = {"fovs": len(st.fovs), "thresholds": thresholds, "chunk_size": int(first["chunk_size"]),
                "objects_per_fov": {k: int(c) for k, c in obs["fov"].value_counts(sort=False).items()}}
        adata = build_fov_table(st, obs, X, var, meta, config, seconds=time.perf_counter() - t0)
    else:
        st = open_store(store_path)
        plan = ifc.make_plan(st, config)
        order = np.lexsort((obs["object"].to_numpy(), obs["event_index"].to_numpy()))
        obs, X = obs.iloc[order], X[order]
        late = []
        for _, t, _ in tables:
            rej = t.uns.get("rejected_events")
            if rej is not None and len(rej):
                ids = rej.loc[rej["stage"] == "process", "event_id"].tolist()
                late += [int(st.events.index.get_loc(str(e))) for e in ids]
        rows = [{"event_index": obs["event_index"].to_numpy(), "object": obs["object"].to_numpy(),
                 "label": obs["label"].to_numpy(), "X": X, "rejected": np.array(sorted(late), np.int64),
                 "mask_parts": obs["mask_parts"].to_numpy(), "fills_event": (obs["mask_qc"] == "fills_event").to_numpy()}]
        stats = json.loads(first.get("statistics", "{}"))
        stats = {k: (np.asarray(v) if isinstance(v, list) else (float(v) if isinstance(v, str) else v))
                 for k, v in stats.items()}
        adata = build_table(st, plan, rows, var, config, seconds=time.perf_counter() - t0, thresholds=stats)
        if config["labels"]["write"]:
            name = ifc.shard_labels_name(config, n)
            scratch = ifc.scratch_arrays(st, plan, name, reuse=True)
            from ..scheduler import open_runner

            with open_runner("threads", quiet=True) as runner:
                ifc.write_labels(st, plan, scratch, runner.compute)
    adata.uns["scipzarr"]["merged_from"] = [str(p) for p in paths]
    write_table(adata, output)
    if kind == "ifc" and config["labels"]["write"]:
        mosaic_store.discard_labels(st, ifc.shard_labels_name(config, n))
    return adata
