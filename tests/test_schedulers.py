"""Identical tables on every scheduler: threads, processes, a local cluster of 2 workers,
MPI with 4 ranks; a worker killed mid-run changes nothing; MPI exits on failure."""

import os
import shutil
import signal
import subprocess
import sys
import threading
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import scipzarr
from scipzarr.errors import ScipzarrError
from scipzarr.scheduler import ClusterOptions

pytestmark = pytest.mark.slow  # end to end: subprocesses, clusters, installs

CFG = {"normalize": {"method": "percentile", "scope": "dataset"}}


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from scipzarr.synthetic import make_events

    tmp = tmp_path_factory.mktemp("sched")
    ev, _ = make_events(120, channels=2, size=32, seed=7, noise=10)
    np.save(tmp / "e.npy", np.stack(ev))
    scipzarr.convert([tmp / "e.npy"], tmp / "e.zarr", chunk_tiles=3, progress=False)
    ref = scipzarr.process(tmp / "e.zarr", CFG, None, progress=False, scheduler="threads")
    return tmp, ref


def _same(a, b):
    pd.testing.assert_frame_equal(a.obs, b.obs)
    np.testing.assert_array_equal(a.X, b.X)
    pd.testing.assert_frame_equal(a.var.astype(str), b.var.astype(str))


def test_processes_and_local_cluster_match_threads(small_store):
    tmp, ref = small_store
    _same(ref, scipzarr.process(tmp / "e.zarr", CFG, None, progress=False, scheduler="processes"))
    local = scipzarr.process(tmp / "e.zarr", CFG, None, progress=True, scheduler="local",
                             cluster=ClusterOptions(workers=2, threads_per_worker=1, memory_limit="2GiB"))
    _same(ref, local)


def test_convert_on_a_local_cluster_matches(small_store, tmp_path):
    tmp, ref = small_store
    scipzarr.convert([tmp / "e.npy"], tmp_path / "c.zarr", chunk_tiles=3, progress=True, scheduler="local",
                     cluster=ClusterOptions(workers=2, threads_per_worker=1))
    _same(ref, scipzarr.process(tmp_path / "c.zarr", CFG, None, progress=False))


@pytest.mark.parametrize("kind", ["ideas", "events", "cif"])
def test_converts_of_exports_and_cifs_match_threads_on_processes_and_a_cluster(tmp_path, kind):
    """The readers' per-process state (the one-reader lock of IDEAS exports, the open CIF files) goes to other
    processes' workers by name, not by value: every scheduler writes the same store."""
    import tifffile
    import zarr

    if kind == "ideas":
        src = tmp_path / "export"
        src.mkdir()
        rng = np.random.default_rng(3)
        for i in range(40):
            for c in (1, 2):
                tifffile.imwrite(src / f"{i}_Ch{c}.tif", rng.integers(0, 1000, (20 + i % 3, 22), np.uint16))
    elif kind == "events":  # one multichannel TIFF per event
        src = tmp_path / "events"
        src.mkdir()
        rng = np.random.default_rng(4)
        for i in range(40):
            tifffile.imwrite(src / f"e{i:03d}.tif", rng.integers(0, 1000, (2, 18 + i % 4, 21), np.uint16))
    else:
        from .conftest import CIF

        if not CIF.exists():
            pytest.skip(f"shared data not present: {CIF}")
        src = CIF
    stores = {}
    for sched in ("threads", "processes", "local"):
        out = tmp_path / f"{sched}.zarr"
        scipzarr.convert([src], out, chunk_tiles=3, progress=False, scheduler=sched,
                         cluster=ClusterOptions(workers=2, threads_per_worker=1) if sched == "local" else None)
        root = zarr.open_group(str(out), mode="r")
        stores[sched] = [np.asarray(root["s0"][...])] + [np.asarray(root["labels"][name]["s0"][...])
                                                         for name in root.attrs["scipzarr"].get("instrument_masks", [])]
    assert len(stores["threads"]) == (7 if kind == "cif" else 1) and stores["threads"][0].any()
    for sched in ("processes", "local"):
        assert len(stores[sched]) == len(stores["threads"])
        for a, b in zip(stores[sched], stores["threads"]):
            np.testing.assert_array_equal(a, b)


