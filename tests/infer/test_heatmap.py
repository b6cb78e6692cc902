"""The tiled heatmap accumulator and the test-time augmentations, on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.infer import tta
from wsidist.infer.heatmap import HeatmapAccumulator, overlap_matrix


def test_overlap_matrix_covers_each_cell_exactly():
    c0, m = overlap_matrix(3.25, 11.75, 4, limit=100)
    assert c0 == 3 and m.shape == (9, 4)
    np.testing.assert_allclose(m.sum(0), [8.5 / 4] * 4)  # each cell's length
    np.testing.assert_allclose(m.sum(), 8.5)
    c0, m = overlap_matrix(-2.0, 3.0, 1, limit=2)  # clipped to the grid
    assert c0 == 0 and m.shape == (2, 1) and m.sum() == 2.0


@pytest.mark.parametrize("tile", [7, 256])
def test_constant_patches_give_a_constant_map_without_seams(tile):
    rng = np.random.default_rng(0)
    acc = HeatmapAccumulator(5000, 3000, 32, channels=2, tile=tile)
    for _ in range(300):  # overlapping boxes at arbitrary (unaligned) places and sizes
        x, y = rng.integers(-200, 5000, 2)
        side = int(rng.integers(100, 900))
        values = np.empty((2, 5, 5))
        values[0], values[1] = 0.3, 0.7
        acc.add(int(x), int(y), side, side, values)
    mean, weight = acc.result()
    covered = weight > 0
    assert covered.mean() > 0.5
    np.testing.assert_allclose(mean[0][covered], 0.3, atol=1e-6)
    np.testing.assert_allclose(mean[1][covered], 0.7, atol=1e-6)
    assert (mean[:, ~covered] == 0).all()


def test_a_pixel_is_the_mean_of_the_patches_covering_it():
    acc = HeatmapAccumulator(256, 128, 32, channels=1, tile=3)
    acc.add(0, 0, 128, 128, np.full((1, 1, 1), 0.2))  # heatmap px 0..3
    acc.add(64, 0, 128, 128, np.full((1, 1, 1), 0.6))  # px 2..5
    acc.add(80, 0, 128, 128, np.full((1, 1, 1), 1.0))  # px 2.5..6.5: partial cover
    mean, weight = acc.result()
    np.testing.assert_allclose(mean[0, 0, :2], 0.2)
    np.testing.assert_allclose(mean[0, 0, 2], (0.2 + 0.6 + 0.5 * 1.0) / 2.5)  # area-weighted
    np.testing.assert_allclose(mean[0, 0, 3], (0.2 + 0.6 + 1.0) / 3)
    np.testing.assert_allclose(mean[0, 0, 4:6], (0.6 + 1.0) / 2)
    np.testing.assert_allclose(weight[0, :8], [1, 1, 2.5, 3, 2, 2, 0.5, 0])
    np.testing.assert_allclose(mean[0, 0, 6], 1.0)


def test_segmentation_maps_land_where_they_belong():
    acc = HeatmapAccumulator(512, 512, 16, channels=1, tile=5)
    seg = np.zeros((1, 4, 4))
    seg[0, 1, 2] = 1.0  # one cell of a 4×4 map over a 256-px patch: 64 px = 4 heatmap px
    acc.add(128, 0, 256, 256, seg)
    mean, _ = acc.result()
    expected = np.zeros((32, 32))
    expected[4:8, 8 + 8 : 8 + 12] = 1.0
    np.testing.assert_allclose(mean[0], expected)


def test_only_touched_tiles_are_held():
    acc = HeatmapAccumulator(200_000, 100_000, 16, channels=3, tile=256)  # 12500 × 6250 px
    acc.add(0, 0, 1024, 1024, np.ones((3, 1, 1)))
    assert acc.nbytes == 4 * 256 * 256 * 8  # one tile: 3 channels + weight, float64


def test_tta_inverse_undoes_every_transform():
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)
    names = tta.augmentations(("flip", "rot90"))
    assert names == ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")
    maps = batch.transpose(0, 3, 1, 2).astype(np.float32)  # a "model" returning its input
    for name in names:
        out = tta.forward(name, batch).transpose(0, 3, 1, 2)
        np.testing.assert_array_equal(tta.inverse(name, out), maps)
        if name != "identity":
            assert not np.array_equal(tta.forward(name, batch), batch)
