"""Deterministic noise for synthetic slides: seamless value noise and cheap per-pixel jitter.

Value noise is hashed from integer lattice coordinates, so any tile of a slide can be rendered
on its own and neighbouring tiles join without seams.
"""

from __future__ import annotations

import math

import numpy as np


def _hash01(ix: np.ndarray, iy: np.ndarray, key: int) -> np.ndarray:
    """Deterministic uniform [0, 1) per integer lattice point (broadcast ix, iy)."""
    with np.errstate(over="ignore"):
        h = ix.astype(np.int64).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        h = h ^ (iy.astype(np.int64).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
        h = h ^ np.uint64((key * 0x165667B19E3779F9 + 0x27D4EB2F) % 2**64)
        for mul in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
            h = (h ^ (h >> np.uint64(33))) * np.uint64(mul)
        h = h ^ (h >> np.uint64(33))
    return (h >> np.uint64(11)).astype(np.float64) / float(2**53)


def _weights(coords: np.ndarray, spacing: float) -> tuple[np.ndarray, int, int]:
    t = coords / spacing
    i = np.floor(t).astype(np.int64)
    f = t - i
    s = f * f * (3.0 - 2.0 * f)
    lo = int(i.min())
    m = int(i.max()) - lo + 2
    w = np.zeros((coords.size, m))
    r = np.arange(coords.size)
    w[r, i - lo] = 1.0 - s
    w[r, i - lo + 1] = s
    return w, lo, m


def value_noise(xs: np.ndarray, ys: np.ndarray, sx: float, sy: float, key: int) -> np.ndarray:
    """Smooth value noise in [0, 1) on the grid ys x xs, lattice spacing (sx, sy); seamless."""
    wx, x0, mx = _weights(xs, sx)
    wy, y0, my = _weights(ys, sy)
    lat = _hash01(np.arange(x0, x0 + mx)[None, :], np.arange(y0, y0 + my)[:, None], key)
    return (wy @ lat @ wx.T).astype(np.float32)


def jitter(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    """Cheap uniform per-pixel noise with standard deviation `std` (float32)."""
    u = np.frombuffer(rng.bytes(math.prod(shape)), np.uint8).reshape(shape)
    return (u.astype(np.float32) - np.float32(127.5)) * np.float32(std / 73.9)
