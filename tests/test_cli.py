"""The command line: help, version, demo, and one clear error line for bad input."""

import subprocess

import numpy as np
import pytest
import tifffile
import yaml

from .conftest import assert_one_line_error, flat_events, run, tree_digest


def test_version_and_help_on_every_command():
    from scipzarr import __version__

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"scipzarr {__version__}"
    for cmd in ("convert", "process", "config", "info", "validate", "demo", "report", "export", "jobscript"):
        r = run(cmd, "--help")
        assert r.returncode == 0 and "usage: scipzarr " + cmd in r.stdout and "examples:" in r.stdout


def test_config_prints_valid_default_yaml():
    from scipzarr.config import DEFAULT_CONFIG, resolve_config

    r = run("config")
    assert r.returncode == 0
    doc = yaml.safe_load(r.stdout)
    assert doc == DEFAULT_CONFIG == resolve_config(doc)


def test_main_gives_back_the_garbage_collector_as_it_found_it(tmp_path, capsys):
    """The command line turns collection off while a command imports and freezes what was loaded
    (cli._imports_done); called as a function, it leaves the collector on (or off) and unfrozen."""
    import gc

    from scipzarr.cli import main

    assert main(["config"]) == 0 and gc.isenabled() and gc.get_freeze_count() == 0
    assert main(["info", str(tmp_path / "missing.zarr")]) == 2  # an error path too
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        assert main(["config"]) == 0 and not gc.isenabled()
    finally:
        gc.enable()
    capsys.readouterr()


def test_demo_end_to_end(tmp_path):
    r = run("demo", tmp_path / "d", "--events", "90")
    assert r.returncode == 0, r.stderr
    assert "90 events -> 90 objects x 229 features" in r.stdout
    r = run("validate", tmp_path / "d" / "demo.zarr")
    assert r.returncode == 0 and "valid" in r.stdout
    r = run("info", tmp_path / "d" / "demo.h5ad")
    assert r.returncode == 0 and "90 objects x 229 features" in r.stdout
    r = run("info", tmp_path / "d" / "demo.zarr")
    assert "events     90" in r.stdout and "labels     cells" in r.stdout


def test_convert_process_cli_with_zarr_table_and_quiet(tmp_path):
    ev, _ = flat_events(10, size=20)
    np.save(tmp_path / "e.npy", ev)
    r = run("convert", tmp_path / "e.npy", "-o", tmp_path / "e.zarr", "--chunk-tiles", "2", "--channels", "A,B")
    assert r.returncode == 0, r.stderr
    assert "10 events (npy), channels A,B, tile 20x20, 3 chunks of 2x2 events" in r.stdout
    cfg = tmp_path / "c.yml"
    cfg.write_text("segmentation:\n  channels: [A]\n  smoothing_sigma: 0\n")
    r = run("process", tmp_path / "e.zarr", "-c", cfg, "-o", tmp_path / "t.zarr", "-q")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    import anndata as ad

    t = ad.read_zarr(tmp_path / "t.zarr")
    assert t.n_obs == 10 and "intensity_mean_B" in t.var_names


