"""The JSON Schemas shipped in ``schemas/`` (config, store metadata, feature table) and one-line validation.

The config schema's list of feature families is completed from the family
registry by :mod:`scipzarr.config`; everything else is read as shipped.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema

from .errors import ScipzarrError

_EXTENSIONS: dict[str, Any] = {}


def extend(name: str, patch) -> None:
    """Register ``patch(schema) -> schema`` to complete a shipped schema when it is loaded."""
    _EXTENSIONS[name] = patch
    load_schema.cache_clear()


@cache
def load_schema(name: str) -> dict:
    """Return a JSON Schema shipped in ``scipzarr.schemas`` (e.g. ``"config"``)."""
    text = files("scipzarr.schemas").joinpath(f"{name}.schema.json").read_text()
    doc = json.loads(text)
    return _EXTENSIONS[name](doc) if name in _EXTENSIONS else doc


def _error_line(err: jsonschema.ValidationError, source: str) -> str:
    path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
    if err.validator == "additionalProperties":
        allowed = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        where = ".".join([*map(str, err.absolute_path), extra[0]]) if extra else path
        return (f"{source}: unknown key '{where}'; allowed here: {', '.join(allowed)}")
    return f"{source}: invalid value at '{path}': {err.message}"


def validate_document(doc: Any, schema_name: str, source: str) -> None:
    """Validate ``doc`` against a shipped schema; raise one-line ScipzarrError."""
    validator = jsonschema.Draft202012Validator(load_schema(schema_name))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        raise ScipzarrError(_error_line(errors[0], source))


