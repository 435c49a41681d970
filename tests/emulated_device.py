"""A GPU emulated on the CPU, strict where CuPy is strict, to run the device code paths without a GPU.

``DeviceArray`` wraps a numpy array and behaves like a cupy array toward the
code under test:

* numpy functions and ufuncs called on it dispatch to the emulated module (as
  CuPy's ``__array_function__`` / ``__array_ufunc__`` do) and return device
  arrays;
* mixing it with a host array (a non-scalar ``numpy.ndarray``) in an
  operation, an index or an assignment raises ``TypeError``, as CuPy does;
* implicit conversion to numpy (``np.asarray``, a numba kernel, ``pandas``)
  raises ``TypeError``, as CuPy does: results must come back through
  ``backend.to_host``;
* ufunc methods as CuPy 14 has them: ``at`` for ``add``, ``minimum`` and
  ``maximum`` and the dtypes its atomics take (no int64); ``reduceat``
  refused (CuPy has it for ``add`` only, as differences of a ``cumsum``,
  which loses precision: device code uses ``backend.segment_sum``).

Values are numpy's, so a run on the emulated device must give exactly the
CPU's table: that checks the plumbing (what moves to the device and back,
which module each kernel uses), not CuPy's numerics, which only a real GPU
can check (tests/test_gpu.py). ``XP.used`` records every name the code took
from the array module, so a test can check them against CuPy's namespace.
"""

from __future__ import annotations

import contextlib
import types

import numpy as np
import scipy.ndimage as _ndi

from scipzarr import backend

#: ufunc.at in CuPy 14 (atomics): which ufuncs, which dtypes
_AT = {"add": {np.dtype(t) for t in ("int32", "float16", "float32", "float64", "uint32", "uint64")},
       "minimum": {np.dtype(t) for t in ("int32", "float32", "float64", "uint32", "uint64")},
       "maximum": {np.dtype(t) for t in ("int32", "float32", "float64", "uint32", "uint64")}}


def _host_array(x) -> bool:
    return isinstance(x, np.ndarray) and x.ndim > 0


def _unwrap(x, strict: bool = True):
    """The numpy value of ``x`` (recursively in lists, tuples and dicts); host arrays refused when ``strict``."""
    if isinstance(x, DeviceArray):
        return x.a
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, strict) for v in x)
    if isinstance(x, dict):
        return {k: _unwrap(v, strict) for k, v in x.items()}
    if strict and _host_array(x):
        raise TypeError(f"a host numpy array {x.shape} {x.dtype} mixed with device arrays (CuPy refuses this)")
    return x


