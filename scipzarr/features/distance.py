"""Distance of every object pixel to the object's edge, on object crops.

Objects are 8-connected components and never touch, so the nearest pixel
outside an object is background and lies in the object's bounding box grown
by one pixel. When the event's border counts as an edge, each object is
transformed in that box of its own (:func:`scipzarr.kernels.batch.object_edt`,
compiled); otherwise one Euclidean distance transform over the stack of crops
(:func:`scipzarr.kernels.batch.planes_edt`). Both are exact and cost the
objects' boxes rather than the whole tiles. numpy or cupy.
"""

from __future__ import annotations

import numpy as np

from ..kernels.batch import object_edt, planes_edt
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
    if border_is_edge:  # each object's nearest background lies in its box grown by one pixel
        out = obj.xp.asarray(object_edt(obj.host("labels"), obj.host("event"), obj.host("boxes"),
                                        int(obj.pixels[0].shape[0])))
    else:
        mine, ev, rr, cc, inside_tile, crop = crops(obj)
        real = inside_tile & (obj.valid[ev, rr, cc] if obj.valid is not None else True)
        mine = mine | ~real & crop | ~crop  # nothing outside the event (or the crop) is background
        # where part of a crop's ring lies outside the event, a neighbouring crop's background may be nearer
        # than the crop's own: those crops are transformed as planes of a 3-D stack one crop diagonal apart
        dist = planes_edt(mine, apart=~(real | ~crop).all(axis=(1, 2)))
        _, lab, _ = obj.pixels
        y, x = obj.coords
        box = obj.boxes
        out = dist[lab, y - box[lab, 0] + 1, x - box[lab, 1] + 1]
    obj.cache[key] = out
    return out

