"""The intensity family of every object of a batch in one compiled pass (numba, ``nogil``).

Objects are given by a label image (``(N, Y, X)``, labels 1..M unique in the
batch, 0: background); the pixels of each object are taken in raster order, as
:attr:`Objects.pixels` orders them. The arithmetic is numpy's, term by term, so
the values are bit-identical to the array formulation this replaced (sums per
object as ``np.add.reduceat``: the first value plus numpy's pairwise sum of the
rest; edge sums as a weighted ``np.bincount``: in order from 0; quantiles with
numpy's 'linear' interpolation). Why compiled: the array formulation sorted
every pixel of the batch twice per channel (values, then deviations for the
MAD) and built index arrays per channel mask; here each object's few hundred
values are sorted where they lie in cache. Figures: docs/benchmarks.md.
"""

from __future__ import annotations

import numba
import numpy as np

from ..kernels._masks import ONE, ZERO, _find

#: the columns of :func:`intensity_host`, in the family's order
COLUMNS = ("sum", "mean", "std", "min", "max", "median", "q25", "q75", "mad", "mass_displacement",
           "center_mass_y", "center_mass_x", "max_y", "max_x", "edge_sum", "edge_mean", "edge_std", "edge_min",
           "edge_max")


def measure_labels(labels, offsets, obj, images, channel: int, pixels=None):
    """:func:`intensity_host` of the objects of ``obj`` as ``labels`` (each event's object numbers, plus
    ``offsets``) give them, in ``channel`` of the host batch ``images``; ``(obj.n, 19)``. ``pixels``: the
    labels' :func:`label_pixels` when the caller has them (one scan of the labels for every channel)."""
    if pixels is None:
        pixels = label_pixels(labels, offsets, obj)
    return intensity_host(images[:, channel], obj.n, counting_sort(images), *pixels)


def label_pixels(labels, offsets, obj) -> tuple:
    """:func:`object_pixels` of the objects of ``obj`` (host) as ``labels`` and ``offsets`` give them."""
    labels = np.ascontiguousarray(labels)
    valid = obj.valid if obj.valid is not None else np.ones(labels.shape, bool)
    return object_pixels(labels, valid, np.asarray(offsets), np.asarray(obj.valid_y0), np.asarray(obj.valid_x0),
                         obj.n)


def counting_sort(images) -> bool:
    """Whether an array's values sort by counting (:func:`_sort16`: unsigned integers of at most 16 bits), else
    by comparison (:func:`_sort_any`). A flag, not the sort function as an argument: numba cannot cache a
    kernel that takes a function, so it was compiled again in every process (2.3 s per run, measured)."""
    return images.dtype.kind == "u" and images.dtype.itemsize <= 2


@numba.njit(cache=True, nogil=True)
def _block(a, lo, n):
    """numpy's ``pairwise_sum`` of a block of at most 128 values: 8 accumulators, then the rest in order."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def _pairwise(a, lo, n):
    """numpy's pairwise sum of ``a[lo:lo + n]`` (``pairwise_sum`` in numpy's loops_utils): blocks of up to 128
    values, halves split at a multiple of 8 and added. Evaluated with explicit stacks (numba's cache cannot
    reload a recursive function)."""
    if n <= 128:
        return _block(a, lo, n)
    todo_lo = np.empty(128, dtype=np.int64)
    todo_n = np.empty(128, dtype=np.int64)
    todo_join = np.empty(128, dtype=np.bool_)  # True: add the two results on top of the value stack
    values = np.empty(128)
    top, vtop = 1, 0
    todo_lo[0], todo_n[0], todo_join[0] = lo, n, False
    while top:
        top -= 1
        lo_, n_, join = todo_lo[top], todo_n[top], todo_join[top]
        if join:
            vtop -= 1
            values[vtop - 1] = values[vtop - 1] + values[vtop]
        elif n_ <= 128:
            values[vtop] = _block(a, lo_, n_)
            vtop += 1
        else:
            n2 = n_ // 2
            n2 -= n2 % 8
            todo_lo[top], todo_n[top], todo_join[top] = 0, 0, True  # after both halves
            todo_lo[top + 1], todo_n[top + 1], todo_join[top + 1] = lo_ + n2, n_ - n2, False
            todo_lo[top + 2], todo_n[top + 2], todo_join[top + 2] = lo_, n2, False  # the left half first
            top += 3
    return values[0]


@numba.njit(cache=True, nogil=True)
def _reduceat(a, n):
    """``np.add.reduceat`` of one group ``a[:n]`` (n >= 1): its first value plus the pairwise sum of the rest."""
    return a[0] + _pairwise(a, ONE, n - 1)  # not 1: see kernels._masks.ZERO


@numba.njit(cache=True, nogil=True)
def _lerp(a, b, t):
    """numpy's interpolation between neighbouring order statistics (``intensity._lerp``)."""
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