def _wrap(x):
    if isinstance(x, np.ndarray):
        return DeviceArray(x)
    if isinstance(x, tuple):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def _binary(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        return _wrap(op(self.a, _unwrap(other)))

    return method


def _inplace(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        op(self.a, _unwrap(other))
        return self

    return method


def _unary(name):
    op = getattr(np.ndarray, name)

    def method(self):
        return _wrap(op(self.a))

    return method


class DeviceArray:
    """A numpy array standing for a cupy array (see the module docstring)."""

    __slots__ = ("a",)

    def __init__(self, a: np.ndarray):
        self.a = a

    # numpy sees a foreign array type: it dispatches here and never converts implicitly
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (device array; use backend.to_host)")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method == "reduceat":
            raise NotImplementedError(f"`{ufunc.__name__}.reduceat` on the device: CuPy has it for add only, as "
                                      "differences of a cumsum (imprecise); use backend.segment_sum")
        if method == "at":
            target = inputs[0]
            if target.a.dtype not in _AT.get(ufunc.__name__, ()):
                raise TypeError(f"cupy.{ufunc.__name__}.at does not take {target.a.dtype}")
            getattr(ufunc, method)(target.a, *_unwrap(inputs[1:]), **kwargs)
            return None
        if "out" in kwargs:
            kwargs["out"] = _unwrap(kwargs["out"])
        return _wrap(getattr(ufunc, method)(*_unwrap(inputs), **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        XP.used.add(func.__name__)
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))

    # attributes and methods of numpy's ndarray, results on the device
    def __getattr__(self, name):
        if name.startswith("__"):  # no __array_interface__ / __array_struct__: numpy must not see the data
            raise AttributeError(name)
        attr = getattr(self.a, name)
        if name in ("tolist", "item"):
            return attr
        if callable(attr):
            return lambda *args, **kwargs: _wrap(attr(*_unwrap(args), **_unwrap(kwargs)))
        return _wrap(attr)

    def get(self) -> np.ndarray:
        return self.a.copy()

    def __getitem__(self, key):
        return _wrap(self.a[_unwrap(key)])

    def __setitem__(self, key, value):
        self.a[_unwrap(key)] = _unwrap(value)

    def __len__(self):
        return len(self.a)

    def __iter__(self):
        return (_wrap(v) for v in self.a)

    def __int__(self):
        return int(self.a)

    def __float__(self):
        return float(self.a)

    def __bool__(self):
        return bool(self.a)

    def __index__(self):
        raise TypeError("a device array cannot be used as a Python index; use int()")

    def __repr__(self):
        return f"DeviceArray({self.a!r})"

    for _n in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
               "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__", "__and__", "__rand__",
               "__or__", "__ror__", "__xor__", "__rxor__", "__lshift__", "__rshift__", "__lt__", "__le__", "__gt__",
               "__ge__", "__eq__", "__ne__", "__matmul__", "__divmod__"):
        locals()[_n] = _binary(_n)
    for _n in ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__iand__", "__ior__",
               "__ixor__", "__imod__", "__ipow__"):
        locals()[_n] = _inplace(_n)
    for _n in ("__neg__", "__pos__", "__abs__", "__invert__"):
        locals()[_n] = _unary(_n)
    del _n


class _Module(types.ModuleType):
    """numpy's namespace returning device arrays; records the names taken from it."""

    def __init__(self, name: str, base, record: bool, host_kwargs: tuple[str, ...] = ()):
        super().__init__(name)
        self._base, self._record, self._host_kwargs = base, record, host_kwargs
        self.used: set[str] = set()

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        attr = getattr(self._base, name)
        if self._record:
            self.used.add(name)
        if isinstance(attr, (np.ufunc, type)) or not callable(attr):
            return attr  # ufuncs dispatch through DeviceArray; dtypes and constants as they are
        strict = name not in ("asarray", "array")  # the explicit host-to-device copies

        def call(*args, **kwargs):
            kw = {k: v if k in self._host_kwargs else _unwrap(v, strict) for k, v in kwargs.items()}
            return _wrap(attr(*_unwrap(args, strict), **kw))

        return call


XP = _Module("emulated_cupy", np, record=True)
# cupyx.scipy.ndimage takes host structuring elements (label() copies a device one back to the host)
NDIMAGE = _Module("emulated_cupyx_ndimage", _ndi, record=False, host_kwargs=("structure",))


class _Device:
    """A stand-in for :class:`scipzarr.backend.CupyDevice` (the same methods)."""

    name = "emulated"
    pixel_budget = 10**9

    @staticmethod
    def owns(array) -> bool:
        return isinstance(array, DeviceArray)

    @staticmethod
    def xp():
        return XP

    @staticmethod
    def ndimage():
        return NDIMAGE

    @classmethod
    def free_memory(cls) -> int:
        return int(cls.pixel_budget)

    @staticmethod
    def status():
        return True, "emulated GPU (numpy, tests only)"

    @staticmethod
    def to_device(array):
        return array if isinstance(array, DeviceArray) else DeviceArray(np.array(array, copy=True))

    @staticmethod
    def to_host(array):
        return array.get()


@contextlib.contextmanager
def emulated_gpu(pixel_budget: int = 10**9):
    """Within: ``--device gpu`` runs on the emulated device (``backend.gpu_status`` says so), whose free memory
    holds ``pixel_budget`` pixels of one byte (``backend.gpu_pixel_budget``)."""
    saved = backend.GPU
    _Device.pixel_budget = 2 * pixel_budget  # free memory: the package plans with half of it
    backend.GPU = _Device()
    try:
        yield XP
    finally:
        backend.GPU = saved
