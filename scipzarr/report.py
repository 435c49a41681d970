"""``scipzarr report``: one self-contained HTML file for quality control.

Everything is embedded (PNG figures as data URIs, no external files or
scripts): the run's numbers and provenance, per-channel intensity
histograms, objects per event, distributions of key features, a PCA of the
features coloured by class, and galleries of events with their segmentation
outlines (random picks and the extremes of key features).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import atomic
from .errors import ScipzarrError

KEY_FEATURES = ["shape_area", "shape_eccentricity", "shape_solidity", "shape_perimeter"]
GALLERY_RANDOM = 24
GALLERY_EXTREMES = 6


def mask_rows(obs) -> list[tuple[str, str]]:
    """Summary rows on the masks (IFC tables): objects whose mask fills their event (a failed mask) and
    events whose cell mask had more than one piece (the largest was kept)."""
    rows = []
    if "mask_qc" in obs:
        n = int((obs["mask_qc"] == "fills_event").sum())
        rows.append(("objects filling their event (mask_qc)", f"{n} ({100 * n / max(len(obs), 1):.1f} %)"))
    if "mask_parts" in obs:
        several = obs.drop_duplicates("event_index")["mask_parts"] > 1
        rows.append(("events with several mask pieces (largest kept)", int(several.sum())))
    return rows


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure(width=6.0, height=3.2):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def _classes(adata) -> pd.Series:
    return adata.obs["class_label"].astype(str) if "class_label" in adata.obs else pd.Series([""] * adata.n_obs)


def intensity_histograms(st, max_pixels: int = 2_000_000) -> str:
    """Histograms of real (unpadded) pixels per channel, from a sample of chunks."""
    from .kernels.batch import valid_mask

    m = st.mosaic
    fig, ax = _figure()
    rng = np.random.default_rng(0)
    blocks = rng.permutation(m.n_blocks)[: max(1, max_pixels // int(np.prod(m.chunk_shape[1:])))]
    values = [[] for _ in st.channel_names]
    for b in sorted(blocks):
        batch = m.to_batch(np.asarray(st.image(0).blocks[0, b // m.chunk_grid[1], b % m.chunk_grid[1]]))
        ev = st.events.iloc[m.block_events(b).start:m.block_events(b).stop]
        n = len(ev)
        valid = valid_mask(m.tile, ev["valid_y0"], ev["valid_x0"], ev["valid_height"], ev["valid_width"])
        for c in range(len(values)):
            values[c].append(batch[:n, c][valid])
    for c, name in enumerate(st.channel_names):
        v = np.concatenate(values[c]) if values[c] else np.zeros(0)
        if v.size:
            ax.hist(v, bins=128, histtype="step", log=True, label=name)
    ax.set_xlabel("pixel value")
    ax.set_ylabel("pixels (log)")
    ax.set_title(f"Pixel intensities per channel ({len(blocks)} of {m.n_blocks} chunks)")
    ax.legend()
    return _png(fig)


def objects_per_event(adata, n_events: int) -> str:
    counts = adata.obs.groupby("event_index", observed=True).size()
    per_event = np.zeros(n_events, dtype=int)
    per_event[counts.index.to_numpy()] = counts.to_numpy()
    fig, ax = _figure(5, 3)
    top = max(int(per_event.max()), 1)
    ax.hist(per_event, bins=np.arange(top + 2) - 0.5, color="#4c72b0")
    ax.set_xticks(range(top + 1))
    ax.set_xlabel("objects in the event")
    ax.set_ylabel("events")
    ax.set_title("Objects per event")
    return _png(fig)


def feature_distributions(adata) -> list[tuple[str, str]]:
    df = adata.to_df()
    classes = _classes(adata)
    names = [f for f in KEY_FEATURES if f in df] + [c for c in df if c.startswith("intensity_mean_")]
    names = [n for n in names if np.isfinite(df[n].to_numpy()).any()]  # a channel whose own mask is always empty
    out = []
    for name in names:
        fig, ax = _figure(4.2, 2.8)
        values = df[name].to_numpy()
        finite = np.isfinite(values)
        if classes.nunique() > 1:
            _class_densities(ax, values, classes.to_numpy(), finite)
            ax.set_ylabel("density")
            ax.legend(fontsize=7)
        else:  # one distribution: counts, so that a pile-up of identical values (a failed mask) shows as a spike
            v = values[finite]
            edges = np.histogram_bin_edges(v, bins="auto") if v.size else 10
            ax.hist(v, bins=edges if np.size(edges) <= MAX_BINS + 1 else MAX_BINS, histtype="step", color="#4c72b0")
            ax.set_ylabel("objects")
        ax.set_title(name)
        out.append((name, _png(fig)))
    return out


#: most bins of a one-class feature histogram
MAX_BINS = 60


def _class_densities(ax, values: np.ndarray, classes: np.ndarray, finite: np.ndarray) -> None:
    """One smooth density per class (Gaussian kernel, Scott's bandwidth) on a grid shared by all classes.

    Per-class histograms of 50 bins drew a class of a few cells as a few tall spikes (density 1/(n x bin)),
    which read as artefacts; a kernel density keeps small classes comparable with large ones. A class whose
    values are all equal (or that has one value) is drawn as a vertical line at that value.
    """
    import matplotlib
    from scipy.stats import gaussian_kde

    v = values[finite]
    if not v.size:
        return
    lo, hi = float(v.min()), float(v.max())
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    grid = np.linspace(lo - pad, hi + pad, 256)
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, cls in enumerate(sorted(set(classes.tolist()))):
        x = values[(classes == cls) & finite]
        colour, label = colours[i % len(colours)], f"{cls or 'all'} ({x.size})"
        if x.size >= 2 and np.ptp(x) > 0:
            ax.plot(grid, gaussian_kde(x)(grid), lw=1.2, color=colour, label=label)
        elif x.size:
            ax.axvline(float(x[0]), lw=1.2, color=colour, label=label)


def pca_plot(adata) -> str | None:
    """PCA (SVD of standardized features) coloured by class label."""
    X = np.asarray(adata.X, dtype=np.float64)
    X = X[:, np.isfinite(X).all(axis=0)]
    if X.shape[0] < 3 or X.shape[1] < 2:
        return None
    sd = X.std(axis=0)
    X = (X[:, sd > 0] - X[:, sd > 0].mean(axis=0)) / sd[sd > 0]
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    pcs = u[:, :2] * s[:2]
    explained = s**2 / np.sum(s**2)
    classes = _classes(adata).to_numpy()
    fig, ax = _figure(5.5, 4.5)
    for cls in sorted(set(classes)):
        sel = classes == cls
        ax.scatter(pcs[sel, 0], pcs[sel, 1], s=4, alpha=0.6, label=cls or "all")
    ax.set_xlabel(f"PC1 ({explained[0]:.0%})")
    ax.set_ylabel(f"PC2 ({explained[1]:.0%})")
    ax.set_title("PCA of all features (standardized)")
    if len(set(classes)) > 1:
        ax.legend(markerscale=3, fontsize=7)
    return _png(fig)


def _tile(st, labels, event_index: int) -> tuple[np.ndarray, np.ndarray | None]:
    m = st.mosaic
    row, col = m.tile_position(np.array([event_index]))
    th, tw = m.tile
    ys, xs = slice(row[0] * th, (row[0] + 1) * th), slice(col[0] * tw, (col[0] + 1) * tw)
    img = np.asarray(st.image(0)[:, ys, xs])
    lab = np.asarray(labels[ys, xs]) if labels is not None else None
    return img, lab


def _rgb(img: np.ndarray) -> np.ndarray:
    chans = img[:3].astype(np.float64)
    out = np.zeros((*img.shape[1:], 3))
    colors = [(0.2, 1.0, 0.2), (1.0, 0.2, 1.0), (0.2, 0.8, 1.0)] if len(chans) > 1 else [(1, 1, 1)]
    for ch, color in zip(chans, colors):
        lo, hi = np.percentile(ch, [1, 99.8])
        norm = np.clip((ch - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(ch)
        out += norm[..., None] * np.array(color)
    return np.clip(out, 0, 1)


def gallery(st, labels, events: list[int], captions: list[str], columns: int = 8) -> str:
    """A montage of events (first three channels as colours) with segmentation outlines in red."""
    from skimage.segmentation import find_boundaries

    rows = int(np.ceil(len(events) / columns))
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.3, rows * 1.45), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, ev, cap in zip(axes.ravel(), events, captions):
        img, lab = _tile(st, labels, ev)
        rgb = _rgb(img)
        if lab is not None:
            rgb[find_boundaries(lab, mode="inner")] = (1.0, 0.15, 0.15)
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(cap, fontsize=6)
    fig.subplots_adjust(wspace=0.05, hspace=0.35)
    return _png(fig)


def build_report(table_path: Path, store_path: Path | None = None) -> str:
    """The report's HTML text."""
    from .store import open_store
    from .table import read_table

    adata = read_table(table_path)
    meta = dict(adata.uns.get("scipzarr", {}))
    if not meta:
        raise ScipzarrError(f"{table_path}: not a scipzarr feature table (no uns['scipzarr'])")
    if meta.get("kind") == "fov":
        raise ScipzarrError(f"{table_path}: a FOV table; the report covers IFC tables so far (open the FOV store "
                            "with its labels in napari, or the table in scanpy)")
    if store_path is None:
        store_path = Path(meta["input_store"])
        if not store_path.exists():
            raise ScipzarrError(f"{table_path}: its store {store_path} is gone; pass --store STORE")
    st = open_store(store_path)
    label_name = meta.get("labels") or ""
    labels = st.labels(label_name) if label_name in st.label_names() else None
    figures = []
    figures.append(("Pixel intensities", intensity_histograms(st)))
    figures.append(("Objects per event", objects_per_event(adata, st.mosaic.n_events)))
    dists = feature_distributions(adata)
    pca = pca_plot(adata)

    rng = np.random.default_rng(0)
    n_ev = st.mosaic.n_events
    picks = sorted(rng.choice(n_ev, size=min(GALLERY_RANDOM, n_ev), replace=False).tolist())
    ids = st.events["event_id"].to_numpy()
    galleries = [("Random events", gallery(st, labels, picks, [str(ids[i]).rsplit('/', 1)[-1][-16:] for i in picks]))]
    df = adata.to_df()
    for feat in [f for f in ("shape_area", "shape_eccentricity") if f in df] + \
            [c for c in df if c.startswith("intensity_mean_")][:1]:
        order = np.argsort(df[feat].to_numpy())
        ext = np.concatenate([order[:GALLERY_EXTREMES], order[-GALLERY_EXTREMES:]])
        evs = adata.obs["event_index"].to_numpy()[ext].tolist()
        caps = [f"{feat.split('_', 1)[1][:10]}={df[feat].iat[i]:.3g}" for i in ext]
        galleries.append((f"Lowest and highest {feat}", gallery(st, labels, evs, caps, columns=6)))

    esc = html.escape
    rows = [("events", meta.get("events")), ("objects", meta.get("objects")), ("features", meta.get("features")),
            ("events without objects", meta.get("events_without_objects")),
            *mask_rows(adata.obs),
            ("events rejected", meta.get("events_rejected", 0)),
            ("wall time", f"{float(meta.get('seconds', 0)):.1f} s"),
            ("throughput", f"{meta.get('events', 0) / max(float(meta.get('seconds', 1)), 1e-9):,.0f} events/s"),
            ("started", meta.get("started")), ("scipzarr", meta.get("scipzarr_version")),
            ("store", meta.get("input_store")), ("channels", ", ".join(st.channel_names))]
    summary = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in rows)
    versions = ", ".join(f"{k} {v}" for k, v in dict(meta.get("versions", {})).items())
    config = json.dumps(json.loads(meta.get("config", "{}")), indent=2)
    parts = [f"<h2>{esc(t)}</h2><img alt='{esc(t)}' src='{src}'>" for t, src in figures]
    parts.append("<h2>Key features</h2><div class='grid'>" +
                 "".join(f"<img alt='{esc(n)}' src='{src}'>" for n, src in dists) + "</div>")
    if pca:
        parts.append(f"<h2>PCA coloured by class</h2><img alt='PCA' src='{pca}'>")
    parts += [f"<h2>{esc(t)}</h2><p class='note'>first three channels as green, magenta, cyan; "
              f"segmentation outlines in red</p><img class='gallery' alt='{esc(t)}' src='{src}'>"
              for t, src in galleries]
    rejected = adata.uns.get("rejected_events")
    if rejected is not None and len(rejected):
        rej = pd.DataFrame(rejected).head(50)
        parts.append("<h2>Rejected events</h2>" + rej.to_html(index=False, escape=True))
    n_img = sum(p.count("<img") for p in parts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>scipzarr report: {esc(Path(table_path).name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: 2px 12px 2px 0; }}
img {{ max-width: 100%; }} .grid {{ display: grid; grid-template-columns: repeat(2, 1fr); gap: 8px; }}
.note {{ color: #666; font-size: 90%; }} pre {{ background: #f6f6f6; padding: 8px; font-size: 80%; }}
</style></head>
<body data-images="{n_img}" data-images-loaded="0">
<h1>scipzarr report</h1><p class="note">{esc(str(table_path))}</p>
<table>{summary}</table>
{''.join(parts)}
<h2>Provenance</h2><p class="note">{esc(versions)}</p><pre>{esc(config)}</pre>
<script>
window.addEventListener("load", () => {{
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesLoaded = ok;
}});
</script>
</body></html>
"""


def write_report(table_path: Path, output: Path, store_path: Path | None = None, overwrite: bool = False) -> Path:
    """Write the report atomically; returns its path."""
    output = Path(output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise ScipzarrError(f"{output}: the report must end in .html")
    atomic.check_output(output, overwrite, [])
    text = build_report(Path(table_path), Path(store_path) if store_path else None)
    with atomic.atomic_path(output) as work:
        Path(work).write_text(text)
    return output
