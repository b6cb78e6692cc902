"""The fast paths of the grid features give the same bits as the general ones."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.imaging import box_sums, summed_area_table
from wsidist.stage1 import graystats
from wsidist.stage1.features import _pixel_weights, gray_of, hsv_moments
from wsidist.stage1.tiles import TileGrid, grid_windows
from wsidist.stage1.windows import window_sums


def _image(h: int = 157, w: int = 203) -> np.ndarray:
    """Texture, a flat block, a gradient and saturated stripes: few and many levels a tile."""
    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[10:70, 20:110] = (200, 180, 230)
    rgb[80:, :60] = np.linspace(0, 255, 60, dtype=np.uint8)[None, :, None]
    rgb[:, 150:160] = (250, 30, 200)
    return rgb


def _log_table(win) -> np.ndarray:
    c = np.arange(int(win.area.max()) + 1, dtype=np.float64)
    clogc = np.zeros(len(c))
    clogc[1:] = c[1:] * np.log2(c[1:])
    return clogc


@pytest.mark.parametrize("tile", [32, 96, 160, 256, 300, 512])
def test_sorted_windows_equal_their_histograms_with_partial_edge_tiles(tile):
    gray = gray_of(_image())
    # 157 x 203 scaled px at 1/8, the slide a little smaller: short last row and column
    _, _, win = grid_windows(TileGrid(tile, tile), 203 * 8 - 5, 157 * 8 - 3, 8.0, gray.shape)
    clogc = _log_table(win)
    entropy, peak = graystats.tile_gray_stats(gray, win)
    want_entropy, want_peak = graystats._histogram_stats(gray, win, clogc, graystats.PEAK_LEVELS)
    assert np.array_equal(entropy, want_entropy + 0.0)
    assert np.array_equal(peak, want_peak)
    n_y = graystats.uniform_run(win.y0, win.y1)
    n_x = graystats.uniform_run(win.x0, win.x1)
    assert (n_y, n_x) != win.shape  # the edge windows went the general way
    assert 0.0 < peak.min() <= peak.max() <= 1.0
    assert tile > 160 or peak.max() == 1.0  # a tile inside the flat block: one level


def test_top_sum_is_the_sum_of_the_largest():
    rng = np.random.default_rng(1)
    for rows in (1, 2, 3, 7, 64, 100):
        counts = rng.integers(0, 50, (rows, 300)).astype(np.uint8)
        for k in (1, 3, 4):
            want = np.sort(counts.astype(np.int64), axis=0)[::-1][:k].sum(axis=0)
            assert np.array_equal(graystats._top_sum(counts, k), want)


@pytest.mark.parametrize(("tile", "overlap"), [(256, 0), (300, 0), (256, 96)])
def test_window_sums_equal_a_summed_area_table(tile, overlap):
    coverage = np.random.default_rng(2).integers(0, 256, (157, 203), dtype=np.uint8)
    grid = TileGrid.from_units(tile_px=tile, overlap=overlap)
    _, _, win = grid_windows(grid, 203 * 8 - 5, 157 * 8 - 3, 8.0, coverage.shape)
    sat = summed_area_table(coverage)
    want = box_sums(sat, win.y0[:, None], win.x0[None, :], win.y1[:, None], win.x1[None, :])
    assert np.array_equal(window_sums(coverage, win), want)
    mask = coverage > 127
    sat = summed_area_table(mask.astype(np.int64))
    want = box_sums(sat, win.y0[:, None], win.x0[None, :], win.y1[:, None], win.x1[None, :])
    assert np.array_equal(window_sums(mask, win), want)


def test_pixel_hsv_is_scikit_image_bit_for_bit():
    from skimage.color import rgb2hsv

    lattice = np.arange(0, 256, 5, dtype=np.uint8)  # 52^3 colours, grays and ties included
    px = np.stack(np.meshgrid(lattice, lattice, lattice, indexing="ij"), -1).reshape(-1, 3)
    px = np.concatenate([px, np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, 1)])
    hsv = rgb2hsv(px[None])[0]
    deg = (hsv[:, 0] * 360).astype(np.int32).astype(np.float64)
    for lo, hi in ((260, 340), (0, 359), (0, 20)):
        inside = (deg >= lo) & (deg <= hi)
        want = [inside, np.where(inside, deg, 0), np.where(inside, deg * deg, 0)]
        want += [hsv[:, 1], hsv[:, 1] ** 2, hsv[:, 2], hsv[:, 2] ** 2]
        got = _pixel_weights(px, (lo, hi))
        for name, g, w in zip(("n", "hue", "hue2", "s", "s2", "v", "v2"), got, want):
            assert np.array_equal(g, np.asarray(w, np.float64)), (lo, hi, name)


def test_hsv_moments_count_tissue_pixels_only():
    rgb = _image()
    tissue = np.zeros(rgb.shape[:2], bool)
    tissue[:, 150:160] = True  # the magenta stripe: hue 313 degrees
    _, _, win = grid_windows(TileGrid(256, 256), 203 * 8, 157 * 8, 8.0, tissue.shape)
    m = hsv_moments(rgb, tissue, win, (260, 340))
    assert m["n_hue"].sum() == tissue.sum()
    assert m["sum_hue"].sum() == 313 * tissue.sum()
    assert np.count_nonzero(m["sum_v"]) == np.count_nonzero(window_sums(tissue, win))
