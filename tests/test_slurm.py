"""Real batch jobs on a one-node SLURM cluster (the ``slurm`` fixture): MPI job scripts, dask-jobqueue workers,
job arrays with a merge job, and a cancelled job resubmitted with --resume all give the threads table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import zarr

import scipzarr

from .conftest import flat_events, wait_for_job

pytestmark = pytest.mark.slow  # real batch jobs

VENV = sys.prefix
SCIPZARR = [sys.executable, "-m", "scipzarr"]


@pytest.fixture(scope="module")
def ifc_store(tmp_path_factory):
    d = tmp_path_factory.mktemp("slurm-ifc")
    events, _ = flat_events(300, size=32, channels=2, seed=11)
    np.save(d / "e.npy", events)
    scipzarr.convert([d / "e.npy"], d / "s.zarr", chunk_tiles=4, progress=False)
    subprocess.run([*SCIPZARR, "process", str(d / "s.zarr"), "-o", str(d / "threads.h5ad"), "-q"], check=True)
    labels = zarr.open_array(str(d / "s.zarr" / "labels" / "cells" / "s0"))[:]
    return d / "s.zarr", ad.read_h5ad(d / "threads.h5ad"), labels


def _same(table: Path, ref: ad.AnnData) -> None:
    t = ad.read_h5ad(table)
    pd.testing.assert_frame_equal(t.obs, ref.obs)
    np.testing.assert_array_equal(t.X, ref.X)
    assert list(t.var_names) == list(ref.var_names)


def _sbatch(env, script: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sbatch", *extra, str(script)], capture_output=True, text=True, env=env, timeout=900,
                          cwd=script.parent)


def test_mpi_jobscript_runs_under_sbatch_and_gives_the_threads_table(slurm, ifc_store, tmp_path):
    store, ref, _ = ifc_store
    out = tmp_path / "mpi.h5ad"
    script = tmp_path / "job.sh"
    script.write_text(subprocess.run([*SCIPZARR, "jobscript", "--system", "slurm", "--ranks", "4", "--venv", VENV,
                                      "--", "process", str(store), "-o", str(out)],
                                     capture_output=True, text=True, check=True).stdout)
    r = _sbatch(slurm, script, "--wait")
    assert r.returncode == 0, r.stderr + "".join(p.read_text() for p in tmp_path.glob("*.out"))
    _same(out, ref)


def test_mpi_jobscript_on_a_fov_store(slurm, tmp_path):
    import tifffile

    from .conftest import nuclei as _nuclei

    for f in range(3):
        tifffile.imwrite(tmp_path / f"f{f}.tif", _nuclei((220, 200), 10, seed=f, touching=0))
    scipzarr.convert(sorted(tmp_path.glob("f*.tif")), tmp_path / "s.zarr", kind="fov", chunk_size=64, progress=False)
    subprocess.run([*SCIPZARR, "process", str(tmp_path / "s.zarr"), "-o", str(tmp_path / "t.h5ad"), "-q"], check=True)
    ref = ad.read_h5ad(tmp_path / "t.h5ad")
    script = tmp_path / "job.sh"
    script.write_text(subprocess.run([*SCIPZARR, "jobscript", "--system", "slurm", "--ranks", "3", "--venv", VENV,
                                      "--", "process", str(tmp_path / "s.zarr"), "-o", str(tmp_path / "mpi.h5ad")],
                                     capture_output=True, text=True, check=True).stdout)
    r = _sbatch(slurm, script, "--wait")
    assert r.returncode == 0, r.stderr + "".join(p.read_text() for p in tmp_path.glob("*.out"))
    _same(tmp_path / "mpi.h5ad", ref)


def _held_copy(store: Path, tmp_path: Path) -> tuple[Path, Path, bytes, Path]:
    """A copy of ``store`` whose mosaic chunk 10 (of 19) is a named pipe, so that a run stops there for certain
    until the test writes the chunk's bytes into the pipe; and a config that states the mask channels and
    direction (no data scan reads the chunks before the chunk tasks do). Returns the copy, the pipe, the
    chunk's bytes and the config."""
    copy = tmp_path / "s.zarr"
    shutil.copytree(store, copy)
    held = copy / "s0" / "c" / "0" / "2" / "0"
    saved = held.read_bytes()
    held.unlink()
    os.mkfifo(held)
    config = tmp_path / "c.yml"
    config.write_text("segmentation:\n  channels: [0, 1]\n  threshold:\n    direction: up\n")
    return copy, held, saved, config


