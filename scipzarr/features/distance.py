"""Distance of every object pixel to the object's edge, on object crops.

Objects are 8-connected components and never touch, so the nearest pixel
outside an object is background and lies in the object's bounding box grown
by one pixel. One Euclidean distance transform over those crops, laid out
side by side as one near-square 2-D mosaic, is therefore exact, and costs the
objects' boxes rather than the whole tiles. numpy or cupy (scipy's or cupyx's
exact transform; cupyx pads a 2-D image to a square of its longer side, so a
column of 256 crops of 60 x 60 would cost 256 x 256 crops).
"""

from __future__ import annotations

from math import hypot, sqrt

import numpy as np

from .. import backend
from .objects import Objects


def crops(obj: Objects):
    """Each object's bounding box grown by one pixel, as one ``(M, hc, wc)`` stack (cached on ``obj``).

    Returns the object's own pixels (bool), the gather indices (event, rows,
    columns), which crop pixels lie in the tile and which in the crop itself
    (crops smaller than the largest are padded).
    """
    if "crops" not in obj.cache:
        xp = obj.xp
        box = obj.boxes
        hc = int((box[:, 2] - box[:, 0]).max()) + 2
        wc = int((box[:, 3] - box[:, 1]).max()) + 2
        _, th, tw = obj.labels.shape
        rows = box[:, 0, None] - 1 + xp.arange(hc)  # (M, hc) tile rows of each crop
        cols = box[:, 1, None] - 1 + xp.arange(wc)
        crop = (rows < box[:, 2, None] + 1)[:, :, None] & (cols < box[:, 3, None] + 1)[:, None, :]
        ev = obj.event[:, None, None]
        rr, cc = xp.clip(rows, 0, th - 1)[:, :, None], xp.clip(cols, 0, tw - 1)[:, None, :]
        inside_tile = ((rows >= 0) & (rows < th))[:, :, None] & ((cols >= 0) & (cols < tw))[:, None, :]
        mine = (obj.labels[ev, rr, cc] == (xp.arange(obj.n) + 1)[:, None, None]) & inside_tile
        obj.cache["crops"] = mine, ev, rr, cc, inside_tile, crop
    return obj.cache["crops"]


def distance_to_edge(obj: Objects, border_is_edge: bool = True) -> np.ndarray:
    """Distance of every object pixel (``pixels`` order) to the nearest pixel outside its object.

    ``border_is_edge``: pixels beyond the event's real region count as
    outside (CellProfiler's MeasureObjectSizeShape radii, which pad each
    object); otherwise they do not exist and only background counts
    (CellProfiler's ``distance_to_edge`` for the radial distribution).
    """
    key = ("distance_to_edge", border_is_edge)
    if key in obj.cache:
        return obj.cache[key]
    if obj.n == 0:
        return obj.xp.zeros(0)
    mine, ev, rr, cc, inside_tile, crop = crops(obj)
    if border_is_edge:  # each crop's ring is background: the nearest one is always in the object's own crop
        dist = _separate_edt(mine, 0)
    else:
        real = inside_tile & (obj.valid[ev, rr, cc] if obj.valid is not None else True)
        mine = mine | ~real & crop | ~crop  # nothing outside the event (or the crop) is background
        # where part of a crop's ring lies outside the event, a neighbouring crop's background may be nearer
        # than the crop's own: those crops are transformed as planes of a 3-D stack one crop diagonal apart
        apart = ~(real | ~crop).all(axis=(1, 2))
        dist = obj.xp.zeros(mine.shape)
        if bool((~apart).any()):
            dist[~apart] = _separate_edt(mine[~apart], 0)
        if bool(apart.any()):
            dist[apart] = _apart_edt(mine[apart])
    _, lab, _ = obj.pixels
    y, x = obj.coords
    box = obj.boxes
    out = dist[lab, y - box[lab, 0] + 1, x - box[lab, 1] + 1]
    obj.cache[key] = out
    return out


def _separate_edt(planes, gap: int):
    """Euclidean distance transform of each ``(h, w)`` plane of ``planes`` (numpy or cupy), in one call: the
    planes laid out as a near-square mosaic, ``gap`` pixels of foreground apart."""
    xp = backend.xp_of(planes)
    m, h, w = planes.shape
    ch, cw = h + gap, w + gap
    cols = max(1, min(m, round(sqrt(m * ch / cw))))
    rows = -(-m // cols)
    cells = xp.ones((rows * cols, ch, cw), dtype=bool)
    cells[:m, :h, :w] = planes
    mosaic = cells.reshape(rows, cols, ch, cw).transpose(0, 2, 1, 3).reshape(rows * ch, cols * cw)
    dist = backend.ndimage(xp).distance_transform_edt(mosaic)
    return dist.reshape(rows, ch, cols, cw).transpose(0, 2, 1, 3).reshape(rows * cols, ch, cw)[:m, :h, :w]


def _apart_edt(planes):
    """Euclidean distance transform of each plane of ``planes`` on its own, as one 3-D transform whose planes
    lie a plane's diagonal apart (``sampling``): no plane's background is nearer than a pixel's own plane's,
    wherever its own plane has background. In stacks of at most ``max(h, w)`` planes: cupyx pads a 3-D image
    to a cube of its longest side."""
    xp = backend.xp_of(planes)
    m, h, w = planes.shape
    edt = backend.ndimage(xp).distance_transform_edt
    step = max(h, w)
    return xp.concatenate([edt(planes[s:s + step], sampling=(hypot(h, w) + 1, 1, 1)) for s in range(0, m, step)])