@numba.njit(cache=True, nogil=True)
def _quantile(srt, n, q):
    """numpy's 'linear' quantile of the sorted ``srt[:n]`` (``intensity.quantile``)."""
    pos = q * float(n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    return _lerp(srt[lo], srt[hi], pos - lo)


@numba.njit(cache=True, nogil=True)
def _mad(srt, n, median):
    """The median of ``|v - median|`` over the sorted ``srt[:n]`` without sorting the deviations: they fall
    from the left end towards the median and rise from there to the right end, so the two sorted runs are
    merged outwards from the median until the middle positions are reached (numpy's 'linear' median of the
    same values, so the same result as sorting them)."""
    pos = 0.5 * float(n - 1)
    want = int(np.floor(pos))
    hi_at = min(want + 1, n - 1)
    right = 0
    while right < n and srt[right] < median:
        right += 1
    left = right - 1  # deviations: median - srt[left], falling as left rises; srt[right] - median rising
    a = b = 0.0
    for k in range(hi_at + 1):
        if left >= 0 and (right >= n or median - srt[left] <= srt[right] - median):
            d = abs(srt[left] - median)
            left -= 1
        else:
            d = abs(srt[right] - median)
            right += 1
        if k == want:
            a = d
        if k == hi_at:
            b = d
    return _lerp(a, b, pos - want)


@numba.njit(cache=True, nogil=True)
def _rank(cum, span, r):
    """The bin holding rank ``r`` (0-based) of a cumulative histogram ``cum[:span]``."""
    lo, hi = 0, span - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] > r:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True, nogil=True)
def _at_most(cum, lo, span, n, x):
    """How many of the histogram's ``n`` whole values (bins from ``lo``) are at most ``x``."""
    if x < lo:
        return 0
    return n if x - lo >= span else cum[x - lo]


@numba.njit(cache=True, nogil=True)
def _hist_quantile(cum, lo, span, n, q):
    """:func:`_quantile` of the values a cumulative histogram ``cum`` counts (whole values from ``lo``)."""
    pos = q * float(n - 1)
    r = int(np.floor(pos))
    a = float(lo + _rank(cum, span, r))
    b = float(lo + _rank(cum, span, min(r + 1, n - 1)))
    return _lerp(a, b, pos - r)


@numba.njit(cache=True, nogil=True)
def _deviation(cum, lo, span, n, median, r):
    """Rank ``r`` of the values' ``|v - median|`` (``median`` whole or half-whole): the smallest deviation
    ``j + half`` whose window ``[m - j, m + j (+ 1 for a half-whole median)]`` holds more than ``r`` values."""
    m = int(np.floor(median))
    half = median - m
    up = 1 if half > 0 else 0
    j_lo, j_hi = 0, span
    while j_lo < j_hi:
        j = (j_lo + j_hi) // 2
        if _at_most(cum, lo, span, n, m + j + up) - _at_most(cum, lo, span, n, m - j - 1) > r:
            j_hi = j
        else:
            j_lo = j + 1
    return float(j_lo) + half


