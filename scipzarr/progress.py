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

    def _posttask(self, key, result, dsk, state, worker_id):
        if _key_name(key).startswith(self._prefix):
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


class Bar:
    """A progress bar over ``total`` units (events, FOVs): advanced by hand or by the tasks of one layer."""

    def __init__(self, total: int, *, description: str, unit: str = "events", enabled: bool = True,
                 runner: Runner | None = None):
        self.total, self.description, self.unit, self.enabled, self.runner = total, description, unit, enabled, runner
        self.done = 0
        self._progress = None
        self._task = None
        self._t0 = time.perf_counter()

    def __enter__(self):
        self._t0 = time.perf_counter()
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn(f"{self.unit}  {{task.fields[rate]}}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=console, transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total, rate="")
        return self

    def __exit__(self, exc_type, *rest):
        if self._progress is not None:
            self._progress.__exit__(exc_type, *rest)
            if exc_type is None:
                seconds = time.perf_counter() - self._t0
                console.print(f"{self.description}: {self.total:,} {self.unit} in {seconds:.1f} s "
                              f"({self.total / max(seconds, 1e-9):,.{0 if self.unit == 'events' else 2}f} "
                              f"{self.unit}/s)", highlight=False)
        return False

    def set(self, done: int) -> None:
        self.done = min(done, self.total)
        if self._progress is not None:
            rate = self.done / max(time.perf_counter() - self._t0, 1e-9)
            self._progress.update(self._task, completed=self.done, rate=f"{rate:,.{0 if rate >= 10 else 2}f}/s")

    def advance(self, n: int) -> None:
        self.set(self.done + n)

    def compute(self, collections, prefix: str, per_task: int = 1, poll: Callable[[], int] | None = None):
        """Compute ``collections`` on the bar's runner, advancing ``per_task`` units per finished task whose key
        starts with ``prefix`` (or as ``poll()`` says where no such layer is visible)."""
        runner = self.runner
        if not self.enabled:
            return runner.compute(collections)
        lock = threading.Lock()

        def on_done(tasks: int):
            with lock:
                self.advance(tasks * per_task)

        if runner.distributed:
            return _distributed(runner, collections, prefix, on_done, poll, self.set)
        with _LayerCallback(prefix, on_done):
            return runner.compute(collections)


def run_with_progress(collections, *, runner: Runner, n_events: int, events_per_task: int, description: str,
                      prefix: str, enabled: bool = True, poll: Callable[[], int] | None = None,
                      unit: str = "events"):
    """Compute ``collections`` on ``runner`` with a progress bar over one task layer."""
    with Bar(n_events, description=description, unit=unit, enabled=enabled, runner=runner) as bar:
        return bar.compute(collections, prefix, events_per_task, poll)
