"""Progress display for long dask computations (rich), and the scheduler choice.

Progress counts the tasks of one named layer (one task = one chunk = K*K
events), so the bar shows events done, events/s and the ETA.
"""

from __future__ import annotations

import threading
import time

import dask
from dask.callbacks import Callback
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .errors import ScipzarrError

SCHEDULERS = ("threads", "synchronous", "processes")
console = Console(stderr=True)


def _key_name(key) -> str:
    return key[0] if isinstance(key, tuple) else str(key)


class _LayerCallback(Callback):
    def __init__(self, prefix: str, on_done):
        super().__init__()
        self._prefix, self._on_done = prefix, on_done
        self._lock = threading.Lock()

    def _posttask(self, key, result, dsk, state, worker_id):
        if _key_name(key).startswith(self._prefix):
            with self._lock:
                self._on_done()


def check_scheduler(scheduler: str) -> str:
    if scheduler not in SCHEDULERS:
        raise ScipzarrError(f"--scheduler {scheduler}: unknown; choose one of {', '.join(SCHEDULERS)}")
    return scheduler


def run_with_progress(collections, *, total: int, events_per_task: int, n_events: int, description: str,
                      prefix: str, enabled: bool = True, scheduler: str = "threads"):
    """``dask.compute(*collections)`` with a progress bar over one task layer."""
    check_scheduler(scheduler)
    if not enabled:
        return dask.compute(*collections, scheduler=scheduler)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("events  {task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True,
    )
    t0 = time.perf_counter()
    with progress:
        task = progress.add_task(description, total=n_events, rate="")
        done = [0]

        def on_done():
            done[0] += 1
            events = min(done[0] * events_per_task, n_events)
            rate = events / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=events, rate=f"{rate:,.0f}/s")

        with _LayerCallback(prefix, on_done):
            result = dask.compute(*collections, scheduler=scheduler)
    seconds = time.perf_counter() - t0
    console.print(f"{description}: {n_events:,} events in {seconds:.1f} s ({n_events / max(seconds, 1e-9):,.0f} events/s)",
                  highlight=False)
    return result
