"""Stain normalisation on generated H&E pixels whose stain vectors are known."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.demo.stained import REFERENCE_STAINS, StainedSpec, render_tile, stain_texture
from wsidist.errors import ConfigError
from wsidist.imaging.stain import METHODS, StainNormalizer, normalize_stain, stain_vectors

# A "different lab": both stain vectors differ from the reference by 19–23°. (Macenko drops
# pixels with any channel under OD 0.15, so an eosin without red or blue absorption would be
# invisible to it: this one absorbs some of both.)
SOURCE = StainedSpec(seed=31, hematoxylin=(0.80, 0.55, 0.24), eosin=(0.30, 0.93, 0.20))
REFERENCE = StainedSpec(seed=32, hematoxylin=REFERENCE_STAINS[0], eosin=REFERENCE_STAINS[1])


def tissue(spec: StainedSpec, side: int = 768) -> np.ndarray:
    """A tissue patch inside the slide's ellipse, away from the dark region."""
    return render_tile(spec, 2400, 1200, side, side, stain_texture(spec))


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("method", ["macenko", "vahadane"])
def test_stain_vectors_of_generated_tissue_are_recovered(method):
    for spec in (SOURCE, REFERENCE):
        assert cosines(stain_vectors(tissue(spec), method), spec.stain_matrix).min() > 0.985


@pytest.mark.parametrize("method", ["macenko", "vahadane"])
def test_normalising_onto_a_reference_gives_the_reference_stain_vectors(method):
    norm = StainNormalizer.fit(tissue(REFERENCE), method)
    assert cosines(norm.stain_matrix, REFERENCE.stain_matrix).min() > 0.99
    src = tissue(SOURCE)
    before = cosines(stain_vectors(src, method), REFERENCE.stain_matrix)
    after = cosines(stain_vectors(norm.normalize(src), method), REFERENCE.stain_matrix)
    assert before.min() < 0.97  # the source really is stained differently
    assert after.min() > 0.985
    out = norm(src)
    assert out.dtype == np.uint8 and out.shape == src.shape


def test_reinhard_matches_the_reference_lab_statistics():
    from torchstain.numpy.utils import lab_split, rgb2lab

    norm = StainNormalizer.fit(tissue(REFERENCE), "reinhard")
    lab = rgb2lab(norm.normalize(tissue(SOURCE)).astype(np.float32) / 255)
    for channel, mean, std in zip(lab_split(lab), norm.params["lab_mean"], norm.params["lab_std"]):
        assert channel.mean() == pytest.approx(mean, abs=1.5)
        assert channel.std() == pytest.approx(std, rel=0.08)


@pytest.mark.parametrize("method", METHODS)
def test_json_round_trip_and_glass_passes_through(method, tmp_path):
    norm = StainNormalizer.fit(tissue(REFERENCE, 512), method)
    path = tmp_path / "ref.json"
    norm.save(path)
    again = StainNormalizer.load(path)
    assert again == norm
    src = tissue(SOURCE, 256)
    np.testing.assert_array_equal(normalize_stain(src, path), norm.normalize(src))
    if method != "reinhard":
        glass = np.full((64, 64, 3), 241, np.uint8)
        np.testing.assert_array_equal(norm.normalize(glass), glass)


def test_bad_normaliser_files_are_config_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        StainNormalizer.load(bad)
    bad.write_text('{"wsidist": "stain", "method": "macenko"}')
    with pytest.raises(ConfigError, match="lacks stain_matrix"):
        StainNormalizer.load(bad)
    with pytest.raises(ConfigError, match="unknown stain method"):
        StainNormalizer.fit(tissue(REFERENCE, 128), "fancy")
    with pytest.raises(ConfigError, match="cannot read"):
        StainNormalizer.load(tmp_path / "missing.json")
