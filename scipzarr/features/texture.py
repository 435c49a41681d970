"""Haralick texture features of every object of a batch (CellProfiler's MeasureTexture).

Definitions follow CellProfiler's MeasureTexture as cp_measure computes it
(mahotas ``haralick(crop, distance, ignore_zeros=True)`` on each object's crop
of a quantized image): for each direction (0, 1), (1, 1), (1, 0), (1, -1)
times the distance, a symmetric grey-level co-occurrence matrix (GLCM) of the
pixel pairs that lie in the same object with both grey levels non-zero, then
Haralick's 13 features.

One compiled loop over the objects of the whole batch (numba, ``nogil``):
each object's pairs are counted into a reused dense scratch matrix, the
entries touched are remembered, and every feature is a sum over those entries
and over the object's grey-level range only, so the cost follows the object's
pixels and levels, never ``levels**2``. Quantization (``quantize``) uses one
fixed mapping for the whole image, as CellProfiler does.
"""

from __future__ import annotations

import functools

import numba
import numpy as np

from .column import Column
from .family import Family
from .objects import Objects

NAMES = ["AngularSecondMoment", "Contrast", "Correlation", "Variance", "InverseDifferenceMoment",
         "SumAverage", "SumVariance", "SumEntropy", "Entropy", "DifferenceVariance", "DifferenceEntropy",
         "InfoMeas1", "InfoMeas2"]
DEFINITIONS = {
    "AngularSecondMoment": "sum of squared GLCM probabilities (1 for a uniform object)",
    "Contrast": "sum of (i - j)^2 p(i, j)",
    "Correlation": "(sum i j p(i, j) - mu^2) / sigma^2 of the GLCM marginal (1 if sigma is 0)",
    "Variance": "variance of the GLCM marginal",
    "InverseDifferenceMoment": "sum of p(i, j) / (1 + (i - j)^2)",
    "SumAverage": "mean of the distribution of i + j",
    "SumVariance": "variance of the distribution of i + j",
    "SumEntropy": "entropy (log2) of the distribution of i + j",
    "Entropy": "entropy (log2) of the GLCM",
    "DifferenceVariance": "variance of the distribution of |i - j| over the object's grey levels 0..max",
    "DifferenceEntropy": "entropy (log2) of the distribution of |i - j|",
    "InfoMeas1": "information measure of correlation 1: (HXY - HXY1) / HX",
    "InfoMeas2": "information measure of correlation 2: sqrt(1 - exp(-2 (HXY2 - HXY)))",
}
DIRECTIONS = [(0, 1), (1, 1), (1, 0), (1, -1)]


def quantize(values: np.ndarray, levels: int = 256, bit_depth: int | None = None) -> np.ndarray:
    """Grey levels ``0..levels-1`` as CellProfiler computes them (``img_as_ubyte``, then rescaled).

    Integers are divided by their type's maximum, or by ``2**bit_depth - 1``
    when the camera's bit depth is known (CellProfiler's "rescale by metadata":
    10-bit values stored as uint16 would otherwise use 4 of 256 levels), and
    floats clipped to ``[0, 1]`` (CellProfiler's image scale); then
    ``rint(v * 255)`` and, for fewer levels, ``uint8(u8 * (levels - 1) / 255)``.
    """
    v = np.asarray(values)
    if v.dtype.kind in "ui":
        v = v / (2.0 ** bit_depth - 1 if bit_depth else np.iinfo(v.dtype).max)
    u8 = np.rint(np.clip(v, 0, 1) * 255).astype(np.uint8)
    if levels == 256:
        return u8
    return (u8.astype(np.float64) * ((levels - 1) / 255)).astype(np.uint8)


