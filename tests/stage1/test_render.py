"""Batch-mode pictures: tile borders coloured by tissue class, score heat maps."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from wsidist.stage1.render import CLASS_COLORS, heat_colors, score_heatmap, tile_summary


def two_tiles() -> tuple[np.ndarray, pa.Table]:
    """A gray 20×40 image at downsample 10 (a 400×200 slide) with two 200×200 tiles."""
    rgb = np.full((20, 40, 3), 128, np.uint8)
    tiles = pa.table(
        {
            "x": [0, 200], "y": [0, 0], "w": [200, 200], "h": [200, 200],
            "tissue_class": ["high", "none"], "score": [0.8, 0.2],
        }
    )  # fmt: skip
    return rgb, tiles


def test_tile_summary_draws_class_borders():
    rgb, tiles = two_tiles()
    out = tile_summary(rgb, tiles, 10.0)
    assert out.shape == rgb.shape
    assert tuple(out[0, 5]) == CLASS_COLORS["high"] and tuple(out[19, 0]) == CLASS_COLORS["high"]
    assert tuple(out[0, 25]) == CLASS_COLORS["none"] and tuple(out[10, 39]) == CLASS_COLORS["none"]
    assert tuple(out[10, 10]) == (128, 128, 128)  # inside a tile: untouched


def test_score_heatmap_is_relative_to_the_best_tile():
    rgb, tiles = two_tiles()
    out = score_heatmap(rgb, tiles, 10.0).astype(int)
    best, worst = out[10, 10], out[10, 30]
    expected_best = np.rint(0.45 * 128 + 0.55 * heat_colors(np.array(1.0)))
    assert np.array_equal(best, expected_best)
    assert best[1] > worst[1]  # yellow-green (high) over dark blue (low)


def test_heat_colors_span_the_map_and_clip():
    ends = heat_colors(np.array([0.0, 1.0, -3.0, 7.0, np.nan]))
    assert ends[0].tolist() == [68, 1, 84] and ends[1].tolist() == [253, 231, 37]
    assert ends[2].tolist() == ends[0].tolist() and ends[3].tolist() == ends[1].tolist()
    assert ends[4].tolist() == ends[0].tolist()
