"""Seed 004's peak-frequency background feature, over the whole grid at once."""

from __future__ import annotations

import numpy as np

from wsidist.stage1.features import PEAK_LEVELS, gray_of, tile_peak_frac
from wsidist.stage1.tiles import TileGrid, grid_windows


def _reference(gray: np.ndarray, win) -> np.ndarray:
    out = np.zeros(win.shape)
    for r in range(win.shape[0]):
        for c in range(win.shape[1]):
            g = gray[win.y0[r] : win.y1[r], win.x0[c] : win.x1[c]]
            counts = np.sort(np.bincount(g.ravel(), minlength=256))[::-1]
            out[r, c] = counts[:PEAK_LEVELS].sum() / g.size
    return out


def test_peak_frac_matches_a_per_tile_loop_with_overlap_and_edges():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (203, 317, 3), dtype=np.uint8)
    rgb[:60, :90] = (200, 180, 230)  # flat (normalised) background: not white, one level
    gray = gray_of(rgb)
    for grid in (TileGrid(256, 256), TileGrid(256, 160)):  # plain and overlapping
        _, _, win = grid_windows(grid, 317 * 8, 203 * 8, 8.0, gray.shape)
        got = tile_peak_frac(gray, win)
        assert np.allclose(got, _reference(gray, win))
    _, _, win = grid_windows(TileGrid(256, 256), 317 * 8, 203 * 8, 8.0, gray.shape)
    got = tile_peak_frac(gray, win)
    assert got[0, 0] == 1.0 and got[-1, -1] < 0.1  # flat background vs varied "tissue"
