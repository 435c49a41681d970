"""The device switch: dispatch on every machine; CPU/GPU equality where a GPU is usable (skipped elsewhere).

Run on a GPU machine: ``pip install -e '.[test,gpu]' && python -m pytest tests/test_gpu.py``
(``benchmarks/gpu_check.sh`` does that and the benchmarks; docs/gpu.md).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

import scipzarr
from scipzarr import backend
from scipzarr.errors import ScipzarrError
from scipzarr.kernels import segment as seg
from scipzarr.kernels import threshold as thr_k

from .conftest import run

GPU, WHY = backend.gpu_status()
need_gpu = pytest.mark.skipif(not GPU, reason=f"no usable GPU: {WHY}")
no_gpu = pytest.mark.skipif(GPU, reason="a GPU is usable here")


def _ifc_store(tmp_path, n=60, k=4):
    from scipzarr.synthetic import make_events

    ev, _ = make_events(n, channels=3, size=40, seed=11, noise=15)
    np.save(tmp_path / "ev.npy", np.stack(ev))
    scipzarr.convert([tmp_path / "ev.npy"], tmp_path / "ev.zarr", chunk_tiles=k, progress=False)
    return tmp_path / "ev.zarr"


def _fov_store(tmp_path):
    from .conftest import nuclei as _nuclei

    tifffile.imwrite(tmp_path / "a.ome.tif", _nuclei((700, 600), 40, seed=2, touching=2), ome=True,
                     metadata={"axes": "CYX", "Channel": {"Name": ["DNA", "GFP"]}})
    scipzarr.convert([tmp_path / "a.ome.tif"], tmp_path / "f.zarr", kind="fov", chunk_size=256, progress=False)
    return tmp_path / "f.zarr"


# --------------------------------------------------------------------------- dispatch (every machine)
def test_cpu_kernels_stay_on_numpy_and_import_no_cupy(tmp_path):
    code = ("import sys, numpy as np; from scipzarr.kernels import segment as seg; from scipzarr.kernels import threshold as thr_k; from scipzarr import backend;"
            "img = np.random.default_rng(0).random((3, 20, 20)); v = np.ones(img.shape, bool);"
            "lab, n = seg.segment(seg.smooth(img, v, 1.0), v, thr_k.threshold_otsu(seg.smooth(img, v, 1.0), v));"
            "assert type(lab) is np.ndarray and backend.xp_of(lab) is np;"
            "print('cupy' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_unknown_device_is_one_clear_error():
    with pytest.raises(ScipzarrError, match="--device tpu: choose one of cpu, gpu, auto"):
        backend.resolve_device("tpu")
    assert backend.resolve_device("cpu") == "cpu"


@no_gpu
def test_device_gpu_without_a_gpu_fails_with_one_line_and_writes_nothing(tmp_path):
    path = _ifc_store(tmp_path)
    r = run("process", path, "-o", tmp_path / "t.h5ad", "--device", "gpu")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "--device gpu: no usable GPU" in r.stderr
    assert "use --device cpu or auto" in r.stderr and not (tmp_path / "t.h5ad").exists()
    assert not (path / "labels" / "cells").exists()


@no_gpu
def test_device_auto_without_a_gpu_says_so_and_gives_the_cpu_table(tmp_path):
    path = _ifc_store(tmp_path)
    said = []
    auto = scipzarr.process(path, {"features": {"families": ["shape", "intensity"]}}, None, progress=False,
                            device="auto")
    cpu = scipzarr.process(path, {"features": {"families": ["shape", "intensity"]}}, None, progress=False)
    pd.testing.assert_frame_equal(auto.obs, cpu.obs)
    np.testing.assert_array_equal(auto.X, cpu.X)
    assert backend.resolve_device("auto", say=said.append) == "cpu"
    assert len(said) == 1 and said[0].startswith("device: CPU (no GPU: ")
    r = run("process", path, "-o", tmp_path / "t.h5ad", "--device", "auto")
    assert r.returncode == 0 and "device: CPU (no GPU: " in r.stderr, r.stderr


# --------------------------------------------------------------------------- equality (GPU machines)
@need_gpu
def test_segmentation_kernels_on_gpu_equal_cpu():
    import cupy

    from scipzarr.synthetic import make_events

    ev, _ = make_events(64, channels=2, size=40, seed=7, noise=20)
    batch = np.stack(ev)
    valid = np.ones((64, 40, 40), bool)
    valid[::3, :, 33:] = False  # padded events
    for xp_batch, xp_valid in ((batch, valid), (cupy.asarray(batch), cupy.asarray(valid))):
        img = seg.smooth(seg.combine_channels(xp_batch, [0]), xp_valid, 1.5)
        out = [backend.to_host(img), backend.to_host(thr_k.threshold_otsu(img, xp_valid)),
               backend.to_host(thr_k.threshold_li(img, xp_valid))]
        lab, counts = seg.segment(img, xp_valid, thr_k.threshold_otsu(img, xp_valid), min_size=5, keep="all")
        out += [backend.to_host(lab), backend.to_host(counts)]
        if xp_batch is batch:
            ref = out
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-9)
    np.testing.assert_allclose(out[2], ref[2], rtol=1e-9)
    np.testing.assert_array_equal(out[3], ref[3])
    np.testing.assert_array_equal(out[4], ref[4])


@need_gpu
@pytest.mark.parametrize("scope", ["event", "dataset"])
def test_ifc_table_and_labels_on_gpu_equal_cpu(tmp_path, scope):
    path = _ifc_store(tmp_path)
    cfg = {"features": {"families": ["all"]}, "segmentation": {"threshold": {"scope": scope}}}
    tables, labels = [], []
    for device in ("cpu", "gpu"):
        cfg["labels"] = {"name": device}
        tables.append(scipzarr.process(path, cfg, None, progress=False, device=device))
        labels.append(zarr.open_array(str(path / "labels" / device / "s0"))[:])
    np.testing.assert_array_equal(labels[0], labels[1])
    pd.testing.assert_frame_equal(tables[0].obs, tables[1].obs)
    np.testing.assert_allclose(tables[1].X, tables[0].X, rtol=1e-6, atol=1e-9)


@need_gpu
@pytest.mark.parametrize("chunk_size", [None, 256])
def test_fov_table_and_labels_on_gpu_equal_cpu(tmp_path, chunk_size):
    path = _fov_store(tmp_path)
    tables, labels = [], []
    for device in ("cpu", "gpu"):
        cfg = {"features": {"families": ["shape", "intensity", "texture"]}, "labels": {"name": device}}
        tables.append(scipzarr.process(path, cfg, None, progress=False, device=device, chunk_size=chunk_size))
        labels.append(zarr.open_array(str(path / "0" / "labels" / device / "s0"))[:])
    np.testing.assert_array_equal(labels[0], labels[1])
    pd.testing.assert_frame_equal(tables[0].obs, tables[1].obs)
    np.testing.assert_allclose(tables[1].X, tables[0].X, rtol=1e-6, atol=1e-9)


@need_gpu
def test_device_auto_takes_the_gpu_and_says_which():
    said = []
    assert backend.resolve_device("auto", say=said.append) == "gpu"
    assert len(said) == 1 and said[0].startswith("device: GPU (")


@need_gpu
def test_local_cluster_on_gpu_is_dask_cuda_one_worker_per_gpu_and_gives_the_cpu_table(tmp_path, capsys):
    pytest.importorskip("dask_cuda")
    import cupy

    from scipzarr.scheduler import open_runner

    with open_runner("local", quiet=True, device="gpu") as runner:
        workers = list(runner.client.scheduler_info()["workers"].values())
        assert len(workers) == cupy.cuda.runtime.getDeviceCount()
        assert all(w["nthreads"] == 1 for w in workers)
    path = _ifc_store(tmp_path, n=40, k=4)
    cfg = {"features": {"families": ["shape", "intensity"]}}
    cpu = scipzarr.process(path, cfg | {"labels": {"name": "cpu"}}, None, progress=False)
    gpu = scipzarr.process(path, cfg | {"labels": {"name": "gpu"}}, None, progress=False, device="gpu",
                           scheduler="local")
    pd.testing.assert_frame_equal(cpu.obs, gpu.obs)
    np.testing.assert_allclose(gpu.X, cpu.X, rtol=1e-6, atol=1e-9)


def test_gpu_cluster_without_dask_cuda_is_one_worker_with_one_thread(capsys):
    pytest.importorskip("distributed")
    try:
        import dask_cuda  # noqa: F401
        pytest.skip("dask-cuda is installed: LocalCUDACluster is used")
    except ImportError:
        pass
    from scipzarr.scheduler import open_runner

    with open_runner("local", quiet=False, device="gpu") as runner:
        info = runner.client.scheduler_info()
        workers = list(info["workers"].values())
        assert len(workers) == 1 and workers[0]["nthreads"] == 1
    err = capsys.readouterr().err
    assert "dask-cuda is not installed: one worker on GPU 0" in err


def test_gpu_cluster_with_more_workers_than_gpus_is_single_thread_processes_sharing_gpu_0(capsys):
    pytest.importorskip("distributed")
    if GPU:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() >= 2:
            pytest.skip("2 workers on 2 or more GPUs: one per GPU")
    from scipzarr.scheduler import ClusterOptions, open_runner

    with open_runner("local", ClusterOptions(workers=2), quiet=False, device="gpu") as runner:
        workers = list(runner.client.scheduler_info()["workers"].values())
        assert len(workers) == 2 and all(w["nthreads"] == 1 for w in workers)
    assert "2 worker processes share GPU 0, one thread each" in capsys.readouterr().err


def test_device_kernels_call_no_numpy_function_directly():
    """A numpy call on a cupy array copies it to the host or fails: the kernels that run on the device take
    every array function from ``xp`` (numpy's ``errstate`` and dtypes are the only numpy names they use)."""
    import ast
    import inspect

    from scipzarr.kernels import batch

    device_kernels = [seg.combine_channels, seg.smooth, thr_k._event_range, thr_k.event_histograms,
                      thr_k.otsu_from_histograms, seg.segment, batch.fill_holes,
                      seg.smooth_plane]
    allowed = {"errstate", "ndarray"}
    for fn in device_kernels:
        tree = ast.parse(inspect.getsource(fn).lstrip())
        body = tree.body[0].body
        used = {node.attr for stmt in body for node in ast.walk(stmt)
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "np"}
        assert used <= allowed, (fn.__name__, used - allowed)


@pytest.mark.parametrize("scope,keep", [("event", "all"), ("dataset", "largest")])
def test_segmenting_a_chunk_in_sub_batches_gives_the_same_rows(tmp_path, scope, keep):
    """On a GPU a chunk is segmented ``plan.seg_batch`` events at a time (what fits its memory); exercised here
    on the CPU with 1, 7 and all events at a time."""
    import dataclasses

    from scipzarr import store
    from scipzarr.pipeline import ifc as pipeline
    from scipzarr.config import resolve_config

    path = _ifc_store(tmp_path, n=50, k=4)
    st = store.open_store(path)
    cfg = resolve_config({"segmentation": {"threshold": {"scope": scope}, "keep": keep},
                          "features": {"families": ["shape", "intensity"]}})
    base = pipeline.make_plan(st, cfg)
    table = pipeline.slot_table(st)
    k = st.mosaic.chunk_tiles
    threshold = 300.0 if scope == "dataset" else None
    rows = {}
    for batch in (None, 7, 1):
        plan = dataclasses.replace(base, seg_batch=batch)
        out = []
        for b in range(st.mosaic.n_blocks):
            by, bx = divmod(b, st.mosaic.chunk_grid[1])
            meta = pipeline._slots(table[:, by * k:(by + 1) * k, bx * k:(bx + 1) * k])
            out.append(pipeline._chunk_process(meta, b, plan, None, threshold, None, None))
            assert pipeline._chunk_seg_range(meta, b, plan, None) == pipeline._chunk_seg_range(meta, b, base, None)
        rows[batch] = out
    for batch in (7, 1):
        for a, b in zip(rows[None], rows[batch]):
            np.testing.assert_array_equal(a["label"], b["label"])
            np.testing.assert_array_equal(a["X"], b["X"])
    assert sum(len(r["label"]) for r in rows[None]) >= 50


# --------------------------------------------------------------------------- the device path, emulated (every machine)
def _segmented_events(n=48, size=40):
    from scipzarr.synthetic import make_events

    ev, _ = make_events(n, channels=3, size=size, seed=5, noise=15)
    images = np.stack(ev)
    valid = np.ones((n, size, size), bool)
    valid[::4, :, 31:] = False  # padded events: coordinates relative to the event
    valid[1::4, :6] = False
    smooth = seg.smooth(images[:, 0].astype(np.float64), valid, 1.0)
    local, _ = seg.segment(smooth, valid, thr_k.threshold_otsu(smooth, valid), min_size=5, keep="all")
    y0 = np.where(np.arange(n) % 4 == 1, 6, 0)
    return images, local, valid, y0


def test_feature_families_on_the_emulated_device_equal_cpu():
    """Every family with ``device="gpu"`` on the emulated GPU (tests/emulated_device.py: numpy values, CuPy's
    strictness): the table is the CPU's within 1e-6 (sums per object are weighted bincounts on a device,
    ``add.reduceat`` on the host: other rounding); the device families really ran on device arrays, and each
    compiled kernel got host copies (a device array reaching numba or numpy fails there)."""
    from scipzarr.features import FAMILIES, Objects, measure

    from .emulated_device import DeviceArray, emulated_gpu

    images, local, valid, y0 = _segmented_events()
    channels = [0, 1, 2]
    cpu = measure(Objects(local, y0, np.zeros(len(local), int), valid), images, list(FAMILIES), channels)
    seen = []
    with emulated_gpu():
        original = {name: fam for name, fam in FAMILIES.items()}
        try:
            for name, fam in original.items():
                def spy(obj, imgs, target, p, _fam=fam):
                    seen.append((_fam.name, type(obj.labels) is DeviceArray, type(imgs) is DeviceArray))
                    return _fam.measure(obj, imgs, target, p)
                FAMILIES[name] = type(fam)(fam.name, fam.scope, fam.columns, spy, fam.summary, fam.device)
            gpu = measure(Objects(local, y0, np.zeros(len(local), int), valid), images, list(FAMILIES), channels,
                          device="gpu")
        finally:
            FAMILIES.update(original)
    assert type(gpu) is np.ndarray and gpu.shape == cpu.shape and cpu.shape[0] > 40
    np.testing.assert_allclose(gpu, cpu, rtol=1e-6, atol=1e-9)
    ran = {name: (lab, img) for name, lab, img in seen}
    assert ran["shape"] == (True, True)
    assert ran["texture"] == (False, False) and ran["colocalization"] == (False, False)
    assert ran["intensity"] == (False, False)  # one compiled pass on the host (features/_intensity.py)


def test_ifc_process_on_the_emulated_device_equals_cpu(tmp_path):
    """``process --device gpu`` end to end on the emulated GPU (segmentation and the shape and intensity families
    on device arrays): labels identical to the CPU's, the table within 1e-6."""
    from .emulated_device import emulated_gpu

    path = _ifc_store(tmp_path, n=40, k=4)
    cfg = {"features": {"families": ["shape", "intensity", "texture"]}}
    tables, labels = [], []
    for device in ("cpu", "gpu"):
        cfg["labels"] = {"name": device}
        with emulated_gpu() if device == "gpu" else contextlib.nullcontext():
            tables.append(scipzarr.process(path, cfg, None, progress=False, device=device))
        labels.append(zarr.open_array(str(path / "labels" / device / "s0"))[:])
    np.testing.assert_array_equal(labels[0], labels[1])
    pd.testing.assert_frame_equal(tables[0].obs, tables[1].obs)
    np.testing.assert_allclose(tables[1].X, tables[0].X, rtol=1e-6, atol=1e-9)
    assert tables[0].n_obs >= 40


def test_the_emulated_device_is_strict_where_cupy_is():
    from .emulated_device import XP, DeviceArray, emulated_gpu

    with emulated_gpu():
        a = backend.to_device(np.arange(6.0), "gpu")
        assert type(a) is DeviceArray and backend.xp_of(a) is XP
        with pytest.raises(TypeError, match="Implicit conversion"):
            np.asarray(a)
        with pytest.raises(TypeError, match="host numpy array"):
            a + np.ones(6)
        with pytest.raises(NotImplementedError, match="segment_sum"):
            np.add.reduceat(a, XP.asarray([0, 3]))
        with pytest.raises(TypeError, match="int64"):
            np.minimum.at(XP.zeros(2, dtype=np.int64), XP.asarray([0, 1]), XP.asarray([1, 2]))
        np.testing.assert_array_equal(backend.to_host(backend.segment_min(a, XP.asarray([0, 0, 0, 1, 1, 1]),
                                                                          XP.asarray([0, 3]), 2)), [0.0, 3.0])
    assert isinstance(backend.GPU, backend.CupyDevice) and backend.xp_of(np.zeros(1)) is np


def test_array_functions_of_the_device_path_exist_in_cupy(tmp_path):
    """Every name the device code took from the array module while running on the emulated GPU exists in CuPy
    (checked where CuPy is installed, with or without a GPU)."""
    cupy = pytest.importorskip("cupy")
    from .emulated_device import XP

    XP.used.clear()
    test_ifc_process_on_the_emulated_device_equals_cpu(tmp_path)
    test_feature_families_on_the_emulated_device_equal_cpu()
    assert len(XP.used) > 25  # recording works
    missing = sorted(name for name in XP.used if not hasattr(cupy, name))
    assert not missing, missing


@pytest.mark.parametrize("chunk_size", [None, 256])
def test_fov_process_on_the_emulated_device_equals_cpu(tmp_path, chunk_size):
    """A FOV (whole, and chunk by chunk) with ``--device gpu`` on the emulated GPU (smoothing, and the shape and
    intensity families of the nuclei and cell bodies on device arrays): labels identical to the CPU's, the table
    within 1e-6."""
    from .emulated_device import emulated_gpu

    path = _fov_store(tmp_path)
    tables, labels = [], []
    for device in ("cpu", "gpu"):
        cfg = {"features": {"families": ["shape", "intensity"]}, "labels": {"name": device},
               "segmentation": {"cells": {"expand": 3}}}
        with emulated_gpu() if device == "gpu" else contextlib.nullcontext():
            tables.append(scipzarr.process(path, cfg, None, progress=False, device=device, chunk_size=chunk_size))
        labels.append(zarr.open_array(str(path / "0" / "labels" / device / "s0"))[:])
    np.testing.assert_array_equal(labels[0], labels[1])
    pd.testing.assert_frame_equal(tables[0].obs, tables[1].obs)
    np.testing.assert_allclose(tables[1].X, tables[0].X, rtol=1e-6, atol=1e-9)
    assert tables[0].n_obs >= 30 and tables[0].n_vars > 200


def test_ifc_process_in_gpu_sized_batches_on_the_emulated_device_equals_cpu(tmp_path):
    """A GPU with little free memory: segmentation and device features run a few events at a time
    (``gpu_seg_batch``, ``gpu_feat_batch``); the table and labels are the CPU's."""
    import os

    from scipzarr import store
    from scipzarr.pipeline import ifc as pipeline
    from scipzarr.config import resolve_config

    from .emulated_device import emulated_gpu

    path = _ifc_store(tmp_path, n=40, k=4)
    cfg = {"features": {"families": ["shape", "intensity"]}}
    st = store.open_store(path)
    # room for 3 events per task: 3 x 40 x 40 px x (160 + 8 x 3) bytes, for every task that may run at once
    budget = 3 * 40 * 40 * (160 + 8 * 3) * (os.cpu_count() or 1)
    with emulated_gpu(pixel_budget=budget):
        plan = pipeline.make_plan(st, resolve_config(cfg), device="gpu")
        assert pipeline.gpu_feat_batch(st, plan) == 3 and pipeline.gpu_seg_batch(st, plan) < 16
        gpu = scipzarr.process(path, cfg | {"labels": {"name": "gpu"}}, None, progress=False, device="gpu")
    cpu = scipzarr.process(path, cfg | {"labels": {"name": "cpu"}}, None, progress=False)
    np.testing.assert_array_equal(zarr.open_array(str(path / "labels" / "gpu" / "s0"))[:],
                                  zarr.open_array(str(path / "labels" / "cpu" / "s0"))[:])
    pd.testing.assert_frame_equal(cpu.obs, gpu.obs)
    np.testing.assert_allclose(gpu.X, cpu.X, rtol=1e-6, atol=1e-9)
