"""Obs-only AnnData tables written into zarr without importing anndata.

The store's per-event and rejected-events tables (``tables/events``, ``tables/rejected``) are AnnData
objects with only ``obs`` and one ``uns`` string. Writing them through anndata cost ``convert`` its import
(0.4-1.3 s with the dask.array, h5py and pydantic it imports) and ~500 zarr calls for a 14-column table
(0.3-0.8 s on this project's 2-core machines): more than decoding 6,660 CIF events. This module writes
the same elements in anndata's on-disk format (the ``encoding-type`` / ``encoding-version`` attributes of
https://anndata.readthedocs.io/en/stable/fileformat-prose.html) with one zarr call per array and group,
for the column types these tables hold; a frame with any other column type is handed to anndata. The
tables are read back by anndata everywhere (``anndata.io.read_elem``); the tests compare both writers'
trees and read-backs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import zarr

_STRING_ARRAYS = (pd.arrays.StringArray, pd.arrays.ArrowStringArray)
_DICTS = ("layers", "obsm", "obsp", "varm", "varp")


def _encoding(kind: str, version: str, **more) -> dict:
    return {"encoding-type": kind, "encoding-version": version, **more}


def _string_array(values) -> np.ndarray:
    return np.asarray(values, dtype=np.dtypes.StringDType())


def _array(group: zarr.Group, name: str, data: np.ndarray, kind: str = "array") -> None:
    group.create_array(name, data=data, attributes=_encoding(kind, "0.2.0"))


def _element(group: zarr.Group, name: str, values) -> None:
    """One column or index, encoded as anndata encodes its ``._values``."""
    if isinstance(values, pd.Categorical):
        sub = group.create_group(name, attributes=_encoding("categorical", "0.2.0", ordered=bool(values.ordered)))
        _element(sub, "codes", values.codes)
        _element(sub, "categories", values.categories.to_numpy())
    elif isinstance(values, _STRING_ARRAYS):
        na = values.dtype.na_value
        sub = group.create_group(name, attributes=_encoding(
            "nullable-string-array", "0.1.0", **{"na-value": "NA" if na is pd.NA else "NaN"}))
        _array(sub, "values", _string_array(values.to_numpy(na_value="")), "string-array")
        _array(sub, "mask", np.asarray(values.isna()))
    elif isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        _array(group, name, values)
    elif isinstance(values, np.ndarray) and values.dtype.kind in "OUT" and all(isinstance(v, str) for v in values.flat):
        _array(group, name, _string_array(values), "string-array")
    else:
        raise TypeError(f"no encoding here for {type(values).__name__}")


def writable(df: pd.DataFrame) -> bool:
    """Whether :func:`write_obs_table` encodes every column of ``df`` itself (else anndata must)."""
    def ok(values) -> bool:
        if isinstance(values, pd.Categorical):
            return ok(values.categories.to_numpy())
        if isinstance(values, _STRING_ARRAYS):
            return values.dtype.na_value is pd.NA or values.dtype.na_value is np.nan
        if isinstance(values, np.ndarray):
            return values.dtype.kind in "biuf" or (
                values.dtype.kind in "OUT" and all(isinstance(v, str) for v in values.flat))
        return False

    names = [df.index.name or "_index", *df.columns]
    return (all(isinstance(c, str) and c and "/" not in c for c in names) and len(set(df.columns)) == df.shape[1]
            and "_index" not in df.columns and df.index.name not in df.columns
            and ok(df.index._values) and all(ok(df[c]._values) for c in df.columns))


def write_obs_table(group: zarr.Group, name: str, obs: pd.DataFrame, uns_type: str) -> None:
    """Write ``AnnData(obs=obs)`` with ``uns["type"] = uns_type`` as ``group[name]`` (anndata's layout).

    ``obs`` must pass :func:`writable`.
    """
    table = group.create_group(name, attributes=_encoding("anndata", "0.1.0"))
    index = obs.index.name or "_index"
    frame = table.create_group("obs", attributes=_encoding("dataframe", "0.2.0", **{
        "column-order": list(obs.columns), "_index": index}))
    _element(frame, index, obs.index._values)
    for column in obs.columns:
        _element(frame, column, obs[column]._values)
    var = table.create_group("var", attributes=_encoding("dataframe", "0.2.0", **{"column-order": [], "_index": "_index"}))
    _element(var, "_index", pd.Index([], dtype="str")._values)  # anndata's empty var index
    for key in _DICTS:
        table.create_group(key, attributes=_encoding("dict", "0.1.0"))
    uns = table.create_group("uns", attributes=_encoding("dict", "0.1.0"))
    uns.create_array("type", data=_string_array(uns_type), attributes=_encoding("string", "0.2.0"))
    table.create_array("raw", data=np.array(False), attributes=_encoding("null", "0.1.0"))