@numba.njit(cache=True, nogil=True)
def _hist_stats(vals, n, lo, hi, cum):
    """Median, quartiles and MAD of the whole values ``vals[:n]`` in ``[lo, hi]`` from one counting pass
    into ``cum`` (then made cumulative) and binary searches over it: the values of :func:`_quantile` and
    :func:`_mad` on the sorted values, without sorting them (3.8x faster on 1,750 values; used where the
    values' range is small against their count)."""
    span = hi - lo + 1
    for b in range(span):
        cum[b] = 0
    for j in range(n):
        cum[int(vals[j]) - lo] += 1
    for b in range(1, span):
        cum[b] += cum[b - 1]
    median = _hist_quantile(cum, lo, span, n, 0.5)
    pos = 0.5 * float(n - 1)
    want = int(np.floor(pos))
    mad = _lerp(_deviation(cum, lo, span, n, median, want),
                _deviation(cum, lo, span, n, median, min(want + 1, n - 1)), pos - want)
    return median, _hist_quantile(cum, lo, span, n, 0.25), _hist_quantile(cum, lo, span, n, 0.75), mad


@numba.njit(cache=True, nogil=True)
def _sort16(vals, n, out, keys, spare, c0, c1):
    """``out[:n]`` = the values ``vals[:n]`` (whole numbers in [0, 65535]) sorted: two counting passes of 8 bits
    (7x faster than a comparison sort on a 1,500-pixel object)."""
    c0[:] = 0
    c1[:] = 0
    for j in range(n):
        k = int(vals[j])
        keys[j] = k
        c0[(k & 255) + 1] += 1
        c1[(k >> 8) + 1] += 1
    for b in range(256):
        c0[b + 1] += c0[b]
        c1[b + 1] += c1[b]
    for j in range(n):
        k = keys[j]
        spare[c0[k & 255]] = k
        c0[k & 255] += 1
    for j in range(n):
        k = spare[j]
        out[c1[k >> 8]] = float(k)
        c1[k >> 8] += 1


@numba.njit(cache=True, nogil=True)
def _sort_any(vals, n, out, keys, spare, c0, c1):
    """``out[:n]`` = the values ``vals[:n]`` sorted (any values; the other arguments as :func:`_sort16`'s)."""
    srt = np.sort(vals[:n])
    for j in range(n):  # not out[:n] = ...: see _masks.label_pieces_host
        out[j] = srt[j]


