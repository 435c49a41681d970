"""The compiled kernels of the ``.cif`` decoder (:mod:`scipzarr.converters.cif`), apart so that numba is imported
only when a CIF is read (a TIFF or ``.npy`` convert does not pay its import, ~0.2-0.4 s)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _greyscale(data, out):
    """Decode 30817 data into ``out`` (``(C, h, w)`` uint16: the stored ``(h, C * w)`` plane, channels side by
    side, split as it is read); returns the number of values decoded (``out.size`` when the data held
    enough) or -1 when a value is longer than 16 bits (damaged data).

    Values are nibble varints (:func:`_varints`); the pixels are their 2-D running sum: the predictor
    ``d + p[y-1, x] + p[y, x-1] - p[y-1, x-1]`` is an integral image of the differences, modulo 2**16.
    """
    c, h, w = out.shape
    d = np.empty(h * w * c + 2, np.int64)
    k = _varints(data, d)
    if k != h * w * c:
        return k
    col = np.zeros(w * c, np.int64)
    i = 0
    for y in range(h):
        run = 0
        for ch in range(c):
            for x in range(w):
                col[i - y * w * c] += d[i]
                run += col[i - y * w * c]
                out[ch, y, x] = run & 0xFFFF
                i += 1
    return k


@numba.njit(cache=True, nogil=True)
def _mask_runs(data, out):
    """Decode the masks' (value, run - 1) byte pairs into ``out`` (``(C, h, w)`` uint8: the stored
    ``(h, C * w)`` plane split by channel); returns the pixels the runs cover (``out.size`` for sound data;
    nothing is written past ``out`` when damaged). A run is written a row piece at a time (most are tens of
    pixels: 8x faster than pixel by pixel on the real file)."""
    c, h, w = out.shape
    total = h * c * w
    p = y = ch = x = 0
    for j in range(0, data.size - 1, 2):
        value, n = data[j], np.int64(data[j + 1]) + 1
        if p + n > total:  # damaged: count the rest, write nothing
            for k in range(j + 2, data.size - 1, 2):
                n += np.int64(data[k + 1]) + 1
            return p + n
        p += n
        while n:
            m = min(n, w - x)
            out[ch, y, x:x + m] = value
            n -= m
            x += m
            if x == w:
                x = 0
                ch += 1
                if ch == c:
                    ch = 0
                    y += 1
    return p


@numba.njit(cache=True, nogil=True)
def _varints(data, d):
    """The signed nibble varints of ``data`` (low nibble of each byte first) into ``d`` (two slots more than
    the values wanted), at most ``d.size - 2``; returns how many were read, or -1 for a value longer than 16
    bits. Branch-free: whether a nibble ends a value is data, not control flow (2x faster on real files), but for
    a byte of two one-nibble values, which most are."""
    n = d.size - 2
    k = 0
    value = 0
    shift = 0
    longest = 0
    for i in range(data.size):
        byte = np.int64(data[i])
        if shift == 0 and byte & 0x88 == 0:  # two values of one nibble each (80 % of the bytes of real images)
            lo, hi = byte & 7, (byte >> 4) & 7
            d[k] = lo - ((lo & 4) << 1)
            d[k + 1] = hi - ((hi & 4) << 1)
            k += 2
            longest = max(longest, 3)
            if k >= n:
                break
            continue
        for nib in (byte & 15, byte >> 4):
            value += (nib & 7) << shift
            shift += 3
            end = 1 - ((nib >> 3) & 1)
            value -= (end * ((nib >> 2) & 1)) << shift
            d[k] = value
            k += end
            longest = max(longest, shift)
            value *= 1 - end
            shift *= 1 - end
        if k >= n:
            break
    if longest > 18:
        return -1
    return min(k, n)


@numba.njit(cache=True, nogil=True)
def _decode_many(data, at, shapes, images, masks):
    """Images and masks of several objects from one read of the file region that holds them: object ``e``'s
    image data at ``data[at[e, 0]:at[e, 0] + at[e, 1]]`` and its mask data at ``data[at[e, 2]:at[e, 2] + at[e, 3]]``
    (length -1: none), decoded as :func:`_greyscale` and :func:`_mask_runs` into ``images`` and ``masks`` (flat,
    one object after the other, ``(C, h, w)`` each from ``shapes``). Returns whether each object's data was
    sound (the caller reads the others one by one, which says what is wrong)."""
    n_obj = at.shape[0]
    ok = np.zeros(n_obj, np.bool_)
    pos = 0
    for e in range(n_obj):
        c, h, w = shapes[e, 0], shapes[e, 1], shapes[e, 2]
        n = c * h * w
        img = images[pos:pos + n].reshape((c, h, w))
        good = _greyscale(data[at[e, 0]:at[e, 0] + at[e, 1]], img) == n
        if good and at[e, 3] >= 0:
            mask = masks[pos:pos + n].reshape((c, h, w))
            good = at[e, 3] % 2 == 0 and _mask_runs(data[at[e, 2]:at[e, 2] + at[e, 3]], mask) == n
        ok[e] = good
        pos += n
    return ok


@numba.njit(cache=True, nogil=True, inline="always")
def _uint(buf, p, n, little):
    """The unsigned ``n``-byte integer at ``buf[p:p + n]`` in the file's byte order."""
    v = np.int64(0)
    for j in range(n):
        v = (v << 8) | np.int64(buf[p + j if not little else p + n - 1 - j])
    return v


#: The tags a page's row holds (:func:`_page_rows`), in the row's order after the page's offset.
ROW_TAGS = (33002, 33003, 256, 257, 259, 273, 279)


@numba.njit(cache=True, nogil=True)
def _page_rows(buf, offset, little, max_entries, rows):
    """The plain directories (IFDs) of a CIF chained from ``offset``, ``buf`` holding the file's bytes from
    ``offset`` on, one row of ``rows`` each: ``(offset, kind, object, width, height, compression, strip offset,
    strip byte count, next offset)``, -1 for a tag the page lacks. Returns how many rows were filled; it stops
    before the first directory that is not plain (not wholly inside ``buf``, 0 or more than ``max_entries``, or one
    of :data:`ROW_TAGS` not a single SHORT or LONG; an image or mask page without all of width, height,
    compression and one strip), after a directory whose next offset does not lie further on, and when ``rows``
    is full. The caller reads what stops it the general way, which says what is wrong."""
    n_rows = 0
    base = offset
    while n_rows < rows.shape[0]:
        p = offset - base
        if p + 2 > buf.size:
            break
        n = _uint(buf, p, 2, little)
        end = p + 2 + 12 * n
        if n == 0 or n > max_entries or end + 4 > buf.size:
            break
        vals = np.full(7, -1, np.int64)
        plain = True
        for q in range(p + 2, end, 12):
            tag = _uint(buf, q, 2, little)
            for t in range(7):
                if tag == ROW_TAGS[t]:
                    typ = _uint(buf, q + 2, 2, little)
                    if _uint(buf, q + 4, 4, little) != 1 or (typ != 3 and typ != 4):
                        plain = False
                    vals[t] = _uint(buf, q + 8, 2 if typ == 3 else 4, little)
        if not plain or (vals[0] == 2 or vals[0] == 3) and vals[2:].min() < 0:
            break
        nxt = _uint(buf, end, 4, little)
        rows[n_rows, 0] = offset
        rows[n_rows, 1:8] = vals
        rows[n_rows, 8] = nxt
        n_rows += 1
        if nxt <= offset:
            break
        offset = nxt
    return n_rows
