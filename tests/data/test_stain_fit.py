"""Fitting a stain normaliser on a generated reference slide, and normalising another slide."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.data.stain import fit_normalizer, reference_pixels
from wsidist.demo.stained import REFERENCE_STAINS, StainedSpec, write_stained_slide
from wsidist.errors import ConfigError
from wsidist.imaging.stain import stain_vectors

SOURCE = StainedSpec(width=2048, height=2048, seed=41, hematoxylin=(0.80, 0.55, 0.24),
                     eosin=(0.30, 0.93, 0.20), dark=None)  # fmt: skip
REFERENCE = StainedSpec(width=2048, height=2048, seed=42, hematoxylin=REFERENCE_STAINS[0],
                        eosin=REFERENCE_STAINS[1], dark=None)  # fmt: skip


def cosines(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stained")
    write_stained_slide(folder / "source.tiff", SOURCE)
    write_stained_slide(folder / "reference.tiff", REFERENCE)
    return folder / "source.tiff", folder / "reference.tiff"


@pytest.mark.parametrize("method", ["macenko", "vahadane"])
def test_slide_fit_and_normalisation_recover_the_reference_stains(slides, method):
    source, reference = slides
    norm = fit_normalizer(str(reference), method, n_patches=6)
    assert cosines(norm.stain_matrix, REFERENCE.stain_matrix).min() > 0.99
    patches = reference_pixels(str(source), n_patches=6).reshape(-1, 256, 256, 3)
    normalised = np.concatenate([norm.normalize(p).reshape(-1, 3) for p in patches])
    assert cosines(stain_vectors(patches, method), REFERENCE.stain_matrix).min() < 0.97
    assert cosines(stain_vectors(normalised, method), REFERENCE.stain_matrix).min() > 0.985


def test_image_file_reference_and_errors(slides, tmp_path):
    from PIL import Image

    source, _ = slides
    patch = reference_pixels(str(source), n_patches=1).reshape(256, 256, 3)
    Image.fromarray(patch).save(tmp_path / "ref.png")
    assert fit_normalizer(str(tmp_path / "ref.png"), "reinhard").method == "reinhard"
    glass = StainedSpec(width=512, height=512, tissue=(0.5, 0.5, 0.01, 0.01), dark=None)
    write_stained_slide(tmp_path / "glass.tiff", glass)
    with pytest.raises(ConfigError, match="no tissue patch"):
        fit_normalizer(str(tmp_path / "glass.tiff"))
