"""Granularity spectrum of every object (CellProfiler's MeasureGranularity).

As CellProfiler defines it, on each event's own image: subsample by
``subsample``; remove the background (an opening with a disk of radius
``element_size`` on an image subsampled again by ``background_subsample``,
interpolated back); then erode ``spectrum_length`` times with a 3x3 cross and
reconstruct each time by dilation; the k-th value of an object is the drop of
its mean reconstructed intensity (interpolated back to full resolution) at
step k, in percent of its mean original intensity.

The batch is processed as stacks of events of the same size (one per
distinct event size, usually a handful per chunk), with scipy/scikit-image
operators whose footprints have extent 1 along the event axis, so each event
is filtered exactly as on its own and padding never enters.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import skimage.morphology as morph

from .column import Column
from .objects import Objects

_CROSS = np.zeros((3, 3, 3), bool)
_CROSS[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]


def columns(params: dict) -> list[Column]:
    length = params.get("spectrum_length", 16)
    text = " ".join(f"{k}={params.get(k, v)}" for k, v in _DEFAULTS.items())
    return [Column(str(k), f"granularity spectrum step {k}: drop of the object's mean after the {k}-th "
                   "erosion and reconstruction, in percent of its original mean", f"Granularity_{k}_{{ch}}", text)
            for k in range(1, length + 1)]


_DEFAULTS = {"subsample": 0.25, "background_subsample": 0.25, "element_size": 10, "spectrum_length": 16}


def _resample(stack: np.ndarray, shape: tuple[int, int], scale_y: float, scale_x: float, divide: bool) -> np.ndarray:
    """``map_coordinates(order=1)`` of every image of a stack onto a ``shape`` grid, as CellProfiler samples it."""
    k = np.arange(stack.shape[0], dtype=float)[:, None, None]
    i, j = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    if divide:
        i, j = i / scale_y, j / scale_x
    else:
        i, j = i * scale_y, j * scale_x
    coords = np.broadcast_arrays(k, i[None], j[None])
    return ndi.map_coordinates(stack, coords, order=1)


def _opening(stack: np.ndarray, radius: int) -> np.ndarray:
    """Grey opening of every image with a disk, borders reflected (scikit-image's default mode).

    The reflection is made explicit with ``numpy.pad(mode="symmetric")``: scipy's
    ``reflect`` mode reads outside the image when the disk is much larger than
    the image (seen for 2-pixel sides, which the default subsampling gives
    for small events), returning values that depend on memory.
    """
    disk = morph.disk(radius, dtype=bool)[None]
    pad = ((0, 0), (radius, radius), (radius, radius))
    inner = (slice(None), slice(radius, -radius), slice(radius, -radius))
    eroded = ndi.grey_erosion(np.pad(stack, pad, mode="symmetric"), footprint=disk)[inner]
    return ndi.grey_dilation(np.pad(eroded, pad, mode="symmetric"), footprint=disk)[inner]


def spectrum(pixels: np.ndarray, labels: np.ndarray, n: int, params: dict) -> np.ndarray:
    """``(n, length)`` spectra of objects ``0..n-1`` (``labels`` 1-based, -1 or 0 elsewhere) on a ``(K, H, W)`` stack."""
    p = {**_DEFAULTS, **params}
    sub, back_sub, length = p["subsample"], p["background_subsample"], p["spectrum_length"]
    orig = np.array(pixels.shape[1:])
    out = np.full((n, length), np.nan)
    new = (orig * sub).astype(int) if sub < 1 else orig.copy()
    if (new < 2).any():
        return out
    img = _resample(pixels, tuple(new), sub, sub, True) if sub < 1 else pixels.copy()
    if back_sub < 1:
        back_shape = new * back_sub
        back = _resample(img, tuple(np.ceil(back_shape).astype(int)), back_sub, back_sub, True)
    else:
        back_shape, back = new, img
    back = _opening(back, p["element_size"])
    if back_sub < 1:
        back = _resample(back, tuple(new), (back_shape[0] - 1) / (new[0] - 1), (back_shape[1] - 1) / (new[1] - 1),
                         False)
    img = np.maximum(img - back, 0)
    flat = labels.ravel()
    fg = flat > 0
    lab = flat[fg] - 1
    cnt = np.bincount(lab, minlength=n).astype(np.float64)

    def means(a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.bincount(lab, weights=a.ravel()[fg], minlength=n) / cnt

    current = means(pixels)
    start = np.maximum(current, np.finfo(float).eps)
    ero = img
    for k in range(length):
        ero = morph.erosion(ero, footprint=_CROSS)
        rec = morph.reconstruction(ero, img, footprint=_CROSS)
        if sub < 1:
            rec = _resample(rec, tuple(orig), (new[0] - 1) / (orig[0] - 1), (new[1] - 1) / (orig[1] - 1), False)
        new_mean = means(rec)
        out[:, k] = (current - new_mean) * 100 / start
        current = new_mean
    return out


def measure(obj: Objects, images: np.ndarray, channels: tuple[int, ...] = (0,), params: dict | None = None
            ) -> dict[str, np.ndarray]:
    """Granularity spectrum of one channel (``channels[0]``), events grouped by their real size."""
    params = params or {}
    length = params.get("spectrum_length", 16)
    out = np.full((obj.n, length), np.nan)
    if obj.n:
        valid = obj.valid if obj.valid is not None else np.ones(obj.labels.shape, bool)
        heights, widths = valid.any(axis=2).sum(axis=1), valid.any(axis=1).sum(axis=1)
        has = np.bincount(obj.event, minlength=len(heights)) > 0
        plane = images[:, channels[0]].astype(np.float64)
        for h, w in sorted(set(zip(heights[has].tolist(), widths[has].tolist()))):
            events = np.flatnonzero(has & (heights == h) & (widths == w))
            y0, x0 = obj.valid_y0[events], obj.valid_x0[events]
            rows = y0[:, None] + np.arange(h)
            cols = x0[:, None] + np.arange(w)
            stack = plane[events[:, None, None], rows[:, :, None], cols[:, None, :]]
            lab = obj.labels[events[:, None, None], rows[:, :, None], cols[:, None, :]]
            members = np.flatnonzero(np.isin(obj.event, events))
            remap = np.zeros(obj.n + 1, dtype=np.int64)
            remap[members + 1] = np.arange(1, len(members) + 1)
            out[members] = spectrum(stack, remap[lab], len(members), params)
    return {str(k + 1): out[:, k] for k in range(length)}
