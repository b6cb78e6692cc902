"""Area reduction: the streamed fractional resampler against a brute-force average."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers.paths import MISSING_SLIDES, SLIDES
from tests.helpers.reference import reference_area_average
from wsidist.imaging import bands, resample
from wsidist.imaging.resample import area_resample

needs_slides = pytest.mark.skipif(not SLIDES.is_dir(), reason=MISSING_SLIDES)


def _image_and_reader(h: int, w: int, block_px: int):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[10:40, 5:50] = (200, 30, 90)

    def read(x, y, bw, bh):
        assert min(x, y) >= 0 and x + bw <= w and y + bh <= h and max(bw, bh) <= block_px
        return img[y : y + bh, x : x + bw]

    return img, read


@pytest.mark.parametrize("scale", [1, 2, 3.7, 7.5, 40, 500])
@pytest.mark.parametrize("block_px", [1, 7, 64, 4096])
def test_area_resample_matches_brute_force(scale, block_px, monkeypatch):
    img, read = _image_and_reader(83, 61, block_px)
    out_size = (math.ceil(61 / scale), math.ceil(83 / scale))
    got = area_resample(read, (61, 83), (scale, scale), out_size, block_px)
    ref = reference_area_average(img, scale)
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref).max() <= 1
    # No band fits the budget: the sparse path, its tiny accumulator forcing carried rows.
    monkeypatch.setattr(bands, "BAND_BYTES", 1)
    monkeypatch.setattr(resample, "_ACC_BYTES", 1)
    small = area_resample(read, (61, 83), (scale, scale), out_size, block_px)
    assert np.abs(small.astype(int) - ref).max() <= 1


@pytest.mark.parametrize(
    "rx, ry",
    [(2.0002, 2.0004), (1.9997, 2.5), (1.0001, 3.7), (2.5, 1.0), (7.5, 11.3), (0.9999, 1.3)],
)
@pytest.mark.parametrize("rows_per_band", [1, 2, 5, None])
def test_bands_of_any_height_give_the_brute_force_average(rx, ry, rows_per_band, monkeypatch):
    """Near-whole ratios (a rounded level's), boxes with no whole px at the image's end, ratios
    below 1 (the taps path): band edges leave no seams, the budget holding 1, 2, 5 or all rows."""
    img, read = _image_and_reader(83, 61, 7)
    out_size = (math.ceil(61 / rx), math.ceil(83 / ry))
    if rows_per_band is not None:
        one_row = bands.band_row_bytes(61, out_size[0], ry)
        monkeypatch.setattr(bands, "BAND_BYTES", rows_per_band * one_row)
        assert bands.band_rows(61, out_size[0], ry) == rows_per_band
    got = area_resample(read, (61, 83), (rx, ry), out_size, 7)
    ref = reference_area_average(img, rx, ry, out_size)
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert np.mean(got != ref) < 0.01  # only float rounding at ties


@pytest.mark.parametrize("rx, ry", [(2.0002, 2.0004), (3.7, 1.0001), (1.0, 7.5)])
@pytest.mark.parametrize("boxes_per_strip", [1, 2, 7])
def test_rows_over_the_budget_are_cut_into_strips(rx, ry, boxes_per_strip, monkeypatch):
    """A budget under one full-width row: one-row bands cut into strips of boxes, no seams."""
    img, read = _image_and_reader(83, 61, 5)
    out_size = (math.ceil(61 / rx), math.ceil(83 / ry))
    one_box = bands.band_row_bytes(math.ceil(rx) + 1, 1, ry)
    monkeypatch.setattr(bands, "BAND_BYTES", boxes_per_strip * one_box)
    assert bands.split_band(61, out_size[0], rx, ry) == (1, boxes_per_strip)
    got = area_resample(read, (61, 83), (rx, ry), out_size, 5)
    ref = reference_area_average(img, rx, ry, out_size)
    assert np.abs(got.astype(int) - ref).max() <= 1
    assert np.mean(got != ref) < 0.01


def test_band_budget_bounds_the_rows_read_at_once(monkeypatch):
    """A band holds the source rows of at most ``band_rows`` output rows (and one shared row)."""
    img, _ = _image_and_reader(83, 61, 64)
    spans: list[tuple[int, int]] = []

    def read(x, y, bw, bh):
        spans.append((y, y + bh))
        return img[y : y + bh, x : x + bw]

    rx = ry = 2.0003
    out_size = (math.ceil(61 / rx), math.ceil(83 / ry))
    monkeypatch.setattr(bands, "BAND_BYTES", 3 * bands.band_row_bytes(61, out_size[0], ry))
    area_resample(read, (61, 83), (rx, ry), out_size, 64)
    assert max(y1 - y0 for y0, y1 in spans) <= math.ceil(3 * ry) + 1
    assert {y for span in spans for y in range(*span)} == set(range(83))


def _exact_integer_means(img: np.ndarray, fx: int, fy: int) -> np.ndarray:
    """Box means by whole factors, from int64 sums of a padded copy, rounded half to even."""
    h, w, c = img.shape
    oh, ow = -(-h // fy), -(-w // fx)
    pad = np.zeros((oh * fy, ow * fx, c), np.int64)
    pad[:h, :w] = img
    sums = pad.reshape(oh, fy, ow, fx, c).sum(axis=(1, 3))
    ones = np.zeros((oh * fy, ow * fx), np.int64)
    ones[:h, :w] = 1
    counts = ones.reshape(oh, fy, ow, fx).sum(axis=(1, 3))[..., None]
    return np.rint(sums / counts).astype(np.uint8)


@pytest.mark.parametrize("shape", [(64, 64), (61, 83), (7, 5), (1, 9), (130, 2)])
@pytest.mark.parametrize("factor", [(1, 1), (2, 2), (3, 3), (2, 3), (4, 2), (8, 8)])
@pytest.mark.parametrize("tile_px", [None, 16, 24])
def test_integer_ratios_are_exact_box_means_read_tile_by_tile(shape, factor, tile_px):
    """Whole-factor ratios take the integer path (per-channel sums); with ``tile_px`` (a
    multiple of the factor) it reads one tile at a time, with the same result."""
    h, w = shape
    fx, fy = factor
    rng = np.random.default_rng(h * 100 + w)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img[: h // 2, : w // 3] = (255, 254, 1)  # flat areas: ties at every rounding
    sides = []

    def read(x, y, rw, rh):
        sides.append(max(rw, rh))
        return img[y : y + rh, x : x + rw]

    out_size = (-(-w // fx), -(-h // fy))
    got = area_resample(read, (w, h), (fx, fy), out_size, 64, tile_px)
    np.testing.assert_array_equal(got, _exact_integer_means(img, fx, fy))
    aligned = tile_px is not None and tile_px % fx == 0 and tile_px % fy == 0
    assert max(sides) <= (tile_px if aligned else 64)
