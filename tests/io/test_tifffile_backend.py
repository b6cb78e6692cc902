"""The tifffile backend on tifffile-written pyramids, strips and pixel layouts."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from tests.helpers.paths import MISSING_SLIDES, SLIDES
from wsidist.io.slide import open_slide

needs_slides = pytest.mark.skipif(not SLIDES.is_dir(), reason=MISSING_SLIDES)


# -- tifffile backend on tifffile-written files ----------------------------------------------------


def _smooth_rgb(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(xx * 255 // w), (yy * 255 // h), ((xx + yy) % 256)], -1).astype(np.uint8)


def test_tifffile_subifd_jpeg_pyramid(tmp_path):
    path = tmp_path / "pyramid.tif"
    base = _smooth_rgb(700, 1000)
    levels = [base, base[::2, ::2], base[::4, ::4]]
    opts = dict(tile=(256, 256), compression="jpeg", photometric="rgb")
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            levels[0], subifds=2, resolution=(40000, 40000), resolutionunit="CENTIMETER", **opts
        )
        for lv in levels[1:]:
            tw.write(lv, subfiletype=1, **opts)
    with open_slide(str(path), backend="tifffile") as s:
        assert s.backend == "tifffile" and s.vendor == "tiff"
        assert s.level_dimensions == ((1000, 700), (500, 350), (250, 175))
        assert s.level_downsamples == (1.0, 2.0, 4.0)
        assert s.mpp_x == pytest.approx(0.25) and s.mpp_y == pytest.approx(0.25)
        assert s.info().compression == "jpeg" and s.info().tile_width == 256
        for i in range(3):
            page = tifffile.imread(path, series=0, level=i)
            np.testing.assert_array_equal(s.read_level(i, 0, 0, *s.level_dimensions[i]), page)
            np.testing.assert_array_equal(s.read_region(600, 400, i, (90, 70))[:10, :10],
                                          page[400 >> i : (400 >> i) + 10, 600 >> i : (600 >> i) + 10])  # fmt: skip
            assert np.abs(page.astype(int) - levels[i]).mean() < 8  # JPEG-lossy, same picture
        assert s.thumbnail(8).shape == (88, 125, 3)


def test_tifffile_pyramid_as_separate_pages(tmp_path):
    path = tmp_path / "pages.tif"
    base = _smooth_rgb(600, 900)
    with tifffile.TiffWriter(path) as tw:
        for f in (1, 2, 4):
            tw.write(base[::f, ::f], tile=(128, 128), compression="zlib", photometric="rgb")
        tw.write(base[::20, ::20], photometric="rgb")  # striped "thumbnail": not a level
    with open_slide(str(path), backend="tifffile") as s:
        assert s.level_dimensions == ((900, 600), (450, 300), (225, 150))
        np.testing.assert_array_equal(s.read_level(2, 0, 0, 225, 150), base[::4, ::4])
        np.testing.assert_array_equal(s.read_region(100, 50, 0, (300, 200)), base[50:250, 100:400])


@pytest.mark.parametrize("kind", ["gray", "rgba", "planar", "miniswhite"])
def test_tifffile_pixel_layouts(tmp_path, kind):
    path = tmp_path / f"{kind}.tif"
    rgb = _smooth_rgb(90, 130)
    if kind == "gray":
        tifffile.imwrite(path, rgb[..., 0], tile=(32, 32))
        want = np.repeat(rgb[..., :1], 3, -1)
    elif kind == "rgba":
        rgba = np.concatenate([rgb, np.full((90, 130, 1), 7, np.uint8)], -1)
        tifffile.imwrite(path, rgba, photometric="rgb", rowsperstrip=16)
        want = rgb
    elif kind == "planar":
        tifffile.imwrite(
            path,
            np.moveaxis(rgb, -1, 0),
            photometric="rgb",
            planarconfig="separate",
            rowsperstrip=7,
        )
        want = rgb
    else:
        tifffile.imwrite(path, rgb[..., 1], photometric="miniswhite")
        want = np.repeat(255 - rgb[..., 1:2], 3, -1)
    with open_slide(str(path), backend="tifffile") as s:
        np.testing.assert_array_equal(s.read_region(0, 0, 0, (130, 90)), want)
        np.testing.assert_array_equal(s.read_region(17, 33, 0, (50, 40)), want[33:73, 17:67])


def test_threads_share_one_open_slide(tmp_path):
    """Threads reading one tifffile-backed slide get the serial pixels (the file handle is
    locked around seek + read; without it tiles came back truncated)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    px = rng.integers(0, 255, (2048, 2048, 3), dtype=np.uint8)
    path = tmp_path / "noisy.tif"
    jxl = {"compression": "jpegxl", "compressionargs": {"distance": 2.0, "effort": 1}}
    tifffile.imwrite(path, px, tile=(128, 128), photometric="rgb", **jxl)
    boxes = [(x, y) for y in range(0, 2048, 128) for x in range(0, 2048, 128)]
    with open_slide(str(path), backend="tifffile") as slide, ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda b: slide.read_level(0, b[0], b[1], 128, 128), boxes))
    with open_slide(str(path), backend="tifffile") as slide:
        serial = [slide.read_level(0, x, y, 128, 128) for x, y in boxes]
    assert all(np.array_equal(a, b) for a, b in zip(got, serial))
