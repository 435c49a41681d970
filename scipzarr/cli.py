"""The ``scipzarr`` command line: convert, process, config, info, validate, demo."""

from __future__ import annotations

import argparse
import errno
import gc
import logging
import os
import sys
from pathlib import Path

from ._version import __version__
from .errors import ScipzarrError

EXAMPLES = {
    "convert": """examples:
  scipzarr convert exports/ -o cells.zarr                      # IDEAS export or per-event TIFFs
  scipzarr convert exports/ -o cells.zarr --channels BF,DNA,DF  # name the channels
  scipzarr convert stack.npy -o cells.zarr --chunk-tiles 8      # (N, C, Y, X) numpy stack
  scipzarr convert G1_Ch3.tif G1_Ch4.tif -o g1.zarr --tile-size 40  # montages""",
    "process": """examples:
  scipzarr process cells.zarr -o cells.h5ad
  scipzarr process cells.zarr -o cells.h5ad --features all
  scipzarr process cells.zarr -o cells.h5ad --features shape,intensity,texture
  scipzarr process cells.zarr -o cells.h5ad --scheduler local --workers 2 --memory-limit 4GiB
  scipzarr process cells.zarr -o cells.h5ad --device auto
  mpiexec -n 4 scipzarr process cells.zarr -o cells.h5ad --scheduler mpi
  scipzarr config > my.yml && scipzarr process cells.zarr -c my.yml -o cells-table.zarr""",
    "info": "examples:\n  scipzarr info cells.zarr\n  scipzarr info cells.h5ad",
    "validate": "examples:\n  scipzarr validate cells.zarr\n  scipzarr validate cells.h5ad",
    "demo": "examples:\n  scipzarr demo            # in ./scipzarr-demo\n  scipzarr demo /tmp/demo --events 2000",
    "config": "examples:\n  scipzarr config > config.yml",
    "report": "examples:\n  scipzarr report cells.h5ad -o report.html\n  scipzarr report cells.h5ad --store moved/cells.zarr -o report.html",
    "export": "examples:\n  scipzarr export cells.h5ad -o cells.csv\n  scipzarr export cells.h5ad -o cells.parquet --names scipzarr",
    "merge": "examples:\n  scipzarr merge part-*.h5ad -o cells.h5ad",
    "jobscript": """examples:
  scipzarr jobscript --system slurm --array 8 --venv ~/envs/scipzarr -- process cells.zarr -o cells.h5ad > job.sh
  scipzarr jobscript --system slurm --ranks 34 --nodes 2 --queue batch -- process cells.zarr -o cells.h5ad > job.sh
  scipzarr jobscript --system pbs --ranks 8 --module openmpi --venv ~/envs/scipzarr -- process cells.zarr -o t.h5ad""",
}


def _family_names() -> list[str]:
    from .features import FAMILIES

    return list(FAMILIES)