@numba.njit(cache=True, nogil=True)
def object_pixels(labels, valid, offsets, y0, x0, m):
    """The pixels of objects 1..m (``labels + offsets`` where ``labels`` ``(N, Y, X)`` is set), grouped by
    object in raster order, and what the intensity columns need of them that no channel changes: group starts
    ``(m + 2,)`` (object k's pixels at ``start[k]:start[k + 1]``), their rows and columns (int32), each object's
    event ``(m + 1,)``, whether each pixel is on the object's edge (a 4-neighbour inside the event, ``valid``,
    with another label: scikit-image's inner boundaries) and each object's mean row and column relative to its
    event (``y0``, ``x0``) ``(m + 1, 2)``. Two passes over the label image; shared by every channel measured in
    the same labels (the edges and centres were found once per channel before: 40 % of a channel's time). Rows
    without labels are passed over after one branch-free test each (12-23 % faster on seed-geometry chunks)."""
    n_ev, h, w = labels.shape
    count = np.zeros(m + 1, dtype=np.int64)
    rows = np.zeros((n_ev, 2), dtype=np.int64)  # each event's rows with labels (a branch-free test per row)
    for e in range(n_ev):
        off = offsets[e]
        lo, hi = h, 0
        for y in range(h):
            seen = 0
            for x in range(w):
                seen |= labels[e, y, x]
            if seen:
                lo, hi = min(lo, y), y + 1
        rows[e, 0], rows[e, 1] = lo, hi
        for y in range(lo, hi):
            for x in range(w):
                raw = labels[e, y, x]
                if raw:
                    count[raw + off] += 1
    start = np.zeros(m + 2, dtype=np.int64)
    for k in range(1, m + 1):
        start[k + 1] = start[k] + count[k]
    fill = start.copy()
    order_y = np.empty(start[m + 1], dtype=np.int32)
    order_x = np.empty(start[m + 1], dtype=np.int32)
    edge = np.empty(start[m + 1], dtype=np.bool_)
    event_of = np.zeros(m + 1, dtype=np.int64)
    for e in range(n_ev):
        off = offsets[e]
        for y in range(rows[e, 0], rows[e, 1]):
            for x in range(w):
                raw = labels[e, y, x]
                if raw:
                    k = raw + off
                    order_y[fill[k]] = y
                    order_x[fill[k]] = x
                    edge[fill[k]] = ((y > 0 and valid[e, y - 1, x] and labels[e, y - 1, x] != raw)
                                     or (y < h - 1 and valid[e, y + 1, x] and labels[e, y + 1, x] != raw)
                                     or (x > 0 and valid[e, y, x - 1] and labels[e, y, x - 1] != raw)
                                     or (x < w - 1 and valid[e, y, x + 1] and labels[e, y, x + 1] != raw))
                    event_of[k] = e
                    fill[k] += 1
    centre = np.full((m + 1, 2), np.nan)
    tmp = np.empty(max(start[m + 1], 1))
    for k in range(1, m + 1):
        lo, n = start[k], start[k + 1] - start[k]
        if n == 0:
            continue
        e = event_of[k]
        for j in range(n):
            tmp[j] = float(order_y[lo + j] - y0[e])
        centre[k, 0] = _reduceat(tmp, n) / n
        for j in range(n):
            tmp[j] = float(order_x[lo + j] - x0[e])
        centre[k, 1] = _reduceat(tmp, n) / n
    return start, order_y, order_x, event_of, edge, centre, y0, x0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def intensity_host(plane, m, counting, start, order_y, order_x, event_of, edge, centre, y0, x0):
    """``(m, 19)`` float64: the intensity columns (:data:`COLUMNS`) of objects 1..m in ``plane`` ``(N, Y, X)``,
    the objects given by their :func:`object_pixels` (the arguments after ``counting``: pixel lists, edges,
    centres and the events' offsets ``y0``/``x0``: coordinates are relative to the event); ``counting``: sort
    the values by counting (:func:`counting_sort`). Rows of objects without pixels are NaN."""
    widest = 1
    for k in range(1, m + 1):
        widest = max(widest, start[k + 1] - start[k])
    vals = np.empty(widest)
    srt = np.empty(widest)
    tmp = np.empty(widest)
    ys = np.empty(widest, dtype=np.int64)
    xs = np.empty(widest, dtype=np.int64)
    keys = np.empty(widest, dtype=np.int64)
    spare = np.empty(widest, dtype=np.int64)
    c0 = np.empty(257, dtype=np.int64)
    c1 = np.empty(257, dtype=np.int64)
    cum = np.empty(4 * widest + 1024, dtype=np.int64)  # _hist_stats' histogram
    out = np.full((m, 19), np.nan)
    for k in range(1, m + 1):
        n = start[k + 1] - start[k]
        if n == 0:
            continue
        row = out[k - 1]
        e = event_of[k]
        low, high = np.inf, -np.inf
        for j in range(n):
            y, x = order_y[start[k] + j], order_x[start[k] + j]
            ys[j], xs[j] = y, x
            vals[j] = float(plane[e, y, x])
            low, high = min(low, vals[j]), max(high, vals[j])
        if counting and high - low < 4 * n + 1024:  # a small range: order statistics from a histogram
            median, q25, q75, mad = _hist_stats(vals, n, int(low), int(high), cum)
        else:
            if counting:
                _sort16(vals, n, srt, keys, spare, c0, c1)
            else:
                _sort_any(vals, n, srt, keys, spare, c0, c1)
            median = _quantile(srt, n, 0.5)
            q25, q75, mad = _quantile(srt, n, 0.25), _quantile(srt, n, 0.75), _mad(srt, n, median)
            low, high = srt[0], srt[n - 1]  # (a NaN sorts last)
        total = _reduceat(vals, n)
        mean = total / n
        for j in range(n):
            tmp[j] = (vals[j] - mean) * (vals[j] - mean)
        std = np.sqrt(_reduceat(tmp, n) / n)
        row[0], row[1], row[2], row[3], row[4] = total, mean, std, low, high
        row[5], row[6], row[7], row[8] = median, q25, q75, mad
        ey, ex = y0[e], x0[e]
        for j in range(n):
            tmp[j] = float(ys[j] - ey) * vals[j]
        cmy = _reduceat(tmp, n) / total
        for j in range(n):
            tmp[j] = float(xs[j] - ex) * vals[j]
        cmx = _reduceat(tmp, n) / total
        cy, cx = centre[k, 0], centre[k, 1]
        row[9], row[10], row[11] = np.hypot(cmy - cy, cmx - cx), cmy, cmx
        for j in range(n):
            if vals[j] == high:
                row[12], row[13] = float(ys[j] - ey), float(xs[j] - ex)
                break
        cnt, esum, lo, hi = 0, 0.0, np.inf, -np.inf  # the edge pixels (object_pixels)
        for j in range(n):
            if edge[start[k] + j]:
                tmp[cnt] = vals[j]
                cnt += 1
                esum += vals[j]
                lo, hi = min(lo, vals[j]), max(hi, vals[j])
        emean = esum / cnt if cnt > 0 else 0.0
        sq = 0.0
        for j in range(cnt):
            sq += (tmp[j] - emean) * (tmp[j] - emean)
        row[14], row[15] = esum, emean
        row[16] = np.sqrt(sq / cnt) if cnt > 0 else 0.0
        row[17], row[18] = (lo, hi) if cnt > 0 else (0.0, 0.0)
    return out


