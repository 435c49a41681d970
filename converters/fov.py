"""Fields of view (FOVs): TIFF / OME-TIFF with tifffile, other formats through bioio plug-ins.

Every input file becomes one FOV per series (multi-series OME-TIFF, vendor
files with several scenes). Each FOV is read lazily as a dask array
``(c, y, x)``: a Z axis is projected (``max`` or ``mean``), RGB samples become
channels, a time axis longer than one is refused. Physical pixel sizes (µm)
and channel names are taken from the OME metadata (or ImageJ resolution
tags) and carried into the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from scipzarr.errors import ScipzarrError

if TYPE_CHECKING:  # imported where FOVs are read: an IFC convert never needs dask.array (0.3-0.6 s)
    import dask.array as da

TIFF_SUFFIXES = (".tif", ".tiff", ".ome.tif", ".ome.tiff", ".btf")
#: Vendor formats read through bioio and the plug-in that reads them (the ``formats`` extra holds bioio).
BIOIO_PLUGINS = {".czi": "bioio-czi", ".nd2": "bioio-nd2", ".lif": "bioio-lif", ".vsi": "bioio-bioformats",
                 ".ims": "bioio-imageio", ".oib": "bioio-bioformats", ".lsm": "bioio-tifffile"}


@dataclass
class Fov:
    """One field of view: a lazy ``(c, y, x)`` image and what is known about it."""

    name: str
    source: str
    series: int
    data: da.Array
    channel_names: list[str] | None = None
    pixel_size: tuple[float | None, float | None] = (None, None)  # y, x in micrometres
    projection: str | None = None
    notes: dict = field(default_factory=dict)


def _to_cyx(arr: da.Array, axes: str, source: str, projection: str) -> tuple[da.Array, str | None]:
    """Reorder an array with tifffile/bioio axis letters into ``(c, y, x)``; project Z."""
    axes = axes.upper().replace("I", "Z").replace("Q", "Z")
    if "T" in axes and arr.shape[axes.index("T")] > 1:
        raise ScipzarrError(f"{source}: {arr.shape[axes.index('T')]} time points; scipzarr reads one time point "
                            "per FOV: export the time points as separate files")
    for name in [a for a in axes if a not in "CZYXS"]:
        if arr.shape[axes.index(name)] > 1:
            raise ScipzarrError(f"{source}: unsupported axis '{name}' of length {arr.shape[axes.index(name)]} "
                                f"(axes {axes}); expected (Z)(C)YX")
    for name in [a for a in axes if a not in "CZYXS"]:
        arr = arr[tuple(0 if a == name else slice(None) for a in axes)]
        axes = axes.replace(name, "")
    if "S" in axes:  # RGB(A) samples are channels
        if "C" in axes and arr.shape[axes.index("C")] > 1:
            raise ScipzarrError(f"{source}: both channels and RGB samples (axes {axes}); not supported")
        arr = arr if "C" not in axes else arr[tuple(0 if a == "C" else slice(None) for a in axes)]
        axes = axes.replace("C", "").replace("S", "C")
    used = None
    if "Z" in axes:
        z = axes.index("Z")
        if arr.shape[z] > 1:
            used = projection
            arr = arr.max(axis=z) if projection == "max" else arr.mean(axis=z).astype(np.float32)
        else:
            arr = arr[tuple(0 if a == "Z" else slice(None) for a in axes)]
        axes = axes.replace("Z", "")
    if "C" not in axes:
        arr, axes = arr[None], "C" + axes
    if sorted(axes) != ["C", "X", "Y"]:
        raise ScipzarrError(f"{source}: cannot read axes {axes}; expected (Z)(C)YX")
    return arr.transpose([axes.index(a) for a in "CYX"]), used


#: OME's length units (``UnitsLength``) in micrometres
_MICROMETRES = {"Ym": 1e30, "Zm": 1e27, "Em": 1e24, "Pm": 1e21, "Tm": 1e18, "Gm": 1e15, "Mm": 1e12, "km": 1e9,
                "hm": 1e8, "dam": 1e7, "m": 1e6, "dm": 1e5, "cm": 1e4, "mm": 1e3, "µm": 1.0, "μm": 1.0, "um": 1.0,
                "nm": 1e-3, "pm": 1e-6, "fm": 1e-9, "am": 1e-12, "zm": 1e-15, "ym": 1e-18, "Å": 1e-4,
                "in": 25400.0, "ft": 304800.0, "yd": 914400.0, "mi": 1609344e3}


def _ome_info(ome_xml: str | None, series: int) -> tuple[list[str] | None, tuple[float | None, float | None]]:
    if not ome_xml:
        return None, (None, None)
    import tifffile

    try:
        meta = tifffile.xml2dict(ome_xml)["OME"]
        images = meta["Image"] if isinstance(meta["Image"], list) else [meta["Image"]]
        pixels = images[series]["Pixels"]
    except (KeyError, IndexError, TypeError, ValueError):
        return None, (None, None)
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    names = [str(c.get("Name")) for c in channels if c.get("Name") is not None] or None
    def size(axis):
        """Micrometres, or None where the file states no size, or one that is not a positive number in a length
        unit of OME's (a size in an unknown unit is not guessed to be micrometres)."""
        value, unit = pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm")
        try:
            value = float(value) * _MICROMETRES[unit]
        except (TypeError, ValueError, KeyError):
            return None
        return value if 0 < value < float("inf") else None

    return names, (size("Y"), size("X"))


