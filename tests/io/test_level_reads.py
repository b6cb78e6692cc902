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


@pytest.mark.parametrize("scale", [40, 7.5, 10])
def test_fractional_thumbnail_is_the_exact_area_average(odd_pyramid, scale):
    """Levels are read on their own grid (a whole factor of level 0), at a fractional ratio."""
    with open_slide(str(odd_pyramid)) as slide:
        level = slide.best_level_for_downsample(scale)
        factor = slide._impl.level_factor(level)
        assert factor == round(slide.level_downsamples[level]) != slide.level_downsamples[level]
        full = slide.read_level(level, 0, 0, *slide.level_dimensions[level])
        ratio = scale / factor
        assert abs(ratio - round(ratio)) > 1e-6  # the fractional path
        thumb = slide.thumbnail(scale)
        blocks = slide.thumbnail(scale, block_px=333)
    ref = reference_area_average(full, ratio, ratio, thumb.shape[1::-1])
    assert thumb.shape == ref.shape
    for got in (thumb, blocks):
        assert np.abs(got.astype(int) - ref).max() <= 1
        assert np.mean(got != ref) < 0.01  # only float rounding at ties


def test_rounded_levels_are_read_on_their_own_grid(odd_pyramid):
    """A level is level 0 reduced by a whole factor from the top-left, its size rounded: the
    thumbnail at twice its factor is its exact 2 x 2 means (the reported downsample W / w,
    3.9987 here, would stretch it by a pixel over the level), and it is closer to the exact
    average of level 0 than the stretched one."""
    with open_slide(str(odd_pyramid)) as slide:
        assert [slide._impl.level_factor(i) for i in range(3)] == [1, 4, 16]
        lw, lh = slide.level_dimensions[2]
        level = slide.read_level(2, 0, 0, lw, lh)
        thumb = slide.thumbnail(32)
        w0, h0 = slide.dimensions
        level0 = slide.read_level(0, 0, 0, w0, h0)
    assert thumb.shape == (-(-h0 // 32), -(-w0 // 32), 3)
    pad = np.pad(level, ((0, -lh % 2), (0, -lw % 2), (0, 0)), mode="edge").astype(np.int64)
    counts = np.ones((lh, lw), np.int64)
    counts = np.pad(counts, ((0, -lh % 2), (0, -lw % 2)))
    pad[lh:] = 0
    pad[:, lw:] = 0
    sums = pad.reshape(-1, 2, pad.shape[1] // 2, 2, 3).sum(axis=(1, 3))
    n = counts.reshape(-1, 2, counts.shape[1] // 2, 2).sum(axis=(1, 3))[..., None]
    means = np.rint(sums / n).astype(np.uint8)
    np.testing.assert_array_equal(thumb[: means.shape[0], : means.shape[1]], means)
    exact = reference_area_average(level0, 32, 32, thumb.shape[1::-1]).astype(int)
    stretched = reference_area_average(level, 32 * lw / w0, 32 * lh / h0, thumb.shape[1::-1])
    assert np.abs(thumb - exact).mean() < 0.9 * np.abs(stretched.astype(int) - exact).mean()


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


def test_level_grids_are_whole_factors_where_levels_reduce_level_0(odd_pyramid):
    """``grid_downsample`` is a rounded level's whole factor; other levels and backends keep
    the reported downsample, and a level that is no such reduction has no whole factor."""
    from wsidist.io.backends.tiff_pages import whole_factor

    with open_slide(str(odd_pyramid)) as slide:
        assert [slide.grid_downsample(i) for i in range(3)] == [1.0, 4.0, 16.0]
        assert slide.level_downsamples[2] != 16.0
        with pytest.raises(Exception, match="level"):
            slide.grid_downsample(3)
    assert whole_factor((9037, 6021), (2260, 1506), 3.9987) == 4  # ceil
    assert whole_factor((4443, 3567), (2221, 1783), 2.0005) == 2  # floor (an Aperio level)
    assert whole_factor((9037, 6021), (2000, 1506), 4.5) is None  # not W / k rounded
    assert whole_factor((9037, 6021), (2262, 1506), 3.995) is None
