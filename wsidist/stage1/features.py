"""Per-tile features of a whole grid at once, from the scaled image (no loop over tiles).

A grid is separable: every tile of a column shares its scaled x-interval and every tile of a
row its y-interval (:class:`Windows`). Sums over windows come from summed-area tables
(tissue coverage, pen) or from one ``bincount`` per class of non-overlapping tiles (gray-level
histograms for the entropy, HSV moments of the tissue pixels); windows of at most 256 pixels
get their entropy from their pixels sorted in place of a histogram each. Tiles overlap only
with an overlap setting or when a tile is smaller than a scaled pixel; they are then split
into ``k x k`` classes whose windows are disjoint. HSV is computed for tissue pixels only, as
``skimage.color.rgb2hsv`` does it, so the values match the per-tile definition exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from wsidist.imaging import box_sums, rgb_to_gray, summed_area_table

__all__ = [
    "Windows",
    "gray_of",
    "hsv_moments",
    "tile_entropy",
    "tile_gray_stats",
    "tile_peak_frac",
    "window_sums",
]

_BINCOUNT_BINS = 1 << 22  # entropy histograms per pass (bounded memory)
_GRAY_BAND_PX = 1 << 20  # pixels converted to gray (or sorted for the entropy) at a time
_SORT_MAX_PX = 256  # windows up to this many pixels: entropy by sorting, not histograms
PEAK_LEVELS = 3  # seed 004's "highest few pixel frequencies": the 3 most populous gray levels


@dataclass(frozen=True)
class Windows:
    """Scaled-pixel intervals of the grid's columns ``[x0, x1)`` and rows ``[y0, y1)``."""

    x0: np.ndarray
    x1: np.ndarray
    y0: np.ndarray
    y1: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.y0), len(self.x0)

    @property
    def area(self) -> np.ndarray:
        """(rows, cols) window areas in scaled px."""
        return np.outer(self.y1 - self.y0, self.x1 - self.x0)


def window_sums(values: np.ndarray, win: Windows) -> np.ndarray:
    """(rows, cols) int64 sums of a 2-D array over every window: ``np.add.reduceat`` when the
    windows tile the image edge to edge (the usual grid), else a summed-area table."""
    if (win.x0[1:] == win.x1[:-1]).all() and (win.y0[1:] == win.y1[:-1]).all():
        part = values[win.y0[0] : win.y1[-1], win.x0[0] : win.x1[-1]]
        rows = np.add.reduceat(part, win.y0 - win.y0[0], axis=0, dtype=np.int64)
        return np.add.reduceat(rows, win.x0 - win.x0[0], axis=1)
    sat = summed_area_table(values)
    return box_sums(sat, win.y0[:, None], win.x0[None, :], win.y1[:, None], win.x1[None, :])


def _period(start: np.ndarray, stop: np.ndarray) -> int:
    """Smallest k such that interval i + k starts at or after interval i ends."""
    n = len(start)
    for k in range(1, n + 1):
        if k >= n or (start[k:] >= stop[:-k]).all():
            return k
    return n


def _interval_map(start: np.ndarray, stop: np.ndarray, size: int) -> np.ndarray:
    """int32 (size,): index of the (disjoint) interval holding each position, or -1."""
    out = np.full(size, -1, np.int32)
    lens = stop - start
    idx = np.repeat(np.arange(len(start), dtype=np.int32), lens)
    offset = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    out[np.repeat(start, lens) + offset] = idx
    return out


