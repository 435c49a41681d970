"""One output column of a feature family: its name part, definition and CellProfiler name."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """A feature column before the channel is attached.

    ``feature`` is the key in the family's result and the middle of the column
    name (``<family>_<feature>[_<channel>[_<channel2>]]``); ``cellprofiler`` is
    CellProfiler's measurement name, a template with ``{ch}`` / ``{ch1}`` /
    ``{ch2}`` where a channel goes; ``parameters`` records the settings that
    define the value (``distance=3 direction=0 levels=256``).
    """

    feature: str
    definition: str
    cellprofiler: str
    parameters: str = ""
