"""Zernike shape moments of every object (CellProfiler's AreaShape_Zernike_n_m).

As CellProfiler (centrosome) defines them: pixel centres are mapped into the
unit disk of the object's minimum enclosing circle, and the magnitude of
``sum V_nm*`` over the object's pixels is divided by the circle's area
``pi r^2``. Evaluated on the batch's pixel lists: one pass per polynomial,
no per-object loop.
"""

from __future__ import annotations

from math import factorial

import numpy as np

from .objects import Objects


def indexes(degree: int = 9) -> list[tuple[int, int]]:
    """``(n, m)`` with ``0 <= m <= n <= degree`` and ``n - m`` even, in CellProfiler's order."""
    return [(n, m) for n in range(degree + 1) for m in range(n % 2, n + 1, 2)]


def _radial_coefficients(n: int, m: int) -> list[float]:
    """Coefficients of R_nm(r) for r**(n - 2k), k = 0..(n-m)/2."""
    return [(-1) ** k * factorial(n - k) / (factorial(k) * factorial((n + m) // 2 - k) * factorial((n - m) // 2 - k))
            for k in range((n - m) // 2 + 1)]


def zernike(obj: Objects, circle: np.ndarray, degree: int = 9, weights: np.ndarray | None = None) -> np.ndarray:
    """``(M, K)`` complex sums of ``R_nm(rho) exp(i m theta)`` over each object's pixels inside its circle.

    ``circle`` is ``(M, 3)``: centre row, centre column (relative to the object's
    bounding box, so padding never changes the result), radius.
    """
    idx = indexes(degree)
    n_obj = obj.n
    out = np.zeros((n_obj, len(idx)), dtype=np.complex128)
    if n_obj == 0:
        return out
    _, lab, _ = obj.pixels
    y, x = obj.coords
    box = obj.boxes
    with np.errstate(invalid="ignore", divide="ignore"):
        ym = ((y - box[lab, 0]) - circle[lab, 0]) / circle[lab, 2]
        xm = ((x - box[lab, 1]) - circle[lab, 1]) / circle[lab, 2]
    r2 = xm * xm + ym * ym
    # pixels on the circle (the ones that define it) count; a tolerance keeps rounding from dropping them.
    # NaN (one-pixel objects, radius 0) is outside.
    inside = r2 <= 1 + 1e-9
    lab, r2, z = lab[inside], r2[inside], (ym + 1j * xm)[inside]
    w = None if weights is None else weights[inside]
    zpow = [np.ones_like(z)]
    for _ in range(degree):
        zpow.append(zpow[-1] * z)
    for k, (n, m) in enumerate(idx):
        s = np.zeros_like(r2)
        for c in _radial_coefficients(n, m):  # Horner in r^2
            s = s * r2 + c
        if w is not None:
            s = s * w
        v = s * zpow[m]
        out[:, k] = (np.bincount(lab, weights=v.real, minlength=n_obj)
                     + 1j * np.bincount(lab, weights=v.imag, minlength=n_obj))
    return out
