"""Behaviour check for refactors: the tables and label images of an IFC and a FOV run, saved or compared.

Runs the command line on generated data (IFC: 600 seed-geometry events, all six feature families, an
IDEAS-style export; FOV: 3 confocal-like FOVs, one processed whole and one in chunks, with cell bodies),
then either saves every table column, X and label pyramid level under ``--save DIR`` or compares them with
a saved run (``--check DIR``): identical values and names, or a non-zero exit listing the differences.

    python benchmarks/compare_outputs.py --save /tmp/before      # on the old code
    python benchmarks/compare_outputs.py --check /tmp/before     # on the new code

Only the command line is used, so the script runs unchanged on both sides of a refactor.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

FOV_CONFIG = """\
segmentation:
  channels: [0]
  cells: {expand: 3}
features:
  families: [shape, intensity, texture, radial, colocalization]
fov:
  whole_max_pixels: 200000
"""


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "scipzarr", *args, "-q"], check=True)


def make_inputs(work: Path) -> dict[str, tuple[Path, Path]]:
    """Generate both inputs, convert and process them; returns {kind: (store, table)}."""
    import tifffile
    from scipy import ndimage as ndi
    from skimage.draw import disk

    from scipzarr.synthetic import make_events, write_ideas_export

    events, truth = make_events(600, channels=3, size=48, seed=3, noise=15.0, vary_size=6)
    write_ideas_export(work / "ifc-in", events, truth["class_label"])
    _run("convert", str(work / "ifc-in"), "-o", str(work / "ifc.zarr"), "--chunk-tiles", "8")
    _run("process", str(work / "ifc.zarr"), "-o", str(work / "ifc.h5ad"), "--features", "all")

    (work / "fov-in").mkdir()
    for f, shape in enumerate([(400, 300), (700, 500), (300, 260)]):
        rng = np.random.default_rng(f)
        img = np.zeros((3, *shape), np.uint16)
        for _ in range(60):
            r, c, rad = rng.uniform(8, shape[0] - 8), rng.uniform(8, shape[1] - 8), rng.uniform(4, 10)
            rr, cc = disk((r, c), rad, shape=shape)
            img[0, rr, cc] = 1500 + rng.integers(0, 500)
            img[1, rr, cc] = rng.integers(100, 3000)
            img[2, rr, cc] = rng.integers(100, 3000)
        img = ndi.gaussian_filter(img, (0, 1, 1)) + rng.integers(0, 80, img.shape).astype(np.uint16)
        tifffile.imwrite(work / "fov-in" / f"f{f}.ome.tif", img, ome=True, metadata={"axes": "CYX"})
    _run("convert", str(work / "fov-in"), "-o", str(work / "fov.zarr"), "--kind", "fov", "--chunk-size", "128")
    (work / "fov.yml").write_text(FOV_CONFIG)
    _run("process", str(work / "fov.zarr"), "-o", str(work / "fov.h5ad"), "-c", str(work / "fov.yml"))
    return {"ifc": (work / "ifc.zarr", work / "ifc.h5ad"), "fov": (work / "fov.zarr", work / "fov.h5ad")}


def _relative(values: np.ndarray) -> np.ndarray:
    """Text with the run's temporary folder left out."""
    pattern = re.escape(tempfile.gettempdir()) + r"/[^/;]+"
    return np.array([re.sub(pattern, "", v) for v in values.astype(str)])


def collect(store: Path, table: Path, kind: str) -> dict[str, np.ndarray]:
    """Every value to compare: X, var and obs columns, obs/var names, each label level's pixels (paths in
    text relative to the run's temporary folder)."""
    import anndata as ad
    import zarr

    t = ad.read_h5ad(table)
    out = {f"{kind}/X": np.asarray(t.X), f"{kind}/obs_names": t.obs_names.to_numpy().astype(str),
           f"{kind}/var_names": t.var_names.to_numpy().astype(str)}
    for frame, name in ((t.obs, "obs"), (t.var, "var")):
        for col in frame.columns:
            text = frame[col].dtype.kind in "OU" or str(frame[col].dtype) == "category"
            values = frame[col].to_numpy().astype(str if text else frame[col].dtype)
            out[f"{kind}/{name}/{col}"] = _relative(values) if text else values
    for label_dir in sorted(store.rglob("labels")):
        group = zarr.open_group(str(label_dir), mode="r")
        for name in group.attrs.get("ome", {}).get("labels", []):
            lg = zarr.open_group(str(label_dir / name), mode="r")
            for ds in lg.attrs["ome"]["multiscales"][0]["datasets"]:
                rel = (label_dir / name / ds["path"]).relative_to(store)
                out[f"{kind}/labels/{rel}"] = np.asarray(zarr.open_array(str(label_dir / name / ds["path"]),
                                                                         mode="r")[:])
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--save", metavar="DIR", help="save this code's outputs")
    g.add_argument("--check", metavar="DIR", help="compare this code's outputs with the saved ones")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = make_inputs(Path(tmp))
        values = {}
        for kind, (store, table) in runs.items():
            values |= collect(store, table, kind)
    if args.save:
        Path(args.save).mkdir(parents=True, exist_ok=True)
        np.savez_compressed(Path(args.save) / "outputs.npz", **values)
        print(f"saved {len(values)} arrays to {args.save}/outputs.npz")
        return 0
    with np.load(Path(args.check) / "outputs.npz", allow_pickle=False) as saved:
        old = {k: saved[k] for k in saved.files}
    problems = [f"missing now: {k}" for k in sorted(set(old) - set(values))]
    problems += [f"new: {k}" for k in sorted(set(values) - set(old))]
    for k in sorted(set(old) & set(values)):
        a, b = old[k], values[k]
        if a.dtype.kind == "U":
            a, b = _relative(a), _relative(b)
        if a.shape != b.shape or a.dtype != b.dtype or not np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
            problems.append(f"differs: {k} ({a.dtype}{a.shape} vs {b.dtype}{b.shape})")
    for line in problems:
        print(line)
    n = len(set(old) & set(values))
    print(f"{n} arrays compared, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
