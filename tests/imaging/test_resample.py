"""Area reduction: the streamed fractional resampler against a brute-force average."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.helpers.paths import MISSING_SLIDES, SLIDES
from tests.helpers.reference import reference_area_average
from wsidist.imaging import resample
from wsidist.imaging.resample import area_resample

needs_slides = pytest.mark.skipif(not SLIDES.is_dir(), reason=MISSING_SLIDES)


@pytest.mark.parametrize("scale", [1, 2, 3.7, 7.5, 40, 500])
@pytest.mark.parametrize("block_px", [1, 7, 64, 4096])
def test_area_resample_matches_brute_force(scale, block_px, monkeypatch):
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (83, 61, 3), dtype=np.uint8)
    img[10:40, 5:50] = (200, 30, 90)

    def read(x, y, w, h):
        assert min(x, y) >= 0 and x + w <= 61 and y + h <= 83 and max(w, h) <= block_px
        return img[y : y + h, x : x + w]

    out_size = (math.ceil(61 / scale), math.ceil(83 / scale))
    got = area_resample(read, (61, 83), (scale, scale), out_size, block_px)
    ref = reference_area_average(img, scale)
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref).max() <= 1
    # A tiny accumulator budget forces short row chunks and carried rows.
    monkeypatch.setattr(resample, "_ACC_BYTES", 1)
    small = area_resample(read, (61, 83), (scale, scale), out_size, block_px)
    assert np.abs(small.astype(int) - ref).max() <= 1


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
