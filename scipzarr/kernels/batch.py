"""Helpers shared by the batch kernels: per-event structuring elements and valid-pixel masks."""

from __future__ import annotations

import numpy as np


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
