"""The objects of one batch: labels made unique, their events, boxes and pixels.

Built once per batch and shared by every feature family, so no family
re-derives the same index arrays. numpy or cupy: the arrays live where
``local`` lives (:func:`scipzarr.backend.xp_of`); :meth:`Objects.to_device`
makes the same objects on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import backend


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
        xp = self.xp = backend.xp_of(self.local)
        n = self.local.shape[0]
        if xp is np and self.local.dtype == np.int32 and self.local.ndim == 3 and self._from_lists():
            return
        counts = self.local.reshape(n, -1).max(axis=1) if self.local.size else xp.zeros(n, xp.int64)
        self.counts = counts.astype(xp.int64)
        ends = xp.cumsum(self.counts)
        self.offsets = ends - self.counts
        self.n = int(ends[-1]) if n else 0
        self.labels = xp.where(self.local > 0, self.local + self.offsets[:, None, None], 0).astype(xp.int64)
        self._numbers()

    def _numbers(self):
        """Each object's event and its number in the event, from ``offsets`` and ``counts``."""
        xp = self.xp
        ends = self.offsets + self.counts
        self.event = xp.searchsorted(ends, xp.arange(self.n), side="right")  # objects are numbered by event
        self.number = (xp.arange(self.n) - self.offsets[self.event] + 1).astype(xp.int64)

    def _from_lists(self) -> bool:
        """The labels, pixel lists, areas and boxes of host objects from one compiled pass
        (:func:`scipzarr.kernels._masks.object_lists_host`: the same arrays as the numpy formulation; 57 ->
        15 ms for 256 events); False, and nothing set, when some object number has no pixels (the numpy formulation's
        values for such objects are kept as they are)."""
        from ..kernels._masks import object_lists_host

        counts, labels, areas, idx, lab, starts, ys, xs, boxes = object_lists_host(np.ascontiguousarray(self.local))
        if not areas.all():
            return False
        self.counts, self.labels, self.n = counts, labels, len(areas)
        self.offsets = np.cumsum(counts) - counts
        self._numbers()
        # the cached properties' values (functools.cached_property keeps them in the instance's __dict__)
        self.__dict__.update(areas=areas, pixels=(idx, lab, starts), coords=(ys, xs), boxes=boxes)
        return True

    def events(self, sl: slice) -> Objects:
        """The objects of events ``sl`` (a sub-batch; per-object features are the same there)."""
        return Objects(self.local[sl], self.valid_y0[sl], self.valid_x0[sl],
                       None if self.valid is None else self.valid[sl])

    def to_device(self, device: str) -> Objects:
        """The same objects with their arrays on ``device`` (``self`` for ``"cpu"``)."""
        if device == "cpu":
            return self
        put = backend.to_device
        out = Objects(put(self.local, device), put(self.valid_y0, device), put(self.valid_x0, device),
                      None if self.valid is None else put(self.valid, device))
        out.cache |= {("host", "labels"): self.labels, ("host", "event"): self.event}  # the same values, here already
        return out

    def host(self, name: str):
        """A host (numpy) copy of the cached array attribute ``name`` (for the compiled kernels, which run on
        the CPU); copied once per batch."""
        key = ("host", name)
        if key not in self.cache:
            value = getattr(self, name)
            self.cache[key] = (tuple(backend.to_host(v) for v in value) if isinstance(value, tuple)
                               else backend.to_host(value))
        return self.cache[key]

    @cached_property
    def boxes(self) -> np.ndarray:
        """(M, 4) bounding boxes in tile coordinates: min_y, min_x, max_y, max_x (end exclusive)."""
        xp = self.xp
        if self.n == 0:
            return xp.zeros((0, 4), dtype=xp.int64)
        y, x = self.coords
        _, lab, starts = self.pixels
        # pixels are in raster order within an object: its first and last pixels hold its rows' bounds
        return xp.stack([y[starts], backend.segment_min(x, lab, starts, self.n), y[starts + self.areas - 1] + 1,
                         backend.segment_max(x, lab, starts, self.n) + 1], axis=1).astype(xp.int64)

    @cached_property
    def areas(self) -> np.ndarray:
        xp = self.xp
        return xp.bincount(self.labels.ravel(), minlength=self.n + 1)[1:].astype(xp.int64)

    @cached_property
    def pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flat indices of all object pixels grouped by object, their object index, group starts."""
        xp = self.xp
        flat = self.labels.ravel()
        idx = xp.flatnonzero(flat)
        lab = flat[idx]
        order = xp.argsort(lab, kind="stable")
        idx, lab = idx[order], lab[order] - 1
        starts = xp.searchsorted(lab, xp.arange(self.n))
        return idx, lab, starts

    def gather(self, images: np.ndarray, channel: int) -> np.ndarray:
        """Values of one channel of an ``(N, C, Y, X)`` batch at every object pixel (``pixels`` order)."""
        idx = self.pixels[0]
        plane = self.labels.shape[1] * self.labels.shape[2]
        event, offset = self.xp.divmod(idx, plane)
        base = event * (images.shape[1] * plane) + offset
        return self.xp.ascontiguousarray(images).ravel()[base + channel * plane]

    @cached_property
    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Row and column (tile coordinates) of every object pixel, in ``pixels`` order."""
        idx = self.pixels[0]
        _, y, x = self.xp.unravel_index(idx, self.labels.shape)
        return y, x
