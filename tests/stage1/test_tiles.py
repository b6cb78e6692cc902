"""TileGrid geometry and per-tile features on images with known answers."""

import numpy as np
import pytest

from wsidist.stage1.scoring import combine_seed_score, resolve_scorer, seed_score
from wsidist.stage1.tiles import TileGrid, scaled_box, tile_features


def test_keep_edge_clips_last_tiles_and_covers_every_pixel():
    grid = TileGrid(1024, 1024, "keep")
    boxes = list(grid.boxes(2500, 1100))
    assert grid.shape(2500, 1100) == (2, 3)
    assert [(b[2], b[4]) for b in boxes if b[0] == 0] == [(0, 1024), (1024, 1024), (2048, 452)]
    assert boxes[-1] == (1, 2, 2048, 1024, 452, 76)
    covered = np.zeros((1100, 2500), bool)
    for _, _, x, y, w, h in boxes:
        covered[y : y + h, x : x + w] = True
    assert covered.all()


def test_drop_edge_keeps_whole_tiles_only():
    grid = TileGrid(1024, 1024, "drop")
    boxes = list(grid.boxes(2500, 1100))
    assert len(boxes) == 2 and all(b[4] == b[5] == 1024 for b in boxes)
    assert list(TileGrid(1024, 1024, "drop").boxes(1000, 5000)) == []


def test_overlap_stride_and_no_redundant_edge_tile():
    grid = TileGrid.from_units(tile_px=1000, overlap=500)
    assert (grid.tile_px0, grid.stride_px0) == (1000, 500)
    xs = [b[2] for b in grid.boxes(2000, 1000) if b[0] == 0]
    # the tile at x=1000 already reaches the edge: no tile starts at 1500
    assert xs == [0, 500, 1000]


def test_tile_um_needs_mpp_and_converts():
    with pytest.raises(ValueError, match="--mpp"):
        TileGrid.from_units(tile_um=256)
    grid = TileGrid.from_units(tile_um=256, mpp=0.5, overlap=128)
    assert (grid.tile_px0, grid.stride_px0) == (512, 256)


def test_scaled_boxes_share_borders():
    assert scaled_box(0, 0, 1000, 1000, 32) == (0, 0, 31, 31)
    assert scaled_box(1000, 0, 1000, 1000, 32)[0] == 31
    assert scaled_box(0, 0, 5, 5, 32) == (0, 0, 1, 1)


def _image_with_purple_block():
    rgb = np.full((64, 96, 3), 240, np.uint8)
    tissue = np.zeros((64, 96), bool)
    rng = np.random.default_rng(0)
    block = np.stack(
        [
            rng.integers(90, 170, (32, 32)),
            rng.integers(40, 110, (32, 32)),
            rng.integers(140, 210, (32, 32)),
        ],
        -1,
    ).astype(np.uint8)
    rgb[:32, :32] = block
    tissue[:32, :32] = True
    tissue[32:48, 32:64] = True  # half of tile (1, 1) is tissue
    rgb[32:48, 32:64] = (230, 150, 200)
    pen = np.zeros_like(tissue)
    pen[40:64, 64:96] = True
    return rgb, tissue, pen


def test_tile_features_fractions_scores_and_rank():
    rgb, tissue, pen = _image_with_purple_block()
    grid = TileGrid(1024, 1024)
    table = tile_features(rgb, tissue, pen, grid, 96 * 32, 64 * 32, 32.0, seed_score)
    rows = {(r["row"], r["col"]): r for r in table.to_pylist()}
    assert len(rows) == 6
    assert rows[0, 0]["tissue_frac"] == 1.0 and rows[0, 0]["tissue_class"] == "high"
    assert rows[1, 1]["tissue_frac"] == pytest.approx(0.5)
    assert rows[1, 1]["tissue_class"] == "medium"
    assert rows[1, 2]["pen_frac"] == pytest.approx(0.75)
    assert rows[1, 2]["background_frac"] == pytest.approx(0.25)
    assert rows[0, 1]["tissue_class"] == "none" and rows[0, 1]["score"] == 0.0
    # purple tissue scores best; the factors combine as the seed says
    best = rows[0, 0]
    assert best["rank"] == 1 and best["color_factor"] > 0 and best["quantity_factor"] == 1.0
    expected = combine_seed_score(1.0, best["color_factor"], best["sv_factor"], 1.0)
    assert best["score"] == pytest.approx(expected)
    assert rows[1, 1]["score"] < best["score"]
    assert sorted(table.column("rank").to_pylist()) == list(range(1, 7))
    assert best["entropy"] > rows[0, 1]["entropy"]


def test_user_scorer_is_used():
    rgb, tissue, pen = _image_with_purple_block()
    table = tile_features(
        rgb,
        tissue,
        pen,
        TileGrid(1024, 1024),
        96 * 32,
        64 * 32,
        32.0,
        lambda t: t.col * 10.0 + t.row,
    )
    by_rank = sorted(table.to_pylist(), key=lambda r: r["rank"])
    assert (by_rank[0]["row"], by_rank[0]["col"]) == (1, 2)


def test_resolve_scorer_names():
    assert resolve_scorer("seed") is seed_score
    assert (
        resolve_scorer("wsidist.stage1.scoring:tissue_fraction_score").__name__
        == "tissue_fraction_score"
    )
    with pytest.raises(ValueError, match="unknown scorer"):
        resolve_scorer("best")
    with pytest.raises(ValueError, match="does not resolve"):
        resolve_scorer("wsidist.stage1.scoring:nope")


def test_gray_entropy_matches_scikit_image():
    from skimage.measure import shannon_entropy

    from wsidist.stage1.tiles import gray_entropy

    rng = np.random.default_rng(3)
    for gray in (rng.integers(0, 256, (31, 17)).astype(np.uint8), np.full((8, 8), 7, np.uint8)):
        assert gray_entropy(gray) == pytest.approx(shannon_entropy(gray))


@pytest.mark.parametrize(
    ("tile", "overlap", "downsample"),
    [
        (1024, 0, 32.0),
        (256, 0, 32.0),
        (600, 250, 16.0),
        pytest.param(8, 0, 32.0, marks=pytest.mark.long),
    ],  # fmt: skip
)
def test_grid_features_equal_the_per_tile_definition(tile, overlap, downsample):
    from tests.helpers.reference import reference_tile_features

    rng = np.random.default_rng(tile)
    h, w = 70, 97
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    rgb[10:40, 20:60] = rng.integers(60, 200, (30, 40, 3))  # purple-ish block, hues in range
    tissue = rng.random((h, w)) < 0.6
    pen = rng.random((h, w)) < 0.1
    width, height = int(w * downsample) - 5, int(h * downsample) - 3
    grid = TileGrid.from_units(tile_px=tile, overlap=overlap)
    table = tile_features(rgb, tissue, pen, grid, width, height, downsample, seed_score)
    got = table.to_pylist()
    want = reference_tile_features(rgb, tissue, pen, grid, width, height, downsample)
    assert len(got) == len(want) > 0
    for g, r in zip(got, want):
        for key, value in r.items():
            assert g[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, g["row"], g["col"])
        parts = (g["tissue_frac"], g["color_factor"], g["sv_factor"], g["quantity_factor"])
        assert g["score"] == pytest.approx(combine_seed_score(*parts), rel=1e-12)
