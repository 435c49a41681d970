"""scipzarr: scalable cytometry image processing on Dask and OME-Zarr.

Python API (mirrors the CLI)::

    import scipzarr
    scipzarr.convert(["exports/"], "cells.zarr")
    adata = scipzarr.process("cells.zarr", output="cells.h5ad")
"""

from __future__ import annotations

from ._version import __version__
from .errors import ScipzarrError


def convert(inputs, output, **kwargs) -> dict:
    """Convert IFC inputs to a store; see :func:`scipzarr.converters.convert`."""
    from .converters import convert as _convert

    return _convert(inputs, output, **kwargs)


def process(store, config=None, output=None, **kwargs):
    """Segment and measure a store; ``config`` is a dict (partial is fine) or a YAML path.

    Returns the AnnData feature table; see :func:`scipzarr.pipeline.process`.
    """
    from .config import load_config, resolve_config
    from .pipeline import process as _process

    cfg = resolve_config(config) if isinstance(config, dict) or config is None else load_config(config)
    return _process(store, cfg, output, **kwargs)


__all__ = ["ScipzarrError", "__version__", "convert", "process"]
