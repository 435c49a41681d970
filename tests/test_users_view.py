"""What users see: the HTML report in a real browser, scanpy on the table, napari's
reader on the store, CSV/Parquet exports, and the Python API."""

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

import scipzarr

from .conftest import run

pytestmark = pytest.mark.slow  # end to end: subprocesses, clusters, installs


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    from scipzarr.synthetic import make_events, write_ideas_export

    tmp = tmp_path_factory.mktemp("users")
    ev, truth = make_events(160, channels=3, size=40, seed=21, noise=15, vary_size=6)
    write_ideas_export(tmp / "raw", ev, truth["class_label"])
    scipzarr.convert([tmp / "raw"], tmp / "c.zarr", channels=["DNA", "body", "tex"], chunk_tiles=4, progress=False)
    adata = scipzarr.process(tmp / "c.zarr", {"segmentation": {"channels": ["DNA"], "keep": "largest"}},
                             tmp / "c.h5ad", progress=False)
    return tmp, adata


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium installed (apt-get install chromium)")


def test_report_renders_with_all_its_images_in_chromium(processed):
    tmp, adata = processed
    r = run("report", tmp / "c.h5ad", "-o", tmp / "report.html")
    assert r.returncode == 0, r.stderr
    text = (tmp / "report.html").read_text()
    n_img = text.count("<img")
    assert n_img >= 10 and "data:image/png;base64," in text and "src='http" not in text
    assert "events rejected" in text and "Random events" in text and "PCA" in text
    browser = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp / 'chrome-profile'}"]
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom",
                          (tmp / "report.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert f'data-images-loaded="{n_img}"' in dom.stdout, dom.stderr[-2000:]
    shot = tmp / "report.png"
    subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1100,1600",
                    (tmp / "report.html").as_uri()], capture_output=True, timeout=120)
    from skimage.io import imread

    img = imread(shot)
    assert img.shape[0] == 1600 and img[..., :3].std() > 10  # not a blank page


def test_scanpy_runs_on_the_table(processed):
    sc = pytest.importorskip("scanpy")
    _, adata = processed
    a = adata.copy()
    sc.pp.scale(a)
    sc.tl.pca(a, n_comps=10)
    sc.pp.neighbors(a, n_neighbors=10)
    sc.tl.umap(a)
    sc.tl.leiden(a, flavor="igraph", n_iterations=2)
    assert a.obsm["X_umap"].shape == (a.n_obs, 2) and a.obs["leiden"].nunique() >= 2
    # the drawn classes separate: elongated cells have higher eccentricity
    ecc = adata.to_df()["shape_eccentricity"].groupby(adata.obs["class_label"].to_numpy()).median()
    assert ecc["elongated"] > ecc["round"] + 0.2


def test_store_and_labels_open_like_napari_ome_zarr(processed):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    tmp, adata = processed
    nodes = list(Reader(parse_url(str(tmp / "c.zarr")))())
    image = nodes[0]
    assert image.load(Multiscales) is not None and image.metadata["channel_names"] == ["DNA", "body", "tex"]
    label_nodes = [n for n in nodes if "labels/cells" in str(n.zarr)]
    assert label_nodes and label_nodes[0].data[0].shape == image.data[0].shape[1:]
    assert len(label_nodes[0].data) == len(image.data)
    lab = np.asarray(label_nodes[0].data[0])
    assert set(np.unique(lab[lab > 0])) == set(adata.obs["label"])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_with_cellprofiler_names(processed, fmt):
    tmp, adata = processed
    out = tmp / f"t.{fmt}"
    r = run("export", tmp / "c.h5ad", "-o", out, "--overwrite")
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert len(df) == adata.n_obs
    for col in ("ObjectId", "EventId", "ObjectNumber", "Metadata_Class", "AreaShape_Area",
                "AreaShape_Eccentricity", "Intensity_MeanIntensity_DNA", "Intensity_IntegratedIntensity_tex"):
        assert col in df.columns, col
    np.testing.assert_allclose(df["AreaShape_Area"], adata.to_df()["shape_area"])
    assert df["ObjectId"].tolist() == adata.obs_names.tolist()


def test_python_api_mirrors_the_cli(processed, tmp_path):
    tmp, adata = processed
    cfg = tmp_path / "c.yml"
    cfg.write_text("segmentation: {channels: [DNA], keep: largest}\n")
    b = scipzarr.process(tmp / "c.zarr", cfg, None, progress=False)  # a YAML path works too
    np.testing.assert_array_equal(adata.X, b.X)
    assert scipzarr.process.__doc__ and scipzarr.convert.__doc__


def test_report_class_densities_do_not_spike_for_small_classes():
    """The report's per-class feature plots: one kernel density per class on a shared grid, each integrating
    to 1, so a class of 5 cells peaks about as high as one of 200 (per-class 50-bin histograms drew it as
    spikes ~10x taller); a class of one value is a vertical line."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from scipzarr.report import _class_densities

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(100, 10, 200), rng.normal(120, 10, 5), [150.0], [np.nan]])
    classes = np.array(["big"] * 200 + ["small"] * 5 + ["one", "big"])
    fig, ax = plt.subplots()
    _class_densities(ax, values, classes, np.isfinite(values))
    curves = {line.get_label(): line for line in ax.get_lines()}
    assert set(curves) == {"big (200)", "small (5)", "one (1)"}
    for name in ("big (200)", "small (5)"):
        x, y = curves[name].get_data()
        assert np.trapezoid(y, x) == pytest.approx(1, abs=0.05)
    assert curves["small (5)"].get_ydata().max() < 3 * curves["big (200)"].get_ydata().max()
    assert list(curves["one (1)"].get_xdata()) == [150.0, 150.0]
    plt.close(fig)
