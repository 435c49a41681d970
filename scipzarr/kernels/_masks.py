"""Background-referenced channel masks of an event batch in one compiled pass per plane (numba, ``nogil``).

What :func:`scipzarr.kernels.segment.channel_masks` computes, fused: for each event, its valid pixels'
smoothed weights and border ring once; for each of its channels the normalized Gaussian smoothing, the
ring's median and robust noise, the departure threshold, hole filling and the removal of small pieces,
all on one plane in cache. The same arithmetic as the array formulation it replaces, in the same order:
scipy's ``correlate1d`` (symmetric kernels: centre tap first, then the outer pairs inwards), numpy's
median (the mean of the two middle values), ``fill_holes`` (4-connected background not reaching the
plane's border) and 8-connected pieces, so the masks are bit-identical to it (tested). Why compiled:
the array formulation makes ~40 whole-batch passes (two labellings per plane among them) and cost 3.4-4.2x
the old single-channel Otsu segmentation per chunk; see docs/segmentation.md for the figures.

Also here, sharing its runs and union-find: the labelling of event masks (:func:`label_pieces_host`), the
objects' pixel lists (:func:`object_lists_host`), the exact distance transform of planes and of each object
in its own box (:func:`planes_edt_host`, :func:`object_edt_host`) and each object's filled area
(:func:`object_filled_areas_host`); their figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import uint64 as U

#: Start values of counters that are passed to other kernels: with ``n = 0`` and then ``n += 1``, numba compiles
#: the callee twice, once for the literal 0 its type inference meets first (0.3-1.4 s each on a first run); a
#: numpy scalar is an int64 from the start. ``ONE`` likewise for a constant argument.
ZERO = np.int64(0)
ONE = np.int64(1)


def gaussian_weights(sigma: float) -> tuple:
    """scipy's ``gaussian_filter`` weights (``truncate=4``) in the order ``correlate1d`` adds them: the
    centre, then from the outermost pair inwards (``(1.0,)``: no smoothing). A tuple: its length is a
    compile-time constant, so the taps unroll and the rows vectorize."""
    if sigma <= 0:
        return (1.0,)
    radius = int(4.0 * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1)
    phi = np.exp(-0.5 / (float(sigma) * float(sigma)) * x ** 2)
    w = (phi / phi.sum())[::-1]
    return tuple(float(v) for v in (w[radius], *w[:radius]))


@numba.njit(cache=True, nogil=True)
def _smooth(src, dst, tmp, taps, h, wd):
    """``correlate1d`` along rows then columns (``mode="constant"``, ``cval=0``) of the ``(h, wd)`` plane
    framed by ``r`` zeros in ``src`` (``r = len(taps) - 1``), into ``dst`` (same frame; ``tmp`` a scratch
    plane): scipy's sums, term by term in its order (:func:`gaussian_weights`). Unsigned indices: numba
    then adds no negative-index wraparound, and the loops vectorize (4x faster)."""
    r = len(taps) - 1
    c = taps[0]
    top, left = U(r), U(r)
    for y in range(top, top + U(h)):
        for x in range(left, left + U(wd)):
            acc = src[y, x] * c
            for j in range(r, 0, -1):
                acc += (src[y - U(j), x] + src[y + U(j), x]) * taps[r + 1 - j]
            tmp[y, x] = acc
    for y in range(top, top + U(h)):
        for x in range(left, left + U(wd)):
            acc = tmp[y, x] * c
            for j in range(r, 0, -1):
                acc += (tmp[y, x - U(j)] + tmp[y, x + U(j)]) * taps[r + 1 - j]
            dst[y, x] = acc


@numba.njit(cache=True, nogil=True)
def _select(a, lo, hi, k):
    """Reorder ``a[lo:hi]`` so that ``a[k]`` holds the value a sort would put there (Hoare's selection)."""
    while hi - lo > 1:
        pivot = a[(lo + hi) // 2]
        i, j = lo, hi - 1
        while i <= j:
            while a[i] < pivot:
                i += 1
            while a[j] > pivot:
                j -= 1
            if i <= j:
                a[i], a[j] = a[j], a[i]
                i += 1
                j -= 1
        if k <= j:
            hi = j + 1
        elif k >= i:
            lo = i
        else:
            return


@numba.njit(cache=True, nogil=True)
def _median_select(a, n):
    """numpy's median of ``a[:n]`` (the mean of the two middle values; 0 for none), reordering ``a``: one
    selection and, for an even count, the largest value before the upper middle one, instead of ``np.median``
    (same values, and seconds less to compile)."""
    if n == 0:
        return 0.0
    _select(a, ZERO, n, n // 2)
    upper = a[n // 2]
    if n % 2:
        return upper
    lower = a[0]  # the largest value left of the upper middle one: the lower middle one
    for i in range(1, n // 2):
        lower = max(lower, a[i])
    return (lower + upper) / 2.0


@numba.njit(cache=True, nogil=True)
def _bucket(v, lo, scale, top):
    """The bucket of ``v`` among ``top + 1`` equal ones from ``lo``: each step (subtraction, product,
    truncation) is monotone, so a higher value never falls in a lower bucket."""
    return min(int((v - lo) * scale), top)


@numba.njit(cache=True, nogil=True)
def _median(a, n, counts, picked):
    """numpy's median of ``a[:n]`` (:func:`_median_select`'s value) by bucket selection: the values are counted
    into ``len(counts)`` buckets between their minimum and maximum, and only those of the bucket holding the
    upper middle one are selected among (in ``picked``). 3.5x faster than a selection among all on a ring of
    700 values, where the quickselect's unpredictable branches cost most (docs/benchmarks.md). Values with
    NaN or infinities go to the selection among all."""
    if n == 0:
        return 0.0
    lo = hi = a[0]
    finite = True
    for i in range(n):
        v = a[i]
        finite &= v - v == 0.0  # False for NaN and infinities
        lo = min(lo, v)
        hi = max(hi, v)
    span = hi - lo
    if finite and span == 0.0:
        return hi if n % 2 else (hi + hi) / 2.0
    if not finite or not span > 0.0:  # NaN or infinities among the values
        return _median_select(a, n)
    top = counts.shape[0] - 1
    scale = top / span
    if not scale - scale == 0.0 or not span - span == 0.0:  # a span too narrow or too wide for buckets
        return _median_select(a, n)
    counts[:] = 0
    for i in range(n):
        counts[_bucket(a[i], lo, scale, top)] += 1
    k = n // 2  # the upper middle value's rank
    below, b = 0, 0
    while below + counts[b] <= k:
        below += counts[b]
        b += 1
    m = ZERO
    for i in range(n):
        if _bucket(a[i], lo, scale, top) == b:
            picked[m] = a[i]
            m += 1
    r = k - below
    _select(picked, ZERO, m, r)
    upper = picked[r]
    if n % 2:
        return upper
    if r > 0:  # the lower middle value: the largest one left of the upper one in its bucket
        lower = picked[0]
        for i in range(1, r):
            lower = max(lower, picked[i])
    else:  # or the largest one in the buckets below
        lower = -np.inf
        for i in range(n):
            if _bucket(a[i], lo, scale, top) < b:
                lower = max(lower, a[i])
    return (lower + upper) / 2.0


@numba.njit(cache=True, nogil=True)
def _box(mask):
    """Rows and columns ``y0, y1, x0, x1`` (half-open) of the set pixels of a 2-D mask (``y0 == y1``: none)."""
    h, w = mask.shape
    y0, y1, x0, x1 = h, 0, w, 0
    for y in range(h):
        for x in range(w):
            if mask[y, x]:
                y0, y1, x0, x1 = min(y0, y), max(y1, y + 1), min(x0, x), max(x1, x + 1)
    if y0 >= y1:
        return 0, 0, 0, 0
    return y0, y1, x0, x1


@numba.njit(cache=True, nogil=True)
def _find(parent, i):
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@numba.njit(cache=True, nogil=True)
def _runs(mask, value, y0, y1, x0, x1, diagonal, runs, parent):
    """The runs of pixels equal to ``value`` in the box ``[y0, y1) x [x0, x1)`` of a 2-D mask (row, start,
    stop in ``runs``), joined into pieces in ``parent`` (union-find): runs of neighbouring rows that overlap,
    or also touch diagonally (``diagonal``: 8-connected). Returns the number of runs."""
    n, prev, prev_end = ZERO, 0, 0
    for y in range(y0, y1):
        first = n
        x = x0
        while x < x1:
            if mask[y, x] != value:
                x += 1
                continue
            start = x
            while x < x1 and mask[y, x] == value:
                x += 1
            runs[n, 0], runs[n, 1], runs[n, 2] = y, start, x
            parent[n] = n
            for p in range(prev, prev_end):  # the runs of the row above
                if runs[p, 1] < x + diagonal and runs[p, 2] > start - diagonal:
                    a, b = _find(parent, p), _find(parent, n)
                    if a != b:
                        parent[max(a, b)] = min(a, b)
            n += 1
        prev, prev_end = first, n
    return n


@numba.njit(cache=True, nogil=True)
def _fill(mask, valid, y0, y1, x0, x1, runs, parent, size):
    """Fill the holes of a 2-D mask (background not 4-connected to the plane's border), then keep only the
    ``valid`` pixels; in place. Holes lie inside a box holding every set pixel (``[y0, y1) x [x0, x1)``),
    and the background just around the box reaches the plane's border around it: background runs of the box
    grown by one pixel that are not joined to a run on the grown box's edge are holes."""
    h, w = mask.shape
    if y0 >= y1 or x0 >= x1:
        return
    y0, y1, x0, x1 = max(y0 - 1, 0), min(y1 + 1, h), max(x0 - 1, 0), min(x1 + 1, w)
    n = _runs(mask, False, y0, y1, x0, x1, ZERO, runs, parent)  # ZERO: one compiled _runs for both callers
    size[:n] = 0  # here: 1 where the piece reaches the edge
    for i in range(n):
        if runs[i, 0] == y0 or runs[i, 0] == y1 - 1 or runs[i, 1] == x0 or runs[i, 2] == x1:
            size[_find(parent, i)] = 1
    for i in range(n):
        if size[_find(parent, i)] == 0:
            mask[runs[i, 0], runs[i, 1]:runs[i, 2]] = True
    for y in range(y0, y1):
        for x in range(x0, x1):
            mask[y, x] = mask[y, x] and valid[y, x]


@numba.njit(cache=True, nogil=True)
def _sieve(mask, min_size, y0, y1, x0, x1, runs, parent, size):
    """Drop the 8-connected pieces of a 2-D mask under ``min_size`` pixels, in place (every set pixel inside
    ``[y0, y1) x [x0, x1)``)."""
    n = _runs(mask, True, y0, y1, x0, x1, 1, runs, parent)
    size[:n] = 0
    for i in range(n):
        size[_find(parent, i)] += runs[i, 2] - runs[i, 1]
    for i in range(n):
        if size[_find(parent, i)] < min_size:
            mask[runs[i, 0], runs[i, 1]:runs[i, 2]] = False


@numba.njit(cache=True, nogil=True)
def _ring(valid, ring, dist, ring_at):
    """Valid pixels within ``ring`` 4-connected steps of an invalid pixel or the plane's edge (what
    ``binary_erosion`` with a cross, ``iterations=ring``, ``border_value=0`` removes): a two-pass city-block
    distance transform into ``dist``. The ring's pixels go to ``ring_at`` (``y * w + x``, raster order);
    returns their count and whether any pixel is invalid. (Loops, not array expressions: each of those
    costs the first run a compiled kernel of its own, ~1 s here.)"""
    h, w = valid.shape
    for y in range(h):
        for x in range(w):
            dist[y, x] = min(y + 1, x + 1, h - y, w - x) if valid[y, x] else 0
    for y in range(h):
        for x in range(w):
            if y > 0:
                dist[y, x] = min(dist[y, x], dist[y - 1, x] + 1)
            if x > 0:
                dist[y, x] = min(dist[y, x], dist[y, x - 1] + 1)
    for y in range(h - 1, -1, -1):
        for x in range(w - 1, -1, -1):
            if y < h - 1:
                dist[y, x] = min(dist[y, x], dist[y + 1, x] + 1)
            if x < w - 1:
                dist[y, x] = min(dist[y, x], dist[y, x + 1] + 1)
    m = 0
    holes = False
    for y in range(h):
        for x in range(w):
            d = dist[y, x]
            if d == 0:
                holes = True
            elif d <= ring:
                ring_at[m] = y * w + x
                m += 1
    return m, holes


@numba.njit(cache=True, nogil=True)
def _same(a, b):
    """Whether two 2-D masks are equal."""
    for y in range(a.shape[0]):
        for x in range(a.shape[1]):
            if a[y, x] != b[y, x]:
                return False
    return True


@numba.njit(cache=True, nogil=True)
def channel_masks_host(images, channels, valid, weights, k, both, fraction, fill, min_size, ring):
    """Masks ``(N, C, Y, X)`` bool, background and noise ``(N, C)`` of the ``channels`` of a host batch (see
    the module), and the pixels of each event and channel more than ``k`` noise units below the background
    ``(N, C)``."""
    n, h, w = images.shape[0], images.shape[2], images.shape[3]
    c = len(channels)
    r = len(weights) - 1
    masks = np.zeros((n, c, h, w), dtype=np.bool_)
    bg = np.zeros((n, c))
    noise = np.zeros((n, c))
    dark = np.zeros((n, c), dtype=np.int64)
    plane = np.zeros((h + 2 * r, w + 2 * r))  # a plane framed by r zeros (the filters' cval)
    tmp = np.zeros((h + 2 * r, w + 2 * r))
    num = np.zeros((h + 2 * r, w + 2 * r))
    den = np.zeros((h + 2 * r, w + 2 * r))
    vals = np.empty(h * w)
    picked = np.empty(h * w)  # the medians' scratch
    counts = np.empty(256, dtype=np.int64)
    runs = np.empty((h * (w // 2 + 1), 3), dtype=np.int64)
    parent = np.empty(len(runs), dtype=np.int64)
    size = np.empty(len(runs), dtype=np.int64)
    dist = np.empty((h, w), dtype=np.int32)
    row_count = np.zeros(h, dtype=np.int64)
    col_any = np.zeros(w, dtype=np.bool_)
    ring_at = np.empty(h * w, dtype=np.uint64)  # the ring's pixels, as y * w + x
    ur, uh, uw = U(r), U(h), U(w)
    m = 0  # the ring's pixel count and whether the event has pixels outside it: set with the first event
    holes = False
    for e in range(n):
        inside = valid[e]
        # the smoothed weights and the ring depend on the valid region only: kept from the previous event when
        # its region is the same (every event of a chunk of whole tiles)
        if e == 0 or not _same(inside, valid[e - 1]):
            for y in range(uh):
                for x in range(uw):
                    plane[y + ur, x + ur] = 1.0 if inside[y, x] else 0.0
            _smooth(plane, den, tmp, weights, h, w)
            m, holes = _ring(inside, ring, dist, ring_at)  # holes: pixels outside the event (departures of 0)
        for ch in range(c):
            src = images[e, channels[ch]]
            for y in range(uh):
                for x in range(uw):
                    plane[y + ur, x + ur] = src[y, x] if inside[y, x] else 0.0
            _smooth(plane, num, tmp, weights, h, w)
            top = -np.inf  # the highest smoothed value in the event
            for y in range(ur, ur + uh):
                row, weight, inrow = num[y], den[y], inside[y - ur]
                for x in range(ur, ur + uw):  # apart from the maximum, the divisions vectorize (7 % of the pass)
                    row[x] = row[x] / max(weight[x], 1e-300) if inrow[x - ur] else 0.0
                for x in range(ur, ur + uw):
                    top = max(top, row[x]) if inrow[x - ur] else top
            for j in range(m):
                y, x = ring_at[j] // uw, ring_at[j] % uw
                vals[j] = num[y + ur, x + ur]
            level = _median(vals, m, counts, picked)
            for j in range(m):
                vals[j] = abs(vals[j] - level)
            spread = max(1.4826 * _median(vals, m, counts, picked), 1e-12)
            bg[e, ch], noise[e, ch] = level, spread
            # the highest departure (0 outside the event): rounding is monotone, so the highest value's
            top = max((top - level) / spread, 0.0) if holes else (top - level) / spread
            least = fraction * top if fraction > 0 else -np.inf
            out = masks[e, ch]
            below = 0
            col_any[:] = False
            two_way = both[ch]  # loop-invariant: the compiler unswitches the loop on it
            for y in range(uh):
                count = 0
                for x in range(uw):
                    ins = inside[y, x]
                    d = (num[y + ur, x + ur] - level) / spread if ins else 0.0
                    below += d < -k
                    on = (((d < -k) | (d > k)) if two_way else ((d > k) & (d >= least))) & ins
                    out[y, x] = on
                    count += on
                    col_any[x] |= on
                row_count[y] = count
            dark[e, ch] = below
            # the box of the set pixels, from each row's count and column's (ZERO, not 0: see the constant)
            y0, y1, x0, x1 = h, ZERO, w, ZERO
            for y in range(h):
                if row_count[y]:
                    y0, y1 = min(y0, y), y + 1
            for x in range(w):
                if col_any[x]:
                    x0, x1 = min(x0, x), x + 1
            if fill:
                _fill(out, inside, y0, y1, x0, x1, runs, parent, size)
            if min_size > 1:
                _sieve(out, min_size, y0, y1, x0, x1, runs, parent, size)
    return masks, bg, noise, dark


@numba.njit(cache=True, nogil=True)
def label_pieces_host(mask, valid, fill, min_size, largest):
    """Per-event labels of a host mask ``(N, Y, X)``: holes filled (inside ``valid``), 8-connected pieces
    under ``min_size`` pixels dropped, all or the ``largest`` kept (ties: the first in raster order),
    numbered 1..n per event in the raster order of their first pixel. Returns the labels ``(N, Y, X)``
    int32, the objects per event and the pieces per event before the largest was kept."""
    n, h, w = mask.shape
    labels = np.zeros((n, h, w), dtype=np.int32)
    counts = np.zeros(n, dtype=np.int64)
    pieces = np.zeros(n, dtype=np.int64)
    runs = np.empty((h * (w // 2 + 1), 3), dtype=np.int64)
    parent = np.empty(len(runs), dtype=np.int64)
    size = np.empty(len(runs), dtype=np.int64)
    number = np.empty(len(runs), dtype=np.int64)
    plane = np.empty((h, w), dtype=np.bool_)
    for e in range(n):
        for y in range(h):  # element loops, not plane[:, :] = mask[e]: numba's shape check for array copies
            for x in range(w):  # compiles its error message's formatting (~6 s on the first run)
                plane[y, x] = mask[e, y, x]
        y0, y1, x0, x1 = _box(plane)
        if fill:
            _fill(plane, valid[e], y0, y1, x0, x1, runs, parent, size)
        k = _runs(plane, True, y0, y1, x0, x1, 1, runs, parent)
        size[:k] = 0
        for i in range(k):
            size[_find(parent, i)] += runs[i, 2] - runs[i, 1]
        best, best_size = -1, 0
        for i in range(k):  # roots are each piece's first run: raster order
            number[i] = 0
            if parent[i] == i and size[i] >= max(min_size, 1):
                pieces[e] += 1
                if size[i] > best_size:
                    best, best_size = i, size[i]
        for i in range(k):
            if parent[i] == i and size[i] >= max(min_size, 1) and (not largest or i == best):
                counts[e] += 1
                number[i] = counts[e]
        out = labels[e]
        for i in range(k):
            lab = number[_find(parent, i)]
            if lab:
                out[runs[i, 0], runs[i, 1]:runs[i, 2]] = lab
    return labels, counts, pieces


@numba.njit(cache=True, nogil=True)
def _edt_plane(p, h, w, out, g, f, v, z):
    """:func:`planes_edt_host` of the ``(h, w)`` top-left part of the bool plane ``p``, into ``out``'s (``g``,
    ``f``, ``v``, ``z``: scratch of at least that size)."""
    big = 1e20
    for x in range(w):  # squared distance along each column, down then up
        d = big
        for y in range(h):
            d = 0.0 if not p[y, x] else (d + 1.0 if d < big else big)
            g[y, x] = d
        d = big
        for y in range(h - 1, -1, -1):
            d = 0.0 if not p[y, x] else (d + 1.0 if d < big else big)
            g[y, x] = min(g[y, x], d)
    for y in range(h):
        for x in range(w):
            f[x] = g[y, x] * g[y, x] if g[y, x] < big else big
        k = 0
        v[0] = 0
        z[0], z[1] = -big, big
        for q in range(1, w):
            if f[q] >= big:
                continue
            if f[v[k]] >= big:  # the only site so far is at infinity: replace it
                v[k] = q
                continue
            s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
            while k > 0 and s <= z[k]:
                k -= 1
                s = ((f[q] + q * q) - (f[v[k]] + v[k] * v[k])) / (2.0 * q - 2.0 * v[k])
            k += 1
            v[k] = q
            z[k], z[k + 1] = s, big
        k = 0
        for x in range(w):
            while z[k + 1] < x:
                k += 1
            d2 = (x - v[k]) * (x - v[k]) + f[v[k]]
            out[y, x] = np.sqrt(d2) if f[v[k]] < big else 1e10


@numba.njit(cache=True, nogil=True)
def planes_edt_host(planes):
    """The exact Euclidean distance transform of each ``(h, w)`` plane of a bool stack ``(M, h, w)`` on its own
    (distance of every True pixel to the nearest False pixel of its plane; a plane without False pixels gets
    the large value 1e10), float64. Felzenszwalb and Huttenlocher's two passes of squared distances (columns,
    then the lower envelope of parabolas along rows): the squared distances are whole numbers, so their square
    roots equal scipy's ``distance_transform_edt`` bit for bit (tested)."""
    m, h, w = planes.shape
    out = np.empty((m, h, w))
    g = np.empty((h, w))
    f = np.empty(w)
    v = np.empty(w, dtype=np.int64)
    z = np.empty(w + 1)
    for i in range(m):
        _edt_plane(planes[i], h, w, out[i], g, f, v, z)
    return out


@numba.njit(cache=True, nogil=True)
def _largest_box(boxes):
    """The largest height and width of the boxes ``(M, 4)`` grown by one pixel on each side."""
    hmax, wmax = 1, 1
    for m in range(boxes.shape[0]):
        hmax = max(hmax, boxes[m, 2] - boxes[m, 0] + 2)
        wmax = max(wmax, boxes[m, 3] - boxes[m, 1] + 2)
    return hmax, wmax


@numba.njit(cache=True, nogil=True)
def _object_plane(labels, event, boxes, m, plane):
    """Object ``m`` (label ``m + 1`` of event ``event[m]``) in its box grown by one pixel, into the top-left of
    ``plane`` (True: the object; pixels beyond the tile are not); returns the grown box's height and width."""
    th, tw = labels.shape[1], labels.shape[2]
    e, y0, x0 = event[m], boxes[m, 0] - 1, boxes[m, 1] - 1
    h, w = boxes[m, 2] - y0 + 1, boxes[m, 3] - x0 + 1
    for y in range(h):
        for x in range(w):
            ty, tx = y0 + y, x0 + x
            plane[y, x] = ty >= 0 and ty < th and tx >= 0 and tx < tw and labels[e, ty, tx] == m + 1
    return h, w


@numba.njit(cache=True, nogil=True)
def object_edt_host(labels, event, boxes, total):
    """The distance of every pixel of each object to the nearest pixel outside it, the tile's border counting
    as outside: object ``m`` is label ``m + 1`` of event ``event[m]`` in ``labels`` ``(N, Y, X)``, within its box
    ``boxes[m]`` (min row, min column, max row, max column; end exclusive). Returns ``(total,)`` float64: the
    objects' pixels one object after the other, each in raster order (as ``Objects.pixels``). Each object is
    transformed in its own box grown by one pixel (:func:`planes_edt_host`'s exact values), not in a stack of
    crops as large as the largest object."""
    n_obj = boxes.shape[0]
    hmax, wmax = _largest_box(boxes)
    plane = np.empty((hmax, wmax), dtype=np.bool_)
    dist = np.empty((hmax, wmax))
    g = np.empty((hmax, wmax))
    f = np.empty(wmax)
    v = np.empty(wmax, dtype=np.int64)
    z = np.empty(wmax + 1)
    out = np.empty(total)
    pos = 0
    for m in range(n_obj):
        h, w = _object_plane(labels, event, boxes, m, plane)
        _edt_plane(plane, h, w, dist, g, f, v, z)
        for y in range(1, h - 1):
            for x in range(1, w - 1):
                if plane[y, x]:
                    out[pos] = dist[y, x]
                    pos += 1
    return out


@numba.njit(cache=True, nogil=True)
def object_filled_areas_host(labels, event, boxes):
    """The area of each object with its holes filled (background 8-connected components of its box grown by one
    pixel that do not reach the grown box's edge; pixels of other objects count as background), float64; the
    objects as :func:`object_edt_host` takes them. Background runs joined by union-find (:func:`_runs`)."""
    n_obj = boxes.shape[0]
    hmax, wmax = _largest_box(boxes)
    plane = np.empty((hmax, wmax), dtype=np.bool_)
    runs = np.empty((hmax * (wmax // 2 + 1), 3), dtype=np.int64)
    parent = np.empty(len(runs), dtype=np.int64)
    edge = np.empty(len(runs), dtype=np.bool_)
    out = np.empty(n_obj)
    for m in range(n_obj):
        h, w = _object_plane(labels, event, boxes, m, plane)
        area = 0
        for y in range(h):
            for x in range(w):
                area += plane[y, x]
        k = _runs(plane, False, ZERO, h, ZERO, w, ONE, runs, parent)
        for i in range(k):
            edge[i] = False
        for i in range(k):
            if runs[i, 0] == 0 or runs[i, 0] == h - 1 or runs[i, 1] == 0 or runs[i, 2] == w:
                edge[_find(parent, i)] = True
        for i in range(k):
            if not edge[_find(parent, i)]:
                area += runs[i, 2] - runs[i, 1]
        out[m] = float(area)
    return out


@numba.njit(cache=True, nogil=True)
def object_lists_host(local):
    """Per-event object numbers ``local`` ``(N, Y, X)`` (1..n_e, 0: background) made unique in the batch, and
    the objects' pixel lists, in two passes: the objects per event (each event's largest number), the labels
    ``(N, Y, X)`` int64 (``local`` plus the objects of the events before; 0 stays 0), then per object (label
    ``k + 1``) its area, the flat indices of its pixels in raster order, one object after the other (group
    starts ``(M,)``), their rows and columns in the tile, and its box (min row, min column, max row + 1, max
    column + 1). What ``Objects`` otherwise builds with a sort of the batch's pixels; an object numbered but
    without pixels leaves ``areas`` 0 (the caller then takes that way)."""
    n_ev, h, w = local.shape
    counts = np.zeros(n_ev, dtype=np.int64)
    for e in range(n_ev):
        top = 0
        for y in range(h):
            for x in range(w):
                top = max(top, local[e, y, x])
        counts[e] = top
    offsets = np.zeros(n_ev, dtype=np.int64)
    m = 0
    for e in range(n_ev):
        offsets[e] = m
        m += counts[e]
    labels = np.zeros((n_ev, h, w), dtype=np.int64)
    areas = np.zeros(m, dtype=np.int64)
    for e in range(n_ev):
        off = offsets[e]
        for y in range(h):
            for x in range(w):
                v = local[e, y, x]
                if v > 0:
                    labels[e, y, x] = v + off
                    areas[v + off - 1] += 1
    starts = np.zeros(m, dtype=np.int64)
    for k in range(1, m):
        starts[k] = starts[k - 1] + areas[k - 1]
    total = starts[m - 1] + areas[m - 1] if m else 0
    fill = starts.copy()
    idx = np.empty(total, dtype=np.int64)
    lab = np.empty(total, dtype=np.int64)
    ys = np.empty(total, dtype=np.int64)
    xs = np.empty(total, dtype=np.int64)
    boxes = np.empty((m, 4), dtype=np.int64)
    for k in range(m):
        boxes[k, 0], boxes[k, 1], boxes[k, 2], boxes[k, 3] = h, w, 0, 0
    for e in range(n_ev):
        for y in range(h):
            for x in range(w):
                g = labels[e, y, x]
                if g:
                    k = g - 1
                    i = fill[k]
                    idx[i] = (e * h + y) * w + x
                    lab[i], ys[i], xs[i] = k, y, x
                    fill[k] = i + 1
                    boxes[k, 0] = min(boxes[k, 0], y)
                    boxes[k, 1] = min(boxes[k, 1], x)
                    boxes[k, 2] = max(boxes[k, 2], y + 1)
                    boxes[k, 3] = max(boxes[k, 3], x + 1)
    return counts, labels, areas, idx, lab, starts, ys, xs, boxes
