"""Processing configuration: defaults, YAML loading and JSON Schema validation.

The schema lives in ``schemas/config.schema.json``, completed from the
feature family registry (the family choices and each family's parameters and
defaults are declared in its module); this module merges the user's file onto
the defaults and turns schema violations into one readable line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from .errors import ScipzarrError
from .features import FAMILIES
from .schema import extend, validate_document

DEFAULT_CONFIG: dict[str, Any] = {
    "normalize": {"method": "none", "scope": "dataset", "low": 1.0, "high": 99.0},
    "segmentation": {
        "source": "threshold",
        "channels": "auto",
        "smoothing_sigma": 1.0,
        "threshold": {"method": "auto", "scope": "event", "value": None, "k": 5.0, "fraction": 0.1, "direction": "auto"},
        "fill_holes": True,
        "min_size": 10,
        "keep": "auto",
        "split": {"method": "auto", "min_distance": 7},
        "plugin": {"name": None, "overlap": 32, "options": {}},
        "cells": {"expand": 0},
    },
    "features": {
        "families": ["shape", "intensity"],
        "channels": None,
        "masks": None,
        **{name: copy.deepcopy(fam.defaults) for name, fam in FAMILIES.items() if fam.defaults},
    },
    "labels": {"name": "cells", "write": True},
    "fov": {"whole_max_pixels": 4194304},
}


def _with_families(schema: dict) -> dict:
    """The shipped config schema completed from the registry: the family choices and each family's
    parameters (``features.<family>``)."""
    schema = copy.deepcopy(schema)
    feats = schema["properties"]["features"]["properties"]
    feats["families"]["items"] = {"enum": ["all", *FAMILIES]}
    for name, fam in FAMILIES.items():
        feats[name] = {"type": "object", "additionalProperties": False, "properties": fam.parameters,
                       "description": fam.summary}
    return schema


extend("config", _with_families)


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve_config(user: dict | None = None, source: str = "config") -> dict:
    """Validate a user config (may be partial) and merge it onto the defaults."""
    user = {} if user is None else user
    validate_document(user, "config", source)
    config = _merge(DEFAULT_CONFIG, user)
    validate_document(config, "config", source)
    norm = config["normalize"]
    if norm["low"] >= norm["high"]:
        raise ScipzarrError(f"{source}: normalize.low ({norm['low']}) must be below normalize.high ({norm['high']})")
    thr = config["segmentation"]["threshold"]
    if thr["method"] == "fixed" and thr["value"] is None:
        raise ScipzarrError(f"{source}: segmentation.threshold.method is 'fixed' but segmentation.threshold.value is not set; give a number")
    return config


def load_config(path: str | Path | None) -> dict:
    """Read, validate and complete a YAML config file (``None``: the defaults)."""
    if path is None:
        return resolve_config({})
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScipzarrError(f"{path}: cannot read config ({exc.strerror}); check the path") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScipzarrError(f"{path}: YAML syntax error{where}: {problem}; fix the file") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ScipzarrError(f"{path}: the config must be a YAML mapping, got {type(doc).__name__}")
    return resolve_config(doc, source=str(path))


def dump_config(config: dict) -> str:
    """The config as YAML text (what ``scipzarr config`` prints)."""
    return yaml.safe_dump(config, sort_keys=False)
