from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SCIPZARR_SHARED_DATA", REPO.parent / "shared" / "data"))
JURKAT = SHARED_DATA / "ifc_jurkat_cellcycle"


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not present: {path}")
    return path


@pytest.fixture
def jurkat() -> Path:
    return need(JURKAT)


def tree_digest(path: Path) -> str:
    """Checksum of every file under ``path`` (names, sizes, bytes, modes)."""
    h = hashlib.sha256()
    for p in sorted(Path(path).rglob("*")) if Path(path).is_dir() else [Path(path)]:
        h.update(str(p).encode())
        if p.is_file():
            h.update(p.read_bytes())
            h.update(str(p.stat().st_mode).encode())
    return h.hexdigest()


def flat_events(n: int, size: int = 40, channels: int = 2, seed: int = 0):
    """Events with one flat ellipse each on a zero background: exact ground truth."""
    from skimage.draw import ellipse

    rng = np.random.default_rng(seed)
    events, masks = [], []
    for _ in range(n):
        m = np.zeros((size, size), bool)
        ry, rx = rng.uniform(4, size / 4), rng.uniform(4, size / 4)
        m[ellipse(size / 2 + rng.uniform(-3, 3), size / 2 + rng.uniform(-3, 3), ry, rx, m.shape,
                  rotation=rng.uniform(0, np.pi))] = True
        img = np.zeros((channels, size, size), np.uint16)
        img[0][m] = 1000
        for c in range(1, channels):
            img[c] = rng.integers(0, 500, (size, size)) * m
        events.append(img)
        masks.append(m)
    return np.stack(events), np.stack(masks)
