"""One grid for masks and thumbnails: mask px (i, j) is level-0 [j·scale, (j+1)·scale) × …,
on slides whose size is no multiple of the scale (every real slide) as well."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile

from tests.helpers.reference import reference_tile_features
from wsidist import layout
from wsidist.imaging.masks import mask_downsample
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.scoring import seed_score
from wsidist.stage1.tiles import grid_windows, tile_features
from wsidist.stage1.windows import uniform_run
from wsidist.stage1.worker import SlideTask, process_slide

SCALE = 32
WIDTH, HEIGHT = SCALE * 200 + 1, SCALE * 100 + 5  # W / cols = 31.84: 31 px short at the far edge
BAND_X0, BAND_X1 = SCALE * 150, SCALE * 190  # tissue, level-0 x (whole mask px)
BAND_Y0, BAND_Y1 = SCALE * 20, SCALE * 80


@pytest.fixture(scope="module")
def band_slide(tmp_path_factory) -> str:
    """A slide of odd size: glass, and a band of textured tissue at known level-0 x and y."""
    rng = np.random.default_rng(5)
    px = np.clip(rng.normal(242, 3, (HEIGHT, WIDTH, 3)), 0, 255).astype(np.uint8)
    band = rng.normal((150, 80, 170), 18, (BAND_Y1 - BAND_Y0, BAND_X1 - BAND_X0, 3))
    px[BAND_Y0:BAND_Y1, BAND_X0:BAND_X1] = np.clip(band, 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("odd") / "band.tif"
    tifffile.imwrite(path, px, tile=(256, 256), photometric="rgb")
    return str(path)


def test_mask_downsample_is_the_scale_checked_against_the_shape():
    rows, cols = math.ceil(HEIGHT / SCALE), math.ceil(WIDTH / SCALE)
    assert mask_downsample(WIDTH, HEIGHT, (rows, cols), SCALE) == SCALE
    assert mask_downsample(WIDTH, HEIGHT, (rows, cols, 3), float(SCALE)) == SCALE
    # no recorded scale (a user's mask, older outputs): the mask spans the slide
    assert mask_downsample(WIDTH, HEIGHT, (rows, cols)) == WIDTH / cols
    assert mask_downsample(WIDTH, HEIGHT, (rows, cols), float("nan")) == WIDTH / cols
    with pytest.raises(ValueError, match="not on the grid of scale 16"):
        mask_downsample(WIDTH, HEIGHT, (rows, cols), 16)
    with pytest.raises(ValueError, match="empty"):
        mask_downsample(WIDTH, HEIGHT, (0, cols), SCALE)


def _polygon_bounds(contours: dict) -> tuple[float, float, float, float]:
    xy = np.concatenate(
        [np.asarray(ring)[:, :2] for f in contours["features"] for ring in _rings(f["geometry"])]
    )
    return xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()


def _rings(geometry: dict):
    polys = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    for poly in polys:
        yield from poly


def test_mask_content_lands_on_its_level0_pixels_at_the_far_edge(band_slide, tmp_path):
    store = Store(str(tmp_path / "out"))
    config = Stage1Config(tile_size=256)
    row = process_slide(SlideTask(band_slide, "band"), config, store)
    assert row["status"] == "ok", row["error"]
    assert row["scale"] == SCALE
    # contours: the band's edges within half a mask px (W / cols would be 23 and 29 px off)
    x0, y0, x1, y1 = _polygon_bounds(json.loads(store.read_bytes(layout.contours_key("band"))))
    for got, want in ((x0, BAND_X0), (x1, BAND_X1), (y0, BAND_Y0), (y1, BAND_Y1)):
        assert abs(got - want) <= SCALE / 2, (got, want)
    # tiles: the band starts a quarter into tile column 18 ([4608, 4864)) and ends three
    # quarters into column 23 ([5888, 6144)); W / cols gave 0.375 and 0.875
    tiles = store.read_parquet(layout.tiles_key("band")).to_pandas()
    mid = tiles[tiles["row"] == 8].set_index("col")["tissue_frac"]
    assert mid[18] == pytest.approx(0.25, abs=0.04)
    assert mid[23] == pytest.approx(0.75, abs=0.04)
    assert mid[17] == pytest.approx(0.0, abs=0.01) and mid[24] == pytest.approx(0.0, abs=0.01)
    assert (mid[19:23] > 0.95).all()


def test_odd_slide_windows_are_uniform_and_equal_the_per_tile_definition(band_slide):
    with open_slide(band_slide) as slide:
        analysis = analyse_slide(slide, Stage1Config(tile_size=256))
    assert analysis.downsample == SCALE
    rows, cols = analysis.tissue.shape
    grid = analysis.grid
    _, _, win = grid_windows(grid, WIDTH, HEIGHT, analysis.downsample, (rows, cols))
    # every window 8 px but the last, which ends at the image's last (partial) pixel
    assert uniform_run(win.x0, win.x1) >= len(win.x0) - 1
    assert uniform_run(win.y0, win.y1) >= len(win.y0) - 1
    assert set(np.diff(win.x0)) == {8} and win.x1[-1] == cols and win.y1[-1] == rows
    det = analysis.detection
    got = tile_features(
        analysis.rgb, det.mask, det.ink, grid, WIDTH, HEIGHT, analysis.downsample, seed_score
    ).to_pylist()
    want = reference_tile_features(
        analysis.rgb, det.mask, det.ink, grid, WIDTH, HEIGHT, analysis.downsample
    )
    assert len(got) == len(want) == grid.shape(WIDTH, HEIGHT)[0] * grid.shape(WIDTH, HEIGHT)[1]
    for g, r in zip(got, want):
        for key, value in r.items():
            assert g[key] == pytest.approx(value, rel=1e-9, abs=1e-9), (key, g["row"], g["col"])


def test_later_stages_read_the_stage1_mask_on_its_own_grid(band_slide, tmp_path):
    from wsidist.infer.config import InferConfig
    from wsidist.infer.worker import InferTask, _mask
    from wsidist.stage2.glass import tissue_tiles
    from wsidist.stage2.worker import stage1_mask

    store = Store(str(tmp_path / "out"))
    assert process_slide(SlideTask(band_slide, "band"), Stage1Config(), store)["status"] == "ok"
    found = stage1_mask(store, SlideTask(band_slide, "band"))
    assert found is not None and found.scale == SCALE  # the rewrite maps it at the scale
    with open_slide(band_slide) as slide:
        mask, ds, source = _mask(slide, InferTask("band", band_slide), InferConfig(), store)
        assert (ds, source) == (SCALE, "stage1")
        computed = _mask(slide, InferTask("band", band_slide), InferConfig(), None)
        assert computed[1:] == (InferConfig().mask_scale, "computed")
    # tissue from level-0 x = 6144 (a tile border): on its grid the tile left of it is glass;
    # stretched over the slide (W / cols) the mask reached into it
    rows, cols = mask.shape
    edge = np.zeros((rows, cols), bool)
    edge[:, 6144 // SCALE :] = True
    keep = tissue_tiles(edge, mask_downsample(WIDTH, HEIGHT, edge.shape, SCALE), WIDTH, HEIGHT, 256)
    assert not keep[:, 23].any() and keep[:, 24].all()
    stretched = tissue_tiles(edge, mask_downsample(WIDTH, HEIGHT, edge.shape), WIDTH, HEIGHT, 256)
    assert stretched[:, 23].all()  # the old convention's error, one tile column wide
