"""Format readers that turn raw inputs into a scipzarr store.

Importable as ``scipzarr.converters``. Readers only list and read events;
every byte on disk is written through :mod:`scipzarr.store`.
"""

from .ifc import EventSource, discover
from .convert import convert

__all__ = ["EventSource", "convert", "discover"]
