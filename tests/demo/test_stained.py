"""The stained-slide generator: known stain vectors and a known dark region, readable by Slide."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.demo.stained import StainedSpec, write_stained_slide
from wsidist.io.slide import open_slide


def test_stained_slide_pixels_follow_its_truth(tmp_path):
    spec = StainedSpec(width=2048, height=1536, seed=5, mpp=0.25)
    truth = write_stained_slide(tmp_path / "s.tiff", spec)
    with open_slide(str(tmp_path / "s.tiff")) as slide:
        assert slide.dimensions == (2048, 1536) and slide.mpp_x == pytest.approx(0.25)
        assert slide.level_count == 2
        thumb = slide.thumbnail(16).astype(float)
    dark, tissue = truth.dark_mask(16), truth.tissue_mask(16)
    assert thumb.shape[:2] == tissue.shape and dark.any() and (tissue & ~dark).any()
    gray = thumb.mean(2)
    inner = tissue & ~dark
    assert gray[~tissue].mean() > 230  # glass
    assert gray[dark].mean() < gray[inner].mean() - 40  # the dark region is dark
    # optical densities of tissue lie in the plane of the two stain vectors
    od = -np.log((thumb[inner] + 1) / 243.0)
    normal = np.cross(*spec.stain_matrix)
    assert np.abs(od @ normal).mean() < 0.05 * np.linalg.norm(od, axis=1).mean()


def test_bad_stain_vectors_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        StainedSpec(hematoxylin=(-1, 0, 0))
