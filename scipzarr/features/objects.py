"""The objects of one batch: labels made unique, their events, boxes and pixels.

Built once per batch and shared by every feature family, so no family
re-derives the same index arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass
class Objects:
    """Objects of a batch.

    Parameters
    ----------
    local : (N, Y, X) int array
        Per-event object numbers 1..n_e (0: background).
    valid_y0, valid_x0 : (N,) int arrays
        Offset of each event's real pixels in its tile; coordinates are
        reported relative to the event (so padding never changes them).
    valid : (N, Y, X) bool array, optional
        Each event's real pixels (default: all); measurements that look at
        neighbours or whole images treat the rest as outside the event.
    """

    local: np.ndarray
    valid_y0: np.ndarray
    valid_x0: np.ndarray
    valid: np.ndarray | None = None

    def __post_init__(self):
        self.cache: dict = {}  # channel-independent results shared by families (distances, centres)
        n = self.local.shape[0]
        counts = self.local.reshape(n, -1).max(axis=1) if self.local.size else np.zeros(n, int)
        self.counts = counts.astype(np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.n = int(self.counts.sum())
        self.labels = np.where(self.local > 0, self.local + self.offsets[:, None, None], 0).astype(np.int64)
        self.event = np.repeat(np.arange(n), self.counts)
        self.number = (np.arange(self.n) - self.offsets[self.event] + 1).astype(np.int64)

    @cached_property
    def boxes(self) -> np.ndarray:
        """(M, 4) bounding boxes in tile coordinates: min_y, min_x, max_y, max_x (end exclusive)."""
        if self.n == 0:
            return np.zeros((0, 4), dtype=np.int64)
        y, x = self.coords
        starts = self.pixels[2]
        return np.stack([
            np.minimum.reduceat(y, starts), np.minimum.reduceat(x, starts),
            np.maximum.reduceat(y, starts) + 1, np.maximum.reduceat(x, starts) + 1,
        ], axis=1).astype(np.int64)

    @cached_property
    def areas(self) -> np.ndarray:
        return np.bincount(self.labels.ravel(), minlength=self.n + 1)[1:].astype(np.int64)

    @cached_property
    def pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat indices of all object pixels grouped by object, their object index, group starts."""
        flat = self.labels.ravel()
        idx = np.flatnonzero(flat)
        lab = flat[idx]
        order = np.argsort(lab, kind="stable")
        idx, lab = idx[order], lab[order] - 1
        starts = np.searchsorted(lab, np.arange(self.n))
        return idx, lab, starts

    def gather(self, images: np.ndarray, channel: int) -> np.ndarray:
        """Values of one channel of an ``(N, C, Y, X)`` batch at every object pixel (``pixels`` order)."""
        idx = self.pixels[0]
        plane = self.labels.shape[1] * self.labels.shape[2]
        event, offset = np.divmod(idx, plane)
        base = event * (images.shape[1] * plane) + offset
        return np.ascontiguousarray(images).ravel()[base + channel * plane]

    @cached_property
    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column (tile coordinates) of every object pixel, in ``pixels`` order."""
        idx = self.pixels[0]
        _, y, x = np.unravel_index(idx, self.labels.shape)
        return y, x