@numba.njit(cache=True, nogil=True)
def _haralick_all(labels, images, channel, lut, event, boxes, distances, out):  # pragma: no cover - compiled
    n = boxes.shape[0]
    levels = 256
    glcm = np.zeros((levels, levels), np.int32)  # counts: at most twice the object's pixels; 256 KiB
    touched_i = np.empty(0, np.int32)
    touched_j = np.empty(0, np.int32)
    local = np.zeros(0, np.uint8)
    px = np.zeros(levels)
    p_plus = np.zeros(2 * levels)
    p_minus = np.zeros(levels)
    log_px = np.zeros(levels)
    for m in range(n):
        e = event[m]
        y0, x0, y1, x1 = boxes[m, 0], boxes[m, 1], boxes[m, 2], boxes[m, 3]
        h, w = y1 - y0, x1 - x0
        lab = m + 1
        # the object's grey levels in its box, 0 outside it: a pair counts where both its levels are non-zero,
        # with no label tests (the loops' ranges keep both pixels of a pair in the box)
        need = h * w
        if local.shape[0] < need:
            local = np.zeros(need, np.uint8)
        else:
            local[:need] = 0
        qmax = 0
        lmin = levels
        lmax = 0
        for y in range(h):
            for x in range(w):
                if labels[e, y0 + y, x0 + x] == lab:
                    v = lut[images[e, channel, y0 + y, x0 + x]]
                    local[y * w + x] = v
                    qmax = max(qmax, v)
                    if v > 0 and v < lmin:
                        lmin = v
                    lmax = max(lmax, v)
        cap = 2 * h * w + 1
        if touched_i.shape[0] < cap:
            touched_i = np.empty(cap, np.int32)
            touched_j = np.empty(cap, np.int32)
        for di in range(distances.shape[0]):
            distance = distances[di]
            missing = False
            for d in range(4):
                dy = distance * (1 if d > 0 else 0)
                dx = distance * (1 if d < 2 else (0 if d == 2 else -1))
                off = dy * w + dx
                nt = 0
                total = 0
                for y in range(h - dy):
                    base = y * w
                    for x in range(max(0, -dx), min(w, w - dx)):
                        a = local[base + x]
                        if a == 0:
                            continue
                        b = local[base + x + off]
                        if b == 0:
                            continue
                        if glcm[a, b] == 0:
                            touched_i[nt] = a
                            touched_j[nt] = b
                            nt += 1
                        glcm[a, b] += 1
                        if a != b:
                            if glcm[b, a] == 0:
                                touched_i[nt] = b
                                touched_j[nt] = a
                                nt += 1
                            glcm[b, a] += 1
                        else:
                            glcm[a, b] += 1
                        total += 2
                if total == 0:
                    missing = True
                    continue
                for k in range(lmin, lmax + 1):
                    px[k] = 0.0
                for k in range(2 * lmin, 2 * lmax + 1):
                    p_plus[k] = 0.0
                for k in range(lmax - lmin + 1):
                    p_minus[k] = 0.0
                asm = 0.0
                sij = 0.0
                idm = 0.0
                ent = 0.0
                for t in range(nt):
                    i = touched_i[t]
                    j = touched_j[t]
                    p = glcm[i, j] / total
                    asm += p * p
                    sij += i * j * p
                    idm += p / (1.0 + (i - j) * (i - j))
                    ent -= p * np.log2(p)
                    px[i] += p
                    p_plus[i + j] += p
                    p_minus[abs(i - j)] += p
                ux = 0.0
                sxx = 0.0
                hx = 0.0
                for k in range(lmin, lmax + 1):
                    ux += k * px[k]
                    sxx += k * k * px[k]
                    if px[k] > 0:
                        log_px[k] = np.log2(px[k])
                        hx -= px[k] * log_px[k]
                vx = sxx - ux * ux
                sum_avg = 0.0
                sum_sq = 0.0
                sum_ent = 0.0
                for k in range(2 * lmin, 2 * lmax + 1):
                    pk = p_plus[k]
                    sum_avg += k * pk
                    sum_sq += k * k * pk
                    if pk > 0:
                        sum_ent -= pk * np.log2(pk)
                contrast = 0.0
                diff_ent = 0.0
                sq = 0.0
                s1 = 0.0
                for k in range(lmax - lmin + 1):
                    pk = p_minus[k]
                    contrast += k * k * pk
                    sq += pk * pk
                    s1 += pk
                    if pk > 0:
                        diff_ent -= pk * np.log2(pk)
                maxv = qmax + 1
                hxy1 = 0.0
                for t in range(nt):
                    i = touched_i[t]
                    j = touched_j[t]
                    hxy1 -= glcm[i, j] / total * (log_px[i] + log_px[j])
                    glcm[i, j] = 0
                corr = 1.0 if vx <= 0 or np.sqrt(vx) == 0 else (sij - ux * ux) / vx
                info1 = (ent - hxy1) if hx == 0 else (ent - hxy1) / hx
                info2 = np.sqrt(max(0.0, 1.0 - np.exp(-2.0 * (2 * hx - ent))))
                res = out[m, di, d]
                res[0] = asm
                res[1] = contrast
                res[2] = corr
                res[3] = vx
                res[4] = idm
                res[5] = sum_avg
                res[6] = sum_sq - sum_avg * sum_avg
                res[7] = sum_ent
                res[8] = ent
                res[9] = sq / maxv - (s1 / maxv) ** 2
                res[10] = diff_ent
                res[11] = info1
                res[12] = info2
            if missing:
                out[m, di, :, :] = np.nan


