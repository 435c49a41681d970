"""Where the chunk tasks run: local dask schedulers, a LocalCluster, an existing
scheduler, MPI (dask-mpi) or SLURM/PBS (dask-jobqueue), behind one option.

``--scheduler`` takes ``threads`` (default), ``synchronous``, ``processes``,
``local``, ``mpi``, ``slurm``, ``pbs`` or a scheduler address ``tcp://host:port``.
Every choice gives identical results: tasks are the same pure chunk functions.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import ScipzarrError

LOCAL_SCHEDULERS = ("threads", "synchronous", "processes")
CLUSTERS = ("local", "mpi", "slurm", "pbs")
CHOICES = LOCAL_SCHEDULERS + CLUSTERS


@dataclass
class ClusterOptions:
    """Sizes for clusters started by scipzarr (ignored by local schedulers)."""

    workers: int | None = None            # local: worker processes; slurm/pbs: jobs
    threads_per_worker: int | None = None
    memory_limit: str | None = None       # per worker, e.g. "4GiB"
    adapt: tuple[int, int] | None = None  # slurm/pbs: adaptive scaling between min and max jobs
    job_cores: int | None = None          # slurm/pbs: cores per job
    job_memory: str | None = None         # slurm/pbs: memory per job
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None


def check(spec: str) -> str:
    if spec in CHOICES or spec.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
        return spec
    raise ScipzarrError(f"--scheduler {spec}: unknown; choose one of {', '.join(CHOICES)} or a scheduler address tcp://HOST:PORT")


def init_mpi() -> bool:
    """Start the dask-mpi cluster on every rank; True only on the client rank (1).

    Rank 0 runs the scheduler and ranks >= 2 run workers; they block here until
    the client sends the close signal, then return False. MPI is initialized
    before ``distributed`` is imported (a known cause of hangs).
    """
    try:
        from mpi4py import MPI
    except ImportError:
        raise ScipzarrError("--scheduler mpi needs mpi4py and an MPI library; pip install 'scipzarr[mpi]' "
                            "or load your site's MPI module and pip install mpi4py") from None
    comm = MPI.COMM_WORLD
    if comm.Get_size() < 3:
        raise ScipzarrError(f"--scheduler mpi needs at least 3 MPI ranks (scheduler, client, worker), got "
                            f"{comm.Get_size()}; run under 'mpiexec -n 4 scipzarr ...'")
    from dask_mpi import initialize

    return bool(initialize(exit=False, dashboard=False, nthreads=1, memory_limit="auto", comm=comm))


def close_mpi() -> None:
    """Tell the dask-mpi scheduler and workers to exit (client rank only)."""
    from dask_mpi import send_close_signal

    send_close_signal()


def _worker_environ() -> dict:
    """The nanny's worker environment without MALLOC_TRIM_THRESHOLD_.

    Setting it makes glibc serve every allocation above 128 KiB with a fresh
    mmap, so each chunk task's temporary arrays page-fault again: measured
    24.8 s vs 15.7 s for 40 chunk tasks on one worker (docs/scaling.md).
    """
    import dask

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    return env


def jobqueue_cluster(spec: str, options: ClusterOptions):
    """A dask-jobqueue SLURMCluster or PBSCluster (no jobs submitted until scaled)."""
    try:
        import dask_jobqueue
    except ImportError:
        raise ScipzarrError(f"--scheduler {spec} needs dask-jobqueue; pip install 'scipzarr[jobqueue]'") from None
    cls = dask_jobqueue.SLURMCluster if spec == "slurm" else dask_jobqueue.PBSCluster
    kwargs = {"cores": options.job_cores or 1, "memory": options.job_memory or "4GiB", "processes": 1,
              "walltime": options.walltime or "01:00:00", "scheduler_options": {"dashboard_address": ":0"}}
    if options.queue:
        kwargs["queue"] = options.queue
    if options.account:
        kwargs["account"] = options.account
    return cls(**kwargs)


def _queued_jobs(spec: str, ids: list[str]) -> set[str] | None:
    """The job ids among ``ids`` the batch system still holds (pending or running); None when it cannot say."""
    import subprocess

    cmd = (["squeue", "-h", "-o", "%i", "-j", ",".join(ids)] if spec == "slurm" else ["qstat", *ids])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if spec == "slurm":
        return {line.strip() for line in r.stdout.splitlines() if line.strip()} if r.returncode == 0 else None
    return {i for i in ids if i.split(".")[0] in r.stdout}


def _replace_lost_jobs(cluster, spec: str, jobs: int, stop, quiet: bool) -> None:
    """Keep ``jobs`` worker jobs: a job that left the queue (cancelled, killed at its time limit, node lost) is
    dropped from the cluster's plan and a new one submitted; its tasks run again elsewhere, so the results are
    the same. dask-jobqueue does not resubmit lost jobs itself when scaled to a fixed size."""
    while not stop.wait(3.0):
        ids = {name: str(job.job_id) for name, job in list(cluster.workers.items())
               if getattr(job, "job_id", None)}
        if not ids:
            continue
        alive = _queued_jobs(spec, sorted(set(ids.values())))
        if alive is None:
            continue
        lost = [name for name, jid in ids.items() if jid not in alive]
        for name in lost:
            cluster.worker_spec.pop(name, None)
            cluster.workers.pop(name, None)
        if lost and not stop.is_set():
            _say(quiet, f"scipzarr: {len(lost)} worker job(s) left the queue ({', '.join(ids[n] for n in lost)}); "
                        "submitting replacements")
            cluster.scale(jobs=jobs)


class Runner:
    """Computes dask collections on the chosen scheduler; ``client`` when distributed."""

    def __init__(self, scheduler: str | None = None, client=None):
        self.scheduler, self.client = scheduler, client

    @property
    def distributed(self) -> bool:
        return self.client is not None

    def compute(self, collections):
        """Compute dask collections; returns their results as a tuple.

        On threads, a failing task stops the run only once the tasks already
        running have ended: the caller's clean-up (removing a half-written
        output) must not race tasks that are still writing into it.
        """
        import dask

        if self.client is not None:
            return tuple(self.client.compute(list(collections), sync=True))
        if self.scheduler != "threads":
            return dask.compute(*collections, scheduler=local_scheduler(self.scheduler))
        import os
        from concurrent.futures import ThreadPoolExecutor

        import dask.threaded

        pool = ThreadPoolExecutor(dask.config.get("num_workers", None) or os.cpu_count() or 1)
        try:
            return dask.compute(*collections, scheduler=dask.threaded.get, pool=pool)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def local_scheduler(name: str):
    """dask's local scheduler function of that name. Given the function, not its name, ``dask.compute`` skips
    looking for a distributed client, which imports ``distributed`` (0.35 s of every convert and threads run)."""
    if name == "sync":
        from dask.local import get_sync

        return get_sync
    if name == "processes":
        from dask.multiprocessing import get

        return get
    return name


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr)


def _gpu_cluster(kwargs: dict, quiet: bool):
    """Workers for ``--device gpu``: one per GPU, dask-cuda's ``LocalCUDACluster`` (each worker pinned to its
    GPU) when installed; otherwise one worker with one thread on GPU 0 (a plain LocalCluster cannot pin workers
    to GPUs). ``--workers N`` beyond the number of GPUs starts N single-thread worker processes that share GPU
    0: the host side of a chunk (reading, compiled feature kernels,
    writing) then runs in N processes, not in threads that wait for one another's GIL (docs/gpu.md)."""
    from distributed import LocalCluster

    try:
        from dask_cuda import LocalCUDACluster
    except ImportError:
        LocalCUDACluster = None
    wanted = kwargs.get("n_workers")
    if LocalCUDACluster is not None:
        import cupy

        if wanted is None or wanted <= cupy.cuda.runtime.getDeviceCount():
            kwargs = {k: v for k, v in kwargs.items() if k not in ("processes", "n_workers")}
            return LocalCUDACluster(**(kwargs | {"threads_per_worker": kwargs.get("threads_per_worker", 1)}))
    if wanted is None:
        _say(quiet, "scipzarr: dask-cuda is not installed: one worker on GPU 0 (pip install 'scipzarr[gpu]' for "
                    "one worker per GPU, or --workers N for N worker processes sharing it)")
        return LocalCluster(**(kwargs | {"n_workers": 1, "threads_per_worker": 1}))
    _say(quiet, f"scipzarr: {wanted} worker processes share GPU 0, one thread each")
    return LocalCluster(**(kwargs | {"threads_per_worker": 1}))


