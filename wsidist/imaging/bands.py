"""Exact area average by a fractional ratio, in full-width bands of whole output rows.

One budget sizes the bands and decides whether a ratio is done this way at all:
:func:`band_row_bytes` is the working memory one output row needs (its source rows, the
float rows of the pass down, the output-width floats of the pass across); :func:`band_rows`
is how many full-width output rows fit ``BAND_BYTES``; when not one does, the split path
(:func:`split_band`) cuts one-row bands into strips of boxes, and only a box too big for
the budget on its own (or a taps-path row) sends ``area_resample`` to its sparse path. Bands of 2 to 16 MiB ran at one speed on a 4,063 px
wide level (smaller ones pay for their count); 8 MiB keeps tall boxes in bands the longest.

- :func:`split_resample` (ratios >= 1 on both axes: nearly every thumbnail): each source px lies in
  at most two boxes, so a box is the plain sum of the px that start inside it, less the part of
  its last px that lies past its end, plus that part of the previous box's last px. The sums of
  whole px are gathered rows and columns added together; only the two edge px are weighed.
- :func:`taps_resample` (any ratio): each box weighs every px it touches along each axis.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

BAND_BYTES = 8 * 2**20  # working memory of one band of output rows


def band_row_bytes(src_w: int, out_w: int, ratio_y: float) -> int:
    """Bytes one output row of a band needs: its ``ceil(ry) + 1`` uint8 source rows, 13 bytes a
    source-row value (px x 3) for the pass down (gathered rows, integer sums, the float rows, a
    float temporary) and 20 an output value for the pass across (gathered columns, floats)."""
    return src_w * 3 * (math.ceil(ratio_y) + 1 + 13) + out_w * 3 * 20


def band_rows(src_w: int, out_w: int, ratio_y: float) -> int:
    """Output rows per band within ``BAND_BYTES``; 0 when not even one fits."""
    return BAND_BYTES // band_row_bytes(src_w, out_w, ratio_y)


def split_band(src_w: int, out_w: int, ratio_x: float, ratio_y: float) -> tuple[int, int]:
    """(output rows, output columns) of a :func:`split_resample` band within ``BAND_BYTES``:
    full width when one output row fits, else one row of as many boxes as fit; (0, 0) when
    not even one box does."""
    rows = band_rows(src_w, out_w, ratio_y)
    if rows >= 1:
        return rows, out_w
    cols = min(out_w, BAND_BYTES // band_row_bytes(math.ceil(ratio_x) + 1, 1, ratio_y))
    return (1, cols) if cols >= 1 else (0, 0)


def _read_band(read, y0: int, y1: int, x0: int, x1: int, block_px: int) -> np.ndarray:
    """uint8 source [y0, y1) x [x0, x1), read in blocks of at most ``block_px`` a side."""
    band = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    for ys in range(y0, y1, block_px):
        for xs in range(x0, x1, block_px):
            h, w = min(block_px, y1 - ys), min(block_px, x1 - xs)
            band[ys - y0 : ys - y0 + h, xs - x0 : xs - x0 + w] = read(xs, ys, w, h)
    return band


def _edges(n_out: int, ratio: float, n_src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Box edges ``t_j = min(j * ratio, n_src)`` (j = 0..n_out), ``c = ceil(t)`` (box j's whole
    px are [c_j, c_j+1)) and ``e = c - t``: the part of px ``c_j - 1`` past edge t_j."""
    t = np.minimum(np.arange(n_out + 1) * ratio, n_src)
    c = np.ceil(t).astype(np.intp)
    return t, c, c - t


def _along(v: np.ndarray, axis: int) -> np.ndarray:
    """float32 ``v`` shaped to broadcast along ``axis`` (0 or 1) of an (h, w, 3) array; across,
    repeated for the 3 channels so that the operations run over whole contiguous rows."""
    v = v.astype(np.float32)
    return v[:, None, None] if axis == 0 else np.repeat(v, 3).reshape(1, -1, 3)


