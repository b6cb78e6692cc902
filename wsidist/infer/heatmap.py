"""The down-scaled heatmap: patch predictions averaged exactly where patches overlap, in tiles.

A patch's prediction is a map ``(K, h, w)`` (``h = w = 1`` for a classifier) laid over its
level-0 box. Every heatmap pixel (``scale`` level-0 px a side) accumulates the sum of
``value × covered area`` and the covered area over all patches, in float64 tiles that exist
only where patches fell; the heatmap is their ratio. So a pixel inside several patches is the
plain mean of their values, a pixel a patch covers in part weighs that patch by the part, and a
constant model gives a constant map with no seams. Memory is ``tiles touched × tile² × (K + 1)
× 8`` bytes: no full-resolution array of the slide ever exists.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

__all__ = ["HeatmapAccumulator", "overlap_matrix"]


def overlap_matrix(start: float, stop: float, n: int, limit: int) -> tuple[int, np.ndarray]:
    """(first heatmap px, (m, n) lengths) of the overlap of ``n`` equal cells spanning
    ``[start, stop)`` (heatmap px units) with heatmap pixels ``[c, c + 1)``, ``0 ≤ c < limit``."""
    c0 = max(0, math.floor(start))
    c1 = min(limit, math.ceil(stop))
    if c1 <= c0:
        return c0, np.zeros((0, n))
    edges = start + (stop - start) * np.arange(n + 1) / n
    px = np.arange(c0, c1, dtype=np.float64)[:, None]
    lengths = np.minimum(px + 1, edges[None, 1:]) - np.maximum(px, edges[None, :-1])
    return c0, np.clip(lengths, 0.0, None)


class HeatmapAccumulator:
    """Area-weighted sums of ``channels`` maps on a ``ceil(H/scale) × ceil(W/scale)`` grid."""

    def __init__(self, width0: int, height0: int, scale: float, channels: int, tile: int = 256):
        self.scale = float(scale)
        self.channels = int(channels)
        self.tile = int(tile)
        self.shape = (math.ceil(height0 / scale), math.ceil(width0 / scale))
        self._sums: dict[tuple[int, int], np.ndarray] = {}
        self._weights: dict[tuple[int, int], np.ndarray] = {}

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._sums.values()) + sum(
            a.nbytes for a in self._weights.values()
        )

    def add(self, x: float, y: float, w: float, h: float, values: np.ndarray) -> None:
        """Lay ``values`` (K, mh, mw) over the level-0 box (x, y, w, h)."""
        values = np.asarray(values, np.float64)
        k, mh, mw = values.shape
        if k != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {k}")
        s = self.scale
        r0, ay = overlap_matrix(y / s, (y + h) / s, mh, self.shape[0])
        c0, ax = overlap_matrix(x / s, (x + w) / s, mw, self.shape[1])
        if not ay.size or not ax.size:
            return
        weight = np.outer(ay.sum(1), ax.sum(1))
        if mh == mw == 1:  # a classifier: one value per channel over the covered area
            sums = values[:, 0, 0, None, None] * weight
        else:
            sums = np.matmul(np.matmul(ay, values), ax.T)
        self._scatter(r0, c0, sums, weight)

    def _scatter(self, r0: int, c0: int, sums: np.ndarray, weight: np.ndarray) -> None:
        t = self.tile
        r1, c1 = r0 + weight.shape[0], c0 + weight.shape[1]
        for ty in range(r0 // t, (r1 - 1) // t + 1):
            for tx in range(c0 // t, (c1 - 1) // t + 1):
                ya, yb = max(r0, ty * t), min(r1, (ty + 1) * t)
                xa, xb = max(c0, tx * t), min(c1, (tx + 1) * t)
                key = (ty, tx)
                if key not in self._weights:
                    self._sums[key] = np.zeros((self.channels, t, t))
                    self._weights[key] = np.zeros((t, t))
                dst = (slice(ya - ty * t, yb - ty * t), slice(xa - tx * t, xb - tx * t))
                src = (slice(ya - r0, yb - r0), slice(xa - c0, xb - c0))
                self._sums[key][(slice(None), *dst)] += sums[(slice(None), *src)]
                self._weights[key][dst] += weight[src]

    def tiles(self) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
        """(row0, col0, mean (K, th, tw) float32, weight (th, tw)) of every touched tile."""
        t, (ny, nx) = self.tile, self.shape
        for (ty, tx), weight in sorted(self._weights.items()):
            th, tw = min(t, ny - ty * t), min(t, nx - tx * t)
            wgt = weight[:th, :tw]
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = self._sums[(ty, tx)][:, :th, :tw] / wgt
            yield ty * t, tx * t, np.where(wgt > 0, mean, 0.0).astype(np.float32), wgt

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean (K, ny, nx) float32, zero where no patch fell; covered area (ny, nx) float32)."""
        mean = np.zeros((self.channels, *self.shape), np.float32)
        weight = np.zeros(self.shape, np.float32)
        for r, c, m, wgt in self.tiles():
            mean[:, r : r + m.shape[1], c : c + m.shape[2]] = m
            weight[r : r + wgt.shape[0], c : c + wgt.shape[1]] = wgt
        return mean, weight