@contextmanager
def open_runner(spec: str = "threads", options: ClusterOptions | None = None, quiet: bool = False,
                device: str = "cpu"):
    """Yield a :class:`Runner` for ``spec``; clusters started here are closed on exit.

    With ``device="gpu"``, ``local`` starts one worker per GPU (see :func:`_gpu_cluster`).
    """
    spec = check(spec)
    options = options or ClusterOptions()
    if spec in LOCAL_SCHEDULERS:
        yield Runner(spec)
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a core dependency
        raise ScipzarrError("this scheduler needs dask.distributed; pip install distributed") from None
    if spec == "local":
        import dask
        from distributed import LocalCluster

        kwargs = {"dashboard_address": ":0", "processes": True}
        if options.workers:
            kwargs["n_workers"] = options.workers
        if options.threads_per_worker:
            kwargs["threads_per_worker"] = options.threads_per_worker
        if options.memory_limit:
            kwargs["memory_limit"] = options.memory_limit
        with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}), \
                (_gpu_cluster(kwargs, quiet) if device == "gpu" else LocalCluster(**kwargs)) as cluster, \
                Client(cluster) as client:
            _say(quiet, f"scipzarr: local cluster of {len(cluster.workers)} workers, dashboard {client.dashboard_link}")
            yield Runner(client=client)
        return
    if spec == "mpi":
        import dask

        address = dask.config.get("scheduler_address", None)
        if not address:
            raise ScipzarrError("--scheduler mpi: no dask-mpi cluster; launch with 'mpiexec -n N scipzarr ...' "
                                "(from Python, call scipzarr.scheduler.init_mpi() first)")
        with Client(address) as client:
            _say(quiet, f"scipzarr: MPI cluster at {address}, {len(client.scheduler_info()['workers'])} workers")
            yield Runner(client=client)
        return
    if spec in ("slurm", "pbs"):
        import threading

        with jobqueue_cluster(spec, options) as cluster:
            stop = threading.Event()
            if options.adapt:
                cluster.adapt(minimum_jobs=options.adapt[0], maximum_jobs=options.adapt[1])
            else:
                cluster.scale(jobs=options.workers or 1)
                threading.Thread(target=_replace_lost_jobs, args=(cluster, spec, options.workers or 1, stop, quiet),
                                 daemon=True).start()
            try:
                with Client(cluster) as client:
                    _say(quiet, f"scipzarr: {spec} cluster, dashboard {client.dashboard_link}")
                    yield Runner(client=client)
            finally:
                stop.set()
        return
    try:
        client = Client(spec, timeout="20s")
    except OSError as exc:
        raise ScipzarrError(f"--scheduler {spec}: cannot reach the scheduler ({exc}); check the address and that "
                            "'dask scheduler' is running") from None
    with client:
        _say(quiet, f"scipzarr: scheduler {spec}, {len(client.scheduler_info()['workers'])} workers")
        yield Runner(client=client)
