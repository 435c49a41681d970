"""``scipzarr process``: one entry for both store kinds.

:func:`process` resolves the device, checks the output and opens the run's
work folder (:class:`scipzarr.work.Work`, for ``--resume``), then hands the
store to its kind's pipeline (:mod:`.ifc`: one task per mosaic chunk;
:mod:`.fov`: one task per FOV or a graph per pass over a large FOV's
chunks), and builds, validates and writes the one table (:mod:`scipzarr.table`).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from .. import atomic, backend
from ..errors import ScipzarrError
from ..progress import Bar, compile_notice
from ..scheduler import ClusterOptions, open_runner
from ..store import mosaic as mosaic_store
from ..store import open_fov_store, open_store, require_kind
from ..table import build_fov_table, build_table, check_table_path, write_table
from ..work import Work, config_hash, fingerprint, work_path
from . import fov, ifc
from .shards import owns, parse_shard

__all__ = ["process"]


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def open_work(store_path, config: dict, output, overwrite: bool, resume: bool, progress: bool, extra=None):
    """The checked output path and the run's work folder (None without an output).

    The work folder's identity (config, input fingerprint, store and output
    paths, and ``extra``) must match for ``resume`` to continue it.
    """
    if output is None:
        if resume:
            raise ScipzarrError("--resume needs an output table (-o): progress is kept beside it")
        return None, None
    output = Path(output)
    check_table_path(output)
    # a resumed run may find its own table already written (killed while cleaning up)
    atomic.check_output(output, overwrite or (resume and work_path(output).exists()), [Path(store_path)])
    identity = {"config": config_hash(config), "input": fingerprint([Path(store_path)]),
                "store": str(Path(store_path).resolve()), "output": str(output.resolve()), **(extra or {})}
    return output, Work(work_path(output), identity, resume=resume, say=_note if progress else None)


def process(
    store_path: str | Path,
    config: dict,
    output: str | Path | None = None,
    *,
    overwrite: bool = False,
    resume: bool = False,
    on_error: str = "fail",
    progress: bool = True,
    scheduler: str = "threads",
    cluster: ClusterOptions | None = None,
    chunk_size: int | None = None,
    device: str = "cpu",
    shard: str | None = None,
    table_in_memory: bool = True,
):
    """Segment and measure every event (IFC) or FOV of a store; return the AnnData table.

    Parameters
    ----------
    store_path : path
        A store written by ``scipzarr convert``.
    config : dict
        A resolved config (:func:`scipzarr.config.resolve_config`).
    output : path, optional
        ``.h5ad`` or ``.zarr`` to write the table to (atomically). With an
        output, progress is kept per chunk or FOV in ``.<output>.scipzarr-work``.
    resume : bool
        Continue an interrupted run with the same config and input: only the
        missing chunks or FOVs are computed.
    on_error : {"fail", "skip"}
        IFC stores: events with NaN/inf pixels are an error, or left out and
        listed in ``uns["rejected_events"]``. FOV stores take ``fail`` only.
    scheduler : str
        ``threads``, ``synchronous``, ``processes``, ``local``, ``mpi``, ``slurm``,
        ``pbs`` or a scheduler address (see :mod:`scipzarr.scheduler`).
    cluster : ClusterOptions, optional
        Worker counts and sizes for clusters started here.
    chunk_size : int, optional
        FOV stores only: process in chunks of this many pixels (default: the store's).
    device : {"cpu", "gpu", "auto"}
        Where the kernels run (:mod:`scipzarr.backend`); ``auto`` takes a GPU
        when there is one and says so in one line. Results are the same.
    shard : "I/N", optional
        Process every N-th chunk (IFC) or FOV from the I-th (0-based) into a
        partial table; ``scipzarr merge`` joins the N parts into the table of
        one run (job arrays without MPI: docs/scaling.md).
    table_in_memory : bool
        With an output, an IFC table's features are written from the run's work folder block by block; the
        returned table holds them (default) or, ``False``, has no ``X`` (the command line: the features are
        never all in memory).

    Returns
    -------
    anndata.AnnData
    """
    with compile_notice(_note if progress else None):
        return _process(store_path, config, output, overwrite, resume, on_error, progress, scheduler, cluster,
                        chunk_size, device, shard, table_in_memory)


def _process(store_path, config, output, overwrite, resume, on_error, progress, scheduler, cluster, chunk_size,
             device, shard, table_in_memory):
    t0 = time.perf_counter()
    if on_error not in ("fail", "skip"):
        raise ScipzarrError(f"--on-error {on_error}: choose fail or skip")
    kind = require_kind(store_path)
    parts = parse_shard(shard)
    device = backend.resolve_device(device, say=_note if progress else None)
    if kind == "ifc":
        if chunk_size is not None:
            raise ScipzarrError("--chunk-size applies to FOV stores; IFC stores are processed by their own chunks")
        st = open_store(store_path)
        plan = ifc.make_plan(st, config, on_error, device)
        extra = None
    else:
        if on_error != "fail":
            raise ScipzarrError("--on-error skip applies to IFC stores (events with NaN/inf pixels); FOV stores "
                                "are processed whole: leave it out")
        st = open_fov_store(store_path)
        plan = fov.make_plan(st, config, chunk_size, device)
        extra = {"chunk_size": chunk_size}
    if parts is not None:
        extra = (extra or {}) | {"shard": shard}
    output, work = open_work(store_path, config, output, overwrite, resume, progress, extra)
    label_work = None
    try:
        with open_runner(scheduler, cluster, quiet=not progress, device=device) as runner:
            if kind == "ifc":
                rows, stats, label_work = ifc.run(st, plan, runner, progress=progress, work=work,
                                                  say=_note if progress else None, shard=parts)
                adata = build_table(st, plan, rows, ifc.columns(st, plan), config,
                                    seconds=time.perf_counter() - t0, thresholds=stats)
            else:
                if work is not None and resume and work.n_done() and progress:
                    _note(f"scipzarr: resuming: {work.n_done()} of {len(st.fovs)} FOVs already done")
                mine = sum(1 for i in range(len(st.fovs)) if owns(parts, i))
                with Bar(mine, description="process", unit="FOVs", enabled=progress, runner=runner) as bar:
                    results = fov.run(st, plan, runner.compute, bar, work, parts)
                obs, X, var, meta = fov.build_obs_x(st, plan, results)
                adata = build_fov_table(st, obs, X, var, meta, config, seconds=time.perf_counter() - t0)
    except ScipzarrError:
        if work is not None:  # bad input or config: nothing worth resuming
            work.close()
        if kind == "ifc" and work is not None and parts is None:  # a shard's scratch belongs to all shards
            mosaic_store.discard_labels(st, ifc.label_work_name(config, work, ""))
        raise
    if parts is not None:
        adata.uns["scipzarr"]["shard"] = {"index": parts[0], "count": parts[1]}
    lazy = adata.X is not None and not isinstance(adata.X, np.ndarray)  # a dask array over the work folder's blocks
    if lazy and table_in_memory:
        adata.X = adata.X.compute(scheduler="threads")  # the blocks read once, then written from memory
    if output is not None:
        write_table(adata, output)
    if lazy and not table_in_memory:
        adata.X = None  # written block by block, never held whole
    if work is not None:
        work.close()
    if kind == "ifc":
        mosaic_store.discard_labels(st, label_work)  # the scratch label blocks, last: a resume rebuilds from them
    return adata
