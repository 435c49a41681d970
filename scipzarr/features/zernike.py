"""Zernike shape moments of every object (CellProfiler's AreaShape_Zernike_n_m).

As CellProfiler (centrosome) defines them: pixel centres are mapped into the
unit disk of the object's minimum enclosing circle, and the magnitude of
``sum V_nm*`` over the object's pixels is divided by the circle's area
``pi r^2``. Evaluated on the batch's pixel lists in one compiled pass
(:func:`_sums`).
"""

from __future__ import annotations

from math import factorial

import numba
import numpy as np

from .objects import Objects


def indexes(degree: int = 9) -> list[tuple[int, int]]:
    """``(n, m)`` with ``0 <= m <= n <= degree`` and ``n - m`` even, in CellProfiler's order."""
    return [(n, m) for n in range(degree + 1) for m in range(n % 2, n + 1, 2)]


def _radial_coefficients(n: int, m: int) -> list[float]:
    """Coefficients of R_nm(r) for r**(n - 2k), k = 0..(n-m)/2."""
    return [(-1) ** k * factorial(n - k) / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
            for k in range((n - m) // 2 + 1)]


#: pixels of an object taken at a time by :func:`_sums` (its scratch rows stay in the first-level cache)
BLOCK = 128


@numba.njit(cache=True, nogil=True, error_model="numpy")  # numpy's division: NaN for a radius of 0
def _sums(starts, py, px, box, circle, ms, coeffs, ncoef, degree):  # pragma: no cover - compiled
    """``(M, K)`` real and imaginary sums of ``R_nm(rho) z^m`` over each object's pixels inside the unit circle
    (``starts``: where each object's pixels begin in ``py``, ``px``, their tile rows and columns, mapped into
    the object's circle: ``((row - box row) - circle row) / radius``; polynomial k: ``ms[k]`` and the Horner
    coefficients ``coeffs[k, :ncoef[k]]`` in ``r^2``). Each term as ``s * Re/Im z^m``, ``s`` by Horner's rule
    from 0, and each sum in pixel order from 0: the per-pixel formulation's values, bit for bit. Arranged for
    speed: per block of pixels, each polynomial's Horner steps run along the pixels (vector instructions),
    and the K x 2 sums are then added pixel by pixel in separate registers (2.2x the per-pixel loop)."""
    total, n_obj, n_poly = py.shape[0], starts.shape[0], ms.shape[0]
    out_re = np.zeros((n_obj, n_poly))
    out_im = np.zeros((n_obj, n_poly))
    zr = np.empty((degree + 1, BLOCK))  # z^m, z = y + i x
    zi = np.empty((degree + 1, BLOCK))
    r2 = np.empty(BLOCK)
    inside = np.empty(BLOCK, dtype=np.bool_)
    s = np.empty(BLOCK)
    term_re = np.empty((n_poly, BLOCK))
    term_im = np.empty((n_poly, BLOCK))
    acc_re = np.empty(n_poly)
    acc_im = np.empty(n_poly)
    ym = np.empty(BLOCK)
    xm = np.empty(BLOCK)
    for o in range(n_obj):
        lo = starts[o]
        count = (starts[o + 1] if o + 1 < n_obj else total) - lo
        by, bx, cy, cx, radius = box[o, 0], box[o, 1], circle[o, 0], circle[o, 1], circle[o, 2]
        for k in range(n_poly):
            acc_re[k] = 0.0
            acc_im[k] = 0.0
        for b0 in range(0, count, BLOCK):
            nb = min(BLOCK, count - b0)
            for j in range(nb):
                y = (float(py[lo + b0 + j] - by) - cy) / radius  # NaN for a one-pixel object (radius 0)
                x = (float(px[lo + b0 + j] - bx) - cx) / radius
                ym[j], xm[j] = y, x
                r2[j] = y * y + x * x
                inside[j] = r2[j] <= 1 + 1e-9  # not outside the circle (nor NaN: a one-pixel object)
                zr[0, j] = 1.0
                zi[0, j] = 0.0
            for m in range(1, degree + 1):
                for j in range(nb):
                    y, x = ym[j], xm[j]
                    zr[m, j] = zr[m - 1, j] * y - zi[m - 1, j] * x
                    zi[m, j] = zr[m - 1, j] * x + zi[m - 1, j] * y
            for k in range(n_poly):
                m = ms[k]
                for j in range(nb):
                    s[j] = 0.0 * r2[j] + coeffs[k, 0]
                for c in range(1, ncoef[k]):
                    cc = coeffs[k, c]
                    for j in range(nb):
                        s[j] = s[j] * r2[j] + cc
                for j in range(nb):
                    term_re[k, j] = s[j] * zr[m, j]
                    term_im[k, j] = s[j] * zi[m, j]
            for j in range(nb):
                if inside[j]:
                    for k in range(n_poly):
                        acc_re[k] += term_re[k, j]
                        acc_im[k] += term_im[k, j]
        for k in range(n_poly):
            out_re[o, k] = acc_re[k]
            out_im[o, k] = acc_im[k]
    return out_re, out_im


def zernike(obj: Objects, circle: np.ndarray, degree: int = 9) -> np.ndarray:
    """``(M, K)`` complex sums of ``R_nm(rho) exp(i m theta)`` over each object's pixels inside its circle.

    ``circle`` is ``(M, 3)``: centre row, centre column (relative to the object's
    bounding box, so padding never changes the result), radius. Pixels on the
    circle count (``rho^2 <= 1`` with a 1e-9 tolerance, see docs/features.md).
    One compiled pass over the pixels (numba), on the host: ``obj`` may live on a GPU (``Objects.host``).
    """
    idx = indexes(degree)
    n_obj = obj.n
    if n_obj == 0:
        return np.zeros((0, len(idx)), dtype=np.complex128)
    _, _, starts = obj.host("pixels")
    y, x = obj.host("coords")
    width = degree // 2 + 1
    coeffs = np.zeros((len(idx), width))
    ncoef = np.zeros(len(idx), dtype=np.int64)
    for k, (n, m) in enumerate(idx):
        cs = _radial_coefficients(n, m)
        coeffs[k, :len(cs)] = cs
        ncoef[k] = len(cs)
    re, im = _sums(np.asarray(starts, dtype=np.int64), np.asarray(y, dtype=np.int64), np.asarray(x, dtype=np.int64),
                   np.asarray(obj.host("boxes"), dtype=np.int64), np.ascontiguousarray(circle, dtype=np.float64),
                   np.array([m for _, m in idx], dtype=np.int64), coeffs, ncoef, degree)
    return re + 1j * im
