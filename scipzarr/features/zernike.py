"""Zernike shape moments of every object (CellProfiler's AreaShape_Zernike_n_m).

As CellProfiler (centrosome) defines them: pixel centres are mapped into the
unit disk of the object's minimum enclosing circle, and the magnitude of
``sum V_nm*`` over the object's pixels is divided by the circle's area
``pi r^2``. Evaluated on the batch's pixel lists: one pass per polynomial,
no per-object loop.
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


@numba.njit(cache=True, nogil=True)
def _sums(lab, ym, xm, weights, ms, coeffs, ncoef, n_obj, degree):  # pragma: no cover - compiled
    out_re = np.zeros((n_obj, ms.shape[0]))
    out_im = np.zeros((n_obj, ms.shape[0]))
    zr = np.empty(degree + 1)
    zi = np.empty(degree + 1)
    for p in range(lab.shape[0]):
        r2 = ym[p] * ym[p] + xm[p] * xm[p]
        if not r2 <= 1 + 1e-9:  # outside the circle (or NaN: a one-pixel object)
            continue
        zr[0], zi[0] = 1.0, 0.0
        for m in range(1, degree + 1):  # z^m, z = y + i x
            zr[m] = zr[m - 1] * ym[p] - zi[m - 1] * xm[p]
            zi[m] = zr[m - 1] * xm[p] + zi[m - 1] * ym[p]
        o = lab[p]
        for k in range(ms.shape[0]):
            s = 0.0
            for c in range(ncoef[k]):  # Horner in r^2
                s = s * r2 + coeffs[k, c]
            s *= weights[p]
            out_re[o, k] += s * zr[ms[k]]
            out_im[o, k] += s * zi[ms[k]]
    return out_re, out_im


def zernike(obj: Objects, circle: np.ndarray, degree: int = 9, weights: np.ndarray | None = None) -> np.ndarray:
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
    _, lab, _ = obj.host("pixels")
    y, x = obj.host("coords")
    box = obj.host("boxes")
    with np.errstate(invalid="ignore", divide="ignore"):
        ym = ((y - box[lab, 0]) - circle[lab, 0]) / circle[lab, 2]
        xm = ((x - box[lab, 1]) - circle[lab, 1]) / circle[lab, 2]
    width = degree // 2 + 1
    coeffs = np.zeros((len(idx), width))
    ncoef = np.zeros(len(idx), dtype=np.int64)
    for k, (n, m) in enumerate(idx):
        cs = _radial_coefficients(n, m)
        coeffs[k, :len(cs)] = cs
        ncoef[k] = len(cs)
    w = np.ones(len(lab)) if weights is None else np.asarray(weights, dtype=np.float64)
    re, im = _sums(lab, ym, xm, w, np.array([m for _, m in idx], dtype=np.int64), coeffs, ncoef, n_obj, degree)
    return re + 1j * im