def _classes(win: Windows, shape: tuple[int, int]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(rows, cols) index arrays of classes of tiles with pairwise disjoint windows, and
    yields their row and column maps: (row_map (h,), col_map (w,), rows, cols)."""
    ky, kx = _period(win.y0, win.y1), _period(win.x0, win.x1)
    h, w = shape
    for a in range(ky):
        rows = np.arange(a, len(win.y0), ky)
        row_map = _interval_map(win.y0[rows], win.y1[rows], h)
        for b in range(kx):
            cols = np.arange(b, len(win.x0), kx)
            yield row_map, _interval_map(win.x0[cols], win.x1[cols], w), rows, cols


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """:func:`wsidist.imaging.rgb_to_gray` in bands of rows (no whole-image float copy)."""
    out = np.empty(rgb.shape[:2], np.uint8)
    step = max(1, _GRAY_BAND_PX // max(rgb.shape[1], 1))
    for r0 in range(0, rgb.shape[0], step):
        out[r0 : r0 + step] = rgb_to_gray(rgb[r0 : r0 + step])
    return out


def _uniform(start: np.ndarray, stop: np.ndarray) -> int:
    """How many leading windows are edge to edge and of the first one's size (all but a
    shorter last one, on the usual grid)."""
    size = stop[0] - start[0]
    ok = (stop - start == size) & np.r_[True, start[1:] == stop[:-1]]
    return len(ok) if ok.all() else int(np.argmin(ok))


def _sorted_stats(
    gray: np.ndarray, win: Windows, n_y: int, n_x: int, clogc: np.ndarray, levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Entropy and peak share of the leading ``n_y x n_x`` equal, edge-to-edge windows: each
    window's pixels in a row, sorted (radix sort on uint8), level counts as run lengths. Summed
    in the same order as the histogram path (by level), so the values are the same."""
    ky, kx = int(win.y1[0] - win.y0[0]), int(win.x1[0] - win.x0[0])
    x0, y0 = int(win.x0[0]), int(win.y0[0])
    n_px = ky * kx
    entropy, peak = np.empty((n_y, n_x), np.float64), np.empty((n_y, n_x), np.float64)
    band = max(1, _GRAY_BAND_PX // max(n_px * n_x, 1))
    k = min(levels, n_px)
    for i0 in range(0, n_y, band):
        rows = min(band, n_y - i0)
        part = gray[y0 + i0 * ky : y0 + (i0 + rows) * ky, x0 : x0 + n_x * kx]
        px = part.reshape(rows, ky, n_x, kx).transpose(0, 2, 1, 3).reshape(rows * n_x, n_px)
        px = np.sort(px, axis=1, kind="stable")
        starts = np.ones(px.shape, bool)
        starts[:, 1:] = px[:, 1:] != px[:, :-1]
        window, at = np.nonzero(starts)
        length = np.r_[at[1:], 0] - at
        length[np.r_[window[1:] != window[:-1], True]] += n_px  # the last run of a window
        s = np.bincount(window, weights=clogc[length], minlength=rows * n_x)
        entropy[i0 : i0 + rows] = (np.log2(n_px) - s / n_px).reshape(rows, n_x)
        runs = np.zeros(px.shape, np.int32)  # each level's count at its run's start
        runs[window, at] = length
        top = np.partition(runs, n_px - k, axis=1)[:, n_px - k :].sum(axis=1)
        peak[i0 : i0 + rows] = (top / float(n_px)).reshape(rows, n_x)
    return entropy, peak


def tile_gray_stats(
    gray: np.ndarray, win: Windows, levels: int = PEAK_LEVELS
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) Shannon entropy (bits) of the gray levels in every window, and the share
    of its pixels in its ``levels`` most populous gray levels (seed 004's background rule that
    survives stain normalisation: a flat background, white or not, piles its pixels into a few
    levels; tissue spreads them). One pass over the pixels for both."""
    n_rows, n_cols = win.shape
    area = win.area
    top = int(area.max()) if area.size else 1
    c = np.arange(top + 1, dtype=np.float64)
    clogc = np.zeros(top + 1)
    clogc[1:] = c[1:] * np.log2(c[1:])
    n_y, n_x = (_uniform(win.y0, win.y1), _uniform(win.x0, win.x1)) if area.size else (0, 0)
    # small windows of the usual grid (all alike but the last row and column): sort
    if n_y >= max(n_rows - 1, 1) and n_x >= max(n_cols - 1, 1) and area[0, 0] <= _SORT_MAX_PX:
        entropy = np.zeros((n_rows, n_cols), np.float64)
        peak = np.zeros((n_rows, n_cols), np.float64)
        sorted_ = _sorted_stats(gray, win, n_y, n_x, clogc, levels)
        entropy[:n_y, :n_x], peak[:n_y, :n_x] = sorted_
        if n_y < n_rows:
            last = Windows(win.x0, win.x1, win.y0[n_y:], win.y1[n_y:])
            entropy[n_y:], peak[n_y:] = _histogram_stats(gray, last, clogc, levels)
        if n_x < n_cols:
            last = Windows(win.x0[n_x:], win.x1[n_x:], win.y0[:n_y], win.y1[:n_y])
            entropy[:n_y, n_x:], peak[:n_y, n_x:] = _histogram_stats(gray, last, clogc, levels)
        return entropy + 0.0, peak
    entropy, peak = _histogram_stats(gray, win, clogc, levels)
    return entropy + 0.0, peak


def tile_entropy(gray: np.ndarray, win: Windows) -> np.ndarray:
    """(rows, cols) Shannon entropy (bits) of the gray levels in every window."""
    return tile_gray_stats(gray, win)[0]


def tile_peak_frac(gray: np.ndarray, win: Windows, levels: int = PEAK_LEVELS) -> np.ndarray:
    """(rows, cols) share of every window's pixels in its ``levels`` most populous gray levels
    (see :func:`tile_gray_stats`)."""
    return tile_gray_stats(gray, win, levels)[1]


def _window_histograms(
    gray: np.ndarray, win: Windows
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(window rows, window cols, counts (len(rows) * len(cols), 256)): one gray-level
    histogram per window, by one bincount per band of a class of disjoint windows."""
    for row_map, col_map, rows, cols in _classes(win, gray.shape):
        nc = len(cols)
        band = max(1, _BINCOUNT_BINS // (256 * nc))
        for i0 in range(0, len(rows), band):
            sub = rows[i0 : i0 + band]
            y0, y1 = int(win.y0[sub[0]]), int(win.y1[sub[-1]])
            rm = row_map[y0:y1]
            keep_y, keep_x = rm >= 0, col_map >= 0
            g = gray[y0:y1]
            if not (keep_y.all() and keep_x.all()):
                g = g[keep_y][:, keep_x]
            key = np.add.outer((rm[keep_y] - i0) * (nc * 256), col_map[keep_x] * 256)
            key += g
            counts = np.bincount(key.reshape(-1), minlength=len(sub) * nc * 256)
            yield sub, cols, counts.reshape(len(sub) * nc, 256)


def _histogram_stats(
    gray: np.ndarray, win: Windows, clogc: np.ndarray, levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Entropy and peak share per window from one gray-level histogram per window."""
    entropy, peak = np.zeros(win.shape, np.float64), np.zeros(win.shape, np.float64)
    for sub, cols, counts in _window_histograms(gray, win):
        flat = counts.reshape(-1)
        nz = np.flatnonzero(flat)  # a window of k pixels has at most k levels
        s = np.bincount(nz >> 8, weights=clogc[flat[nz]], minlength=len(counts))
        cell = np.ix_(sub, cols)
        n = win.area[cell].astype(np.float64)
        entropy[cell] = np.log2(n) - s.reshape(len(sub), len(cols)) / n
        top = np.partition(counts, 256 - levels, axis=1)[:, 256 - levels :].sum(axis=1)
        peak[cell] = top.reshape(len(sub), len(cols)) / np.maximum(n, 1)
    return entropy, peak


def _hsv(px: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(hue, saturation, value) in [0, 1] of uint8 rgb (n, 3), bit for bit as skimage's
    rgb2hsv: max and min are taken on the uint8 channels and looked up as ``k / 255``, so no
    float copy of the pixels is reduced along its short axis."""
    level = np.arange(256) * (1.0 / 255.0)  # as skimage scales uint8
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    top = np.maximum(np.maximum(r, g), b)
    v = level[top]
    delta = v - level[np.minimum(np.minimum(r, g), b)]
    fr, fg, fb = level[r], level[g], level[b]
    g_top, b_top = g == top, b == top  # skimage's order: blue over green over red
    with np.errstate(invalid="ignore", divide="ignore"):
        s = delta / v
        s[delta == 0.0] = 0.0
        h = np.where(b_top, fr - fg, np.where(g_top, fb - fr, fg - fb))
        h /= delta
        offset = np.where(b_top, 4.0, np.where(g_top, 2.0, 0.0))
        h = np.where(offset > 0, offset + h, h)
    h = (h / 6.0) % 1.0
    h[delta == 0.0] = 0.0
    return np.nan_to_num(h), s, v


def hsv_moments(
    rgb: np.ndarray, tissue: np.ndarray, win: Windows, hue_range: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Per window, over its tissue pixels: ``n_hue, sum_hue, sum_hue2`` of the integer hue
    degrees within ``hue_range`` and ``sum_s, sum_s2, sum_v, sum_v2`` of saturation and value
    (non-tissue pixels count as black, i.e. zero)."""
    shape = win.shape
    names = ("n_hue", "sum_hue", "sum_hue2", "sum_s", "sum_s2", "sum_v", "sum_v2")
    out = {name: np.zeros(shape, np.float64) for name in names}
    flat = np.flatnonzero(tissue)
    if flat.size == 0:
        return out
    w = tissue.shape[1]
    py, px = np.divmod(flat, w)
    h, s, v = _hsv(rgb.reshape(-1, 3)[flat])
    deg = (h * 360).astype(np.int32).astype(np.float64)
    in_range = (deg >= hue_range[0]) & (deg <= hue_range[1])
    values = {
        "n_hue": in_range.astype(np.float64),
        "sum_hue": np.where(in_range, deg, 0.0),
        "sum_hue2": np.where(in_range, deg * deg, 0.0),
        "sum_s": s,
        "sum_s2": s * s,
        "sum_v": v,
        "sum_v2": v * v,
    }
    for row_map, col_map, rows, cols in _classes(win, tissue.shape):
        ry, cx = row_map[py], col_map[px]
        ok = (ry >= 0) & (cx >= 0)
        tid = ry[ok] * len(cols) + cx[ok]
        for name, vals in values.items():
            sums = np.bincount(tid, weights=vals[ok], minlength=len(rows) * len(cols))
            out[name][np.ix_(rows, cols)] += sums.reshape(len(rows), len(cols))
    return out
