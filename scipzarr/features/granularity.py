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

import numba
import numpy as np

from .column import Column
from .family import Family
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


def _axis_weights(n_out: int, n_in: int, scale: float, divide: bool):
    """Linear-interpolation taps along one axis, as ``map_coordinates(order=1, mode="constant")``.

    Output position ``i`` samples input coordinate ``i / scale`` (``divide``) or
    ``i * scale``; a coordinate outside ``[0, n_in - 1]`` gives 0 (weights 0).
    """
    pos = np.arange(n_out, dtype=float)
    pos = pos / scale if divide else pos * scale
    lo = np.floor(pos).astype(np.int64)
    w = pos - lo
    inside = (pos >= 0) & (pos <= n_in - 1)
    lo = np.clip(lo, 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, np.where(inside, 1 - w, 0.0), np.where(inside, w, 0.0)


def _resample(stack: np.ndarray, shape: tuple[int, int], scale_y: float, scale_x: float, divide: bool) -> np.ndarray:
    """Bilinear resampling of every image of a ``(K, H, W)`` stack onto a ``shape`` grid, as CellProfiler samples it."""
    y0, y1, wy0, wy1 = _axis_weights(shape[0], stack.shape[1], scale_y, divide)
    x0, x1, wx0, wx1 = _axis_weights(shape[1], stack.shape[2], scale_x, divide)
    rows = stack[:, y0] * wy0[None, :, None] + stack[:, y1] * wy1[None, :, None]
    return rows[:, :, x0] * wx0 + rows[:, :, x1] * wx1


def _mean_operator(labels: np.ndarray, n: int, small: tuple[int, int]):
    """Sparse ``(n, K*h*w)`` operator: per-object mean of a ``(K, h, w)`` stack upsampled to ``labels``' grid.

    Upsampling is linear and fixed across the spectrum's steps, so it is
    built once (as cp_measure does) and each step is one sparse product.
    """
    k, big_h, big_w = labels.shape
    y0, y1, wy0, wy1 = _axis_weights(big_h, small[0], (small[0] - 1) / (big_h - 1), False)
    x0, x1, wx0, wx1 = _axis_weights(big_w, small[1], (small[1] - 1) / (big_w - 1), False)
    e, y, x = np.nonzero(labels)
    obj = labels[e, y, x] - 1
    cnt = np.bincount(obj, minlength=n).astype(np.float64)
    cols, vals = [], []
    for ys, wy in ((y0, wy0), (y1, wy1)):
        for xs, wx in ((x0, wx0), (x1, wx1)):
            cols.append((e * small[0] + ys[y]) * small[1] + xs[x])
            vals.append(wy[y] * wx[x] / cnt[obj])
    rows = np.tile(obj, 4)
    from scipy import sparse  # here: a run without granularity does not import scipy.sparse (0.1-0.15 s)

    return sparse.csr_matrix((np.concatenate(vals), (rows, np.concatenate(cols))), shape=(n, k * small[0] * small[1]))


@numba.njit(cache=True, nogil=True)
def erode_cross(img):  # pragma: no cover - compiled
    """Grey erosion of every image of a stack by the 3x3 cross, borders reflected (scipy ``reflect``)."""
    k, h, w = img.shape
    out = np.empty_like(img)
    for e in range(k):
        for y in range(h):
            for x in range(w):
                v = img[e, y, x]
                v = min(v, img[e, max(y - 1, 0), x], img[e, min(y + 1, h - 1), x])
                v = min(v, img[e, y, max(x - 1, 0)], img[e, y, min(x + 1, w - 1)])
                out[e, y, x] = v
    return out


@numba.njit(cache=True, nogil=True)
def reconstruct(seed, mask):  # pragma: no cover - compiled
    """Greyscale reconstruction by dilation of every image of a stack, 4-connected (Vincent's hybrid algorithm).

    Equals ``skimage.morphology.reconstruction(seed, mask, footprint=cross)``
    per image (the result is unique), in linear time: a raster and an
    anti-raster pass, then a queue for what is left to propagate.
    """
    k, h, w = seed.shape
    out = np.minimum(seed, mask)
    queue = np.empty(k * h * w * 4 + 1, np.int64)
    for e in range(k):
        for y in range(h):
            for x in range(w):
                v = out[e, y, x]
                if y > 0 and out[e, y - 1, x] > v:
                    v = out[e, y - 1, x]
                if x > 0 and out[e, y, x - 1] > v:
                    v = out[e, y, x - 1]
                out[e, y, x] = min(v, mask[e, y, x])
    head = 0
    tail = 0
    for e in range(k):
        for y in range(h - 1, -1, -1):
            for x in range(w - 1, -1, -1):
                v = out[e, y, x]
                if y < h - 1 and out[e, y + 1, x] > v:
                    v = out[e, y + 1, x]
                if x < w - 1 and out[e, y, x + 1] > v:
                    v = out[e, y, x + 1]
                v = min(v, mask[e, y, x])
                out[e, y, x] = v
                if (y < h - 1 and out[e, y + 1, x] < v and out[e, y + 1, x] < mask[e, y + 1, x]) or (
                        x < w - 1 and out[e, y, x + 1] < v and out[e, y, x + 1] < mask[e, y, x + 1]):
                    queue[tail] = (e * h + y) * w + x
                    tail += 1
    while head < tail:
        p = queue[head]
        head += 1
        e, r = divmod(p, h * w)
        y, x = divmod(r, w)
        v = out[e, y, x]
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            yy, xx = y + dy, x + dx
            if 0 <= yy < h and 0 <= xx < w and out[e, yy, xx] < v and out[e, yy, xx] != mask[e, yy, xx]:
                out[e, yy, xx] = min(v, mask[e, yy, xx])
                if tail == queue.shape[0]:  # compact the queue (rare)
                    for j in range(tail - head):  # a loop, not a slice copy: see _masks.label_pieces_host
                        queue[j] = queue[head + j]
                    tail -= head
                    head = 0
                queue[tail] = (e * h + yy) * w + xx
                tail += 1
    return out


def _opening(stack: np.ndarray, radius: int) -> np.ndarray:
    """Grey opening of every image with a disk, borders reflected (scikit-image's default mode).

    The reflection is made explicit with ``numpy.pad(mode="symmetric")``: scipy's
    ``reflect`` mode reads outside the image when the disk is much larger than
    the image (seen for 2-pixel sides, which the default subsampling gives
    for small events), returning values that depend on memory.
    """
    half = int(np.floor(radius / np.sqrt(2)))
    while 2 * (half + 1) ** 2 <= radius * radius:
        half += 1
    while 2 * half * half > radius * radius:
        half -= 1
    if 2 * half + 1 >= 2 * max(stack.shape[1:]):
        # the disk holds a whole period (2 h x 2 w) of the reflected image: every erosion value is the
        # image minimum, and the opening is that constant (exact; the usual case for small events)
        return np.broadcast_to(stack.min(axis=(1, 2))[:, None, None], stack.shape).copy()
    # imported here: only large events reach this line, and the two imports cost every run 0.3 s
    import scipy.ndimage as ndi
    import skimage.morphology as morph

    disk = morph.disk(radius, dtype=bool)[None]
    pad = ((0, 0), (radius, radius), (radius, radius))
    inner = (slice(None), slice(radius, -radius), slice(radius, -radius))
    eroded = ndi.grey_erosion(np.pad(stack, pad, mode="symmetric"), footprint=disk)[inner]
    return ndi.grey_dilation(np.pad(eroded, pad, mode="symmetric"), footprint=disk)[inner]


def spectrum(pixels: np.ndarray, labels: np.ndarray, n: int, params: dict, cache: dict | None = None) -> np.ndarray:
    """``(n, length)`` spectra of objects ``0..n-1`` (``labels`` 1-based, 0 elsewhere) on a ``(K, H, W)`` stack.

    ``cache`` keeps what depends on the labels only (the upsampling operator)
    between channels.
    """
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
    img = np.ascontiguousarray(np.maximum(img - back, 0))  # compiled loops below are 10x faster on C order
    flat = labels.ravel()
    fg = flat > 0
    lab = flat[fg] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        current = np.bincount(lab, weights=pixels.ravel()[fg], minlength=n) / np.bincount(lab, minlength=n)
    start = np.maximum(current, np.finfo(float).eps)
    cache = {} if cache is None else cache
    if "operator" not in cache:
        cache["operator"] = _mean_operator(labels, n, tuple(new))
    upsampled_mean = cache["operator"]
    ero = img
    for k in range(length):
        ero = erode_cross(ero)
        rec = reconstruct(ero, img)
        new_mean = upsampled_mean @ rec.ravel()
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
            key = ("granularity", h, w, params.get("subsample", _DEFAULTS["subsample"]))
            if key not in obj.cache:  # the group's geometry, the same for every channel
                events = np.flatnonzero(has & (heights == h) & (widths == w))
                rows = (obj.valid_y0[events][:, None] + np.arange(h))[:, :, None]
                cols = (obj.valid_x0[events][:, None] + np.arange(w))[:, None, :]
                members = np.flatnonzero(np.isin(obj.event, events))
                remap = np.zeros(obj.n + 1, dtype=np.int64)
                remap[members + 1] = np.arange(1, len(members) + 1)
                lab = remap[obj.labels[events[:, None, None], rows, cols]]
                obj.cache[key] = (events[:, None, None], rows, cols, members, lab, {})
            where, rows, cols, members, lab, cache = obj.cache[key]
            out[members] = spectrum(plane[where, rows, cols], lab, len(members), params, cache)
    return {str(k + 1): out[:, k] for k in range(length)}


FAMILY = Family(
    "granularity", "channel", columns, measure,
    "granularity spectrum (MeasureGranularity)",
    device=False,
    defaults={"subsample": 0.25, "background_subsample": 0.25, "element_size": 10, "spectrum_length": 16},
    parameters={
        "subsample": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "Subsampling factor of the image before the spectrum."
        },
        "background_subsample": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 1,
            "description": "Further subsampling for the background (opening) estimate."
        },
        "element_size": {
            "type": "integer",
            "minimum": 1,
            "description": "Radius of the disk that removes the background."
        },
        "spectrum_length": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "description": "Number of erosion steps (spectrum values)."
        }
    },
)