@pytest.fixture
def tiffs(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    ev, _ = flat_events(4, size=16, channels=2)
    for i, img in enumerate(ev):
        tifffile.imwrite(src / f"ev{i}.tif", img)
    return src


def _no_output(tmp_path, name):
    leftovers = [p.name for p in tmp_path.iterdir() if name in p.name]
    assert leftovers == []


def test_corrupt_tiff(tmp_path, tiffs):
    (tiffs / "ev2.tif").write_bytes(b"II*\x00garbage")
    before = tree_digest(tiffs)
    r = run("convert", tiffs, "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "ev2.tif", "not a readable TIFF")
    _no_output(tmp_path, "o.zarr")
    assert tree_digest(tiffs) == before


def test_truncated_tiff(tmp_path, tiffs):
    data = (tiffs / "ev1.tif").read_bytes()
    (tiffs / "ev1.tif").write_bytes(data[: len(data) // 2])
    before = tree_digest(tiffs)
    r = run("convert", tiffs, "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "ev1.tif")
    _no_output(tmp_path, "o.zarr")
    assert tree_digest(tiffs) == before


def test_inconsistent_channel_counts(tmp_path, tiffs):
    tifffile.imwrite(tiffs / "ev9.tif", np.zeros((3, 16, 16), np.uint16))
    r = run("convert", tiffs, "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "ev9.tif", "3 channels", "same channels")
    _no_output(tmp_path, "o.zarr")


def test_ideas_object_missing_a_channel(tmp_path):
    src = tmp_path / "ideas"
    src.mkdir()
    for obj in (1, 2):
        for ch in (1, 2):
            if (obj, ch) != (2, 2):
                tifffile.imwrite(src / f"s_{obj}_Ch{ch}.tif", np.ones((8, 8), np.uint16))
    r = run("convert", src, "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "s_2", "channels Ch1 but", "Ch1,Ch2")


def test_empty_input(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run("convert", tmp_path / "empty", "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "empty", "no event files found (.cif, .tif/.tiff)")
    _no_output(tmp_path, "o.zarr")


def test_existing_output_needs_overwrite(tmp_path, tiffs):
    assert run("convert", tiffs, "-o", tmp_path / "o.zarr", "-q").returncode == 0
    before = tree_digest(tmp_path / "o.zarr")
    r = run("convert", tiffs, "-o", tmp_path / "o.zarr")
    assert_one_line_error(r, "o.zarr", "--overwrite")
    assert tree_digest(tmp_path / "o.zarr") == before
    assert run("process", tmp_path / "o.zarr", "-o", tmp_path / "t.h5ad", "-q").returncode == 0
    r = run("process", tmp_path / "o.zarr", "-o", tmp_path / "t.h5ad")
    assert_one_line_error(r, "t.h5ad", "--overwrite")
    assert run("convert", tiffs, "-o", tmp_path / "o.zarr", "--overwrite", "-q").returncode == 0


@pytest.mark.parametrize("text,needles", [
    ("segmentation:\n  treshold: {method: otsu}\n", ["c.yml", "unknown key 'segmentation.treshold'"]),
    ("segmentation:\n  min_size: ten\n", ["c.yml", "segmentation.min_size", "not of type 'integer'"]),
    ("normalize: {method: zscore}\n", ["c.yml", "normalize.method"]),
    ("segmentation: [unclosed\n", ["c.yml", "YAML syntax error", "line"]),
])
def test_bad_configs(tmp_path, tiffs, text, needles):
    assert run("convert", tiffs, "-o", tmp_path / "o.zarr", "-q").returncode == 0
    (tmp_path / "c.yml").write_text(text)
    r = run("process", tmp_path / "o.zarr", "-c", tmp_path / "c.yml", "-o", tmp_path / "t.h5ad")
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "t.h5ad").exists()


def test_not_a_store_and_unknown_channel(tmp_path, tiffs):
    (tmp_path / "plain").mkdir()
    r = run("process", tmp_path / "plain", "-o", tmp_path / "t.h5ad")
    assert_one_line_error(r, "plain")
    assert run("convert", tiffs, "-o", tmp_path / "o.zarr", "-q").returncode == 0
    (tmp_path / "c.yml").write_text("segmentation: {channels: [DAPI]}\n")
    r = run("process", tmp_path / "o.zarr", "-c", tmp_path / "c.yml", "-o", tmp_path / "t.h5ad")
    assert_one_line_error(r, "unknown channel 'DAPI'", "ch0, ch1")


def test_output_inside_input_refused(tmp_path, tiffs):
    r = run("convert", tiffs, "-o", tiffs / "o.zarr")
    assert_one_line_error(r, "inside the input")
    assert not (tiffs / "o.zarr").exists()


def test_validate_reports_a_damaged_store(tmp_path, tiffs):
    assert run("convert", tiffs, "-o", tmp_path / "o.zarr", "-q").returncode == 0
    import json

    meta = tmp_path / "o.zarr" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["attributes"]["ome"]["multiscales"][0]["axes"][1]["type"] = "time"
    meta.write_text(json.dumps(doc))
    r = run("validate", tmp_path / "o.zarr")
    assert r.returncode == 1 and "not valid OME-NGFF" in r.stderr


@pytest.mark.parametrize("system,needles", [
    ("slurm", ["#SBATCH --ntasks=5", "#SBATCH --partition=short", "module load openmpi",
               "mpiexec -n 5 scipzarr process cells.zarr -o t.h5ad --scheduler mpi"]),
    ("pbs", ["#PBS -l nodes=1:ppn=5", "#PBS -q short", 'cd "$PBS_O_WORKDIR"',
             "mpiexec -n 5 scipzarr process cells.zarr -o t.h5ad --scheduler mpi"]),
])
def test_jobscript(system, needles, tmp_path):
    r = run("jobscript", "--system", system, "--ranks", "5", "--queue", "short", "--module", "openmpi",
            "--", "process", "cells.zarr", "-o", "t.h5ad")
    assert r.returncode == 0, r.stderr
    for n in needles:
        assert n in r.stdout
    (tmp_path / "job.sh").write_text(r.stdout)
    assert subprocess.run(["bash", "-n", tmp_path / "job.sh"]).returncode == 0
    r = run("jobscript", "--system", system, "--ranks", "2", "--", "process", "a.zarr", "-o", "t.h5ad")
    assert_one_line_error(r, "at least 3 ranks")


def test_quick_exit_keeps_exit_codes_output_and_profiles(tmp_path):
    """The command ends with os._exit after the exit handlers (scipzarr.cli.run): the exit code, all of a
    piped output and a temporary folder's clean-up survive it, and under a profiler the exit is the normal
    one (the profile is written)."""
    import sys

    script = ("import sys, tempfile; sys.argv = ['scipzarr', 'config']; "
              f"d = tempfile.TemporaryDirectory(dir={str(tmp_path)!r}); open(d.name + '/x', 'w').close(); "
              "from scipzarr.cli import run; run()")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0 and yaml.safe_load(r.stdout)["features"]["families"] == ["shape", "intensity"]
    assert list(tmp_path.iterdir()) == []  # the TemporaryDirectory's finalizer ran
    r = run("info", tmp_path / "missing.zarr")
    assert r.returncode == 2 and "missing.zarr" in r.stderr
    r = subprocess.run([sys.executable, "-m", "scipzarr.cli", "info", str(tmp_path / "missing.zarr")],
                       capture_output=True, text=True)  # the module run as a script ends the same way
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "missing.zarr" in r.stderr
    prof = tmp_path / "cli.prof"
    r = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "scipzarr", "config"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and prof.stat().st_size > 0
