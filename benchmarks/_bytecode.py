"""Bytecode for the commands a benchmark times, as a user's install has it.

Installing a wheel writes every module's bytecode, and an editable install writes it on first import. Where
``PYTHONDONTWRITEBYTECODE`` is set (this project's sandboxes set it), every ``scipzarr`` command compiled the
package's sources again: ~0.06-0.1 s of a ``convert`` and ~0.2 s of a ``process`` that a user does not pay
(all 64 modules: 0.18-0.24 s on a 2-core machine). Benchmarks that time commands call :func:`byte_compile` first.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def byte_compile() -> None:
    """Write the bytecode of scipzarr and its converters where it is missing or stale (as pip does)."""
    import scipzarr
    import scipzarr.converters

    for package in (scipzarr, scipzarr.converters):
        compileall.compile_dir(str(Path(package.__file__).parent), quiet=1)
