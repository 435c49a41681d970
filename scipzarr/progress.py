"""Progress display for long dask computations (rich), on any scheduler.

Progress counts the tasks of one named layer (one task = one chunk = K*K
events), so the bar shows events done, events/s and the ETA. Local
schedulers report through a dask callback; on a distributed cluster the
layer's futures are followed as they complete. A ``poll`` function can
stand in where no layer is visible (e.g. counting written chunk files).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

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


class _Compiling:
    """Numba's compile events (a kernel compiled on its first use; later runs load it from numba's cache) passed
    to ``show(name)`` at the start and ``show(None)`` at the end, with the seconds they took. Local threads only
    (a distributed worker compiles in its own process). Nothing is watched when numba is not imported yet:
    commands import their kernels before they start a progress display (a TIFF convert has none, and does not
    pay numba's import for the watch)."""

    def __init__(self, show: Callable[[str | None], None]):
        self.show, self.seconds, self._depth, self._t0 = show, 0.0, 0, 0.0
        self._listener = None

    def __enter__(self):
        if "numba" not in sys.modules:
            return self
        from numba.core import event

        class Listener(event.Listener):
            def on_start(listener, ev):  # "listener": the outer self holds the state
                self._depth += 1
                if self._depth == 1:
                    self._t0 = time.perf_counter()
                    dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
                    self.show(getattr(getattr(dispatcher, "py_func", None), "__name__", "kernels"))

            def on_end(listener, ev):
                self._depth -= 1
                if self._depth == 0:
                    self.seconds += time.perf_counter() - self._t0
                    self.show(None)

        self._listener = Listener()
        event.register("numba:compile", self._listener)
        return self

    def __exit__(self, *exc):
        if self._listener is not None:
            from numba.core import event

            event.unregister("numba:compile", self._listener)
            self._listener = None
        return False


def compile_note(seconds: float) -> str:
    """``"; N s of it compiling kernels: first run"`` to add to a timing, or ``""`` when (almost) nothing was
    compiled."""
    return f"; {seconds:.1f} s of it compiling kernels: first run" if seconds >= 0.5 else ""


@contextmanager
def compile_seconds():
    """The seconds numba spends compiling kernels inside the block: ``.seconds`` of the object yielded."""
    with _Compiling(lambda kernel: None) as watch:
        yield watch


@contextmanager
def compile_notice(say: Callable[[str], None] | None):
    """One line through ``say`` when numba compiles a kernel for the first time inside the block (an empty
    cache: a fresh install or a new numba), none when every kernel comes from numba's cache."""
    if say is None:
        yield
        return
    told = []

    def show(kernel: str | None) -> None:
        if kernel is not None and not told:
            told.append(kernel)
            say("scipzarr: compiling the numba kernels on their first use (once: numba caches them for later runs; "
                "the progress bar names each)")

    with _Compiling(show):
        yield


class Bar:
    """A progress bar over ``total`` units (events, FOVs): advanced by hand or by the tasks of one layer."""

    def __init__(self, total: int, *, description: str, unit: str = "events", enabled: bool = True,
                 runner: Runner | None = None):
        self.total, self.description, self.unit, self.enabled, self.runner = total, description, unit, enabled, runner
        self.done = 0
        self._progress = None
        self._task = None
        self._t0 = time.perf_counter()
        self._compiling = None

    def __enter__(self):
        self._t0 = time.perf_counter()
        if self.enabled:
            self._compiling = _Compiling(self._show_compiling)
            self._compiling.__enter__()
            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn(f"{self.unit}  {{task.fields[rate]}}"), TimeElapsedColumn(), TextColumn("ETA"),
                TimeRemainingColumn(), console=console, transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total, rate="")
        return self

    def __exit__(self, exc_type, *rest):
        if self._compiling is not None:
            self._compiling.__exit__()
        if self._progress is not None:
            self._progress.__exit__(exc_type, *rest)
            if exc_type is None:
                seconds = time.perf_counter() - self._t0
                note = compile_note(self._compiling.seconds if self._compiling is not None else 0.0)
                # the tasks' time: the command's own last line gives the whole run's (planning, tables)
                console.print(f"{self.description} tasks: {self.total:,} {self.unit} in {seconds:.1f} s "
                              f"({self.total / max(seconds, 1e-9):,.{0 if self.unit == 'events' else 2}f} "
                              f"{self.unit}/s{note})", highlight=False)
        return False

    def _show_compiling(self, kernel: str | None) -> None:
        if self._progress is not None:
            text = self.description if kernel is None else f"{self.description} (compiling {kernel}: first run)"
            self._progress.update(self._task, description=text)

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