def _split_sums(src: np.ndarray, c: np.ndarray, e: np.ndarray, axis: int, e_in: float):
    """float32 box sums along ``axis`` of ``src``: box j holds px [c_j, c_j+1) whole, less the
    part ``e[j]`` of its last px past its end, plus the part ``e[j-1]`` of the previous box's
    last px (box 0: ``e_in`` of px ``c_0 - 1``). Whole px are added unweighed (uint8 sums in
    integers, or in float32 when at most two: exact either way)."""
    n = len(c) - 1
    lengths = np.diff(c)
    at = (slice(None),) * axis  # indexes along ``axis``
    sum_type = np.uint16 if int(lengths.max()) * 255 < 2**16 else np.uint32
    if src.dtype.kind == "f" or lengths.max() <= 2:  # float32 sums of whole px are exact too
        sum_type = np.float32
    edge = np.take(src, np.maximum(c[1:] - 1, 0), axis=axis)  # each box's last px
    tail = np.multiply(edge, _along(e, axis), dtype=np.float32)  # its part past the box's end
    if not lengths.all():  # a box without whole px: its "last" px is the previous box's
        edge[at + (lengths == 0,)] = 0
    whole = None
    for t in range(int(lengths.max()) - 1):  # the whole px before the last
        having = np.flatnonzero(lengths - 1 > t)
        if 2 * len(having) < n:  # a few boxes: gathered and added alone
            part = np.take(src, c[having] + t, axis=axis)
            if whole is None:
                whole = edge.astype(sum_type)
            whole[at + (having,)] += part
            continue
        part = np.take(src, np.minimum(c[:-1] + t, src.shape[axis] - 1), axis=axis)
        if len(having) < n:  # the boxes without: add 0
            part[at + (lengths - 1 <= t,)] = 0
        if whole is None:
            whole = np.add(edge, part, dtype=sum_type)
        else:
            whole += part
    if whole is not None and whole.dtype == np.float32:
        out = np.subtract(whole, tail, out=whole)
    else:
        out = np.subtract(edge if whole is None else whole, tail, dtype=np.float32)
    out[at + (slice(1, None),)] += tail[at + (slice(None, -1),)]
    if e_in:
        out[at + (0,)] += np.float32(e_in) * src[at + (c[0] - 1,)]
    return out


def split_resample(read, src_size, ratio, out_size, block_px: int) -> np.ndarray:
    """Exact area average for ratios >= 1 (see the module docstring): each band (of
    :func:`split_band`'s size) is summed down its columns, then across, both by
    :func:`_split_sums`; boxes must not start past the image."""
    (sw, sh), (rx, ry), (ow, oh) = src_size, ratio, out_size
    out = np.empty((oh, ow, 3), np.uint8)
    ty, cy, ey = _edges(oh, ry, sh)
    tx, cx, ex = _edges(ow, rx, sw)
    area_x = _along(np.diff(tx), 1)
    area_y = _along(np.diff(ty), 0)
    n_rows, n_cols = split_band(sw, ow, rx, ry)
    for i0, j0 in itertools.product(range(0, oh, n_rows), range(0, ow, n_cols)):
        i1, j1 = min(oh, i0 + n_rows), min(ow, j0 + n_cols)
        y0 = int(cy[i0]) - 1 if i0 else 0  # the previous box's last row: its tail is box i0's
        x0 = int(cx[j0]) - 1 if j0 else 0
        band = _read_band(read, y0, int(cy[i1]), x0, int(cx[j1]), block_px)
        rows = _split_sums(band, cy[i0 : i1 + 1] - y0, ey[i0 + 1 : i1 + 1], 0, float(ey[i0]))
        del band
        boxes = _split_sums(rows, cx[j0 : j1 + 1] - x0, ex[j0 + 1 : j1 + 1], 1, float(ex[j0]))
        del rows
        boxes /= area_y[i0:i1] * area_x[:, j0:j1]
        np.rint(boxes, out=boxes)
        np.clip(boxes, 0, 255, out=boxes)
        out[i0:i1, j0:j1] = boxes
    return out


