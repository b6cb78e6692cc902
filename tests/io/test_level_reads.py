"""Levels whose size is no multiple of their downsample (every real slide's): level reads and
thumbnails of them."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from tests.helpers.reference import reference_area_average
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide


@pytest.fixture(scope="module")
def odd_pyramid(tmp_path_factory):
    """Levels 1, 4, 16 of a 9,037 x 6,021 slide: 2,260 x 1,506 (downsample 3.9987) and 565 x 377."""
    path = tmp_path_factory.mktemp("odd") / "odd.svs"
    write_synthetic_slide(path, SynthSpec(width=9_037, height=6_021, seed=3))
    return path


def test_odd_sized_levels_are_read_as_their_own_pixels(odd_pyramid):
    """Level-0 coordinates of level px fall between level-0 px here; a level read still returns
    the level's stored pixels (OpenSlide, given level-0 coordinates, resamples them)."""
    with open_slide(str(odd_pyramid)) as slide:
        assert slide.level_downsamples[1] != 4
        region = slide.read_level(1, 301, 207, 700, 500)
    with tifffile.TiffFile(odd_pyramid) as tif:
        level1 = [page for page in tif.pages if page.is_tiled][1]
        stored = level1.asarray()[207:707, 301:1001]
    np.testing.assert_array_equal(region, stored)


@pytest.mark.parametrize("scale", [32, 40, 7.5])
def test_fractional_thumbnail_is_the_exact_area_average(odd_pyramid, scale):
    with open_slide(str(odd_pyramid)) as slide:
        level = slide.best_level_for_downsample(scale)
        full = slide.read_level(level, 0, 0, *slide.level_dimensions[level])
        ratio = scale * slide.level_dimensions[level][0] / slide.dimensions[0]
        assert abs(ratio - round(ratio)) > 1e-6  # the fractional path
        thumb = slide.thumbnail(scale)
        blocks = slide.thumbnail(scale, block_px=333)
    ry = scale * slide.level_dimensions[level][1] / slide.dimensions[1]
    ref = reference_area_average(full, ratio, ry, thumb.shape[1::-1])
    assert thumb.shape == ref.shape
    for got in (thumb, blocks):
        assert np.abs(got.astype(int) - ref).max() <= 1
        assert np.mean(got != ref) < 0.01  # only float rounding at ties


def test_whole_factor_thumbnail_reads_stored_tiles_one_at_a_time(tmp_path):
    """A local slide's thumbnail at a whole factor of a level reads it one stored tile at a
    time (cache-sized sums), and is the exact box mean of the level, rounded half to even."""
    path = tmp_path / "even.svs"
    write_synthetic_slide(path, SynthSpec(width=8_192, height=6_144, seed=5))
    with tifffile.TiffFile(path) as tif:
        pages = [page for page in tif.pages if page.is_tiled]
    with open_slide(str(path)) as slide:
        level = slide.best_level_for_downsample(32)
        lw, lh = slide.level_dimensions[level]
        assert (lw * 32 // slide.dimensions[0], slide.level_downsamples[level]) == (2, 16)
        assert slide._impl.tile_px(level) == pages[level].tilewidth
        full = slide.read_level(level, 0, 0, lw, lh)
        thumb = slide.thumbnail(32)
    sums = full.reshape(lh // 2, 2, lw // 2, 2, 3).sum(axis=(1, 3), dtype=np.int64)
    np.testing.assert_array_equal(thumb, np.rint(sums / 4).astype(np.uint8))
