"""Feature families: a registry of batch measurements on objects.

Each family is one module with ``columns(params)`` (its output columns, see
``Column``) and ``measure(obj, images, channels, params)`` returning one
value per object for every column. A family's scope says what it is measured
on: ``object`` (the mask alone), ``channel`` (each measured channel) or
``pair`` (each ordered pair of measured channels). Column names are
``<family>_<feature>`` for object families, ``<family>_<feature>_<channel>``
for channel families and ``<family>_<feature>_<channel1>_<channel2>`` for
pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import backend
from ..kernels.batch import event_slices
from . import colocalization, granularity, intensity, radial, shape, texture
from .column import Column
from .family import Family
from .objects import Objects

__all__ = ["FAMILIES", "Column", "Family", "Objects", "feature_columns", "measure", "resolve_families"]


#: The registry, in output order: each family module declares its ``FAMILY`` once (:mod:`.family`).
FAMILIES: dict[str, Family] = {m.FAMILY.name: m.FAMILY
                               for m in (shape, intensity, texture, granularity, radial, colocalization)}


def resolve_families(spec: str | list[str]) -> list[str]:
    """``"all"`` or a comma-separated list / list of family names, validated, in registry order."""
    names = [s.strip() for s in spec.split(",") if s.strip()] if isinstance(spec, str) else list(spec)
    if "all" in names:
        return list(FAMILIES)
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown feature family '{unknown[0]}'; choose from: all, {', '.join(FAMILIES)}")
    return [n for n in FAMILIES if n in names]


def _targets(fam: Family, channels: list) -> list[tuple]:
    if fam.scope == "object":
        return [()]
    if fam.scope == "channel":
        return [(c,) for c in channels]
    return [(a, b) for i, a in enumerate(channels) for b in channels[i + 1:]]


def feature_columns(families: list[str], channel_names: list[str], params: dict | None = None) -> pd.DataFrame:
    """The var table: one row per feature column, in output order."""
    params = params or {}
    rows = []
    for fam_name in families:
        fam = FAMILIES[fam_name]
        cols = fam.columns(params.get(fam_name, {}))
        for target in _targets(fam, channel_names):
            for col in cols:
                name = "_".join([fam.name, col.feature, *target])
                fill = dict(zip(("ch", "ch1", "ch2"), (target[0], *target) if target else ("", "", "")))
                rows.append({"name": name, "family": fam.name, "feature": col.feature,
                             "channel": target[0] if target else "", "channel2": target[1] if len(target) > 1 else "",
                             "parameters": col.parameters, "definition": col.definition,
                             "cellprofiler_name": col.cellprofiler.format(**fill), "mask": "object"})
    return pd.DataFrame(rows).set_index("name")


def measure(obj: Objects, images: np.ndarray, families: list[str], channels: list[int],
            params: dict | None = None, device: str = "cpu", batch: int | None = None) -> np.ndarray:
    """All selected features of all objects: ``(M, F)`` float64 (host) in ``feature_columns`` order.

    ``obj`` and ``images`` (the ``(N, C, Y, X)`` batch) are on the host;
    ``channels`` the indices measured by per-channel and pair families;
    ``params`` maps a family to its settings. With ``device="gpu"`` the
    ``device`` families run on copies of both on the GPU, ``batch`` events at
    a time (what fits its memory; None: all), the others on the host. Every
    family measures each object on its own, so the split never changes a value.
    """
    params = params or {}
    runs = [(FAMILIES[name], params.get(name, {})) for name in families]
    gpu = device != "cpu" and obj.local.shape[0] > 0
    blocks = {fam.name: [_block(fam, obj, images, target, p) for target in _targets(fam, channels)]
              for fam, p in runs if not (gpu and fam.device)}
    if gpu:
        blocks |= _measure_on_device([(fam, p) for fam, p in runs if fam.device], obj, images, channels, device, batch)
    out = [b for fam, _ in runs for b in blocks[fam.name]]
    return np.concatenate(out, axis=1) if out else np.zeros((obj.n, 0))


def _measure_on_device(runs: list, obj: Objects, images: np.ndarray, channels: list[int], device: str,
                       batch: int | None) -> dict[str, list[np.ndarray]]:
    """The blocks of the device families ``runs`` (host results), ``batch`` events at a time on ``device``."""
    n = obj.local.shape[0]
    parts: dict[str, list[list[np.ndarray]]] = {fam.name: [] for fam, _ in runs}
    for sl in event_slices(n, batch):
        sub = obj if (sl.start, sl.stop) == (0, n) else obj.events(sl)
        d_obj, d_images = sub.to_device(device), backend.to_device(images[sl], device)  # one copy per batch
        for fam, p in runs:
            parts[fam.name].append([_block(fam, d_obj, d_images, target, p) for target in _targets(fam, channels)])
    # per target, the rows of every batch in event order: the whole batch's rows
    return {name: [np.concatenate(rows) for rows in zip(*per_batch)] for name, per_batch in parts.items()}


def _block(fam: Family, obj: Objects, images, target: tuple, params: dict) -> np.ndarray:
    """``(M, columns)`` float64 on the host: one family on one target; one copy back from a device."""
    xp = obj.xp
    res = fam.measure(obj, images, target, params)
    return backend.to_host(xp.stack([xp.asarray(res[f]).astype(xp.float64) for f in fam.feature_names(params)],
                                    axis=1))
