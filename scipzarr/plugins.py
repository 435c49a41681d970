"""Plug-in segmenters for FOV stores: a user function run per block with overlap.

Interface: ``segment(block, **options) -> labels_or_mask`` where ``block`` is
the ``(c, y, x)`` float64 pixels of the segmentation channels for one chunk
plus ``overlap`` pixels on every side (fewer at the image border), and the
result is ``(y, x)``: instance labels (0 = background) or a boolean mask.
Instances are kept apart (their outlines inside the object become
background), then scipzarr labels, splits and measures them exactly as its
own segmentation (global, chunk-independent labels). The result in a chunk
must not depend on pixels further than ``overlap`` away: choose ``overlap``
above the plug-in's field of view (for cellpose, about the object diameter).

Name a plug-in in the config as ``segmentation.plugin.name``: either
``"package.module:function"`` (any importable function) or a built-in name
(``"cellpose"``: cellpose's ``nuclei`` model, used only when cellpose is
installed and its weights are already on disk; scipzarr never downloads).
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .errors import ScipzarrError


def cellpose_model_dir() -> Path:
    return Path(os.environ.get("CELLPOSE_LOCAL_MODELS_PATH", Path.home() / ".cellpose" / "models"))


@functools.cache
def _cellpose_model(model: str, gpu: bool):
    """One cellpose network per process and model, not one per chunk (loading the weights is the slow part)."""
    from cellpose import models  # checked by resolve()

    return models.CellposeModel(gpu=gpu, model_type=model)


def cellpose(block: np.ndarray, model: str = "nuclei", diameter: float | None = None, gpu: bool = False) -> np.ndarray:
    """cellpose on one block (first channel: nuclei; a second channel, if any: cytoplasm)."""
    masks, *_ = _cellpose_model(model, gpu).eval(block[0] if block.shape[0] == 1 else np.moveaxis(block[:2], 0, -1),
                         diameter=diameter, channels=[0, 0] if block.shape[0] == 1 else [2, 1])
    return masks


def _check_cellpose(options: dict) -> None:
    try:
        importlib.import_module("cellpose")
    except ImportError:
        raise ScipzarrError("segmentation.plugin cellpose: cellpose is not installed; pip install cellpose "
                            "(and download its weights once), or use the built-in segmentation") from None
    model = options.get("model", "nuclei")
    folder = cellpose_model_dir()
    if not any(p.name.startswith(model) for p in folder.glob("*")) if folder.exists() else True:
        raise ScipzarrError(f"segmentation.plugin cellpose: the '{model}' weights are not in {folder} and scipzarr "
                            "does not download; fetch them once (python -c 'from cellpose import models; "
                            f"models.CellposeModel(model_type=\"{model}\")') or set CELLPOSE_LOCAL_MODELS_PATH")


BUILTIN = {"cellpose": (cellpose, _check_cellpose)}


def resolve(name: str, options: dict) -> Callable[..., np.ndarray]:
    """The plug-in function for ``name``; one clear error if it cannot be used."""
    if name in BUILTIN:
        fn, check = BUILTIN[name]
        check(options)
        return fn
    module, sep, attr = name.partition(":")
    if not sep or not module or not attr:
        raise ScipzarrError(f"segmentation.plugin {name!r}: give 'package.module:function' or one of: "
                            f"{', '.join(BUILTIN)}")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise ScipzarrError(f"segmentation.plugin {name}: cannot import {module} ({exc}); install it or fix the "
                            "name") from None
    except AttributeError:
        raise ScipzarrError(f"segmentation.plugin {name}: {module} has no function {attr}") from None
    if not callable(fn):
        raise ScipzarrError(f"segmentation.plugin {name}: {attr} is not a function")
    return fn


def foreground(result: np.ndarray, shape: tuple[int, int], name: str) -> np.ndarray:
    """A plug-in's output as a mask with instances kept apart (outlines between instances removed)."""
    result = np.asarray(result)
    if result.shape != shape:
        raise ScipzarrError(f"segmentation.plugin {name}: returned shape {result.shape} for a block of {shape}; "
                            "return (y, x) labels or a mask")
    if result.dtype == bool:
        return result
    labels = result.astype(np.int64)
    top = ndi.maximum_filter(labels, size=3)
    low = ndi.minimum_filter(np.where(labels > 0, labels, np.iinfo(np.int64).max), size=3)
    return (labels > 0) & (top == low)  # pixels with another instance among their 8 neighbours go
