"""Cell-cycle phase from the feature table: 5-fold cross-validated balanced accuracy on real Jurkat cells.

The 217 Jurkat training cells of ``../shared/data/ifc_jurkat_cellcycle/single_cells`` (ImageStream, 40 x 40
px, Ch3 brightfield, Ch4 DNA, Ch6 darkfield; 7 phases sorted by hand) are converted once and measured three
ways; a logistic regression (standardized features, balanced class weights, C = 0.1) is scored by stratified
5-fold cross-validation, averaged over 5 shuffles of the folds (the same folds for all three):

* ``default``: ``scipzarr process`` with the default config (background-referenced masks, cell mask from the
  brightfield channels, intensity also in each channel's own mask);
* ``old_default``: the default before issue #17 (per-event Otsu on channel 0, all objects, the intensity
  family's location columns; the largest object of an event stands for its cell);
* ``handmade``: 10 features computed here from the pixels alone (DNA content and peak, spread of the DNA,
  brightfield contrast and darkfield signal), the kind an analyst writes in an afternoon.

Usage: ``python benchmarks/jurkat_cv.py [--json] [--families shape,intensity]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "ifc_jurkat_cellcycle" / "single_cells"
OLD_DEFAULT = {"segmentation": {"channels": [0], "threshold": {"method": "otsu"}, "keep": "all"},
               "features": {"intensity": {"locations": True}}}


def one_row_per_event(table):
    """Rows of the largest object of each event (events without objects: NaN rows), in event order."""
    import pandas as pd

    df = table.to_df()
    df["event_index"] = table.obs["event_index"].to_numpy()
    area = df["shape_area"] if "shape_area" in df else pd.Series(0, index=df.index)
    df = df.assign(_area=area).sort_values(["event_index", "_area"], ascending=[True, False])
    df = df.drop_duplicates("event_index").set_index("event_index").drop(columns="_area")
    return df.reindex(range(int(table.uns["scipzarr"]["events"])))


def handmade(store: Path) -> np.ndarray:
    """10 features per event from the raw pixels: for DNA, background-subtracted sum, max, the area above
    half its maximum and the spread (radius of gyration) of the DNA signal; for brightfield, the standard
    deviation and the range; for darkfield, background-subtracted sum and max; the DNA sum over the
    brightfield contrast; and the DNA peak over its sum."""
    from scipzarr.store import open_store

    st = open_store(store)
    m = st.mosaic
    img = np.asarray(st.image()).astype(np.float64)
    th, tw = m.tile
    rows, cols = m.tile_position(np.arange(m.n_events))
    ch = {name: st.channel_index(name) for name in st.channel_names}
    out = []
    yy, xx = np.mgrid[0:th, 0:tw]
    for r, c in zip(rows, cols):
        ev = img[:, r * th:(r + 1) * th, c * tw:(c + 1) * tw]
        dna = ev[ch["Ch4"]] - np.median(ev[ch["Ch4"]])
        bf, df = ev[ch["Ch3"]], ev[ch["Ch6"]] - np.median(ev[ch["Ch6"]])
        pos = np.clip(dna, 0, None)
        total = pos.sum() + 1e-9
        cy, cx = (pos * yy).sum() / total, (pos * xx).sum() / total
        gyr = np.sqrt((pos * ((yy - cy) ** 2 + (xx - cx) ** 2)).sum() / total)
        out.append([total, dna.max(), (dna > dna.max() / 2).sum(), gyr, bf.std(), np.ptp(bf),
                    np.abs(df).sum(), np.abs(df).max(), total / (bf.std() + 1e-9), dna.max() / total])
    return np.asarray(out)


#: fold assignments scored (one split's score moves by +-0.04 on 217 cells: the mean over several is reported)
SPLITS = 5


def cv_score(X: np.ndarray, y: np.ndarray, seed: int | None = None) -> float:
    """Mean balanced accuracy of 5-fold stratified cross-validation of a logistic regression: over
    :data:`SPLITS` shuffles of the folds (seeds 0..), or of the one split ``seed``."""
    if seed is None:
        return float(np.mean([cv_score(X, y, s) for s in range(SPLITS)]))
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.where(np.isfinite(X), X, np.nan)
    X = X[:, ~np.all(np.isnan(X), axis=0)]
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                          LogisticRegression(max_iter=5000, class_weight="balanced", C=0.1))
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    return float(cross_val_score(model, X, y, cv=folds, scoring="balanced_accuracy").mean())


def evaluate(families: str = "shape,intensity", data: Path = DATA) -> dict:
    import scipzarr
    from scipzarr.config import resolve_config
    from scipzarr.pipeline import process
    from scipzarr.store import open_store

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "jurkat.zarr"
        scipzarr.convert([data], store, progress=False)
        y = open_store(store).events["class_label"].to_numpy()
        fams = families.split(",")
        out, seconds = {}, {}
        for name, cfg in (("default", {}), ("old_default", OLD_DEFAULT)):
            t0 = time.perf_counter()
            feats = cfg.get("features", {}) | {"families": fams}
            table = process(store, resolve_config(cfg | {"features": feats}), progress=False)
            seconds[name] = time.perf_counter() - t0
            rows = one_row_per_event(table)
            out[name] = {"balanced_accuracy": cv_score(rows.to_numpy(np.float64), y), "features": rows.shape[1],
                         "events_without_objects": int(table.uns["scipzarr"]["events_without_objects"]),
                         "objects_filling_event": int((table.obs["mask_qc"] == "fills_event").sum()),
                         "seconds": round(seconds[name], 2)}
        hm = handmade(store)
        out["handmade"] = {"balanced_accuracy": cv_score(hm, y), "features": hm.shape[1]}
    return {"cells": int(len(y)), "classes": int(len(set(y))), "families": families, **out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--families", default="shape,intensity")
    args = ap.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA}: not found (the shared Jurkat data); nothing to measure", file=sys.stderr)
        return 2
    res = evaluate(args.families)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"{res['cells']} Jurkat cells, {res['classes']} phases, families {res['families']}: 5-fold balanced accuracy")
    for name in ("default", "old_default", "handmade"):
        r = res[name]
        extra = "" if name == "handmade" else (f"  ({r['events_without_objects']} events without objects, "
                                               f"{r['objects_filling_event']} objects filling their event)")
        print(f"  {name:12s} {r['balanced_accuracy']:.3f}  {r['features']:4d} features{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
