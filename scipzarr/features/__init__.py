"""Feature families: a registry of batch measurements on objects.

Each family is one module with ``FEATURES`` (name, definition) and one
measurement function; this registry turns them into named columns:
``<family>_<feature>`` for channel-independent families and
``<family>_<feature>_<channel>`` for per-channel ones.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import intensity, shape
from .objects import Objects

__all__ = ["FAMILIES", "Family", "Objects", "feature_columns", "measure"]


@dataclass(frozen=True)
class Family:
    name: str
    features: list[tuple[str, str]]
    per_channel: bool
    measure: Callable
    cellprofiler: dict[str, str]


FAMILIES = {
    "shape": Family("shape", shape.FEATURES, False, shape.measure, shape.CELLPROFILER),
    "intensity": Family("intensity", intensity.FEATURES, True, intensity.measure_channel, intensity.CELLPROFILER),
}


def feature_columns(families: list[str], channel_names: list[str]) -> pd.DataFrame:
    """The var table: one row per feature column, in output order."""
    rows = []
    for fam_name in families:
        fam = FAMILIES[fam_name]
        for channel in (channel_names if fam.per_channel else [None]):
            for feat, definition in fam.features:
                name = f"{fam.name}_{feat}" + (f"_{channel}" if channel is not None else "")
                cp = fam.cellprofiler[feat] + (f"_{channel}" if channel is not None else "")
                rows.append({"name": name, "family": fam.name, "feature": feat,
                             "channel": channel or "", "definition": definition, "cellprofiler_name": cp})
    return pd.DataFrame(rows).set_index("name")


def measure(obj: Objects, images: np.ndarray, families: list[str], channels: list[int]) -> np.ndarray:
    """All selected features of all objects: ``(M, F)`` float64 in ``feature_columns`` order.

    ``images`` is the ``(N, C, Y, X)`` batch; ``channels`` the indices measured
    by per-channel families.
    """
    blocks = []
    for fam_name in families:
        fam = FAMILIES[fam_name]
        if fam.per_channel:
            for ch in channels:
                res = fam.measure(obj, images, ch)
                blocks += [res[f] for f, _ in fam.features]
        else:
            res = fam.measure(obj, images)
            blocks += [res[f] for f, _ in fam.features]
    if not blocks:
        return np.zeros((obj.n, 0))
    return np.stack(blocks, axis=1).astype(np.float64)