def _parser(families: bool = True) -> argparse.ArgumentParser:
    """The command line. ``families``: list the feature families in the help (imports the feature registry,
    ~1 s: only when help is asked for)."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="scipzarr", formatter_class=fmt,
        description="Scalable cytometry image processing on Dask and OME-Zarr.",
        epilog="Run 'scipzarr COMMAND --help' for each command's options.",
    )
    p.add_argument("--version", action="version", version=f"scipzarr {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summaries")
    common.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    run = argparse.ArgumentParser(add_help=False)
    g = run.add_argument_group("where to run (identical results on every scheduler; see docs/scaling.md)")
    g.add_argument("--scheduler", default="threads", metavar="S",
                   help="threads (default), synchronous, processes, local (LocalCluster), mpi (under mpiexec, "
                        "dask-mpi), slurm, pbs (dask-jobqueue), or a scheduler address tcp://HOST:PORT")
    g.add_argument("--workers", type=int, metavar="N", help="local: worker processes; slurm/pbs: jobs")
    g.add_argument("--threads-per-worker", type=int, metavar="N", help="local: threads per worker")
    g.add_argument("--memory-limit", metavar="SIZE", help="local: memory limit per worker, e.g. 4GiB")
    g.add_argument("--adapt", metavar="MIN:MAX", help="slurm/pbs: scale adaptively between MIN and MAX jobs")
    g.add_argument("--job-cores", type=int, metavar="N", help="slurm/pbs: cores per job (default 1)")
    g.add_argument("--job-memory", metavar="SIZE", help="slurm/pbs: memory per job (default 4GiB)")
    g.add_argument("--walltime", metavar="HH:MM:SS", help="slurm/pbs: job walltime (default 01:00:00)")
    g.add_argument("--queue", metavar="NAME", help="slurm/pbs: partition or queue")
    g.add_argument("--account", metavar="NAME", help="slurm/pbs: account to charge")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    c = sub.add_parser("convert", parents=[common, run], formatter_class=fmt, epilog=EXAMPLES["convert"],
                       help="convert IFC images to an OME-Zarr store",
                       description="Convert imaging flow cytometry events to a chunked OME-Zarr mosaic store.")
    c.add_argument("inputs", nargs="+", metavar="INPUT", help="TIFF files or folders, or one .npy stack")
    c.add_argument("-o", "--output", required=True, metavar="STORE.zarr", help="store to write")
    c.add_argument("--kind", default="ifc", choices=["ifc", "fov", "auto"],
                   help="ifc: events into a mosaic store (default); fov: fields of view, one multiscale image each; "
                        "auto: guess from the first input")
    c.add_argument("--chunk-size", type=int, metavar="N",
                   help="FOV stores: chunks of N x N pixels (default 1024)")
    c.add_argument("--z-projection", choices=["max", "mean"],
                   help="FOV stores: how z-stacks become one plane (default max)")
    c.add_argument("--channels", metavar="NAME,...", help="channel names, comma-separated, one per channel")
    c.add_argument("--channel-pattern", metavar="REGEX",
                   help="FOV stores: join one-file-per-channel images into multichannel FOVs; a regular expression "
                        "whose one group is the channel part of the file name, e.g. 'd(\\d)' for ..._d0.tif, "
                        "..._d1.tif")
    c.add_argument("--chunk-tiles", type=int, default=16, metavar="K",
                   help="each chunk holds K x K events (default: 16)")
    c.add_argument("--tile-size", type=int, metavar="T",
                   help="montage tile size, or the common event size (default: the largest event)")
    c.add_argument("--fit", choices=["pad", "crop"], default="pad",
                   help="pad events to the tile size (default) or centre-crop larger ones")
    c.add_argument("--overwrite", action="store_true", help="replace an existing output")
    c.add_argument("--on-error", choices=["fail", "skip"], default="fail",
                   help="fail at the first bad event (default), or skip bad events and list them in tables/rejected")
    c.add_argument("--resume", action="store_true",
                   help="continue an interrupted convert (same inputs and options): keep the chunks (IFC) or FOVs "
                        "already written")

    pr = sub.add_parser("process", parents=[common, run], formatter_class=fmt, epilog=EXAMPLES["process"],
                        help="segment and measure every event of a store",
                        description="Normalize, segment, label and measure every event; write an AnnData table "
                                    "and the labels (into the store).")
    pr.add_argument("store", metavar="STORE.zarr")
    pr.add_argument("-c", "--config", metavar="CONFIG.yml", help="YAML config (default: built-in defaults)")
    pr.add_argument("-o", "--output", required=True, metavar="TABLE.h5ad|TABLE.zarr", help="table to write")
    pr.add_argument("--overwrite", action="store_true", help="replace an existing output table")
    pr.add_argument("--chunk-size", type=int, metavar="N",
                    help="FOV stores: process in chunks of N x N pixels (default: the store's chunks)")
    pr.add_argument("--device", choices=["cpu", "gpu", "auto"], default="cpu",
                    help="where the segmentation kernels run: cpu (default), gpu (CuPy; an error without one) or "
                         "auto (a GPU when there is one, said in one line); results are the same (docs/gpu.md)")
    pr.add_argument("--features", metavar="all|FAMILY,...",
                    help="feature families to measure, overriding the config's features.families: all, or a "
                         f"comma-separated list of {', '.join(_family_names()) if families else 'families'}")
    pr.add_argument("--on-error", choices=["fail", "skip"], default="fail",
                    help="events with NaN/inf pixels: fail (default) or leave them out (listed in the table)")
    pr.add_argument("--resume", action="store_true",
                    help="continue an interrupted run (same config and input): compute only the missing chunks")
    pr.add_argument("--shard", metavar="I/N",
                    help="process every N-th chunk or FOV from the I-th (0-based) into a partial table, e.g. a job "
                         "array's task; 'scipzarr merge' joins the N parts (docs/scaling.md)")

    mg = sub.add_parser("merge", parents=[common], formatter_class=fmt, epilog=EXAMPLES["merge"],
                        help="join the partial tables of 'process --shard I/N' into one table",
                        description="Join the partial tables of one 'process --shard I/N' job into the table of a "
                                    "single run (and, for IFC stores, write the label image); refuses parts of "
                                    "different stores, configs or shard counts and names missing shards.")
    mg.add_argument("parts", nargs="+", metavar="PART", help="partial tables (.h5ad or .zarr)")
    mg.add_argument("-o", "--output", required=True, metavar="TABLE.h5ad|TABLE.zarr")
    mg.add_argument("--store", metavar="STORE.zarr", help="the store (default: the one recorded in the parts)")
    mg.add_argument("--overwrite", action="store_true")

    cf = sub.add_parser("config", parents=[common], formatter_class=fmt, epilog=EXAMPLES["config"],
                        help="print the default config as YAML", description="Print the default processing config.")
    del cf

    i = sub.add_parser("info", parents=[common], formatter_class=fmt, epilog=EXAMPLES["info"],
                       help="summarize a store or a table", description="Human summary of a store or a feature table.")
    i.add_argument("path", metavar="PATH")

    v = sub.add_parser("validate", parents=[common], formatter_class=fmt, epilog=EXAMPLES["validate"],
                       help="check a store (NGFF validity, metadata) or a feature table (its schema)",
                       description="Check a store's NGFF validity (ome-zarr-models) and scipzarr's own metadata, or "
                                   "a table written by 'scipzarr process' against schemas/table.schema.json; "
                                   "exit 1 when invalid.")
    v.add_argument("store", metavar="STORE.zarr|TABLE.h5ad|TABLE.zarr")

    r = sub.add_parser("report", parents=[common], formatter_class=fmt, epilog=EXAMPLES["report"],
                       help="write a self-contained HTML quality-control report",
                       description="One HTML file (images embedded): numbers and provenance, intensity histograms, "
                                   "objects per event, feature distributions, PCA by class, and galleries of events "
                                   "with their segmentation outlines.")
    r.add_argument("table", metavar="TABLE", help="a table written by scipzarr process")
    r.add_argument("--store", metavar="STORE.zarr", help="the store (default: the one recorded in the table)")
    r.add_argument("-o", "--output", required=True, metavar="REPORT.html")
    r.add_argument("--overwrite", action="store_true", help="replace an existing report")

    e = sub.add_parser("export", parents=[common], formatter_class=fmt, epilog=EXAMPLES["export"],
                       help="export a table as CSV or Parquet (CellProfiler-like column names)",
                       description="Write the feature table as CSV or Parquet, one row per object, with "
                                   "CellProfiler-like column names (AreaShape_Area, Intensity_MeanIntensity_DNA, ...).")
    e.add_argument("table", metavar="TABLE")
    e.add_argument("-o", "--output", required=True, metavar="OUT.csv|OUT.parquet")
    e.add_argument("--format", choices=["csv", "parquet"], help="default: from the output's suffix")
    e.add_argument("--names", choices=["cellprofiler", "scipzarr"], default="cellprofiler",
                   help="column names (default: cellprofiler)")
    e.add_argument("--overwrite", action="store_true")

    j = sub.add_parser("jobscript", parents=[common], formatter_class=fmt, epilog=EXAMPLES["jobscript"],
                       help="print a SLURM or PBS batch script that runs a command in MPI mode",
                       description="Print a ready batch script that runs 'scipzarr COMMAND ... --scheduler mpi' "
                                   "under mpiexec (rank 0: dask scheduler, rank 1: client, others: workers).")
    j.add_argument("--system", required=True, choices=["slurm", "pbs"])
    j.add_argument("--ranks", type=int, default=4, metavar="N", help="MPI ranks (>= 3; N - 2 workers; default 4)")
    j.add_argument("--array", type=int, metavar="N",
                   help="slurm: a job array of N single-node tasks without MPI, each 'process --shard I/N' on "
                        "--cpus threads, then a merge job that waits for them (afterok)")
    j.add_argument("--cpus", type=int, default=2, metavar="N", help="--array: cores per array task (default 2)")
    j.add_argument("--resubmit", action="store_true",
                   help="--array: a task that hits its time limit is requeued and continues with --resume")
    j.add_argument("--nodes", type=int, default=1, metavar="N", help="nodes (default 1)")
    j.add_argument("--walltime", default="01:00:00", metavar="HH:MM:SS")
    j.add_argument("--queue", metavar="NAME", help="partition (slurm) or queue (pbs)")
    j.add_argument("--account", metavar="NAME")
    j.add_argument("--job-name", default="scipzarr", metavar="NAME")
    j.add_argument("--module", action="append", default=[], metavar="NAME",
                   help="'module load NAME' before running (system MPI route); repeatable")
    j.add_argument("--venv", metavar="DIR", help="virtual environment to activate in the job")
    j.add_argument("args", nargs=argparse.REMAINDER, metavar="-- COMMAND ARGS",
                   help="the scipzarr command to run, e.g. -- process cells.zarr -o cells.h5ad")

    d = sub.add_parser("demo", parents=[common], formatter_class=fmt, epilog=EXAMPLES["demo"],
                       help="generate, convert and process a small IFC data set",
                       description="Build a small synthetic IFC data set (IDEAS-style TIFFs), convert and "
                                   "process it, and print a summary.")
    d.add_argument("dir", nargs="?", default="scipzarr-demo", metavar="DIR", help="work folder (default: ./scipzarr-demo)")
    d.add_argument("--events", type=int, default=600, help="number of events (default: 600)")
    return p


def _say(args, text: str) -> None:
    if not args.quiet:
        print(text)


def _cluster(args):
    from .scheduler import ClusterOptions

    adapt = None
    if args.adapt:
        try:
            lo, hi = (int(v) for v in args.adapt.split(":"))
        except ValueError:
            raise ScipzarrError(f"--adapt {args.adapt}: give MIN:MAX job counts, e.g. 1:10") from None
        adapt = (lo, hi)
    return ClusterOptions(workers=args.workers, threads_per_worker=args.threads_per_worker,
                          memory_limit=args.memory_limit, adapt=adapt, job_cores=args.job_cores,
                          job_memory=args.job_memory, walltime=args.walltime, queue=args.queue,
                          account=args.account)


def _imports_done() -> None:
    """Called by a command once its modules are imported: the garbage collector, off while they loaded
    (:func:`main`), is turned back on with everything loaded so far set aside (``gc.freeze``), so later
    collections do not walk the ~1 million objects of numpy, pandas, dask, zarr, anndata and numba. A CIF
    convert of 6,660 events spent 0.45 s collecting, 0.07 s so (docs/benchmarks.md)."""
    gc.freeze()
    gc.enable()


def _cmd_convert(args) -> int:
    from .converters import convert

    _imports_done()
    channels = [c.strip() for c in args.channels.split(",")] if args.channels else None
    res = convert(args.inputs, args.output, kind=args.kind, channels=channels, chunk_tiles=args.chunk_tiles,
                  tile_size=args.tile_size, fit=args.fit, overwrite=args.overwrite, resume=args.resume,
                  on_error=args.on_error,
                  progress=not args.quiet,
                  scheduler=args.scheduler, cluster=_cluster(args), chunk_size=args.chunk_size,
                  z_projection=args.z_projection, channel_pattern=args.channel_pattern)
    if res.get("kind") == "fov":
        _say(args, f"{res['store']}: {res['fovs']} FOVs, channels {','.join(res['channels'])}, chunks of "
                   f"{res['chunk']}x{res['chunk']} px, {res['seconds']:.1f} s "
                   f"({res['pixels'] / max(res['seconds'], 1e-9) / 1e6:,.1f} Mpx/s)")
        return 0
    _say(args, f"{res['store']}: {res['events']} events ({res['layout']}), channels {','.join(res['channels'])}, "
               f"tile {res['tile'][0]}x{res['tile'][1]}, {res['chunks']} chunks of {args.chunk_tiles}x{args.chunk_tiles} "
               f"events, {res['rejected']} rejected, {res['seconds']:.1f} s "
               f"({res['events'] / max(res['seconds'], 1e-9):,.0f} events/s)")
    if res["rejected"]:
        print(f"scipzarr: {res['rejected']} events rejected; see tables/rejected in {res['store']} "
              f"(scipzarr info {res['store']})", file=sys.stderr)
    return 0


def _cmd_process(args) -> int:
    from .config import load_config
    from .pipeline import process

    _imports_done()
    config = load_config(args.config)
    if args.features is not None:
        from .features import resolve_families

        try:
            config["features"]["families"] = resolve_families(args.features)
        except ValueError as exc:
            raise ScipzarrError(f"--features {args.features}: {exc}") from None
    adata = process(args.store, config, args.output, overwrite=args.overwrite, resume=args.resume,
                    on_error=args.on_error,
                    progress=not args.quiet,
                    scheduler=args.scheduler, cluster=_cluster(args), chunk_size=args.chunk_size,
                    device=args.device, shard=args.shard, table_in_memory=False)
    meta = adata.uns["scipzarr"]
    if args.shard:
        _say(args, f"{args.output}: shard {args.shard}: {meta['objects']} objects x {meta['features']} features, "
                   f"{meta['seconds']:.1f} s; join the parts with 'scipzarr merge'")
        return 0
    if meta.get("kind") == "fov":
        _say(args, f"{args.output}: {meta['fovs']} FOVs, {meta['objects']} objects x {meta['features']} features, "
                   f"{meta['seconds']:.1f} s ({meta['seconds'] / max(meta['fovs'], 1):.2f} s per FOV)")
        return 0
    _say(args, f"{args.output}: {meta['events']} events, {meta['objects']} objects "
               f"({meta['events_without_objects']} events without objects, {meta['events_rejected']} rejected), "
               f"{meta['features']} features, "
               f"{meta['seconds']:.1f} s ({meta['events'] / max(meta['seconds'], 1e-9):,.0f} events/s)")
    return 0


def _cmd_merge(args) -> int:
    from .pipeline.merge import merge

    _imports_done()
    adata = merge(args.parts, args.output, overwrite=args.overwrite, store=args.store)
    _say(args, f"{args.output}: {len(args.parts)} parts merged, {adata.n_obs} objects x {adata.n_vars} features")
    return 0


def _cmd_config(args) -> int:
    from .config import DEFAULT_CONFIG, dump_config

    _imports_done()
    print(dump_config(DEFAULT_CONFIG), end="")
    return 0


def _cmd_info(args) -> int:
    from .info import describe

    _imports_done()
    print(describe(Path(args.path)))
    return 0


def _cmd_validate(args) -> int:
    from .store import validate
    from .table import validate_table_file

    _imports_done()
    path = Path(args.store)
    if path.suffix == ".h5ad" or (path.suffix == ".zarr" and _is_table(path)):
        kind, problems = validate_table_file(path)
        what = f"{kind.upper()} feature table (schemas/table.schema.json)"
    else:
        kind, problems = validate(path)
        what = ("OME-NGFF 0.5 images of every FOV + labels, scipzarr metadata" if kind == "fov" else
                "OME-NGFF 0.5 image + labels, scipzarr metadata, event table")
    if problems:
        for prob in problems:
            print(f"{args.store}: {prob}", file=sys.stderr)
        print(f"{args.store}: INVALID ({len(problems)} problem{'s' if len(problems) > 1 else ''})", file=sys.stderr)
        return 1
    _say(args, f"{args.store}: valid ({what})")
    return 0


def _is_table(path: Path) -> bool:
    """A ``.zarr`` folder written by anndata (an AnnData group), not a scipzarr store."""
    import json

    try:
        meta = json.loads((path / "zarr.json").read_text())
    except (OSError, ValueError):
        meta = {}
    return meta.get("attributes", {}).get("encoding-type") == "anndata"


def _cmd_report(args) -> int:
    from .report import write_report

    _imports_done()
    out = write_report(Path(args.table), Path(args.output), Path(args.store) if args.store else None,
                       overwrite=args.overwrite)
    _say(args, f"{out}: report written ({out.stat().st_size / 2**20:.1f} MiB, self-contained)")
    return 0


def _cmd_export(args) -> int:
    from .export import export

    _imports_done()
    out = export(args.table, args.output, args.format, args.names, overwrite=args.overwrite)
    _say(args, f"{out}: exported ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def _cmd_jobscript(args) -> int:
    from .jobscript import jobscript

    _imports_done()
    if args.array:
        from .jobscript import array_jobscript

        print(array_jobscript(args.system, args.args, tasks=args.array, cpus=args.cpus, walltime=args.walltime,
                              queue=args.queue, account=args.account, job_name=args.job_name,
                              modules=args.module, venv=args.venv, requeue=args.resubmit), end="")
        return 0
    print(jobscript(args.system, args.args, ranks=args.ranks, nodes=args.nodes, walltime=args.walltime,
                    queue=args.queue, account=args.account, job_name=args.job_name, modules=args.module,
                    venv=args.venv), end="")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    _imports_done()
    run_demo(Path(args.dir), n_events=args.events, quiet=args.quiet)
    return 0


COMMANDS = {"convert": _cmd_convert, "process": _cmd_process, "merge": _cmd_merge, "config": _cmd_config, "info": _cmd_info,
            "validate": _cmd_validate, "demo": _cmd_demo, "jobscript": _cmd_jobscript,
            "report": _cmd_report, "export": _cmd_export}


def _closed_pipe() -> int:
    """The reader of our output went away (``scipzarr info X | head``): end quietly, as other tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's flush at exit must not fail again
    except OSError:
        pass
    return 141


