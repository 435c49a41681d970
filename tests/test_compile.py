"""First runs and later runs: numba compiles the kernels once, says so, and later processes load them from its
cache (a kernel numba cannot cache is compiled again in every process: the intensity kernel once took its sort
as a function argument and cost 2.3 s per run)."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # two processes, one of them compiling every kernel

RUN = """
import sys
from numba.core import event
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        f = getattr(ev.data.get("dispatcher"), "py_func", None)
        if f is not None and f.__module__.startswith("scipzarr"):
            compiled.append(f.__qualname__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
import scipzarr
scipzarr.process(sys.argv[1], output=sys.argv[2], overwrite=True, progress=False)
print("COMPILED", ",".join(sorted(set(compiled))))
"""


def test_a_second_process_compiles_no_kernel(tmp_path):
    from scipzarr.converters import convert
    from scipzarr.synthetic import make_events

    events, _ = make_events(40, channels=3, size=40, seed=1, noise=10.0)
    np.save(tmp_path / "ev.npy", events)
    convert([tmp_path / "ev.npy"], tmp_path / "s.zarr", progress=False)
    env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}

    def run() -> list[str]:
        out = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "s.zarr"), str(tmp_path / "t.h5ad")],
                             env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-2000:]
        line = next(x for x in out.stdout.splitlines() if x.startswith("COMPILED"))
        return [name for name in line.split(" ", 1)[1].split(",") if name]

    first = run()
    assert "intensity_host" in first and "channel_masks_host" in first  # an empty cache: compiled here
    assert run() == []  # every kernel of the default process came from the cache


def test_the_progress_bar_says_when_numba_compiles():
    import numba

    from scipzarr.progress import Bar

    @numba.njit
    def fresh(x):  # a kernel no process has compiled
        return x * 3 + 1

    with Bar(1, description="process", enabled=True) as bar:
        shown = []
        bar._show_compiling = shown.append  # what the bar would display
        bar._compiling.show = shown.append
        assert fresh(2) == 7
    assert shown == ["fresh", None]
    assert bar._compiling.seconds > 0
