"""docs/features.md, generated from the feature registry: ``python -m scipzarr.features.reference``.

Every column, its definition and CellProfiler name come from the family
modules, so the reference cannot drift from the code (a test compares the
file with this output).
"""

from __future__ import annotations

import json

from . import FAMILIES

HEADER = """# Feature reference

Generated from the code by `python -m scipzarr.features.reference > docs/features.md`
(a test checks that this file is current). Select families with `features.families` in the config
([config.md](config.md)) or `scipzarr process --features all|FAMILY,...`.

## Naming

`<family>_<feature>` for the mask alone (shape), `<family>_<feature>_<channel>` for per-channel
families, `colocalization_<feature>_<channel1>_<channel2>` for each pair of measured channels
(first channel before second in the store's order). Parameters that define a value are part of the
feature name where CellProfiler puts them there (texture distance and direction, radial ring of
bins, granularity step, Zernike n and m), and every var row of the table carries them in
`parameters` next to `family`, `feature`, `channel`, `channel2`, `definition` and
`cellprofiler_name` (the name `scipzarr export` writes; `<ch>` below stands for the channel name).

Units: pixels for lengths and coordinates (relative to the event's own image, so padding never
changes them), the store's pixel values for intensities (after the configured normalization).

## Exactness

Every feature that CellProfiler's measurements compute (as the `cp_measure` package computes
them) is equal to them within 1e-6 relative, on generated objects and on real images from
`../shared/data` (`tests/test_feature_parity.py`); shape features also equal
`skimage.measure.regionprops` (`tests/test_shape_features.py`). Deliberate differences:

- **Orientation** is in radians in (-pi/2, pi/2], as scikit-image; CellProfiler reports degrees, and
  +90 or -90 for the same horizontal object depending on the sign of a rounding zero.
- **Zernike shape moments**: pixels on the minimum enclosing circle always count (r^2 <= 1 with a
  1e-9 tolerance). CellProfiler's circle passes through such pixels, and whether it keeps them
  depends on floating-point rounding in its circle code (on the generated test objects about one
  object in four differs in some moments). The parity test compares with cp_measure given the
  same rule.
- **Feret diameters** follow CellProfiler (the hull of the pixel centres); scikit-image's
  `feret_diameter_max` uses the hull of the pixel corners and is larger by up to one pixel diagonal.
- **Normalized moments** with p + q < 2 are not reported: they are NaN by definition in
  CellProfiler and scikit-image.
- **Form factor** is NaN when the perimeter is 0 (one-pixel objects); CellProfiler reports inf.
- **Intensities** are the store's values: CellProfiler divides integer images by their type's
  maximum (65535 for uint16) when it loads them, so intensity sums, means, quantiles and edge
  values differ from CellProfiler's by that constant factor on raw integer data (equal on [0, 1]
  float data). Texture quantization and colocalization apply CellProfiler's scaling themselves,
  so they equal CellProfiler on raw data too; float images are clipped to [0, 1] there, and
  Costes' threshold search uses a 65535-step grid for float images (the type's maximum for integers).
- **Not computed**: `PerimeterCrofton` (a cp_measure addition, not in CellProfiler), the 3-D only
  measurements (`*_Z`), and the optional intensity-weighted Zernike moments of
  MeasureObjectIntensityDistribution.
- **Granularity** is measured on each event's own image (CellProfiler measures the whole image
  and attributes it to objects): for IFC an event is the image, so this is the same as running
  CellProfiler on each event.

## Undefined values (NaN)

Values are NaN only where the definition has no value; nothing raises on small, flat or empty
input (`tests/test_feature_robustness.py`):

- texture: every value of an object at a distance where it has no pixel pair (both grey levels
  non-zero) in some direction, e.g. objects thinner than the distance;
- Zernike: one-pixel objects (enclosing circle of radius 0);
- form factor: perimeter 0;
- intensity centre of mass: objects with intensity sum 0;
- radial: FracAtD and MeanFrac when the object's intensity sum is 0, RadialCV when a ring's mean is 0;
- colocalization: correlation and slope when a channel is constant in the object (or it has one
  pixel), Manders/overlap/K/RWC when the thresholded sums are 0, Costes when its regression is
  undefined (fewer than 3 non-zero pixels, a constant channel, no non-negative background correlation);
- granularity: events smaller than 2 pixels after subsampling.

Events without objects have no rows (they are counted in the table's metadata).
"""


def _family_section(name: str) -> str:
    fam = FAMILIES[name]
    params = FAMILIES[name].defaults
    scope = {"object": "the mask (one set per object)", "channel": "each measured channel",
             "pair": "each pair of measured channels"}[fam.scope]
    lines = [f"## {name}", "", f"{fam.summary[0].upper()}{fam.summary[1:]}; measured on {scope}."]
    if params:
        settings = ", ".join(f"`{k}: {json.dumps(v)}`" for k, v in params.items())  # as the YAML config writes them
        lines += ["", f"Settings (`features.{name}`, defaults): {settings}."]
    target = {"object": "", "channel": "_<ch>", "pair": "_<ch1>_<ch2>"}[fam.scope]
    fill = {"ch": "<ch>", "ch1": "<ch1>", "ch2": "<ch2>"}
    lines += ["", "| column | definition | CellProfiler |", "|---|---|---|"]
    default = {col.feature for col in fam.columns(params)}
    switches = [k for k, v in params.items() if v is False]  # columns that a setting switched on adds
    everything = fam.columns(params | {k: True for k in switches})
    for col in everything:
        definition = col.definition.replace("|", "\\|")
        if col.feature not in default:
            definition += " (only with " + " or ".join(f"`{k}: true`" for k in switches) + ")"
        lines.append(f"| `{name}_{col.feature}{target}` | {definition} | `{col.cellprofiler.format(**fill)}` |")
    per = "" if fam.scope == "object" else f" per {'channel' if fam.scope == 'channel' else 'pair'}"
    extra = f" ({len(everything)} with {', '.join(f'`{k}: true`' for k in switches)})" if len(everything) > len(default) else ""
    lines += ["", f"{len(default)} columns{per}{extra}."]
    return "\n".join(lines)


def render() -> str:
    """The whole of docs/features.md."""
    return HEADER + "\n" + "\n\n".join(_family_section(name) for name in FAMILIES) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render(), end="")
