"""The store layout for fields of view: one multiscale ``(c, y, x)`` image per FOV.

NGFF 0.5 with the ``bioformats2raw.layout`` convention (the layout of
bioformats2raw and of multi-series OME-Zarr): the root group lists nothing
but the layout version; FOV ``i`` is the multiscale image group ``i/`` with
its pyramid ``s0, s1, ...`` (chunks of ``chunk x chunk`` pixels, all
channels in a chunk), physical pixel sizes in its ``coordinateTransformations``
(axes in micrometres when known), omero channels, and its labels under
``i/labels/<name>``. ``scipzarr`` metadata on the root names the FOVs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import zarr

from .._version import __version__
from ..errors import ScipzarrError
from . import ngff
from .ngff import NGFF_VERSION

if TYPE_CHECKING:  # imported where used (an IFC convert never needs dask.array)
    import dask.array as da

FOV_FORMAT = "scipzarr-fov"
FOV_FORMAT_VERSION = 1
DEFAULT_CHUNK = 1024


def write_fov_image(root: zarr.Group, index: int, fov, channel_names: list[str], chunk: int, compute,
                    dtype) -> dict:
    """Write one FOV (as ``dtype``, the store's) as the multiscale image group ``root/<index>``; returns its
    root-metadata entry."""
    group = root.create_group(str(index), overwrite=True)
    data = fov.data.astype(dtype, copy=False)
    c = data.shape[0]
    n_levels = ngff.pyramid_levels(data.shape[1:], (chunk, chunk))
    chunks = ngff.level_chunks(data.shape, (chunk, chunk))
    s0 = ngff.create_array(group, "s0", data.shape, chunks, data.dtype, ["c", "y", "x"])
    import dask.array as da

    compute([da.store(data.rechunk((c, chunk, chunk)).rechunk(chunks), s0, compute=False, lock=False)])
    ngff.write_levels(group, n_levels, (chunk, chunk), compute)
    ngff.write_image_metadata(group, n_levels, fov.name, channel_names, fov.pixel_size)
    entry = {"name": fov.name, "path": str(index), "source": fov.source, "series": int(fov.series),
             "shape": [int(s) for s in data.shape], "pixel_size_um": list(fov.pixel_size),
             "z_projection": fov.projection}
    group.attrs["scipzarr"] = entry
    return entry


def write_fov_store(path: Path, fovs: list, channel_names: list[str], chunk: int, compute, done=None,
                    mark_done=None) -> None:
    """Write every FOV into the store at ``path`` (the caller makes it atomic).

    ``done(i)`` says a FOV was written by an interrupted run (its group is
    kept); ``mark_done(i)`` is called once FOV ``i`` is complete.
    """
    dtypes = {np.dtype(f.data.dtype) for f in fovs}
    dtype = np.result_type(*dtypes)
    root = zarr.open_group(str(path), mode="a", zarr_format=3)
    entries = []
    for i, fov in enumerate(fovs):
        if done is not None and done(i):
            entries.append(dict(zarr.open_group(str(path / str(i)), mode="r").attrs["scipzarr"]))
            continue
        entries.append(write_fov_image(root, i, fov, channel_names, chunk, compute, dtype))
        if mark_done is not None:
            mark_done(i)
    root.attrs["ome"] = {"version": NGFF_VERSION, "bioformats2raw.layout": 3}
    root.attrs["scipzarr"] = {"format": FOV_FORMAT, "format_version": FOV_FORMAT_VERSION, "kind": "fov",
                              "written_by": f"scipzarr {__version__}", "channel_names": list(channel_names),
                              "dtype": np.dtype(dtype).name, "chunk": int(chunk), "fovs": entries}


@dataclass
class FovStore:
    path: Path
    channel_names: list[str]
    fovs: list[dict]
    attrs: dict

    def image(self, index: int, level: int = 0) -> da.Array:
        import dask.array as da

        return da.from_zarr(zarr.open_array(str(self.path / self.fovs[index]["path"] / f"s{level}"), mode="r"))

    def n_levels(self, index: int) -> int:
        group = zarr.open_group(str(self.path / self.fovs[index]["path"]), mode="r")
        return len(group.attrs["ome"]["multiscales"][0]["datasets"])

    def channel_index(self, channel: str | int) -> int:
        if isinstance(channel, int) and 0 <= channel < len(self.channel_names):
            return channel
        if channel in self.channel_names:
            return self.channel_names.index(channel)
        raise ScipzarrError(f"{self.path}: no channel {channel!r}; channels: {', '.join(self.channel_names)}")

    def label_names(self, index: int) -> list[str]:
        return ngff.label_names(self.path / self.fovs[index]["path"])

    def level_path(self, index: int, level: int = 0) -> str:
        """The path of a FOV's pyramid level (tasks read their regions from it)."""
        return str(self.path / self.fovs[index]["path"] / f"s{level}")

    def scratch(self, index: int, name: str) -> Path:
        """Where a pipeline keeps a FOV's intermediate array ``name`` (removed by :meth:`discard`)."""
        return self.path / self.fovs[index]["path"] / f".{name}-scratch"

    def discard(self, index: int) -> None:
        """Remove a FOV's scratch arrays."""
        for p in (self.path / self.fovs[index]["path"]).glob(".*-scratch"):
            ngff.remove(p)


def open_fov_store(path: str | Path) -> FovStore:
    path = Path(path)
    if not path.exists():
        raise ScipzarrError(f"{path}: no such store; run 'scipzarr convert --kind fov' first or check the path")
    try:
        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    except Exception:  # noqa: BLE001
        raise ScipzarrError(f"{path}: not a zarr v3 group; give a store written by 'scipzarr convert'") from None
    meta = attrs.get("scipzarr")
    if not isinstance(meta, dict) or meta.get("format") != FOV_FORMAT:
        raise ScipzarrError(f"{path}: not a scipzarr FOV store; convert the images with 'scipzarr convert --kind fov'")
    return FovStore(path, list(meta["channel_names"]), list(meta["fovs"]), attrs)


def write_fov_labels(st: FovStore, index: int, name: str, labels, compute, properties: dict) -> None:
    """Write ``labels`` (``(y, x)``, the FOV's level-0 grid; numpy or dask) as ``<fov>/labels/<name>`` with the
    image's levels and pixel size (:func:`ngff.write_labels`)."""
    chunk = int(st.attrs["scipzarr"]["chunk"])
    ngff.write_labels(st.path / st.fovs[index]["path"], name, labels, st.n_levels(index), (chunk, chunk), compute,
                      properties, tuple(st.fovs[index]["pixel_size_um"]))


def validate_fov_store(path: Path) -> list[str]:
    """Problems of a FOV store (empty: valid): NGFF validity of every image and its labels, shapes, levels."""
    try:
        st = open_fov_store(path)
    except ScipzarrError as exc:
        return [str(exc).removeprefix(f"{path}: ")]
    problems = []
    if st.attrs.get("ome", {}).get("bioformats2raw.layout") != 3:
        problems.append("root: missing 'bioformats2raw.layout': 3")
    for i, fov in enumerate(st.fovs):
        where = f"FOV {fov['name']} ({fov['path']}/)"
        problems += ngff.ngff_problems(path / fov["path"], where)
        levels = st.n_levels(i)
        prev = None
        for lv in range(levels):
            arr = zarr.open_array(str(path / fov["path"] / f"s{lv}"), mode="r")
            if lv == 0 and list(arr.shape) != fov["shape"]:
                problems.append(f"{where}: s0 shape {arr.shape} differs from the metadata's {fov['shape']}")
            if prev is not None and (arr.shape[1] != prev[1] // 2 or arr.shape[2] != prev[2] // 2):
                problems.append(f"{where}: s{lv} is not half of the previous level")
            prev = arr.shape
        for name in st.label_names(i):
            lpath = path / fov["path"] / "labels" / name
            problems += ngff.ngff_problems(lpath, f"{where} labels/{name}")
            arr = zarr.open_array(str(lpath / "s0"), mode="r")
            if list(arr.shape) != fov["shape"][1:]:
                problems.append(f"{where} labels/{name}: shape {arr.shape} differs from the image's")
    return problems