def _feed(held: Path, saved: bytes, release: threading.Event) -> threading.Thread:
    """A thread that gives the held chunk's bytes to every reader of the pipe once ``release`` is set."""
    def run():
        while True:
            try:
                with open(held, "wb") as pipe:  # waits for a reader
                    release.wait()
                    pipe.write(saved)
            except BrokenPipeError:  # the reader was cancelled meanwhile; its task runs again elsewhere
                continue
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_jobqueue_workers_are_slurm_jobs_and_a_cancelled_one_is_replaced(slurm, ifc_store, tmp_path):
    store, held, saved, config = _held_copy(ifc_store[0], tmp_path)
    out = tmp_path / "jq.h5ad"
    subprocess.run([*SCIPZARR, "process", str(ifc_store[0]), "-o", str(tmp_path / "ref.h5ad"), "--config",
                    str(config), "--features", "all", "-q"], check=True)
    ref = ad.read_h5ad(tmp_path / "ref.h5ad")
    run = subprocess.Popen([*SCIPZARR, "process", str(store), "-o", str(out), "--scheduler", "slurm", "--workers",
                            "2", "--job-memory", "2GiB", "--config", str(config), "--features", "all"], env=slurm,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    release = threading.Event()  # the run cannot end before the held chunk is given: both workers come up
    _feed(held, saved, release)
    cancelled = None
    deadline = time.time() + 240
    while time.time() < deadline and run.poll() is None:
        running = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True,
                                 env=slurm).stdout.split()
        if len(running) >= 2:
            time.sleep(1)
            cancelled = running[0]
            subprocess.run(["scancel", cancelled], env=slurm, check=True)
            break
        time.sleep(0.5)
    release.set()
    stdout, stderr = run.communicate(timeout=600)
    assert run.returncode == 0, stderr
    _same(out, ref)
    assert cancelled is not None, "two worker jobs never ran"
    assert "left the queue" in stderr, f"job {cancelled} was cancelled but no replacement was submitted: {stderr}"


def test_array_job_without_mpi_and_its_merge_job_give_the_threads_table(slurm, ifc_store, tmp_path):
    store, ref, ref_labels = ifc_store
    out = tmp_path / "array.h5ad"
    driver = tmp_path / "submit.sh"
    driver.write_text(subprocess.run([*SCIPZARR, "jobscript", "--system", "slurm", "--array", "3", "--cpus", "1",
                                      "--venv", VENV, "--", "process", str(store), "-o", str(out)],
                                     capture_output=True, text=True, check=True).stdout)
    r = subprocess.run(["bash", str(driver)], capture_output=True, text=True, env=slurm, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    merge_job = r.stdout.split("merge job ")[1].split()[0]
    state = wait_for_job(slurm, merge_job)
    assert state == "COMPLETED", state + "".join(p.read_text() for p in tmp_path.glob("*.out"))
    _same(out, ref)
    np.testing.assert_array_equal(zarr.open_array(str(store / "labels" / "cells" / "s0"))[:], ref_labels)
    assert not list(tmp_path.glob("array.part-*"))


def test_a_job_cancelled_mid_run_and_resubmitted_with_resume_gives_the_same_table(slurm, ifc_store, tmp_path):
    store, held, saved, config = _held_copy(ifc_store[0], tmp_path)  # the job stops mid-run for certain
    out = tmp_path / "t.h5ad"
    args = f"process {store} -o {out} --config {config} --features shape,intensity,texture -q"
    script = tmp_path / "job.sh"
    script.write_text("\n".join([
        "#!/bin/bash", "#SBATCH --ntasks=1", "#SBATCH --cpus-per-task=1", f"#SBATCH --output={tmp_path}/%j.out",
        f"source {VENV}/bin/activate", f"python -m scipzarr {args} --resume --scheduler synchronous", ""]))
    ref_t = tmp_path / "ref.h5ad"
    subprocess.run([*SCIPZARR, *args.replace(str(store), str(ifc_store[0])).replace(str(out), str(ref_t)).split()],
                   check=True)
    job = _sbatch(slurm, script, "--parsable").stdout.strip()
    writer, deadline = None, time.time() + 300
    while writer is None and time.time() < deadline:
        try:  # opening a pipe's write end succeeds once a reader has it open: the job is waiting on it
            writer = os.open(held, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.2)
    assert writer is not None, "the job never reached the held chunk"
    subprocess.run(["scancel", job], env=slurm, check=True)
    wait_for_job(slurm, job)
    os.close(writer)
    chunks = tmp_path / ".t.h5ad.scipzarr-work" / "chunks"
    done = len(list(chunks.glob("*[0-9].npz")))
    assert not out.exists() and 1 <= done < 19, done
    # the resubmitted job finds the same input (the pipe is still there) and is given the chunk's bytes
    release = threading.Event()
    release.set()
    _feed(held, saved, release)
    r = _sbatch(slurm, script, "--wait")
    assert r.returncode == 0, r.stderr + "".join(p.read_text() for p in tmp_path.glob("*.out"))
    _same(out, ad.read_h5ad(ref_t))
    assert not (tmp_path / ".t.h5ad.scipzarr-work").exists()
