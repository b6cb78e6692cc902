"""Connected components of a bool image from its horizontal runs.

A tissue mask at 1/32 has a few thousand runs where it has millions of pixels, so components
are found on the runs (two runs of neighbouring rows touch when their columns overlap, or
meet diagonally with 8-connectivity) and pixels are only looked at where asked. Components
are numbered 1..n in the raster order of their first pixel, exactly as
``scipy.ndimage.label`` numbers them; 0 is the background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

__all__ = ["Runs", "label_runs"]


@dataclass(frozen=True, eq=False)
class Runs:
    """The runs of one bool image (raster order) and the component of each."""

    shape: tuple[int, int]
    start: np.ndarray  # int64: flat index of each run's first pixel
    length: np.ndarray  # int64: pixels in each run
    label: np.ndarray  # int64: component of each run, 1..n
    n: int

    def sizes(self) -> np.ndarray:
        """int64 (n + 1,): pixels of each component (0 for the background)."""
        return np.bincount(self.label, weights=self.length, minlength=self.n + 1).astype(np.int64)

    def border(self) -> np.ndarray:
        """bool (n + 1,): the component touches the image border."""
        h, w = self.shape
        y, x = np.divmod(self.start, w)
        edge = (y == 0) | (y == h - 1) | (x == 0) | (x + self.length == w)
        out = np.zeros(self.n + 1, bool)
        out[self.label[edge]] = True
        return out

    def pixels(self, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flat indices, labels) of the pixels of the components where ``keep`` (per label),
        in raster order."""
        pick = np.flatnonzero(np.take(keep, self.label))
        length = self.length[pick]
        total = int(length.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        first = np.repeat(self.start[pick] - (np.cumsum(length) - length), length)
        return first + np.arange(total), np.repeat(self.label[pick], length)

    def at(self, flat_idx: np.ndarray) -> np.ndarray:
        """int64 labels at the flat indices (0 off the runs)."""
        flat_idx = np.asarray(flat_idx, np.int64)
        if self.start.size == 0:
            return np.zeros(flat_idx.shape, np.int64)
        run = np.searchsorted(self.start, flat_idx, side="right") - 1
        safe = np.maximum(run, 0)
        inside = (run >= 0) & (flat_idx < self.start[safe] + self.length[safe])
        return np.where(inside, self.label[safe], 0)

    def image(self) -> np.ndarray:
        """intp (h, w) label image, as ``scipy.ndimage.label`` gives it."""
        out = np.zeros(self.shape[0] * self.shape[1], np.intp)
        index, labels = self.pixels(np.ones(self.n + 1, bool))
        out[index] = labels
        return out.reshape(self.shape)


def label_runs(mask: np.ndarray, connectivity: int = 1) -> Runs:
    """Components of ``mask`` (bool (h, w)): ``connectivity`` 1 (4 neighbours) or 2 (8)."""
    mask = np.asarray(mask, bool)
    h, w = mask.shape
    padded = np.zeros((h, w + 1), bool)  # a False column ends every row's last run
    padded[:, :w] = mask
    flat = padded.reshape(-1)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    if flat.size and flat[0]:
        edges = np.concatenate([[0], edges])
    begin, end = edges[0::2], edges[1::2]  # in the padded image (w + 1 columns)
    y, x0 = np.divmod(begin, w + 1)
    x1 = end - y * (w + 1)  # exclusive
    start = y * w + x0
    length = (x1 - x0).astype(np.int64)
    n_runs = start.size
    if n_runs == 0:
        return Runs((h, w), start, length, np.zeros(0, np.int64), 0)
    # the runs of the next row that touch each run: a contiguous range of the sorted runs
    grow = 1 if connectivity == 2 else 0
    stride = w + 2
    key_start, key_end = y * stride + x0, y * stride + x1
    lo = np.searchsorted(key_end, (y + 1) * stride + x0 - grow, side="right")
    hi = np.searchsorted(key_start, (y + 1) * stride + x1 + grow, side="left")
    count = np.maximum(hi - lo, 0)
    total = int(count.sum())
    src = np.repeat(np.arange(n_runs), count)
    dst = np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(total)
    graph = sparse.coo_matrix((np.ones(total, np.int8), (src, dst)), shape=(n_runs, n_runs))
    n, comp = connected_components(graph, directed=False)
    # number the components by their first run (runs are in raster order)
    first = np.full(n, n_runs, np.int64)
    np.minimum.at(first, comp, np.arange(n_runs))
    rank = np.empty(n, np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, n + 1)
    return Runs((h, w), start, length, rank[comp], int(n))
