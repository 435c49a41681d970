"""Atomic outputs: write aside under a clearly named work path, then move into place."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path

from .errors import ScipzarrError


def check_output(path: Path, overwrite: bool, inputs: list[Path] = ()) -> None:
    """Refuse an existing output (without overwrite) or an output inside an input."""
    path = Path(path)
    resolved = path.resolve()
    for inp in inputs:
        inp = Path(inp).resolve()
        if resolved == inp or inp in resolved.parents:
            raise ScipzarrError(f"{path}: the output lies inside the input {inp}; choose an output path outside it")
    if path.exists() and not overwrite:
        raise ScipzarrError(f"{path}: output exists; pass --overwrite to replace it or choose another path")
    parent = resolved.parent
    if not parent.exists():
        raise ScipzarrError(f"{path}: the folder {parent} does not exist; create it first")
    try:  # os.access says yes to root everywhere: really try to write there
        fd, probe = tempfile.mkstemp(prefix=".scipzarr-probe-", dir=parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ScipzarrError(f"{path}: the folder {parent} is not writable ({exc.strerror}); "
                            "choose another output location") from None


@contextmanager
def atomic_path(path: Path, work: Path | None = None):
    """Yield a work path beside ``path``; move it into place only on success.

    An interrupted or failed write leaves nothing at ``path``: the work folder
    (``.<name>.scipzarr-work-<id>``, or the given ``work``) is removed on
    errors, except on Ctrl-C when a fixed ``work`` path is given (it can be
    resumed); a killed process leaves only that clearly named folder behind.
    """
    path = Path(path)
    keep_on_interrupt = work is not None
    work = Path(work) if work is not None else path.with_name(f".{path.name}.scipzarr-work-{uuid.uuid4().hex[:8]}")
    try:
        yield work
        if path.exists():
            old = path.with_name(f".{path.name}.scipzarr-old-{uuid.uuid4().hex[:8]}")
            os.replace(path, old)
            os.replace(work, path)
            remove(old)
        else:
            os.replace(work, path)
    except KeyboardInterrupt:
        if not keep_on_interrupt:
            remove(work)
        raise
    except BaseException:
        remove(work)
        raise


def remove(path: Path) -> None:
    """Remove a file or folder if it exists."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