def _axis_taps(lo: np.ndarray, hi: np.ndarray, ratio: float, n_src: int) -> list[tuple]:
    """How boxes [lo, hi) along one axis weigh the source px: entries (j0, j1, start, step,
    weight, index) add ``weight[j - j0]`` x source px ``start + step * (j - j0)`` (``index``
    when ``step`` is 0) to output px j in [j0, j1); the weight is the px's overlap with the
    box. Boxes whose first px keeps one offset from ``step * j`` share an entry, a strided
    slice (near-whole ratios, every level whose size is rounded); a ratio with many such
    groups (2.5: the offsets alternate) gets one gathered entry per tap instead."""
    first = np.floor(lo).astype(np.intp)
    n_taps = int(np.max(np.ceil(hi) - first, initial=1))
    step = max(1, round(ratio))
    offset = first - step * np.arange(len(lo))
    bounds = [0, *(np.flatnonzero(np.diff(offset)) + 1).tolist(), len(lo)]
    if len(bounds) > 65:
        bounds, step = [0, len(lo)], 0
    taps = []
    for j0, j1 in zip(bounds, bounds[1:]):
        for t in range(n_taps):
            k = first[j0:j1] + t
            weight = np.clip(np.minimum(k + 1, hi[j0:j1]) - np.maximum(k, lo[j0:j1]), 0, None)
            if weight.any():
                index = np.minimum(k, n_src - 1)
                taps.append((j0, j1, int(k[0]), step, weight.astype(np.float32), index))
    return taps


def _weigh(src: np.ndarray, taps: list[tuple], n_out: int, axis: int) -> np.ndarray:
    """float32 weighted sums along ``axis`` (0 or 1) of ``src`` by :func:`_axis_taps` entries."""
    shape = list(src.shape)
    shape[axis] = n_out
    out = np.zeros(shape, np.float32)
    for j0, j1, start, step, weight, index in taps:
        if step:
            picked = slice(start, min(src.shape[axis], start + step * (j1 - j0)), step)
            part = src[picked] if axis == 0 else src[:, picked]
        else:
            part = np.take(src, index, axis=axis)
        m = part.shape[axis]  # a slice stops at the source's end, where weights are 0
        if axis == 0:
            out[j0 : j0 + m] += weight[:m, None, None] * part
        else:
            out[:, j0 : j0 + m] += weight[None, :m, None] * part
    return out


def taps_resample(read, src_size, ratio, out_size, block_px: int) -> np.ndarray:
    """Exact area average for any ratio, separable: each box is the sum of the source px it
    touches along each axis weighted by their overlaps, band by band."""
    (sw, sh), (rx, ry), (ow, oh) = src_size, ratio, out_size
    out = np.empty((oh, ow, 3), np.uint8)
    x_lo = np.arange(ow) * rx
    x_hi = np.minimum(x_lo + rx, sw)
    x_taps = _axis_taps(x_lo, x_hi, rx, sw)
    step = max(1, band_rows(sw, ow, ry))
    for i0 in range(0, oh, step):
        i1 = min(oh, i0 + step)
        y0 = math.floor(i0 * ry)
        y1 = min(sh, math.ceil(i1 * ry - 1e-9))
        band = _read_band(read, y0, y1, 0, sw, block_px)
        y_lo = np.arange(i0, i1) * ry - y0  # the band's boxes, in band rows
        y_hi = np.minimum(y_lo + ry, sh - y0)
        rows = _weigh(band, _axis_taps(y_lo, y_hi, ry, y1 - y0), i1 - i0, 0)
        boxes = _weigh(rows, x_taps, ow, 1)
        boxes /= (y_hi - y_lo)[:, None, None].astype(np.float32) * (x_hi - x_lo)[None, :, None]
        out[i0:i1] = np.clip(np.rint(boxes), 0, 255).astype(np.uint8)
    return out
