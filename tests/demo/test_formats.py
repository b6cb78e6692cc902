"""Generated slides in formats only OpenSlide reads."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.demo.formats import write_ndpi
from wsidist.demo.spec import SynthSpec
from wsidist.demo.synth import write_synthetic_slide
from wsidist.errors import WsidistError
from wsidist.io.slide import open_slide


def test_ndpi_opens_as_hamamatsu_with_the_synthetic_pixels(tmp_path):
    spec = SynthSpec(width=700, height=500, seed=9, n_blobs=1, mpp=0.25, objective_power=40)
    truth = write_ndpi(tmp_path / "s.ndpi", spec)
    write_synthetic_slide(tmp_path / "s.tiff", spec)
    with open_slide(tmp_path / "s.ndpi") as ndpi, open_slide(tmp_path / "s.tiff") as tiff:
        assert (ndpi.vendor, ndpi.backend) == ("hamamatsu", "openslide")
        assert ndpi.level_dimensions[: tiff.level_count] == tiff.level_dimensions
        assert ndpi.mpp_x == pytest.approx(0.25) and ndpi.objective_power == 40
        a = ndpi.read_region(0, 0, 0, (700, 500)).astype(float)
        b = tiff.read_region(0, 0, 0, (700, 500)).astype(float)
        assert np.abs(a - b).mean() < 4  # one more JPEG generation
    assert truth.spec == spec


def test_ndpi_refuses_a_slide_it_cannot_hold(tmp_path):
    with pytest.raises(WsidistError, match="reads whole levels"):
        write_ndpi(tmp_path / "big.ndpi", SynthSpec(width=5000, height=4000))
