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
