"""Objects measured on their own crops: each object's box plus one pixel, other objects removed.

For fields of view, where objects are found on a large image: the crops of
a group of objects become one batch for :func:`scipzarr.features.measure`,
so an object's values depend on its own pixels only (whatever the chunking
or the region read around it).
"""

from __future__ import annotations

import numpy as np

from . import measure
from .moments import moments
from .objects import Objects


def measure_objects(image: np.ndarray, labels: np.ndarray, origin: tuple[int, int], ids: np.ndarray,
                    box: np.ndarray, shape: tuple[int, int], families: list[str], channels: list[int], params: dict,
                    device: str = "cpu"):
    """Centroids ``(n, 2)`` and features of the objects ``ids`` (boxes ``(ymin, ymax, xmin, xmax)``), each
    measured on its own crop.

    ``image`` ``(c, y, x)`` and ``labels`` cover the FOV pixels from
    ``origin`` to past every object's box plus one pixel (clipped at the FOV's
    ``shape``); an object's crop is its box plus one pixel, other objects
    removed, so its values depend on its own pixels only. ``device``: where
    the device feature families run (``features.measure``).
    """
    h, w = shape
    y0, x0 = origin
    box = np.asarray(box, np.int64).reshape(-1, 4)
    ch = int((box[:, 1] - box[:, 0]).max()) + 3
    cw = int((box[:, 3] - box[:, 2]).max()) + 3
    n = len(ids)
    local = np.zeros((n, ch, cw), np.int32)
    crops = np.zeros((n, image.shape[0], ch, cw), image.dtype)
    valid = np.zeros((n, ch, cw), bool)
    for k, (label_id, (ymin, ymax, xmin, xmax)) in enumerate(zip(ids, box)):  # crops; measuring: a batch
        cy0, cx0 = ymin - 1, xmin - 1
        ry0, rx0 = max(cy0, 0), max(cx0, 0)
        ry1, rx1 = min(ymax + 2, h), min(xmax + 2, w)
        oy, ox = ry0 - cy0, rx0 - cx0
        sl = (slice(ry0 - y0, ry1 - y0), slice(rx0 - x0, rx1 - x0))
        local[k, oy:oy + ry1 - ry0, ox:ox + rx1 - rx0] = labels[sl] == label_id
        crops[k, :, oy:oy + ry1 - ry0, ox:ox + rx1 - rx0] = image[(slice(None), *sl)]
        valid[k, oy:oy + ry1 - ry0, ox:ox + rx1 - rx0] = True
    # the crop of object k starts at FOV (ymin - 1, xmin - 1): coordinates come out in FOV pixels
    origin_y = (1 - box[:, 0]).astype(np.int64)
    origin_x = (1 - box[:, 2]).astype(np.int64)
    obj = Objects(local, origin_y, origin_x, valid)
    # centroids for obs whatever the families (the shape family's formula: box corner + mean offset)
    raw = moments(obj)["raw"]
    area = obj.areas.astype(np.float64)
    centroid = np.column_stack([(obj.boxes[:, 0] - origin_y) + raw[:, 1, 0] / area,
                                (obj.boxes[:, 1] - origin_x) + raw[:, 0, 1] / area])
    return centroid, measure(obj, crops, families, channels, params, device=device)
