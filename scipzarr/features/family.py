"""What a feature family declares once: its name, scope, columns, measurement, defaults and parameters.

The registry (:data:`scipzarr.features.FAMILIES`), the config's defaults and
JSON Schema (``features.<family>`` and the ``features.families`` choices) and
the command line's help are all made from these declarations: adding a
family is adding one module (docs/architecture.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .column import Column

_NAMES: dict[tuple[str, str], tuple[str, ...]] = {}


@dataclass(frozen=True)
class Family:
    name: str
    scope: str  # "object", "channel" or "pair"
    columns: Callable[[dict], list[Column]]
    measure: Callable[..., dict[str, np.ndarray]]
    summary: str
    device: bool = False  # written for numpy and cupy: runs on the GPU with device="gpu"
    defaults: dict = field(default_factory=dict)  # the config's features.<name>
    parameters: dict = field(default_factory=dict)  # JSON Schema properties of features.<name>

    def feature_names(self, params: dict) -> tuple[str, ...]:
        """The ``feature`` of each of ``columns(params)``, in order; remembered per parameters (the measuring
        code asks once per block: texture's 104 columns took ~5 ms a chunk to rebuild)."""
        key = (self.name, json.dumps(params, sort_keys=True, default=str))
        if key not in _NAMES:
            _NAMES[key] = tuple(c.feature for c in self.columns(params))
        return _NAMES[key]