def _mpiexec():
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:
        pytest.skip("no mpiexec (pip install 'scipzarr[mpi]')")
    return exe


def test_mpi_four_ranks_match_threads(small_store, tmp_path):
    tmp, ref = small_store
    cfg = tmp_path / "c.yml"
    cfg.write_text("normalize: {method: percentile, scope: dataset}\n")
    cmd = [_mpiexec(), "-n", "4", sys.executable, "-m", "scipzarr", "process", tmp / "e.zarr", "-c", cfg,
           "-o", tmp_path / "mpi.h5ad", "--scheduler", "mpi"]
    r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "MPI cluster" in r.stderr and "2 workers" in r.stderr
    mpi = ad.read_h5ad(tmp_path / "mpi.h5ad")
    _same(ref, mpi)


def test_mpi_failure_exits_non_zero_without_hanging(small_store, tmp_path):
    tmp, _ = small_store
    (tmp_path / "bad.yml").write_text("segmentation: {channels: [nope]}\n")
    cmd = [_mpiexec(), "-n", "3", sys.executable, "-m", "scipzarr", "process", tmp / "e.zarr", "-c",
           tmp_path / "bad.yml", "-o", tmp_path / "x.h5ad", "--scheduler", "mpi"]
    t0 = time.time()
    r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "unknown channel 'nope'" in r.stderr
    assert time.time() - t0 < 120
    assert not (tmp_path / "x.h5ad").exists()


def test_mpi_needs_three_ranks_and_unreachable_scheduler_is_one_line(small_store, tmp_path):
    tmp, _ = small_store
    cmd = [_mpiexec(), "-n", "2", sys.executable, "-m", "scipzarr", "process", tmp / "e.zarr",
           "-o", tmp_path / "x.h5ad", "--scheduler", "mpi"]
    r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "at least 3 MPI ranks" in r.stderr
    with pytest.raises(ScipzarrError, match="cannot reach the scheduler"):
        scipzarr.process(tmp / "e.zarr", CFG, None, progress=False, scheduler="tcp://127.0.0.1:1")


def test_worker_killed_mid_run_gives_identical_table(small_store):
    from distributed import Client, LocalCluster

    tmp, ref = small_store
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0", processes=True) as cluster, \
            Client(cluster) as client:
        result, error = {}, []

        def run():
            try:
                result["t"] = scipzarr.process(tmp / "e.zarr", CFG, None, progress=False,
                                               scheduler=cluster.scheduler_address)
            except Exception as exc:  # pragma: no cover - reported below
                error.append(exc)

        th = threading.Thread(target=run)
        th.start()
        labels = tmp / "e.zarr" / "labels"
        deadline = time.time() + 120
        # wait until the measuring pass has written some label chunks, then kill a worker
        while time.time() < deadline:
            scratch = [p for p in labels.glob("*-scratch")] if labels.exists() else []
            if scratch and sum(len(f) for _, _, f in os.walk(scratch[0])) >= 4:
                break
            time.sleep(0.01)
        pids = client.run(os.getpid)
        victim = sorted(pids.values())[0]
        assert th.is_alive(), "the run ended before a worker could be killed"
        os.kill(victim, signal.SIGKILL)
        th.join(300)
        assert not error, error
        assert "t" in result
        _same(ref, result["t"])


@pytest.mark.parametrize("spec,needles", [
    ("slurm", ["#SBATCH -p short", "#SBATCH -A lab42", "#SBATCH --cpus-per-task=4", "#SBATCH -t 02:00:00"]),
    ("pbs", ["#PBS -q short", "#PBS -A lab42", "ncpus=4", "#PBS -l walltime=02:00:00"]),
])
def test_jobqueue_job_scripts(spec, needles):
    from scipzarr.scheduler import jobqueue_cluster

    opts = ClusterOptions(job_cores=4, job_memory="8GiB", walltime="02:00:00", queue="short", account="lab42")
    with jobqueue_cluster(spec, opts) as cluster:
        script = cluster.job_script()
    for n in needles:
        assert n in script, (n, script)
    assert "distributed" in script and "--nthreads 4" in script
