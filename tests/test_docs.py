"""The docs cover every CLI option and every config key (they are written by hand; this keeps them honest)."""

from pathlib import Path

from scipzarr.cli import _parser
from scipzarr.config import DEFAULT_CONFIG  # noqa: F401 - completes the config schema
from scipzarr.schema import load_schema

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _keys(schema, prefix=""):
    for key, sub in schema.get("properties", {}).items():
        yield key
        yield from _keys(sub, f"{prefix}{key}.")


def test_cli_reference_lists_every_command_and_option():
    text = (DOCS / "cli.md").read_text()
    parser = _parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, cmd in sub.choices.items():
        assert f"`scipzarr {name}" in text, name
        for action in cmd._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt not in ("--help", "--quiet", "--debug"):
                    assert opt in text, (name, opt)


def test_config_reference_lists_every_key():
    text = (DOCS / "config.md").read_text()
    for key in _keys(load_schema("config")):
        assert f"`{key}`" in text or f"{key}:" in text, key
