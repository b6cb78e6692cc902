"""A grid's windows on the scaled image, and integer sums over all of them at once.

A grid is separable: every tile of a column shares its scaled x-interval and every tile of a
row its y-interval (:class:`Windows`). Tiles overlap only with an overlap setting or when a
tile is smaller than a scaled pixel; they are then split into ``k x k`` classes whose windows
are disjoint (:func:`classes`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from wsidist.imaging import box_sums, summed_area_table

__all__ = ["Windows", "classes", "uniform_run", "window_sums"]


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


def uniform_run(start: np.ndarray, stop: np.ndarray) -> int:
    """How many leading windows are edge to edge and of the first one's size (all but a
    shorter last one, on the usual grid)."""
    size = stop[0] - start[0]
    ok = (stop - start == size) & np.r_[True, start[1:] == stop[:-1]]
    return len(ok) if ok.all() else int(np.argmin(ok))


def _row_sums(values: np.ndarray, y0: np.ndarray) -> np.ndarray:
    """int64 (len(y0), w): sums of ``values`` over the edge-to-edge row bands starting at
    ``y0`` (the first at 0, the last to the end). Equal leading bands are summed as one
    reshaped block (a plain row-wise add), the rest by ``np.add.reduceat``."""
    y1 = np.r_[y0[1:], len(values)]
    n, size = uniform_run(y0, y1), int(y1[0] - y0[0])
    small = values.dtype in (np.bool_, np.uint8) and size < (1 << 24)
    dtype = np.uint32 if small else np.int64
    out = np.empty((len(y0), values.shape[1]), np.int64)
    block = values[: n * size].reshape(n, size, values.shape[1])
    out[:n] = block.sum(axis=1, dtype=dtype)
    if n < len(y0):
        out[n:] = np.add.reduceat(values[n * size :], y0[n:] - n * size, axis=0, dtype=np.int64)
    return out


def window_sums(values: np.ndarray, win: Windows) -> np.ndarray:
    """(rows, cols) int64 sums of a 2-D array over every window: row bands then column bands
    when the windows tile the image edge to edge (the usual grid), else a summed-area table."""
    if (win.x0[1:] == win.x1[:-1]).all() and (win.y0[1:] == win.y1[:-1]).all():
        part = values[win.y0[0] : win.y1[-1], win.x0[0] : win.x1[-1]]
        rows = _row_sums(part, win.y0 - win.y0[0])
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


def classes(
    win: Windows, shape: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Classes of tiles with pairwise disjoint windows: (row_map (h,), col_map (w,), rows,
    cols), the maps giving each pixel's window index in the class (or -1)."""
    ky, kx = _period(win.y0, win.y1), _period(win.x0, win.x1)
    h, w = shape
    for a in range(ky):
        rows = np.arange(a, len(win.y0), ky)
        row_map = _interval_map(win.y0[rows], win.y1[rows], h)
        for b in range(kx):
            cols = np.arange(b, len(win.x0), kx)
            yield row_map, _interval_map(win.x0[cols], win.x1[cols], w), rows, cols
