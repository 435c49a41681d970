"""``scipzarr export``: the feature table as CSV or Parquet, for users outside Python.

Columns use CellProfiler's naming (``AreaShape_Area``, ``Intensity_MeanIntensity_DNA``;
the mapping lives with each feature family) or scipzarr's own names.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import atomic
from .errors import ScipzarrError

ID_COLUMNS = {"event_id": "EventId", "event_index": "EventIndex", "object": "ObjectNumber", "label": "Label",
              "class_label": "Metadata_Class", "source": "Metadata_Source"}


def to_frame(adata, names: str = "cellprofiler") -> pd.DataFrame:
    """Ids and features as one DataFrame (one row per object, table order)."""
    ids = adata.obs[[c for c in ID_COLUMNS if c in adata.obs]].copy()
    features = adata.to_df()
    if names == "cellprofiler":
        ids = ids.rename(columns=ID_COLUMNS)
        if "cellprofiler_name" in adata.var:
            features = features.rename(columns=dict(zip(adata.var_names, adata.var["cellprofiler_name"].astype(str))))
    elif names != "scipzarr":
        raise ScipzarrError(f"--names {names}: choose cellprofiler or scipzarr")
    out = pd.concat([ids, features], axis=1)
    out.insert(0, "ObjectId" if names == "cellprofiler" else "object_id", adata.obs_names.astype(str))
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(str)
    return out.reset_index(drop=True)


def export(table: str | Path, output: str | Path, fmt: str | None = None, names: str = "cellprofiler",
           overwrite: bool = False) -> Path:
    from .table import read_table

    output = Path(output)
    fmt = fmt or output.suffix.lstrip(".").lower()
    if fmt not in ("csv", "parquet"):
        raise ScipzarrError(f"{output}: choose --format csv or parquet (or an output ending in .csv/.parquet)")
    atomic.check_output(output, overwrite, [Path(table)])
    frame = to_frame(read_table(table), names)
    with atomic.atomic_path(output) as work:
        if fmt == "csv":
            frame.to_csv(work, index=False)
        else:
            frame.to_parquet(work, index=False)
    return output
