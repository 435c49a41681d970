"""Helpers shared by the batch kernels: per-event structuring elements, valid-pixel masks, hole filling, and
filters applied to a stack of planes each on its own in one call (numpy or cupy)."""

from __future__ import annotations

from math import hypot, sqrt

import numpy as np

from ..backend import ndimage, to_host, xp_of


def plane_structure(connectivity: int):
    """A 3-D structuring element that connects pixels within each event only."""
    s = np.zeros((3, 3, 3), dtype=bool)
    s[1] = np.ones((3, 3), bool) if connectivity == 2 else np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    return s


def valid_mask(shape_yx: tuple[int, int], y0, x0, height, width):
    """``(N, Y, X)`` mask of each event's real pixels inside its padded tile."""
    y = np.arange(shape_yx[0])
    x = np.arange(shape_yx[1])
    y0, x0, height, width = (np.asarray(a)[:, None] for a in (y0, x0, height, width))
    rows = (y[None] >= y0) & (y[None] < y0 + height)
    cols = (x[None] >= x0) & (x[None] < x0 + width)
    return rows[:, :, None] & cols[:, None, :]


def fill_holes(mask, connectivity: int = 1):
    """``scipy.ndimage.binary_fill_holes`` by one labelling of the background: background components
    (``connectivity`` 1: 4-connected, 2: 8-connected) that do not reach the border of their plane become
    foreground.

    A batch ``(N, Y, X)`` is filled plane by plane (:func:`plane_structure`);
    a 2-D mask as one image.
    Equal to scipy's (tested), which dilates from the border until nothing
    changes: 2.3x faster on a batch of 256 random 90 x 90 masks. numpy or cupy.
    """
    xp = xp_of(mask)
    structure = plane_structure(connectivity) if mask.ndim == 3 else plane_structure(connectivity)[1]
    bg, n = ndimage(xp).label(~mask, structure=structure)
    hole = xp.ones(int(n) + 1, dtype=bool)
    hole[0] = False
    for edge in (bg[..., 0, :], bg[..., -1, :], bg[..., :, 0], bg[..., :, -1]):
        hole[edge] = False
    return mask | hole[bg]


def mosaic(planes, gap: int, fill):
    """The ``(m, h, w)`` planes laid out as one near-square 2-D image, ``gap`` pixels of ``fill`` after each
    plane (right and below); :func:`unmosaic` takes them back. Near-square because cupyx's exact distance
    transform pads a 2-D image to a square of its longer side (a column of 256 crops of 60 x 60 would cost
    256 x 256 crops)."""
    xp = xp_of(planes)
    m, h, w = planes.shape
    ch, cw = h + gap, w + gap
    cols = max(1, min(m, round(sqrt(m * ch / cw))))
    rows = -(-m // cols)
    cells = xp.full((rows * cols, ch, cw), fill, dtype=planes.dtype)
    cells[:m, :h, :w] = planes
    return cells.reshape(rows, cols, ch, cw).transpose(0, 2, 1, 3).reshape(rows * ch, cols * cw)


def unmosaic(image, m: int, h: int, w: int, gap: int):
    """The ``(m, h, w)`` planes of a :func:`mosaic` image (or of a filter's result on it)."""
    ch, cw = h + gap, w + gap
    rows, cols = image.shape[0] // ch, image.shape[1] // cw
    return image.reshape(rows, ch, cols, cw).transpose(0, 2, 1, 3).reshape(rows * cols, ch, cw)[:m, :h, :w]


def framed_planes_edt(planes):
    """:func:`planes_edt` of planes framed by background (each plane's nearest background lies in the plane,
    as an object's crop with its one-pixel ring): one compiled pass on the host
    (:func:`scipzarr.kernels._masks.planes_edt_host`, exact: equal to scipy's; 10x faster than the mosaic
    through ``distance_transform_edt``), returned in the input's array module."""
    from ._masks import planes_edt_host

    return xp_of(planes).asarray(planes_edt_host(np.ascontiguousarray(to_host(planes), dtype=bool)))


def object_edt(labels, event, boxes, total: int):
    """The distance of every object pixel to the nearest pixel outside its object, the tile's border counting as
    outside, in the objects' pixel order (``Objects.pixels``): each object transformed in its own box grown by
    one pixel (:func:`scipzarr.kernels._masks.object_edt_host`, exact, on the host), returned in the labels'
    array module."""
    from ._masks import object_edt_host

    return xp_of(labels).asarray(object_edt_host(*_host_objects(labels, event, boxes), int(total)))


def object_filled_areas(labels, event, boxes):
    """Each object's area with its holes filled (background 8-connected components of its box grown by one pixel
    that do not reach that box's edge: ``regionprops``' ``area_filled`` of the object alone), float64, one
    compiled pass on the host (:func:`scipzarr.kernels._masks.object_filled_areas_host`), returned in the
    labels' array module; objects as :func:`object_edt` takes them."""
    from ._masks import object_filled_areas_host

    return xp_of(labels).asarray(object_filled_areas_host(*_host_objects(labels, event, boxes)))


def _host_objects(labels, event, boxes) -> tuple:
    """Labels, each object's event and its box as the compiled per-object passes take them (host, contiguous
    labels, int64 events and boxes)."""
    return (np.ascontiguousarray(to_host(labels)), np.asarray(to_host(event), dtype=np.int64),
            np.asarray(to_host(boxes), dtype=np.int64))


def planes_edt(planes, apart=False):
    """Euclidean distance transform (exact, scipy's values) of each plane of a ``(m, h, w)`` bool stack on its
    own, in one call per kind of plane.

    :func:`framed_planes_edt` when a plane's nearest background is in the plane
    itself whatever lies around it (a plane framed by background, as an
    object's crop with its one-pixel ring). Otherwise ``apart`` (True, or a
    per-plane bool array saying which planes): scipy's or cupyx's transform of
    one 3-D image whose planes lie a plane's diagonal apart (``sampling``), in
    stacks of at most ``max(h, w)`` planes (cupyx pads a 3-D image to a cube);
    a plane without background then gets distances to other planes.
    """
    xp = xp_of(planes)
    m, h, w = planes.shape
    edt = ndimage(xp).distance_transform_edt
    if isinstance(apart, bool):
        if not apart:
            return framed_planes_edt(planes)
        step = max(h, w)
        return xp.concatenate([edt(planes[s:s + step], sampling=(hypot(h, w) + 1, 1, 1))
                               for s in range(0, m, step)])
    dist = xp.zeros(planes.shape)
    for group, kind in ((~apart, False), (apart, True)):
        if bool(group.any()):
            dist[group] = planes_edt(planes[group], kind)
    return dist


def event_slices(n: int, step: int | None) -> list[slice]:
    """Consecutive slices of ``step`` events covering ``n`` (one slice of all when ``step`` is None)."""
    step = step or max(n, 1)
    return [slice(s, min(s + step, n)) for s in range(0, max(n, 1), step)]