@functools.lru_cache(maxsize=8)
def _lut(dtype: str, levels: int, bit_depth: int | None) -> np.ndarray:
    """``quantize`` of every value of an 8- or 16-bit unsigned type, as a lookup table."""
    return quantize(np.arange(np.iinfo(dtype).max + 1, dtype=dtype), levels, bit_depth)


def haralick_batch(obj: Objects, images: np.ndarray, channel: int, distances, levels: int = 256,
                   bit_depth: int | None = None) -> np.ndarray:
    """``(M, D, 4, 13)`` Haralick features (objects, ``distances``, directions, ``NAMES``) of one channel of an
    ``(N, C, Y, X)`` batch, quantized as ``quantize(images, levels, bit_depth)``.

    Grey level 0 is ignored. As in CellProfiler, an object without pairs in
    any one direction at a distance gets NaN in every direction at that distance.
    16- and 8-bit images are quantized through a lookup table, pixel by pixel in
    the objects only; other types are quantized whole first.
    """
    distances = np.asarray(distances, dtype=np.int64)
    out = np.empty((obj.n, len(distances), 4, 13))
    if not obj.n:
        return out
    images = np.asarray(images)
    if images.dtype == np.uint16:
        lut = _lut("uint16", levels, bit_depth)
        raw = np.ascontiguousarray(images)
    else:
        raw = images[:, channel:channel + 1]
        if images.dtype == np.uint8:
            lut = _lut("uint8", levels, bit_depth)
        else:
            raw, lut = quantize(raw, levels, bit_depth), _lut("uint8", 256, None)  # identity
        raw, channel = raw.astype(np.uint16), 0
    _haralick_all(obj.labels, raw, int(channel), lut, obj.event.astype(np.int64), obj.boxes, distances, out)
    return out


def haralick(obj: Objects, q: np.ndarray, distance: int) -> np.ndarray:
    """``(M, 4, 13)`` Haralick features (objects, directions, ``NAMES``) of an ``(N, Y, X)`` grey-level batch
    (``uint8`` levels, as ``quantize`` returns them)."""
    return haralick_batch(obj, np.asarray(q, dtype=np.uint8)[:, None], 0, [distance])[:, 0]


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


#: the column stem of each of ``NAMES`` (made once, not for every column of every call: ~1 ms of a chunk's six)
SNAKE = tuple(_snake(name) for name in NAMES)


def columns(params: dict) -> list[Column]:
    distances, levels = params.get("distances", [3, 5]), params.get("levels", 256)
    scale = f" bit_depth={params['bit_depth']}" if params.get("bit_depth") else ""
    return [Column(f"{stem}_{d}_{k:02d}", f"{DEFINITIONS[name]}; pairs at distance {d}, direction "
                   f"{DIRECTIONS[k]} (row, column)", f"Texture_{name}_{{ch}}_{d}_{k:02d}_{levels}",
                   f"distance={d} direction={k} levels={levels}{scale}")
            for d in distances for k in range(4) for name, stem in zip(NAMES, SNAKE)]


def measure_family(obj: Objects, images: np.ndarray, channels: tuple[int, ...] = (0,), params: dict | None = None
                   ) -> dict[str, np.ndarray]:
    """Texture features of one channel (``channels[0]``) at every configured distance."""
    params = params or {}
    distances = params.get("distances", [3, 5])
    res = haralick_batch(obj, images, channels[0], distances, params.get("levels", 256), params.get("bit_depth"))
    out = {}
    for di, d in enumerate(distances):
        for k in range(4):
            for f, stem in enumerate(SNAKE):
                out[f"{stem}_{d}_{k:02d}"] = res[:, di, k, f]
    return out


FAMILY = Family(
    "texture", "channel", columns, measure_family,
    "Haralick co-occurrence features (MeasureTexture)",
    device=False,
    defaults={"distances": [3, 5], "levels": 256, "bit_depth": None},
    parameters={
        "distances": {
            "type": "array",
            "items": {
                "type": "integer",
                "minimum": 1
            },
            "minItems": 1,
            "uniqueItems": True,
            "description": "Pixel distances of the co-occurrence pairs."
        },
        "levels": {
            "type": "integer",
            "minimum": 2,
            "maximum": 256,
            "description": "Grey levels of the quantized image (CellProfiler: 256)."
        },
        "bit_depth": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": 32,
            "description": ("Integer images are scaled by 2**bit_depth - 1 before quantizing; null: the camera's "
                            "bit depth when the store states it (a .cif: 10 or 12), else the data type's maximum "
                            "(CellProfiler's image scale).")
        }
    },
)
