"""Gray-level statistics of every window of a grid at once: entropy and peak share.

Both come from each window's gray-level counts. Equal, edge-to-edge windows (the usual grid)
are laid out as rows and sorted, small ones two or more to a row (their levels offset by 256
a window, so a row sorts window by window, level by level); counts are run lengths, and the
top counts of every window come from a tournament of elementwise max and min. Other windows
(the short last row and column, overlaps, uneven downsamples) get one histogram each, by one
``bincount`` per band of a class of disjoint windows. Both paths add ``c log2 c`` in the same
order (by level, one window at a time), so they give the same bits."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from wsidist.stage1.windows import Windows, classes, uniform_run

__all__ = ["PEAK_LEVELS", "tile_entropy", "tile_gray_stats", "tile_peak_frac"]

PEAK_LEVELS = 3  # seed 004's "highest few pixel frequencies": the 3 most populous gray levels
_BINCOUNT_BINS = 1 << 22  # entropy histograms per pass (bounded memory)
_SORT_BAND_PX = 1 << 18  # pixels sorted at a time
_SORT_ROW_PX = 128  # windows are grouped into sorted rows of at most this many pixels
_SORT_MAX_PX = 4096  # equal windows up to this many pixels: sorted, not one histogram each


def _top_sum(counts: np.ndarray, k: int) -> np.ndarray:
    """int64 (n,): sum of the ``k`` largest of every column of a non-negative int array
    (m, n), by a tournament: rows merge pairwise, each keeping its ``k`` largest in order,
    so every step is an elementwise max or min of whole rows (no per-column sort)."""
    tops = [counts]  # tops[i][j]: the i-th largest of group j; missing ones count as 0
    while len(tops[0]) > 1:
        if len(tops[0]) % 2:
            tops = [np.concatenate([t, np.zeros_like(t[:1])]) for t in tops]
        a = [t[0::2] for t in tops]
        b = [t[1::2] for t in tops]
        merged = []
        for m in range(min(k, 2 * len(tops))):  # max over i + j = m of min(a_i, b_j)
            best = np.maximum(a[m], b[m]) if m < len(tops) else None
            for i in range(max(0, m - len(tops)), min(m, len(tops))):
                j = m - 1 - i
                if j < len(tops):
                    pair = np.minimum(a[i], b[j])
                    best = pair if best is None else np.maximum(best, pair, out=best)
            merged.append(best)
        tops = merged
    return np.sum([t[0].astype(np.int64) for t in tops], axis=0)


def _group(n_x: int, n_px: int) -> int:
    """Windows per sorted row: a divisor of ``n_x``, at most ``_SORT_ROW_PX`` pixels a row."""
    fits = (g for g in range(1, n_x + 1) if n_x % g == 0 and g * n_px <= _SORT_ROW_PX)
    return max(fits, default=1)


def _sorted_stats(
    gray: np.ndarray, win: Windows, n_y: int, n_x: int, clogc: np.ndarray, levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Entropy and peak share of the leading ``n_y x n_x`` equal, edge-to-edge windows."""
    ky, kx = int(win.y1[0] - win.y0[0]), int(win.x1[0] - win.x0[0])
    x0, y0 = int(win.x0[0]), int(win.y0[0])
    n_px = ky * kx
    group = _group(n_x, n_px)
    # a sorted row holds ``group`` neighbouring windows, ky image rows of group * kx pixels
    # each (the order inside a window does not matter), its level offset by 256 a window
    offset = np.arange(group * kx, dtype=np.int32) // kx * 256
    entropy = np.empty((n_y, n_x), np.float64)
    band = max(1, _SORT_BAND_PX // max(n_px * n_x, 1))
    k = min(levels, n_px)
    runs_dtype = np.uint8 if n_px < 256 else np.int16 if n_px < (1 << 15) else np.int32
    # each level's count in a column per window: in the row of its run's end (small windows)
    # or of its level (a window has at most 256 levels); one tournament for all of them
    runs = np.zeros((min(n_px, 256), n_y * n_x), runs_dtype)
    for i0 in range(0, n_y, band):
        rows = min(band, n_y - i0)
        n_win = rows * n_x
        part = gray[y0 + i0 * ky : y0 + (i0 + rows) * ky, x0 : x0 + n_x * kx]
        px = np.empty((rows, n_x // group, ky, group * kx), np.int32)
        px[...] = part.reshape(rows, ky, n_x // group, group * kx).transpose(0, 2, 1, 3)
        px += offset
        px = px.reshape(-1, group * n_px)
        px.sort(axis=1)
        flat = px.reshape(-1)
        ends = np.empty(flat.size, bool)
        np.not_equal(flat[1:], flat[:-1], out=ends[:-1])
        ends.reshape(-1, n_px)[:, -1] = True  # a window's last pixel ends its last run
        at = np.flatnonzero(ends)
        length = np.diff(at, prepend=-1)
        window = at // n_px
        s = np.bincount(window, weights=clogc[length], minlength=n_win)
        entropy[i0 : i0 + rows] = (np.log2(n_px) - s / n_px).reshape(rows, n_x)
        row = at - window * n_px if n_px <= 256 else (flat[at] & 255).astype(np.intp)
        row *= n_y * n_x
        row += window + i0 * n_x
        runs.reshape(-1)[row] = length
    peak = (_top_sum(runs, k) / float(n_px)).reshape(n_y, n_x)
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
    n_y, n_x = (uniform_run(win.y0, win.y1), uniform_run(win.x0, win.x1)) if area.size else (0, 0)
    # equal windows of the usual grid (all alike but the last row and column): sort
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
    for row_map, col_map, rows, cols in classes(win, gray.shape):
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