def _imagej_pixel_size(page) -> tuple[float | None, float | None]:
    """Pixel size from the resolution tags when they are in microns (ImageJ writes ``unit=micron``)."""
    try:
        desc = page.description or ""
        if "unit=micron" not in desc and "unit=um" not in desc:
            return None, None
        (xn, xd), (yn, yd) = page.tags["XResolution"].value, page.tags["YResolution"].value
        return yd / yn, xd / xn
    except (KeyError, ZeroDivisionError, TypeError, ValueError):
        return None, None


def _read_tiff(path: Path, projection: str) -> list[Fov]:
    import tifffile
    import zarr

    try:
        # kept open as long as the lazy arrays (zarr views of the file) are alive
        tif = tifffile.TiffFile(path)
        series_list = list(tif.series)
        ome = tif.ome_metadata if tif.is_ome else None
        pixel_ij = _imagej_pixel_size(tif.pages[0])
    except Exception as exc:  # noqa: BLE001 - any reader failure is one line for the user
        raise ScipzarrError(f"{path}: not a readable TIFF ({exc}); check the file") from None
    fovs = []
    stem = re.sub(r"\.ome$", "", path.stem)
    import dask.array as da

    for s, series in enumerate(series_list):
        arr = da.from_zarr(zarr.open(series.aszarr(level=0), mode="r"))
        cyx, used = _to_cyx(arr, series.axes, str(path), projection)
        names, pixel = _ome_info(ome, s)
        if pixel == (None, None):
            pixel = pixel_ij
        name = stem if len(series_list) == 1 else f"{stem}_s{s}"
        fovs.append(Fov(name, str(path), s, cyx, names, pixel, used))
    return fovs


def _read_bioio(path: Path, projection: str) -> list[Fov]:
    suffix = path.suffix.lower()
    try:
        from bioio import BioImage
    except ImportError:
        plugin = BIOIO_PLUGINS.get(suffix, "the bioio plug-in for this format")
        raise ScipzarrError(f"{path}: reading {suffix} files needs bioio and {plugin}: "
                            f"pip install 'scipzarr[formats]' {plugin}") from None
    try:
        img = BioImage(path)
        scenes = list(img.scenes)
    except Exception as exc:  # noqa: BLE001
        plugin = BIOIO_PLUGINS.get(suffix, "a bioio plug-in for this format")
        raise ScipzarrError(f"{path}: bioio cannot read it ({exc}); install {plugin}") from None
    fovs = []
    for s, scene in enumerate(scenes):
        img.set_scene(scene)
        cyx, used = _to_cyx(img.dask_data, img.dims.order, str(path), projection)
        sizes = img.physical_pixel_sizes
        name = path.stem if len(scenes) == 1 else f"{path.stem}_s{s}"
        fovs.append(Fov(name, str(path), s, cyx, [str(c) for c in img.channel_names] or None,
                        (sizes.Y, sizes.X), used))
    return fovs


def is_tiff(path: Path) -> bool:
    return path.name.lower().endswith(TIFF_SUFFIXES)


