"""The array-module switch: numpy + scipy on the CPU, CuPy + cupyx/cuCIM on a GPU, one kernel code path.

Kernels never import cupy. They ask the array they were given for its
module (:func:`xp_of`) and for the matching ``ndimage`` (:func:`ndimage`),
so the same function runs on a numpy batch on the CPU and on a cupy batch on
the GPU. Nothing here imports CuPy at import time: without CuPy, or without
a driver, everything works on the CPU and only ``--device gpu`` fails, with
one line saying why.

The pipeline moves a chunk to the device once (:func:`to_device`), runs the
segmentation kernels there, and brings labels and images back
(:func:`to_host`) for the feature families, whose kernels are compiled for
the CPU (numba); see docs/gpu.md.
"""

from __future__ import annotations

import functools
import types

import numpy as np

from .errors import ScipzarrError

DEVICES = ("cpu", "gpu", "auto")


class CupyDevice:
    """GPU 0 through CuPy, imported on first use: what ``--device gpu`` runs on.

    Everything the package asks of a device goes through these few methods
    (its array module and ``ndimage``, copies both ways, free memory), so any
    object with the same methods can stand in for it as :data:`GPU`.
    """

    name = "cupy"

    @staticmethod
    def owns(array) -> bool:
        return type(array).__module__.startswith("cupy")

    @staticmethod
    def xp() -> types.ModuleType:
        import cupy

        return cupy

    @staticmethod
    def ndimage() -> types.ModuleType:
        from cupyx.scipy import ndimage as cndi

        return cndi

    @staticmethod
    def to_device(array):
        import cupy

        return cupy.asarray(array)

    @staticmethod
    def to_host(array):
        return array.get()

    @staticmethod
    def free_memory() -> int:
        import cupy

        return int(cupy.cuda.runtime.memGetInfo()[0])

    @staticmethod
    def status() -> tuple[bool, str]:
        return _cupy_status()


#: The device of ``--device gpu``.
GPU = CupyDevice()


def gpu_status() -> tuple[bool, str]:
    """``(usable, description)`` of the GPU device; never raises."""
    return GPU.status()


@functools.cache
def _cupy_status() -> tuple[bool, str]:
    """``(usable, description)`` of GPU 0 through CuPy; never raises.

    The description names the card and its memory, or says why there is no
    usable GPU (CuPy missing, no driver, no device).
    """
    try:
        import cupy
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken CUDA install raising anything
        return False, f"CuPy is not installed ({type(exc).__name__}); pip install 'scipzarr[gpu]'"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
        if n == 0:
            return False, "CuPy found no CUDA device"
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        free, total = cupy.cuda.runtime.memGetInfo()
        return True, f"{name}, {total / 2**30:.0f} GiB ({free / 2**30:.0f} GiB free), {n} device(s), CuPy {cupy.__version__}"
    except Exception as exc:  # noqa: BLE001 - CUDARuntimeError and driver errors differ between CuPy versions
        return False, f"CuPy cannot use a GPU ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"


def resolve_device(requested: str, say=None) -> str:
    """``"cpu"`` or ``"gpu"`` for ``--device cpu|gpu|auto``.

    ``gpu`` without a usable GPU is an error (one line, what to do);
    ``auto`` takes the GPU when there is one and says which device it uses
    through ``say`` (one line).
    """
    if requested not in DEVICES:
        raise ScipzarrError(f"--device {requested}: choose one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return "cpu"
    ok, what = gpu_status()
    if requested == "gpu" and not ok:
        raise ScipzarrError(f"--device gpu: no usable GPU: {what}; use --device cpu or auto")
    device = "gpu" if ok else "cpu"
    if requested == "auto" and say is not None:
        say(f"device: GPU ({what})" if ok else f"device: CPU (no GPU: {what})")
    return device


def xp_of(array) -> types.ModuleType:
    """numpy, or cupy for a cupy array (without importing cupy for numpy arrays)."""
    if isinstance(array, np.ndarray | np.generic) or not GPU.owns(array):
        return np
    return GPU.xp()


def ndimage(xp: types.ModuleType) -> types.ModuleType:
    """``scipy.ndimage`` for numpy, ``cupyx.scipy.ndimage`` for cupy."""
    if xp is np:
        from scipy import ndimage as ndi

        return ndi
    return GPU.ndimage()


def to_device(array, device: str):
    """``array`` on the device (a cupy array for ``"gpu"``; unchanged for ``"cpu"``)."""
    if device == "cpu":
        return array
    return GPU.to_device(array)


def to_host(array):
    """A numpy array (copied from the GPU when it is a cupy array)."""
    return array if xp_of(array) is np else GPU.to_host(array)


def segment_sum(values, lab, starts, n: int):
    """Sum of ``values`` per group: ``lab`` (sorted) gives each value's group 0..n-1, ``starts`` where each
    group begins; every group holds at least one value.

    numpy: ``add.reduceat`` (20x faster than a weighted ``bincount`` on
    250,000 values). cupy: a weighted ``bincount``; CuPy's ``add.reduceat``
    subtracts a running ``cumsum``, which loses precision for sums that
    cancel (central moments).
    """
    xp = xp_of(values)
    if xp is np:
        return np.add.reduceat(values, starts) if n else np.zeros(0)
    return xp.bincount(lab, weights=values, minlength=n)


def segment_min(values, lab, starts, n: int):
    """Minimum of ``values`` per group (as :func:`segment_sum`); exact for floats and integers below 2**53."""
    return _segment_extreme(values, lab, starts, n, "minimum")


def segment_max(values, lab, starts, n: int):
    """Maximum of ``values`` per group (as :func:`segment_sum`)."""
    return _segment_extreme(values, lab, starts, n, "maximum")


def _segment_extreme(values, lab, starts, n, op):
    xp = xp_of(values)
    if xp is np:
        return getattr(np, op).reduceat(values, starts) if n else np.zeros(0, values.dtype)
    # cupy has no minimum.reduceat, and its minimum.at takes no int64: float64 holds every value exactly here
    out = xp.full(n, xp.inf if op == "minimum" else -xp.inf)
    getattr(xp, op).at(out, lab, values.astype(xp.float64))
    return out.astype(values.dtype)


def scalar(value) -> float:
    """A Python float of a 0-d numpy or cupy value (a device-to-host copy for cupy)."""
    return float(to_host(value)) if hasattr(value, "shape") else float(value)


def gpu_pixel_budget(bytes_per_pixel: int = 64, workers: int = 1, share: float = 0.5) -> int:
    """Pixels of one FOV a GPU task may hold at once: ``share`` of the free memory of GPU 0 split between
    ``workers``, at ``bytes_per_pixel`` (float64 planes and temporaries of the segmentation kernels)."""
    return int(GPU.free_memory() * share / max(workers, 1) / bytes_per_pixel)
