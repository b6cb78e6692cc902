"""Area reduction and summed-area tables.

- :func:`area_reduce`: exact box average by an integer factor (pyramid levels, synthetic
  slides): strided integer adds, rounded, partial edge boxes average their valid pixels.
- :func:`area_resample`: exact area average by any real ratio, streamed from a reader in
  blocks (thumbnails of a slide level): fractional source pixels at box edges count by their
  covered area, and block boundaries leave no seams. Integer ratios (a level that is exactly
  twice the thumbnail, or the thumbnail itself) take an integer path: strided sums, rounded
  half to even like the float paths; fractional ratios go through bands of output rows
  (:mod:`wsidist.imaging.bands`).
- :func:`any_reduce`: boolean OR by an integer factor.
- :func:`summed_area_table` and :func:`box_sums`: sums over many boxes of a 2-D array at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .bands import band_rows, split_band, split_resample, taps_resample

DEFAULT_BLOCK_PX = 2048  # area_resample source blocks: at most this many px a side
_ACC_BYTES = 64 * 2**20  # budget of the sparse path's float accumulator of output rows


def area_reduce(a: np.ndarray, factor: int) -> np.ndarray:
    """uint8 ``(ceil(h/f), ceil(w/f), c)``: each pixel the rounded mean of its f×f box.

    Boxes at the right/bottom edge average only the pixels inside the image.
    """
    f = int(factor)
    h, w = a.shape[:2]
    oh, ow = -(-h // f), -(-w // f)
    exact = (h, w) == (oh * f, ow * f)
    if not exact:
        a = np.pad(a, ((0, oh * f - h), (0, ow * f - w), (0, 0)))
    acc = np.zeros((oh, ow, a.shape[2]), np.uint16 if f * f * 255 < 2**16 else np.uint32)
    for dy in range(f):
        for dx in range(f):
            acc += a[dy::f, dx::f]
    if exact:
        acc += f * f // 2
        acc //= f * f
        return acc.astype(np.uint8)
    cy = np.minimum(f, h - np.arange(oh) * f)
    cx = np.minimum(f, w - np.arange(ow) * f)
    n = (cy[:, None] * cx[None, :])[..., None].astype(np.uint32)
    return ((acc + n // 2) // n).astype(np.uint8)


def any_reduce(a: np.ndarray, factor: int) -> np.ndarray:
    """bool ``(ceil(h/f), ceil(w/f))``: OR over f×f blocks (partial edge blocks included)."""
    f = int(factor)
    h, w = a.shape
    oh, ow = -(-h // f), -(-w // f)
    p = np.zeros((oh * f, ow * f), bool)
    p[:h, :w] = a
    return p.reshape(oh, f, ow, f).any(axis=(1, 3))


def summed_area_table(values: np.ndarray, dtype: type = np.int64) -> np.ndarray:
    """``(h + 1, w + 1)`` of ``dtype``: entry (i, j) is the sum of ``values[:i, :j]``."""
    values = np.asarray(values)
    sat = np.zeros((values.shape[0] + 1, values.shape[1] + 1), dtype)
    np.cumsum(np.cumsum(values, 0, dtype=dtype), 1, dtype=dtype, out=sat[1:, 1:])
    return sat


def box_sums(sat: np.ndarray, y0, x0, y1, x1) -> np.ndarray:
    """Sums over the boxes ``[y0, y1) × [x0, x1)`` of a :func:`summed_area_table`.

    The bounds are ints or integer arrays that broadcast together (one box per element).
    """
    return sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]


def _round_div(total: np.ndarray, n: np.ndarray | int) -> np.ndarray:
    """uint8 ``rint(total / n)``, half to even: float32 division is exact at the ties."""
    if (
        np.isscalar(n) and n == 4 and total.dtype == np.uint16
    ):  # 2 x 2 boxes: (t + 1 + bit 2 of t) >> 2 is exact
        odd = total >> 2
        odd &= 1
        odd += total
        odd += 1
        odd >>= 2
        return odd.astype(np.uint8)
    if np.isscalar(n) and total.dtype == np.uint16:
        # one lookup per value (k / n is exact at the ties, so rint is exactly half to even)
        table = np.rint(np.arange(int(n) * 255 + 1) / int(n)).astype(np.uint8)
        return table[total]
    t = total.astype(np.float32)
    t /= n
    np.rint(t, out=t)
    return t.astype(np.uint8)


def _box_sums(a: np.ndarray, fy: int, fx: int) -> np.ndarray:
    """Sums over fy x fx boxes of uint8 (h, w, c); partial edge boxes sum what is there."""
    h, w, c = a.shape
    oh, ow = -(-h // fy), -(-w // fx)
    if fy * fx * 255 >= 2**16:
        pad = np.zeros((oh * fy, ow * fx, c), np.uint8)
        pad[:h, :w] = a
        return pad.reshape(oh, fy, ow, fx, c).sum(axis=(1, 3), dtype=np.uint32)
    if fy == 2 and h % 2 == 0:  # the common case: one pass of whole rows
        rows = np.add(a[0::2], a[1::2], dtype=np.uint16)
    else:
        rows = np.zeros((oh, w, c), np.uint16)
        for dy in range(fy):
            part = a[dy::fy]
            rows[: part.shape[0]] += part
    # across: one channel at a time, so every inner loop runs along a row (strided views of
    # the interleaved channels take 2-3x the time, their inner loop is c values long)
    flat = rows.reshape(oh, w * c)
    acc = np.empty((oh, ow, c), np.uint16)
    for ch in range(c):
        first = flat[:, ch :: fx * c]
        if fx == 1:
            acc[:, :, ch] = first
            continue
        second = flat[:, c + ch :: fx * c]
        out = acc[:, : second.shape[1], ch]
        np.add(first[:, : second.shape[1]], second, out=out)
        if second.shape[1] < ow:  # a last box of one pixel
            acc[:, ow - 1, ch] = first[:, ow - 1]
        for dx in range(2, fx):
            part = flat[:, dx * c + ch :: fx * c]
            acc[:, : part.shape[1], ch] += part
    return acc


def _integer_resample(read, src_size, factor, out_size, block_px: int) -> np.ndarray:
    (sw, sh), (fx, fy), (ow, oh) = src_size, factor, out_size
    out = np.empty((oh, ow, 3), np.uint8)
    step_y = max(fy, block_px // fy * fy)
    step_x = max(fx, block_px // fx * fx)
    for ys in range(0, sh, step_y):
        ye = min(sh, ys + step_y)
        for xs in range(0, sw, step_x):
            xe = min(sw, xs + step_x)
            block = np.asarray(read(xs, ys, xe - xs, ye - ys))
            i0, j0 = ys // fy, xs // fx
            if fx == fy == 1:
                out[i0 : i0 + ye - ys, j0 : j0 + xe - xs] = block
                continue
            sums = _box_sums(block, fy, fx)
            full_y, full_x = (ye - ys) // fy, (xe - xs) // fx
            oy, ox = i0 + sums.shape[0], j0 + sums.shape[1]
            out[i0 : i0 + full_y, j0 : j0 + full_x] = _round_div(sums[:full_y, :full_x], fy * fx)
            if full_y < sums.shape[0] or full_x < sums.shape[1]:  # partial boxes at the edge
                ny = np.minimum(fy, (ye - ys) - np.arange(sums.shape[0]) * fy)
                nx = np.minimum(fx, (xe - xs) - np.arange(sums.shape[1]) * fx)
                n = (ny[:, None] * nx[None, :])[..., None].astype(np.uint32)
                out[i0 + full_y : oy, j0:ox] = _round_div(sums[full_y:], n[full_y:])
                out[i0 : i0 + full_y, j0 + full_x : ox] = _round_div(
                    sums[:full_y, full_x:], n[:full_y, full_x:]
                )
    return out


def _area_weights(start: int, stop: int, ratio: float, n_out: int):
    """Sparse weights mapping source px [start, stop) onto output px of ``ratio`` source px each.

    Entry (o, k) is the length of the overlap of source pixel k with output pixel o's interval
    [o*ratio, (o+1)*ratio). Returns (csr matrix over output rows o_lo..o_hi-1, o_lo, o_hi).
    """
    from scipy.sparse import csr_matrix

    k = np.arange(start, stop, dtype=np.float64)
    base = np.floor(k / ratio).astype(np.int64)
    rows, cols, vals = [], [], []
    for m in range(-1, math.ceil(1 / ratio) + 2):
        o = base + m
        w = np.minimum(k + 1, (o + 1) * ratio) - np.maximum(k, o * ratio)
        keep = (w > 1e-9) & (o >= 0) & (o < n_out)
        rows.append(o[keep])
        cols.append(k[keep].astype(np.int64) - start)
        vals.append(w[keep])
    o = np.concatenate(rows)
    lo, hi = int(o.min()), int(o.max()) + 1
    matrix = csr_matrix(
        (np.concatenate(vals).astype(np.float32), (o - lo, np.concatenate(cols))),
        shape=(hi - lo, stop - start),
    )
    return matrix, lo, hi


def area_resample(
    read: Callable[[int, int, int, int], np.ndarray],
    src_size: tuple[int, int],
    ratio: tuple[float, float],
    out_size: tuple[int, int],
    block_px: int = DEFAULT_BLOCK_PX,
    tile_px: int | None = None,
) -> np.ndarray:
    """Area-average a large RGB image, read in blocks of at most ``block_px`` a side.

    ``read(x, y, w, h)`` returns source pixels; output pixel (i, j) is the exact average of the
    source box [j*rx, (j+1)*rx) × [i*ry, (i+1)*ry) clipped to the image (fractional pixels at the
    box edges count by their covered area). Blocks only add weighted sums into an accumulator,
    so block boundaries leave no seams; output rows are finished once their last source row
    was read.

    Paths: whole-factor ratios sum in integers; otherwise bands of whole output rows
    (:mod:`wsidist.imaging.bands`: ratios >= 1 split each box into whole px and two weighed edge
    px, any other ratio weighs every px), their size set by one budget, ``bands.BAND_BYTES``,
    which also decides: what it cannot hold (one box; for ratios < 1 one full-width row) is
    streamed in row chunks through sparse weight matrices (accumulator within ``_ACC_BYTES``).

    ``tile_px``: the side of the source's stored tiles, when reading one costs no more than
    decoding it (a local file); integer ratios then read one tile at a time (what is summed
    stays in cache: ~0.8x the time of 2048-px blocks), if it is a whole number of boxes.
    """
    (sw, sh), (rx, ry), (ow, oh) = src_size, ratio, out_size
    fx, fy = round(rx), round(ry)
    if (
        min(fx, fy) >= 1
        and max(fx, fy) <= block_px
        and abs(rx - fx) < 1e-9
        and abs(ry - fy) < 1e-9
        and (ow, oh) == (-(-sw // fx), -(-sh // fy))
    ):
        if tile_px and tile_px % fx == 0 and tile_px % fy == 0:
            block_px = min(block_px, tile_px)
        return _integer_resample(read, src_size, (fx, fy), out_size, block_px)
    if min(rx, ry) >= 1 and (ow - 1) * rx < sw and (oh - 1) * ry < sh:
        if split_band(sw, ow, rx, ry)[0] >= 1:  # the band budget holds one box at least
            return split_resample(read, src_size, (rx, ry), out_size, block_px)
    elif band_rows(sw, ow, ry) >= 1:  # the band budget holds one full-width output row
        return taps_resample(read, src_size, (rx, ry), out_size, block_px)
    return _sparse_resample(read, src_size, (rx, ry), out_size, block_px)


def _sparse_resample(read, src_size, ratio, out_size, block_px: int) -> np.ndarray:
    """Exact area average by sparse weight matrices, streaming rows (boxes taller than a band)."""
    (sw, sh), (rx, ry), (ow, oh) = src_size, ratio, out_size
    out = np.empty((oh, ow, 3), np.uint8)
    ax = np.minimum((np.arange(ow) + 1) * rx, sw) - np.arange(ow) * rx
    ay = np.minimum((np.arange(oh) + 1) * ry, sh) - np.arange(oh) * ry
    max_rows = max(3, _ACC_BYTES // (ow * 3 * 4))
    chunk_h = max(1, min(block_px, int((max_rows - 2) * ry)))
    x_chunks = [
        (xs, min(sw, xs + block_px), *_area_weights(xs, min(sw, xs + block_px), rx, ow))
        for xs in range(0, sw, block_px)
    ]

    def finish(i0: int, acc: np.ndarray) -> None:
        area = ay[i0 : i0 + len(acc), None, None] * ax[None, :, None]
        out[i0 : i0 + len(acc)] = np.clip(np.rint(acc / area), 0, 255).astype(np.uint8)

    carry: tuple[int, np.ndarray] | None = None
    for ys in range(0, sh, chunk_h):
        ye = min(sh, ys + chunk_h)
        wy, i0, i1 = _area_weights(ys, ye, ry, oh)
        acc = np.zeros((i1 - i0, ow, 3), np.float32)
        if carry is not None:
            if i0 <= carry[0] < i1:
                acc[carry[0] - i0] += carry[1]
            else:
                finish(carry[0], carry[1][None])
        for xs, xe, wx, j0, j1 in x_chunks:
            block = read(xs, ys, xe - xs, ye - ys)
            t = wy @ block.reshape(ye - ys, -1)  # (rows, w*3)
            t = np.asarray(t).reshape(i1 - i0, xe - xs, 3).transpose(1, 0, 2)
            u = wx @ t.reshape(xe - xs, -1)  # (cols, rows*3)
            acc[:, j0:j1] += np.asarray(u).reshape(j1 - j0, i1 - i0, 3).transpose(1, 0, 2)
        ends = np.minimum((np.arange(i0, i1) + 1) * ry, sh)
        done = i0 + int(np.count_nonzero(ends <= ye + 1e-6))
        if ye >= sh:
            done = i1
        finish(i0, acc[: done - i0])
        carry = (done, acc[done - i0].copy()) if done < i1 else None
    if carry is not None:
        finish(carry[0], carry[1][None])
    return out