def _channel_key(value: str):
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def group_channel_files(fovs: list[Fov], pattern: str) -> list[Fov]:
    """FOVs whose channels are separate files (one file per channel, as many plate readers and CellProfiler's
    examples write them) joined into one multichannel FOV each.

    ``pattern`` is a regular expression with one group, searched in each
    file's name without its suffix: the group orders the channels, the match
    names them, the name without the match names the FOV (``d(\\d)`` on
    ``..._D03f00d0.tif``, ``..._D03f00d1.tif``: FOV ``..._D03f00``, channels
    ``d0``, ``d1``).
    Channels are ordered by the group (as numbers when all are digits).
    Every FOV needs the same channels, of the same shape.
    """
    try:
        rx = re.compile(pattern)
    except re.error as exc:
        raise ScipzarrError(f"--channel-pattern {pattern!r}: not a regular expression ({exc})") from None
    if rx.groups != 1:
        raise ScipzarrError(f"--channel-pattern {pattern!r}: needs exactly one group (...) around the channel part "
                            "of the file name, e.g. 'd(\\d)' or '_w(\\d+)'")
    groups: dict[tuple[str, int], dict[str, Fov]] = {}
    labels: dict[str, str] = {}
    for f in fovs:
        stem = re.sub(r"\.ome$", "", Path(f.source).stem)
        m = rx.search(stem)
        if m is None:
            raise ScipzarrError(f"{f.source}: the name does not match --channel-pattern {pattern!r}; give a pattern "
                                "whose group is the channel part of every file name, or leave other files out")
        if f.data.shape[0] != 1:
            raise ScipzarrError(f"{f.source}: {f.data.shape[0]} channels in one file; --channel-pattern joins "
                                "single-channel files")
        key = (stem[:m.start()] + stem[m.end():]).strip("_- .") or stem
        name = key if f.name == stem else f"{key}{f.name[len(stem):]}"  # keep a multi-series suffix
        channel = m.group(1)
        labels[channel] = m.group(0)
        slot = groups.setdefault((name, f.series), {})
        if channel in slot:
            raise ScipzarrError(f"{f.source}: channel {channel!r} of FOV {name} also comes from {slot[channel].source}; "
                                "check --channel-pattern")
        slot[channel] = f
    import dask.array as da

    order = sorted({c for slot in groups.values() for c in slot}, key=_channel_key)
    out = []
    for (name, series), slot in sorted(groups.items()):
        missing = [c for c in order if c not in slot]
        if missing:
            raise ScipzarrError(f"FOV {name}: no file for channel {labels[missing[0]]!r} (found "
                                f"{', '.join(labels[c] for c in order if c in slot)}); every FOV needs every channel")
        parts = [slot[c] for c in order]
        shapes = {p.data.shape for p in parts}
        if len(shapes) > 1:
            raise ScipzarrError(f"FOV {name}: its channel files differ in size ({' vs '.join(map(str, shapes))}); "
                                "every channel of a FOV needs the same size")
        first = parts[0]
        out.append(Fov(name, first.source, series, da.concatenate([p.data for p in parts], axis=0),
                       [labels[c] for c in order], first.pixel_size, first.projection,
                       {"channel_files": [p.source for p in parts]}))
    return out


def discover_fovs(inputs: list[str | Path], projection: str = "max", channel_pattern: str | None = None) -> list[Fov]:
    """Every FOV of the inputs (files, or folders searched for images), in name order; with
    ``channel_pattern``, single-channel files joined into multichannel FOVs (:func:`group_channel_files`)."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if not item.exists():
            raise ScipzarrError(f"{item}: no such file or folder; check the path")
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and (is_tiff(p) or p.suffix.lower() in
                                                                          BIOIO_PLUGINS))
            if not found:
                raise ScipzarrError(f"{item}: no TIFF or vendor image files inside; check the folder")
            files += found
        else:
            files.append(item)
    fovs: list[Fov] = []
    for f in files:
        fovs += _read_tiff(f, projection) if is_tiff(f) else _read_bioio(f, projection)
    if channel_pattern:
        fovs = group_channel_files(fovs, channel_pattern)
    names = [f.name for f in fovs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ScipzarrError(f"two inputs give the FOV name '{dup[0]}'; rename one of the files")
    channels = {f.data.shape[0] for f in fovs}
    if len(channels) > 1:
        first = fovs[0]
        other = next(f for f in fovs if f.data.shape[0] != first.data.shape[0])
        raise ScipzarrError(f"{other.source}: {other.data.shape[0]} channels, but {first.source} has "
                            f"{first.data.shape[0]}; all FOVs of a store need the same channels")
    return fovs


def looks_like_fovs(inputs: list[str | Path], limit: int = 2048) -> bool:
    """``--kind auto``: FOVs when the first image is large (either side above ``limit`` / 4) or multi-series."""
    for item in map(Path, inputs):
        files = sorted(p for p in item.rglob("*") if p.is_file()) if item.is_dir() else [item]
        for f in files:
            if f.suffix.lower() in BIOIO_PLUGINS:
                return True
            if is_tiff(f):
                import tifffile

                with tifffile.TiffFile(f) as tif:
                    shape = tif.series[0].shape
                    return len(tif.series) > 1 or max(shape[-2:]) > limit // 4
    return False
