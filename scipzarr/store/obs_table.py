"""Obs-only AnnData tables written into zarr and read back without anndata.

The store's per-event and rejected-events tables (``tables/events``, ``tables/rejected``) are AnnData
objects with only ``obs`` and one ``uns`` string. Writing them through anndata cost ``convert`` its import
(0.4-1.3 s with the dask.array, h5py and pydantic it imports) and ~500 zarr calls for a 14-column table
(0.3-0.8 s on this project's 2-core machines): more than decoding 6,660 CIF events. This module writes
the same elements in anndata's on-disk format (the ``encoding-type`` / ``encoding-version`` attributes of
https://anndata.readthedocs.io/en/stable/fileformat-prose.html), every node in one pass of zarr's event
loop, for the column types these tables hold; a frame with any other column type is handed to anndata. The
tables are read back the same way (:func:`read_obs_table`: what ``anndata.io.read_elem`` returns, in one
pass of zarr's event loop, anndata's reader for any other encoding); the tests compare both writers' trees
and both readers' frames.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import numpy as np
import zarr
from zarr.core.array import create_array
from zarr.core.group import AsyncGroup
from zarr.core.sync import sync


@dataclass
class Strings:
    """A column of strings with none missing, stored as pandas' default string type is (anndata's
    ``nullable-string-array``): how :func:`write_obs_columns` is told a column holds text."""

    values: np.ndarray


@dataclass
class ObsColumns:
    """An obs table as columns, for writers that do not need pandas (``convert``: its import is ~0.4 s of a
    command): the index (its name, or None) and ``{name: values}`` in column order, each values a numpy array
    of numbers or :class:`Strings`."""

    index_name: str | None
    index: Strings
    columns: dict


class Unencodable(TypeError):
    """A frame with a column, index or name this module does not write as anndata would (anndata must)."""
_DICTS = ("layers", "obsm", "obsp", "varm", "varp")


def _encoding(kind: str, version: str, **more) -> dict:
    return {"encoding-type": kind, "encoding-version": version, **more}


def _string_array(values) -> np.ndarray:
    return np.asarray(values, dtype=np.dtypes.StringDType())


def _element(nodes: list, path: str, values) -> None:
    """One column or index, encoded as anndata encodes its ``._values``: its nodes appended to ``nodes``
    (``(path, attributes, data)``, data None for a group); :class:`Unencodable` for a type it does not encode."""
    pd = sys.modules.get("pandas")  # a pandas value can only come from an imported pandas
    if isinstance(values, Strings):  # as pandas >= 3 stores a string column (below) without missing values
        nodes.append((path, _encoding("nullable-string-array", "0.1.0", **{"na-value": "NaN"}), None))
        nodes.append((f"{path}/values", _encoding("string-array", "0.2.0"), _string_array(values.values)))
        nodes.append((f"{path}/mask", _encoding("array", "0.2.0"), np.zeros(len(values.values), bool)))
    elif pd is not None and isinstance(values, pd.Categorical):
        nodes.append((path, _encoding("categorical", "0.2.0", ordered=bool(values.ordered)), None))
        _element(nodes, f"{path}/codes", values.codes)
        _element(nodes, f"{path}/categories", values.categories.to_numpy())
    elif pd is not None and isinstance(values, (pd.arrays.StringArray, pd.arrays.ArrowStringArray)) \
            and (values.dtype.na_value is pd.NA or values.dtype.na_value is np.nan):
        na = "NA" if values.dtype.na_value is pd.NA else "NaN"
        nodes.append((path, _encoding("nullable-string-array", "0.1.0", **{"na-value": na}), None))
        nodes.append((f"{path}/values", _encoding("string-array", "0.2.0"), _string_array(values.to_numpy(na_value=""))))
        nodes.append((f"{path}/mask", _encoding("array", "0.2.0"), np.asarray(values.isna())))
    elif isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        nodes.append((path, _encoding("array", "0.2.0"), values))
    elif isinstance(values, np.ndarray) and values.dtype.kind in "OUT" and all(isinstance(v, str) for v in values.flat):
        nodes.append((path, _encoding("string-array", "0.2.0"), _string_array(values)))
    else:
        raise Unencodable(f"{path}: no encoding here for {type(values).__name__}")


def _nodes(name: str, obs, uns_type: str) -> list:
    """Every node of ``AnnData(obs=obs)`` with ``uns["type"] = uns_type`` at ``name``, as :func:`_element` lists
    them; :class:`Unencodable` when a column, the index or a name is not one this module writes as anndata would."""
    columns = list(obs.columns)
    if len(set(columns)) != obs.shape[1]:
        raise Unencodable(f"{name}: column or index names anndata writes its own way")
    return _table_nodes(name, obs.index.name, obs.index._values, [(c, obs[c]._values) for c in columns], uns_type)


def _table_nodes(name: str, index_name, index, columns: list, uns_type: str) -> list:
    """:func:`_nodes` of an obs given as its index (name and values) and ``(name, values)`` columns."""
    key = index_name or "_index"
    names = [key, *(c for c, _ in columns)]
    if (not all(isinstance(c, str) and c and "/" not in c for c in names) or len(set(names)) != len(names)
            or "_index" in names[1:]):
        raise Unencodable(f"{name}: column or index names anndata writes its own way")
    nodes = [(name, _encoding("anndata", "0.1.0"), None),
             (f"{name}/obs", _encoding("dataframe", "0.2.0", **{"column-order": names[1:], "_index": key}), None)]
    _element(nodes, f"{name}/obs/{key}", index)
    for column, values in columns:
        _element(nodes, f"{name}/obs/{column}", values)
    nodes.append((f"{name}/var", _encoding("dataframe", "0.2.0", **{"column-order": [], "_index": "_index"}), None))
    pd = sys.modules.get("pandas")  # anndata's empty var index: pandas' empty string index, as this pandas has it
    _element(nodes, f"{name}/var/_index", Strings(np.zeros(0, object)) if pd is None else pd.Index([], dtype="str")._values)
    nodes += [(f"{name}/{key}", _encoding("dict", "0.1.0"), None) for key in (*_DICTS, "uns")]
    nodes.append((f"{name}/uns/type", _encoding("string", "0.2.0"), _string_array(uns_type)))
    nodes.append((f"{name}/raw", _encoding("null", "0.1.0"), np.array(False)))
    return nodes


def writable(df) -> bool:
    """Whether :func:`write_obs_table` encodes every column of ``df`` itself (else anndata must)."""
    try:
        _nodes("t", df, "")
    except Unencodable:
        return False
    return True


def write_obs_table(group: zarr.Group, name: str, obs, uns_type: str) -> None:
    """Write ``AnnData(obs=obs)`` with ``uns["type"] = uns_type`` as ``group[name]`` (anndata's layout).

    :class:`Unencodable`, before anything is written, for a frame this module does not encode (:func:`writable`). Every
    node is created in one pass of zarr's event loop (one call per node cost ~3 ms, most of it the round trip
    to that loop: 0.2 s for a 14-column table).
    """
    _write_nodes(group, _nodes(name, obs, uns_type))


def write_obs_columns(group: zarr.Group, name: str, obs: ObsColumns, uns_type: str) -> None:
    """:func:`write_obs_table` of a table given as :class:`ObsColumns` (no pandas): the same files as the
    DataFrame with those columns (text as pandas' default string type) gives (tested)."""
    _write_nodes(group, _table_nodes(name, obs.index_name, obs.index, list(obs.columns.items()), uns_type))


def _write_nodes(group: zarr.Group, nodes: list) -> None:
    where = group.store_path

    async def create(path, attributes, data):
        if data is None:
            await AsyncGroup.from_store(where / path, attributes=attributes, zarr_format=3)
        else:
            await create_array(where / path, data=data, attributes=attributes)

    async def create_all():
        await asyncio.gather(*(create(*node) for node in nodes))

    sync(create_all())


def _decoded(nodes: dict, data: dict, path: str):
    """The element at ``path`` as anndata's reader returns it (``nodes``: path -> attributes; ``data``: array
    path -> values); KeyError for an encoding this module does not read."""
    import pandas as pd

    kind = (nodes[path].get("encoding-type"), nodes[path].get("encoding-version"))
    if kind in (("array", "0.2.0"), ("string-array", "0.2.0")):
        return data[path]
    if kind == ("categorical", "0.2.0"):
        return pd.Categorical.from_codes(codes=_decoded(nodes, data, f"{path}/codes"),
                                         categories=_decoded(nodes, data, f"{path}/categories"),
                                         ordered=bool(nodes[path]["ordered"]))
    if kind == ("nullable-string-array", "0.1.0"):
        dtype = pd.StringDtype(na_value=np.nan if nodes[path].get("na-value", "NA") == "NaN" else pd.NA)
        values = _decoded(nodes, data, f"{path}/values")
        arr = pd.array(values.astype(np.dtypes.StringDType(na_object=dtype.na_value)), dtype=dtype)
        arr[_decoded(nodes, data, f"{path}/mask")] = pd.NA
        return arr
    raise KeyError(path)


def read_obs_table(group: zarr.Group, name: str):
    """The obs of the AnnData ``group[name]`` as ``anndata.io.read_elem(group[name]).obs`` returns it, its
    nodes listed and read in one pass of zarr's event loop each (anndata's reader: ~0.15 s for a 2,000-event
    table, one round trip per node); None when it holds an encoding this module does not read (read it with
    anndata then)."""
    where = group.store_path / name / "obs"

    async def listing():
        obs = await AsyncGroup.open(where, zarr_format=3)
        members = [(path, node) async for path, node in obs.members(max_depth=None)]
        return obs.attrs, members

    async def read_all(arrays):
        return await asyncio.gather(*(node.getitem(()) for _, node in arrays))

    attrs, members = sync(listing())
    if (attrs.get("encoding-type"), attrs.get("encoding-version")) != ("dataframe", "0.2.0"):
        return None
    nodes = {path: dict(node.attrs) for path, node in members}
    arrays = [(path, node) for path, node in members if not isinstance(node, AsyncGroup)]
    data = dict(zip((path for path, _ in arrays), sync(read_all(arrays))))
    columns, index = list(attrs["column-order"]), attrs["_index"]
    import pandas as pd

    try:
        df = pd.DataFrame({k: _decoded(nodes, data, k) for k in columns}, index=_decoded(nodes, data, index),
                          columns=columns if columns else None)
    except KeyError:
        return None
    if index != "_index":
        df.index.name = index
    return df
