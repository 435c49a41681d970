"""Shards of one job (``process --shard I/N``): which chunks or FOVs each processes."""

from __future__ import annotations

from ..errors import ScipzarrError


def parse_shard(shard: str | None) -> tuple[int, int] | None:
    """``"I/N"`` as ``(I, N)``, checked; None stays None."""
    if shard is None:
        return None
    try:
        i, n = (int(v) for v in str(shard).split("/"))
    except ValueError:
        raise ScipzarrError(f"--shard {shard}: give I/N, e.g. 0/4 for the first of 4 shards") from None
    if n < 1 or not 0 <= i < n:
        raise ScipzarrError(f"--shard {shard}: I must be 0..N-1 (shards are numbered from 0), e.g. 0/{max(n, 1)}")
    return i, n


def owns(shard: tuple[int, int] | None, index: int) -> bool:
    """Whether shard ``(i, n)`` processes chunk or FOV ``index``: every n-th from i (None: all)."""
    return shard is None or index % shard[1] == shard[0]
