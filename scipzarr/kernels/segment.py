"""Segmentation: smoothing, masks and per-event labels of event batches, and the smoothing of FOV planes.

numpy or cupy batches alike: each function takes its array module from its
input (:func:`scipzarr.backend.xp_of`), ``ndimage`` is scipy's or cupyx's.

All functions take a whole batch ``(N, Y, X)`` and a ``valid`` mask of the
real (unpadded) pixels; padding never changes a result: smoothing is a
normalized convolution over valid pixels, and thresholds see valid pixels only.
"""

from __future__ import annotations

import numpy as np

from ..backend import ndimage, xp_of
from .batch import fill_holes, plane_structure


def combine_channels(batch: np.ndarray, channels: list[int]) -> np.ndarray:
    """Mean of the chosen channels of an ``(N, C, Y, X)`` batch, as float64."""
    xp = xp_of(batch)
    return batch[:, channels].astype(xp.float64).mean(axis=1)


def smooth(image: np.ndarray, valid: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing inside each event's valid region (normalized convolution).

    ``gaussian(image * valid) / gaussian(valid)``: pixels outside the event
    (padding, or beyond the tile edge) do not contribute, so a padded event
    and the same event unpadded give identical values.
    """
    return smooth_channels(image[:, None], valid, sigma)[:, 0]


def smooth_channels(images, valid, sigma: float):
    """:func:`smooth` of every channel of an ``(N, C, Y, X)`` batch at once (float64), the valid pixels'
    weights smoothed once per event."""
    xp = xp_of(images)
    inside = valid[:, None]
    if sigma <= 0:
        return xp.where(inside, images.astype(xp.float64), 0.0)
    ndi = ndimage(xp)
    num = ndi.gaussian_filter(xp.where(inside, images, 0.0), (0, 0, sigma, sigma), mode="constant", cval=0.0)
    den = ndi.gaussian_filter(valid.astype(xp.float64), (0, sigma, sigma), mode="constant", cval=0.0)
    num /= xp.maximum(den, 1e-300)[:, None]  # in place (a chunk's channels are ~100 MB); den is 0 only where num is
    return xp.where(inside, num, 0.0)


def smooth_plane(channels, sigma: float):
    """Mean of ``(c, y, x)`` channels as float64, Gaussian-smoothed (``reflect`` at the border); numpy or cupy
    in, the same out (scipy's or cupyx's ``gaussian_filter``)."""
    xp = xp_of(channels)
    plane = channels.astype(xp.float64).mean(axis=0)
    return ndimage(xp).gaussian_filter(plane, sigma, mode="reflect") if sigma > 0 else plane


def smoothing_radius(sigma: float) -> int:
    """Pixels of context :func:`smooth_plane` needs around a chunk (scipy's ``truncate=4`` radius)."""
    return int(4.0 * sigma + 0.5) if sigma > 0 else 0


def label_events(mask: np.ndarray, connectivity: int = 2) -> tuple[np.ndarray, int]:
    """Connected components of every event at once; labels unique in the batch."""
    labels, n = ndimage(xp_of(mask)).label(mask, structure=plane_structure(connectivity))
    return labels, int(n)


def event_of_label(labels: np.ndarray, n_labels: int) -> np.ndarray:
    """Event index of each batch label 1..n (index 0 unused, -1)."""
    xp = xp_of(labels)
    ev = xp.full(n_labels + 1, -1, dtype=xp.int64)
    nz = labels.reshape(labels.shape[0], -1)
    e, p = xp.nonzero(nz)
    ev[nz[e, p]] = e
    return ev


def local_labels(labels: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop batch labels where ``keep`` is False and renumber 1..n_e per event.

    Returns ``local`` labels ``(N, Y, X)`` (int32) and objects per event ``(N,)``.
    Kept labels stay in their raster order (event, row, column of first pixel).
    """
    xp = xp_of(labels)
    n = labels.shape[0]
    ev = event_of_label(labels, len(keep) - 1)
    keep = keep.copy()
    keep[0] = False
    kept = xp.flatnonzero(keep)
    counts = xp.bincount(ev[kept], minlength=n)
    first = xp.cumsum(counts) - counts  # objects before each event (cupy takes no list in concatenate)
    lut = xp.zeros(len(keep), dtype=xp.int32)
    lut[kept] = xp.arange(1, len(kept) + 1) - first[ev[kept]]
    return lut[labels], counts


def segment(
    image: np.ndarray,
    valid: np.ndarray,
    thresholds: np.ndarray,
    *,
    fill: bool = True,
    min_size: int = 0,
    keep: str = "all",
    parts: bool = False,
) -> tuple[np.ndarray, ...]:
    """Threshold, fill holes, label, drop small objects, optionally keep the largest.

    Parameters
    ----------
    image : (N, Y, X) float array
        The (smoothed) segmentation image.
    valid : (N, Y, X) bool array
        Real pixels of each event.
    thresholds : (N,) array
        Foreground is ``image > threshold`` (as ``skimage``'s convention).
    fill : bool
        Fill holes in each object.
    min_size : int
        Remove objects with fewer pixels.
    keep : {"all", "largest"}
        Keep all objects, or the largest of each event (ties: the first in
        raster order).

    Returns
    -------
    labels : (N, Y, X) int32
        Per-event object numbers 1..n_e in raster order (0: background).
    counts : (N,) int64
        Objects per event.
    pieces : (N,) int64
        With ``parts``: objects per event before the largest was kept.

    Examples
    --------
    >>> img = np.zeros((2, 5, 5)); img[0, 1:3, 1:3] = 1; img[1, 3:, 3:] = 1
    >>> lab, n = segment(img, np.ones(img.shape, bool), np.array([0.5, 0.5]))
    >>> n.tolist(), int(lab[1, 4, 4])
    ([1, 1], 1)
    """
    xp = xp_of(image)
    mask = (image > xp.asarray(thresholds)[:, None, None]) & valid
    return segment_mask(mask, valid, fill=fill, min_size=min_size, keep=keep, parts=parts)


def segment_mask(mask, valid, *, fill: bool = True, min_size: int = 10, keep: str = "all", parts: bool = False):
    """Per-event labels and object counts of a foreground mask ``(N, Y, X)`` (as :func:`segment` after its
    threshold): holes filled, objects under ``min_size`` dropped, all or the largest kept. With ``parts``, also
    the objects per event before the largest was kept."""
    xp = xp_of(mask)
    labels, n_labels, areas = _pieces(mask, valid, fill)
    keep_mask = areas >= max(min_size, 1)
    ev = event_of_label(labels, n_labels) if parts or (keep == "largest" and n_labels) else None
    before = xp.bincount(ev[xp.flatnonzero(keep_mask[1:]) + 1], minlength=mask.shape[0]) if parts else None
    if keep == "largest" and n_labels:
        cand = xp.flatnonzero(keep_mask[1:]) + 1
        order = xp.lexsort(xp.stack([cand, -areas[cand], ev[cand]]))  # cupy: keys as one 2-D array
        cand = cand[order]
        first = xp.ones(len(cand), dtype=bool)
        first[1:] = ev[cand][1:] != ev[cand][:-1]
        keep_mask[:] = False
        keep_mask[cand[first]] = True
    local, counts = local_labels(labels, keep_mask)
    return (local, counts, before) if parts else (local, counts)


def channel_masks(images, valid, sigma: float, k: float, both, *, fraction: float = 0.0, fill: bool = True,
                  min_size: int = 10):
    """A background-referenced mask per event and channel of an ``(N, C, Y, X)`` batch.

    Each channel of each event is smoothed inside the event (:func:`smooth`) and referred to its own
    background (:func:`~scipzarr.kernels.threshold.background_deviation`: median and robust noise of the
    border ring of the valid region); a pixel is foreground where it departs by more than ``k`` noise
    units: either way for the channels where ``both[c]`` (brightfield), else upward, and then also by at
    least ``fraction`` of the event's highest departure in that channel (so the glow around a bright
    object stays out of its mask). Holes are filled and pieces under ``min_size`` pixels dropped (debris).
    Returns the masks ``(N, C, Y, X)`` bool and each event's background level and noise per channel
    ``(N, C)`` (of the smoothed image).
    """
    from .threshold import background_deviation

    xp = xp_of(images)
    n, c, h, w = images.shape
    flat_valid = xp.broadcast_to(valid[:, None], (n, c, h, w)).reshape(n * c, h, w)
    dev, bg, noise = background_deviation(smooth_channels(images, valid, sigma), valid)
    two_way = xp.asarray(both, dtype=bool)[None, :, None, None]
    up = dev > k
    if fraction > 0:
        up &= dev >= fraction * dev.max(axis=(2, 3), keepdims=True)
    mask = xp.where(two_way, (dev < -k) | (dev > k), up) & valid[:, None]
    return clean_mask(mask.reshape(n * c, h, w), flat_valid, fill, min_size).reshape(n, c, h, w), bg, noise


def clean_mask(mask, valid, fill: bool = True, min_size: int = 10):
    """A mask ``(N, Y, X)`` with its holes filled and its pieces under ``min_size`` pixels dropped (what
    :func:`segment_mask` keeps with ``keep="all"``, without numbering the objects)."""
    if min_size <= 1:
        return fill_holes(mask, 1) & valid if fill else mask
    labels, _, areas = _pieces(mask, valid, fill)
    return (areas >= min_size)[labels] & (labels > 0)


def _pieces(mask, valid, fill: bool):
    """Labels of the 8-connected pieces of a mask ``(N, Y, X)`` (holes filled first, inside ``valid``), their
    number and areas (index 0: background)."""
    xp = xp_of(mask)
    if fill:
        mask = fill_holes(mask, 1) & valid
    labels, n_labels = label_events(mask)
    return labels, n_labels, xp.bincount(labels.ravel(), minlength=n_labels + 1)


def attribute(masks, local, counts):
    """The object of each pixel of per-channel ``masks`` ``(N, C, Y, X)``: the event's object (``local``
    ``(N, Y, X)``, ``counts`` per event) nearest to the pixel (0 in events without objects).

    With one object per event this is that object wherever the mask is set; with several, each mask pixel
    goes to the nearest object of its event (Euclidean distance; ties: the first in raster order).
    """
    xp = xp_of(local)
    n = local.shape[0]
    if n == 0 or int(counts.max(initial=0)) <= 1:
        nearest = xp.broadcast_to((counts > 0).astype(local.dtype)[:, None, None], local.shape)
    else:  # events far apart along the first axis: the nearest object is always in the pixel's own event
        far = float(max(local.shape[1], local.shape[2]) * 4)
        _, idx = ndimage(xp).distance_transform_edt(local == 0, sampling=(far, 1.0, 1.0), return_indices=True)
        nearest = xp.where(counts[:, None, None] > 0, local[idx[0], idx[1], idx[2]], 0)
    return xp.where(masks, nearest[:, None], 0).astype(local.dtype)