def _watched() -> bool:
    """Whether a profiler, debugger or coverage tool watches this process (they write at a normal exit)."""
    monitoring = getattr(sys, "monitoring", None)
    tools = any(monitoring.get_tool(i) for i in range(6)) if monitoring else False
    return bool(tools or sys.getprofile() or sys.gettrace())


def run() -> None:
    """The ``scipzarr`` command: :func:`main`, then a quick exit.

    A normal interpreter exit after a run spends ~0.4 s tearing down modules and objects (measured on a CIF
    convert of 3.6 s in all). Here the exit handlers run as they would (temporary folders, logging, worker
    threads joined), output is flushed, and the process ends with ``os._exit``. Runs that started MPI or a
    dask.distributed cluster exit the normal way (their clean-up hooks live outside Python's handlers), and so
    do runs under a profiler or tracer (``python -m cProfile -m scipzarr ...``).
    """
    code = main() or 0
    if "mpi4py" in sys.modules or "distributed" in sys.modules or _watched():
        sys.exit(code)
    import atexit
    import threading

    getattr(threading, "_shutdown", lambda: None)()  # what a normal exit does first: join the worker threads
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser(families=any(a in ("-h", "--help") for a in argv)).parse_args(argv)
    if not args.debug:
        # readers' own log lines (e.g. tifffile on a corrupt file) would duplicate our one-line errors;
        # dask.distributed's INFO chatter (and its tracebacks at normal shutdown) only with --debug
        logging.getLogger("tifffile").setLevel(logging.CRITICAL)
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
    mpi = getattr(args, "scheduler", None) == "mpi"
    collecting = gc.isenabled()
    gc.disable()  # while the command imports its modules: see _imports_done
    try:
        if mpi:
            from .scheduler import close_mpi, init_mpi

            if not init_mpi():
                return 0  # scheduler or worker rank: the cluster has been closed by the client
            try:
                return COMMANDS[args.command](args)
            finally:
                close_mpi()
        return COMMANDS[args.command](args)
    except ScipzarrError as exc:
        if args.debug:
            raise
        print(f"scipzarr: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scipzarr: interrupted; no output was written (rerun with --resume to continue)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except OSError as exc:  # disk full, file too large, read-only or vanished locations
        if args.debug:
            raise
        where = exc.filename or getattr(args, "output", None) or "output"
        if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM):
            hint = ("cannot write; free disk space or choose a writable output location, then rerun "
                    "(with --resume to keep finished work)")
        else:
            hint = "check that the path exists and is readable"
        print(f"scipzarr: error: {where}: {exc.strerror or exc}; {hint}", file=sys.stderr)
        return 2
    except Exception as exc:  # an unexpected failure: still one line unless --debug
        if args.debug:
            raise
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"scipzarr: error: {type(exc).__name__}: {line} (rerun with --debug for details)", file=sys.stderr)
        return 3
    finally:
        gc.unfreeze()
        (gc.enable if collecting else gc.disable)()


if __name__ == "__main__":  # python -m scipzarr.cli: the same quick exit as the scipzarr command
    run()
