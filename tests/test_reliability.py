"""Kill -9 at several points, resume, and get exactly the uninterrupted result."""

import os
import signal
import subprocess
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

import scipzarr
from scipzarr import store

from .conftest import tree_digest

pytestmark = pytest.mark.slow  # end to end: subprocesses, clusters, installs


def _cli(*args):
    return [sys.executable, "-m", "scipzarr", *map(str, args)]


def _kill_when(cmd, ready, timeout=180):
    """Start ``cmd``; SIGKILL it as soon as ``ready()``; True if it was killed mid-run."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    proc.wait()
    return False


@pytest.fixture(scope="module")
def ifc(tmp_path_factory):
    from scipzarr.synthetic import make_events

    tmp = tmp_path_factory.mktemp("rel")
    ev, _ = make_events(300, channels=3, size=60, seed=11, noise=15)
    np.save(tmp / "e.npy", np.stack(ev))
    scipzarr.convert([tmp / "e.npy"], tmp / "ref.zarr", chunk_tiles=2, progress=False)
    ref = scipzarr.process(tmp / "ref.zarr", {}, tmp / "ref.h5ad", progress=False)
    return tmp, ref


@pytest.mark.parametrize("k", [1, 17, 50])
def test_process_killed_after_k_chunks_resumes_to_the_same_table(ifc, tmp_path, k):
    tmp, ref = ifc
    subprocess.run(_cli("convert", tmp / "e.npy", "-o", tmp_path / "s.zarr", "--chunk-tiles", "2", "-q"), check=True)
    out = tmp_path / "t.h5ad"
    chunks = tmp_path / ".t.h5ad.scipzarr-work" / "chunks"
    killed = _kill_when(_cli("process", tmp_path / "s.zarr", "-o", out, "--scheduler", "synchronous", "-q"),
                        lambda: chunks.exists() and len(list(chunks.glob("*[0-9].npz"))) >= k)
    assert killed, "the run finished before it could be killed"
    assert not out.exists()  # nothing half-written at the final path
    done = len(list(chunks.glob("*[0-9].npz")))
    assert k <= done < 75
    r = subprocess.run(_cli("process", tmp_path / "s.zarr", "-o", out, "--resume"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {done} of 75 chunks already done" in r.stderr
    t = ad.read_h5ad(out)
    pd.testing.assert_frame_equal(t.obs, ad.read_h5ad(tmp / "ref.h5ad").obs)
    np.testing.assert_array_equal(t.X, ref.X)
    assert not (tmp_path / ".t.h5ad.scipzarr-work").exists()
    labels = tmp_path / "s.zarr" / "labels"
    names = sorted(p.name for p in labels.iterdir())  # no scratch left: the cell mask and each channel's
    assert names == ["cells", *(f"cells-{c}" for c in store.open_store(tmp_path / "s.zarr").channel_names), "zarr.json"]
    for name in names[:-1]:
        np.testing.assert_array_equal(store.open_store(tmp_path / "s.zarr").labels(name).compute(),
                                      store.open_store(tmp / "ref.zarr").labels(name).compute())


def test_resume_refuses_a_changed_config(ifc, tmp_path):
    tmp, _ = ifc
    subprocess.run(_cli("convert", tmp / "e.npy", "-o", tmp_path / "s.zarr", "--chunk-tiles", "2", "-q"), check=True)
    chunks = tmp_path / ".t.h5ad.scipzarr-work" / "chunks"
    assert _kill_when(_cli("process", tmp_path / "s.zarr", "-o", tmp_path / "t.h5ad", "--scheduler", "synchronous"),
                      lambda: chunks.exists() and len(list(chunks.glob("*[0-9].npz"))) >= 3)
    (tmp_path / "c.yml").write_text("segmentation: {min_size: 50}\n")
    r = subprocess.run(_cli("process", tmp_path / "s.zarr", "-c", tmp_path / "c.yml", "-o", tmp_path / "t.h5ad",
                            "--resume"), capture_output=True, text=True)
    assert r.returncode == 2
    assert "cannot resume: the config changed" in r.stderr and "without --resume" in r.stderr
    assert not (tmp_path / "t.h5ad").exists()


@pytest.mark.parametrize("k", [2, 40])
def test_convert_killed_after_k_chunks_resumes_to_the_same_store(tmp_path, k):
    rng = np.random.default_rng(k)
    np.save(tmp_path / "e.npy", rng.integers(0, 4000, (1200, 4, 40, 40), dtype=np.uint16))
    ref = tmp_path / "ref.zarr"
    scipzarr.convert([tmp_path / "e.npy"], ref, chunk_tiles=2, progress=False)
    out = tmp_path / "s.zarr"
    written = tmp_path / ".s.zarr.scipzarr-work" / "output" / "s0" / "c"
    killed = _kill_when(_cli("convert", tmp_path / "e.npy", "-o", out, "--chunk-tiles", "2", "--scheduler", "synchronous"),
                        lambda: written.exists() and sum(len(f) for _, _, f in os.walk(written)) >= k)
    assert killed and not out.exists()
    r = subprocess.run(_cli("convert", tmp_path / "e.npy", "-o", out, "--chunk-tiles", "2", "--resume"),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "resuming convert" in r.stderr
    np.testing.assert_array_equal(zarr.open_array(str(out / "s0"))[:], zarr.open_array(str(ref / "s0"))[:])
    np.testing.assert_array_equal(zarr.open_array(str(out / "s1"))[:], zarr.open_array(str(ref / "s1"))[:])
    pd.testing.assert_frame_equal(store.open_store(out).events, store.open_store(ref).events)
    assert store.validate_store(out) == []
    assert not (tmp_path / ".s.zarr.scipzarr-work").exists() and not (out / ".scipzarr-convert.json").exists()
    # a changed input refuses to resume
    assert _kill_when(_cli("convert", tmp_path / "e.npy", "-o", tmp_path / "x.zarr", "--chunk-tiles", "2",
                           "--scheduler", "synchronous"),
                      lambda: (tmp_path / ".x.zarr.scipzarr-work" / "output" / "s0" / "c").exists())
    np.save(tmp_path / "e.npy", rng.integers(0, 4000, (1200, 4, 40, 40), dtype=np.uint16))
    before = tree_digest(tmp_path / "e.npy")
    r = subprocess.run(_cli("convert", tmp_path / "e.npy", "-o", tmp_path / "x.zarr", "--chunk-tiles", "2", "--resume"),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "cannot resume: the input changed" in r.stderr
    assert tree_digest(tmp_path / "e.npy") == before


def _write_events(folder, n=6, size=16, channels=2):
    import tifffile

    from .conftest import flat_events

    folder.mkdir(parents=True, exist_ok=True)
    ev, _ = flat_events(n, size=size, channels=channels)
    for i, img in enumerate(ev):
        tifffile.imwrite(folder / f"ev{i}.tif", img)
    return ev


def test_a_resumed_convert_keeps_the_rejections_of_chunks_written_before(tmp_path):
    """An event rejected while its pixels are read (``--on-error skip``), in a chunk written before the convert was
    killed, is still marked in the events table and listed in the rejected table after ``--resume``."""
    src = tmp_path / "in"
    _write_events(src, n=400, size=16, channels=2)
    data = (src / "ev1.tif").read_bytes()
    (src / "ev1.tif").write_bytes(data[: len(data) - 200])  # truncated pixel data: rejected at the pixel stage
    out = tmp_path / "s.zarr"
    written = tmp_path / ".s.zarr.scipzarr-work" / "output" / "s0" / "c"
    args = (src, "-o", out, "--chunk-tiles", "2", "--on-error", "skip")
    assert _kill_when(_cli("convert", *args, "--scheduler", "synchronous"),
                      lambda: written.exists() and sum(len(f) for _, _, f in os.walk(written)) >= 10)
    r = subprocess.run(_cli("convert", *args, "--resume"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "resuming convert" in r.stderr and "1 rejected" in r.stdout
    st = store.open_store(out)
    assert len(st.events) == 400 and "ev1.tif" in st.events.loc["ev1", "rejected"]
    assert (st.events.drop(index="ev1")["rejected"] == "").all()
    rej = st.rejected()
    assert rej["event_id"].tolist() == ["ev1"] and rej["stage"].tolist() == ["pixels"]


def test_on_error_skip_records_every_bad_event(tmp_path):
    import tifffile

    src = tmp_path / "in"
    _write_events(src)
    (src / "ev1.tif").write_bytes(b"II*\x00garbage")                           # unreadable header
    tifffile.imwrite(src / "ev7.tif", np.zeros((3, 16, 16), np.uint16))       # wrong channel count
    tifffile.imwrite(src / "ev8.tif", np.zeros((2, 16, 16), np.float32))      # wrong pixel type
    data = (src / "ev4.tif").read_bytes()
    (src / "ev4.tif").write_bytes(data[: len(data) - 200])                     # truncated pixel data
    before = tree_digest(src)
    r = subprocess.run(_cli("convert", src, "-o", tmp_path / "s.zarr"), capture_output=True, text=True)
    assert r.returncode == 2 and "ev1.tif" in r.stderr  # fail is the default
    r = subprocess.run(_cli("convert", src, "-o", tmp_path / "s.zarr", "--on-error", "skip"), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "4 rejected" in r.stdout and "4 events rejected" in r.stderr
    st = store.open_store(tmp_path / "s.zarr")
    rej = st.rejected()
    assert sorted(rej["event_id"]) == ["ev1", "ev4", "ev7", "ev8"]
    reasons = dict(zip(rej["event_id"], rej["reason"]))
    assert "not a readable TIFF" in reasons["ev1"] and "3 channels" in reasons["ev7"]
    assert "float32" in reasons["ev8"] and "ev4.tif" in reasons["ev4"]
    assert dict(zip(rej["event_id"], rej["stage"]))["ev4"] == "pixels"
    # 5 readable headers stay in the mosaic; the truncated one is marked and never measured
    assert len(st.events) == 6 - 1 and st.events.loc["ev4", "rejected"] != ""
    t = scipzarr.process(tmp_path / "s.zarr", {"segmentation": {"smoothing_sigma": 0}}, None, progress=False)
    assert sorted(set(t.obs["event_id"])) == ["ev0", "ev2", "ev3", "ev5"]
    meta = t.uns["scipzarr"]
    assert meta["events_rejected"] == 4 and meta["events_without_objects"] == 0
    assert sorted(t.uns["rejected_events"]["event_id"]) == ["ev1", "ev4", "ev7", "ev8"]
    assert tree_digest(src) == before


def test_process_nan_pixels_fail_or_skip(tmp_path):
    ev = np.random.default_rng(0).random((5, 1, 20, 20)).astype(np.float32)
    ev[:, :, 5:15, 5:15] += 2
    np.save(tmp_path / "f.npy", ev)
    scipzarr.convert([tmp_path / "f.npy"], tmp_path / "ok.zarr", progress=False)
    ev[3, 0, 2, 2] = np.nan
    np.save(tmp_path / "f.npy", ev)
    r = subprocess.run(_cli("convert", tmp_path / "f.npy", "-o", tmp_path / "f.zarr"), capture_output=True, text=True)
    assert r.returncode == 2 and "NaN or infinite" in r.stderr and not (tmp_path / "f.zarr").exists()
    scipzarr.convert([tmp_path / "f.npy"], tmp_path / "f.zarr", on_error="skip", progress=False)
    t = scipzarr.process(tmp_path / "f.zarr", {}, None, progress=False)
    assert "3" not in set(t.obs["event_id"]) and t.uns["scipzarr"]["events_rejected"] == 1
    # a float store with NaN written by another tool: process fails or skips
    import zarr as z

    arr = z.open_array(str(tmp_path / "ok.zarr" / "s0"), mode="r+")
    arr[0, 0, 0] = np.nan  # inside event 0's tile
    with pytest.raises(scipzarr.ScipzarrError, match="NaN or infinite"):
        scipzarr.process(tmp_path / "ok.zarr", {}, None, progress=False)
    t = scipzarr.process(tmp_path / "ok.zarr", {}, None, progress=False, on_error="skip")
    assert "0" not in set(t.obs["event_id"])
    assert list(t.uns["rejected_events"]["stage"]) == ["process"]


@pytest.mark.parametrize("chunk_size", [None, 128])
def test_fov_process_killed_after_k_fovs_resumes_to_the_same_table(tmp_path, chunk_size):
    import tifffile

    from .conftest import nuclei as _nuclei

    for f in range(8):
        tifffile.imwrite(tmp_path / f"f{f}.tif", _nuclei((260, 250), 12, seed=f, touching=0))
    scipzarr.convert(sorted(tmp_path.glob("f*.tif")), tmp_path / "s.zarr", kind="fov", chunk_size=128,
                     progress=False)
    extra = [] if chunk_size is None else ["--chunk-size", str(chunk_size)]
    ref = scipzarr.process(tmp_path / "s.zarr", {}, tmp_path / "ref.h5ad", progress=False, chunk_size=chunk_size)
    ref_labels = [zarr.open_array(str(tmp_path / "s.zarr" / str(f) / "labels" / "cells" / "s0"))[:] for f in range(8)]
    out = tmp_path / "t.h5ad"
    chunks = tmp_path / ".t.h5ad.scipzarr-work" / "chunks"
    killed = _kill_when(_cli("process", tmp_path / "s.zarr", "-o", out, "--scheduler", "synchronous", "-q", *extra),
                        lambda: chunks.exists() and len(list(chunks.glob("*[0-9].npz"))) >= 2)
    assert killed and not out.exists(), "the run finished before it could be killed"
    done = len(list(chunks.glob("*[0-9].npz")))
    assert 2 <= done < 8
    r = subprocess.run(_cli("process", tmp_path / "s.zarr", "-o", out, "--resume", *extra), capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {done} of 8 FOVs already done" in r.stderr
    t = ad.read_h5ad(out)
    assert t.n_obs == ref.n_obs > 60
    pd.testing.assert_frame_equal(t.obs, ad.read_h5ad(tmp_path / "ref.h5ad").obs)
    np.testing.assert_array_equal(t.X, ref.X)
    assert not (tmp_path / ".t.h5ad.scipzarr-work").exists()
    for f in range(8):
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "s.zarr" / str(f) / "labels" / "cells" / "s0"))[:],
                                      ref_labels[f])
        assert not list((tmp_path / "s.zarr" / str(f)).glob(".*-scratch"))
