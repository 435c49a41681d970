"""The store: the OME-Zarr layouts of scipzarr, and the only package that opens zarr groups and arrays.

Two kinds, one NGFF 0.5 toolkit (:mod:`.ngff`):

* ``ifc`` (:mod:`.mosaic`): imaging flow cytometry events as tiles of one
  multiscale ``(c, y, x)`` mosaic, a per-event table, label mosaics;
* ``fov`` (:mod:`.fov`): fields of view, one multiscale image each
  (``bioformats2raw.layout``), labels per FOV.

:func:`store_kind` tells them apart, :func:`open_any` opens either and
:func:`validate` checks either.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ScipzarrError
from . import ngff
from .fov import FovStore, open_fov_store, validate_fov_store, write_fov_labels, write_fov_store
from .mosaic import (
    EVENT_COLUMNS,
    REJECTED_COLUMNS,
    Mosaic,
    MosaicStore,
    fit_to_tile,
    open_store,
    validate_store,
    write_ifc_mosaic,
)

KINDS = ("ifc", "fov")

__all__ = ["EVENT_COLUMNS", "KINDS", "REJECTED_COLUMNS", "FovStore", "Mosaic", "MosaicStore", "check_channel_names",
           "fit_to_tile", "ngff",
           "open_any", "open_fov_store", "open_store", "store_kind", "validate", "validate_fov_store",
           "validate_store", "write_fov_labels", "write_fov_store", "write_ifc_mosaic"]


def check_channel_names(names: list[str]) -> None:
    """Channel names of an IFC store name its label images (``labels/ideas-<name>``, ``labels/cells-<name>``) and
    its table's columns: each must be one zarr node name (not empty, no ``/``); one clear error otherwise."""
    for name in names:
        if not name or "/" in name:
            raise ScipzarrError(f"channel name {name!r}: a channel name cannot be empty or hold '/' (it names the "
                                "store's label images and table columns); give other names with --channels")


def store_kind(path: str | Path) -> str | None:
    """``"ifc"``, ``"fov"`` or None (not a scipzarr store)."""
    try:
        meta = ngff.group_attrs(path).get("scipzarr", {})
    except Exception:  # noqa: BLE001 - anything unreadable is 'not a store'
        return None
    kind = meta.get("kind") if isinstance(meta, dict) else None
    return kind if kind in KINDS else None


def open_any(path: str | Path) -> MosaicStore | FovStore:
    """Open a store of either kind; one clear error when it is neither."""
    return open_fov_store(path) if store_kind(path) == "fov" else open_store(path)


def validate(path: str | Path) -> tuple[str, list[str]]:
    """The store's kind and its problems (an empty list: valid)."""
    path = Path(path)
    if store_kind(path) == "fov":
        return "fov", validate_fov_store(path)
    return "ifc", validate_store(path)


def require_kind(path: str | Path) -> str:
    """The kind of an existing store, or one clear error."""
    kind = store_kind(path)
    if kind is None:
        open_store(path)  # raises the precise reason (missing, not zarr, not a scipzarr store)
        raise ScipzarrError(f"{path}: not a scipzarr store; convert the data with 'scipzarr convert'")
    return kind
