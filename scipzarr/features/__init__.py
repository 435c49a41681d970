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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import backend
from . import colocalization, granularity, intensity, radial, shape, texture
from .column import Column
from .objects import Objects

__all__ = ["FAMILIES", "Column", "Family", "Objects", "feature_columns", "measure", "resolve_families"]


@dataclass(frozen=True)
class Family:
    name: str
    scope: str  # "object", "channel" or "pair"
    columns: Callable[[dict], list[Column]]
    measure: Callable[..., dict[str, np.ndarray]]
    summary: str
    device: bool = False  # written for numpy and cupy: runs on the GPU with device="gpu"


FAMILIES = {
    "shape": Family("shape", "object", shape.columns, shape.measure,
                    "size and shape of the mask (CellProfiler MeasureObjectSizeShape)", device=True),
    "intensity": Family("intensity", "channel", intensity.columns, intensity.measure,
                        "intensity statistics, edge intensities and locations (MeasureObjectIntensity)",
                        device=True),
    "texture": Family("texture", "channel", texture.columns, texture.measure_family,
                      "Haralick co-occurrence features (MeasureTexture)"),
    "granularity": Family("granularity", "channel", granularity.columns, granularity.measure,
                          "granularity spectrum (MeasureGranularity)"),
    "radial": Family("radial", "channel", radial.columns, radial.measure,
                     "radial intensity distribution (MeasureObjectIntensityDistribution)"),
    "colocalization": Family("colocalization", "pair", colocalization.columns, colocalization.measure,
                             "colocalization of channel pairs (MeasureColocalization)"),
}


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
                             "cellprofiler_name": col.cellprofiler.format(**fill)})
    return pd.DataFrame(rows).set_index("name")


def measure(obj: Objects, images: np.ndarray, families: list[str], channels: list[int],
            params: dict | None = None, device: str = "cpu") -> np.ndarray:
    """All selected features of all objects: ``(M, F)`` float64 (host) in ``feature_columns`` order.

    ``obj`` and ``images`` (the ``(N, C, Y, X)`` batch) are on the host;
    ``channels`` the indices measured by per-channel and pair families;
    ``params`` maps a family to its settings. With ``device="gpu"`` the
    ``device`` families run on copies of both on the GPU (made once).
    """
    params = params or {}
    blocks = []
    on_device = None
    for fam_name in families:
        fam = FAMILIES[fam_name]
        p = params.get(fam_name, {})
        cols = fam.columns(p)
        where = (obj, images)
        if device != "cpu" and fam.device:
            if on_device is None:
                on_device = (obj.to_device(device), backend.to_device(images, device))
            where = on_device
        xp = where[0].xp
        for target in _targets(fam, channels):
            res = fam.measure(*where, target, p)
            block = xp.stack([xp.asarray(res[c.feature]).astype(xp.float64) for c in cols], axis=1)
            blocks.append(backend.to_host(block))  # one copy per family and channel
    if not blocks:
        return np.zeros((obj.n, 0))
    return np.concatenate(blocks, axis=1)
