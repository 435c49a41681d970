"""Resumable runs, one implementation for ``convert`` and ``process`` of both store kinds.

A run's work folder (``.<output>.scipzarr-work`` beside its output) holds a
manifest and one result file per finished chunk or FOV.

A run records what it is (package version, config hash, input fingerprint) in
``manifest.json`` and every finished chunk as its own file, written aside and
renamed into place, so a ``kill -9`` at any moment leaves only whole chunks.
``--resume`` checks the manifest and computes only the chunks that are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import atomic
from ._version import __version__
from .errors import ScipzarrError

MANIFEST = "manifest.json"


def work_path(output: Path) -> Path:
    """The clearly named, deterministic work folder of an output."""
    output = Path(output)
    return output.with_name(f".{output.name}.scipzarr-work")


def config_hash(doc) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def fingerprint(paths: list[Path]) -> str:
    """Names, sizes and modification times of every file under ``paths`` (cheap, no reads; strings and
    ``os.walk``, not pathlib: an IDEAS export holds tens of thousands of files)."""
    h = hashlib.sha256()
    stat = os.stat
    for root in paths:
        root = str(Path(root))
        if os.path.isfile(root):
            files = [root]
        else:
            files = []
            for folder, dirs, names in os.walk(root):
                dirs[:] = [d for d in dirs if d != "labels" and not _ours(d)]  # label images inside the input
                prefix = os.path.join(folder, "")  # joined by hand: os.path.join per file was a third of the time
                files += [prefix + n for n in names if not _ours(n)]
            files.sort()
        lines = []
        for f in files:
            st = stat(f)
            lines.append(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n")
        h.update("".join(lines).encode())  # the same digest as one update per file
    return h.hexdigest()[:16]


def _ours(name: str) -> bool:
    """Our own work folders and scratch arrays inside an input do not change the input."""
    return ".scipzarr-work" in name or (name.startswith(".") and name.endswith("-scratch"))


def check_manifest(manifest: Path, identity: dict) -> None:
    """Refuse to resume when anything in ``identity`` differs from the interrupted run's manifest."""
    work = manifest.parent
    try:
        old = json.loads(manifest.read_text())
    except (OSError, ValueError):
        raise ScipzarrError(f"{work}: the interrupted run has no readable manifest; remove the folder and rerun "
                            "without --resume") from None
    for key, value in identity.items():
        if old.get(key) != value:
            what = {"config": "the config", "input": "the input", "options": "the options",
                    "scipzarr_version": "the scipzarr version"}.get(key, key)
            raise ScipzarrError(
                f"{work}: cannot resume: {what} changed since the interrupted run "
                f"({old.get(key)!r} -> {value!r}); rerun without --resume to start over"
            )


@dataclass(frozen=True)
class Stored:
    """One array of a saved chunk, left on disk until :meth:`load` (the chunks' feature rows are read one
    chunk at a time into the table, not all held at once)."""

    path: Path
    key: str

    def load(self) -> np.ndarray:
        with np.load(self.path, allow_pickle=False) as data:
            return data[self.key]


class Work:
    """The work folder of one run: manifest, per-chunk results, named statistics."""

    def __init__(self, path: Path, identity: dict, *, resume: bool, say=None):
        self.path = Path(path)
        self.identity = {"scipzarr_version": __version__, **identity}
        if self.path.exists():
            if resume:
                self._check()
            else:
                if say:
                    say(f"scipzarr: note: discarding an interrupted run's work in {self.path} (pass --resume to continue it)")
                atomic.remove(self.path)
        elif resume and say:
            say(f"scipzarr: note: nothing to resume at {self.path}; starting from the beginning")
        (self.path / "chunks").mkdir(parents=True, exist_ok=True)
        if not (self.path / MANIFEST).exists():
            self._write_json(self.path / MANIFEST, self.identity)

    def key(self, name: str) -> str:
        """A short stable token of one identity entry (names scratch data that belongs to this run)."""
        return config_hash(self.identity[name])[:10]

    def _check(self) -> None:
        check_manifest(self.path / MANIFEST, self.identity)

    @staticmethod
    def _write_json(path: Path, doc) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(doc, default=str))
        os.replace(tmp, path)

    @property
    def output(self) -> Path:
        """Where a convert writes its store before moving it into place."""
        return self.path / "output"

    def chunk_file(self, block: int) -> Path:
        return self.path / "chunks" / f"{block:07d}.npz"

    def done(self, block: int) -> bool:
        return self.chunk_file(block).exists()

    def mark(self, block: int) -> None:
        """Record chunk or FOV ``block`` as finished (no result to keep)."""
        self.save_chunk(block, {})

    def save_chunk(self, block: int, arrays: dict[str, np.ndarray]) -> None:
        path = self.chunk_file(block)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)

    def load_chunk(self, block: int, *, stored: tuple[str, ...] = ()) -> dict:
        """A saved chunk's arrays; those named in ``stored`` stay on disk as :class:`Stored` references."""
        with np.load(self.chunk_file(block), allow_pickle=False) as data:
            return {k: Stored(self.chunk_file(block), k) if k in stored else data[k] for k in data.files}

    def n_done(self) -> int:
        return sum(1 for p in (self.path / "chunks").glob("*.npz") if not p.name.endswith(".tmp.npz"))

    def stat(self, name: str, compute):
        """A data-set statistic, computed once per run and kept for a resume."""
        path = self.path / f"{name}.json"
        if path.exists():
            return _decode(json.loads(path.read_text()))
        value = compute()
        self._write_json(path, _encode(value))
        return value

    def close(self) -> None:
        atomic.remove(self.path)


def _encode(value):
    if isinstance(value, np.ndarray):
        return {"ndarray": value.tolist(), "dtype": value.dtype.str}
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}
    return {"value": value}


def _decode(doc):
    if "ndarray" in doc:
        return np.asarray(doc["ndarray"], dtype=doc["dtype"])
    if "float" in doc:
        return float(doc["float"])
    return doc["value"]
