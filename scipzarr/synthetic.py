"""Synthetic imaging flow cytometry events with known ground truth.

Used by ``scipzarr demo``, the tests and the benchmarks. Each event holds one
cell: an ellipse (the nucleus, bright in channel 0) inside a larger ellipse
(the cell body, channel 1), on a flat or noisy background; further channels
carry textures. The drawn masks are returned, so areas and intensities are
known exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from skimage.draw import ellipse

CLASSES = ("round", "elongated")


def make_events(n: int, channels: int = 3, size: int | tuple[int, int] = 48, *, seed: int = 0,
                noise: float = 0.0, vary_size: int = 0, dtype=np.uint16):
    """Generate ``n`` events.

    Parameters
    ----------
    n, channels : int
        Number of events and channels (>= 1).
    size : int or (int, int)
        Event height and width (the largest, when ``vary_size`` > 0).
    seed : int
        Random seed; the same seed gives the same events.
    noise : float
        Standard deviation of Gaussian noise added to every channel.
    vary_size : int
        Events are cropped by up to this many pixels per axis (IFC events
        differ in size).

    Returns
    -------
    events : list of (C, h, w) arrays
    truth : dict
        ``nucleus`` and ``cell`` lists of boolean masks, ``class_label`` list.
    """
    rng = np.random.default_rng(seed)
    h0, w0 = (size, size) if isinstance(size, int) else size
    events, nuclei, cells, classes = [], [], [], []
    for _ in range(n):
        h = h0 - (int(rng.integers(0, vary_size + 1)) if vary_size else 0)
        w = w0 - (int(rng.integers(0, vary_size + 1)) if vary_size else 0)
        cls = int(rng.integers(0, len(CLASSES)))
        r = min(h, w) / 2
        ry = r * rng.uniform(0.25, 0.35)
        rx = ry * (rng.uniform(0.9, 1.1) if cls == 0 else rng.uniform(1.4, 1.8))
        rx = min(rx, r * 0.6)
        cy = h / 2 + rng.uniform(-2, 2)
        cx = w / 2 + rng.uniform(-2, 2)
        rot = rng.uniform(-np.pi, np.pi)
        nuc = np.zeros((h, w), bool)
        nuc[ellipse(cy, cx, ry, rx, (h, w), rotation=rot)] = True
        cell = np.zeros((h, w), bool)
        cell[ellipse(cy, cx, ry * 1.5, rx * 1.4, (h, w), rotation=rot)] = True
        cell |= nuc
        img = np.zeros((channels, h, w), np.float64)
        img[0] = 100 + 900 * nuc
        if channels > 1:
            img[1] = 100 + 400 * cell
        yy, xx = np.mgrid[:h, :w]
        for c in range(2, channels):
            freq = 0.3 + 0.2 * c
            img[c] = 100 + 300 * cell * (1 + np.sin(freq * yy + c) * np.cos(freq * xx)) / 2
        if noise:
            img += rng.normal(0, noise, img.shape)
        info = np.iinfo(dtype) if np.dtype(dtype).kind in "iu" else None
        if info is not None:
            img = np.clip(np.round(img), info.min, info.max)
        events.append(img.astype(dtype))
        nuclei.append(nuc)
        cells.append(cell)
        classes.append(CLASSES[cls])
    return events, {"nucleus": nuclei, "cell": cells, "class_label": classes}


def write_ideas_export(folder: Path, events, classes, channel_numbers=None) -> list[Path]:
    """Write events as an IDEAS-style export: ``<class>/<id>_Ch<k>.ome.tif``."""
    import tifffile

    folder = Path(folder)
    written = []
    for i, (img, cls) in enumerate(zip(events, classes)):
        sub = folder / cls
        sub.mkdir(parents=True, exist_ok=True)
        numbers = channel_numbers or range(1, img.shape[0] + 1)
        for c, k in enumerate(numbers):
            path = sub / f"demo_{i:05d}_Ch{k}.ome.tif"
            tifffile.imwrite(path, img[c], photometric="minisblack")
            written.append(path)
    return written
