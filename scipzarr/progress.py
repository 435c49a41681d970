"""Progress display for long dask computations (rich), on any scheduler.

Progress counts the tasks of one named layer (one task = one chunk = K*K
events), so the bar shows events done, events/s and the ETA. Local
schedulers report through a dask callback; on a distributed cluster the
layer's futures are followed as they complete. A ``poll`` function can
stand in where no layer is visible (e.g. counting written chunk files).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from dask.callbacks import Callback
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .scheduler import Runner

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
                self._on_done(1)


def _distributed(runner: Runner, collections, prefix: str, on_done, poll, set_done):
    from distributed import as_completed, futures_of

    client = runner.client
    persisted = client.persist(list(collections))
    layer = [f for f in futures_of(persisted) if _key_name(f.key).startswith(prefix)]
    if layer:
        for _ in as_completed(layer):
            on_done(1)
    elif poll is not None:
        futs = futures_of(persisted)
        while not all(f.done() for f in futs):
            set_done(poll())
            time.sleep(0.25)
    return tuple(client.compute(persisted, sync=True))


def run_with_progress(collections, *, runner: Runner, n_events: int, events_per_task: int, description: str,
                      prefix: str, enabled: bool = True, poll: Callable[[], int] | None = None):
    """Compute ``collections`` on ``runner`` with a progress bar over one task layer."""
    if not enabled:
        return runner.compute(collections)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("events  {task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True,
    )
    t0 = time.perf_counter()
    done = [0]

    with progress:
        task = progress.add_task(description, total=n_events, rate="")

        def set_done(events: int):
            events = min(events, n_events)
            rate = events / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, completed=events, rate=f"{rate:,.0f}/s")

        def on_done(tasks: int):
            done[0] += tasks
            set_done(done[0] * events_per_task)

        if runner.distributed:
            result = _distributed(runner, collections, prefix, on_done, poll, set_done)
        else:
            with _LayerCallback(prefix, on_done):
                result = runner.compute(collections)
    seconds = time.perf_counter() - t0
    console.print(f"{description}: {n_events:,} events in {seconds:.1f} s ({n_events / max(seconds, 1e-9):,.0f} events/s)",
                  highlight=False)
    return result