@numba.njit(cache=True, nogil=True)
def overlap_host(labels, own, offsets, plane, background, m):
    """``(m, 10)`` for objects 1..m: the sums of ``plane - background`` over each object's pixels in ``own``
    (one channel's mask, attributed) and in ``labels`` (the cell mask); the pixels in ``own``, and those of
    them inside the object's cell mask; the 8-connected pieces of its ``own`` pixels; their rows' and
    columns' sums, sums of squares and of products (for the mask's second moments). ``background``
    ``(N,)`` per event. Sums of values in raster order from 0, as a weighted ``np.bincount``."""
    n_ev, h, w = labels.shape
    out = np.zeros((m + 1, 10))
    prev = np.empty((w + 1, 3), dtype=np.int64)  # runs of one label in the previous and the current row
    cur = np.empty((w + 1, 3), dtype=np.int64)
    parent = np.empty(h * w, dtype=np.int64)
    run_label = np.empty(len(parent), dtype=np.int64)
    for e in range(n_ev):
        bg = background[e]
        n_runs, n_prev = ZERO, 0  # not 0: see kernels._masks.ZERO
        for y in range(h):
            n_cur = 0
            x = 0
            while x < w:
                raw, lab = own[e, y, x], labels[e, y, x]
                g = raw + offsets[e] if raw else 0
                if g:
                    out[g, 0] += float(plane[e, y, x]) - bg
                    out[g, 2] += 1.0
                    if lab == g:
                        out[g, 3] += 1.0
                    out[g, 5] += y
                    out[g, 6] += x
                    out[g, 7] += y * y
                    out[g, 8] += x * x
                    out[g, 9] += y * x
                if lab:
                    out[lab, 1] += float(plane[e, y, x]) - bg
                if g and (x == 0 or own[e, y, x - 1] != raw):  # a run of object g starts: join it to the row above
                    stop = x + 1
                    while stop < w and own[e, y, stop] == raw:
                        stop += 1
                    parent[n_runs], run_label[n_runs] = n_runs, g
                    cur[n_cur, 0], cur[n_cur, 1], cur[n_cur, 2] = n_runs, x, stop
                    for p in range(n_prev):
                        q = prev[p, 0]
                        if run_label[q] == g and prev[p, 1] < stop + 1 and prev[p, 2] > x - 1:
                            a, b = _find(parent, q), _find(parent, n_runs)
                            if a != b:
                                parent[max(a, b)] = min(a, b)
                    n_runs += 1
                    n_cur += 1
                x += 1
            prev, cur = cur, prev
            n_prev = n_cur
        for i in range(n_runs):
            if parent[i] == i:
                out[run_label[i], 4] += 1.0
    return out[1:]
