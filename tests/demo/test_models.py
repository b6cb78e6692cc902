"""The demo models give tissue probabilities with known answers on a generated stained slide."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.demo.models import coloured, stained
from wsidist.demo.stained import StainedSpec, StainedTruth, write_stained_slide
from wsidist.infer.models import load_model
from wsidist.io.slide import open_slide

SIDE = 256


@pytest.fixture(scope="module")
def stained_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("demo_models") / "stained.tiff"
    spec = StainedSpec(width=2048, height=2048, seed=5, dark=None)
    return path, write_stained_slide(path, spec)


def _patches(path, truth: StainedTruth, inside: bool) -> np.ndarray:
    """Level-0 patches of the 256-px grid wholly inside (or wholly outside) the tissue."""
    fine = truth.tissue_mask(32)  # 8 × 8 mask px per patch
    n_rows, n_cols = fine.shape[0] // 8, fine.shape[1] // 8
    cells = fine[: n_rows * 8, : n_cols * 8].reshape(n_rows, 8, n_cols, 8).mean((1, 3))
    rows, cols = np.nonzero(cells == 1) if inside else np.nonzero(cells == 0)
    assert rows.size
    with open_slide(str(path)) as slide:
        return np.stack(
            [slide.read_region(c * SIDE, r * SIDE, 0, (SIDE, SIDE)) for r, c in zip(rows, cols)]
        )


@pytest.mark.parametrize("model", [stained, coloured])
def test_tissue_is_likely_and_glass_is_not(stained_slide, model):
    path, truth = stained_slide
    tissue = model(_patches(path, truth, inside=True))
    glass = model(_patches(path, truth, inside=False))
    assert tissue.shape == (len(tissue), 2) and tissue.dtype == np.float32
    np.testing.assert_allclose(tissue.sum(1), 1, atol=1e-6)
    assert np.median(tissue[:, 1]) > 0.8
    assert glass[:, 1].max() < 0.2


def test_the_cues_differ_where_they_should():
    white = np.full((1, 8, 8, 3), 242, np.uint8)
    pink = np.tile(np.array([200, 120, 170], np.uint8), (1, 8, 8, 1))
    gray = np.full((1, 8, 8, 3), 90, np.uint8)  # dark but neutral: dense, not coloured
    batch = np.concatenate([white, pink, gray])
    np.testing.assert_allclose(stained(batch)[:, 1], [0, 1, 1])
    np.testing.assert_allclose(coloured(batch)[:, 1], [0, 1, 0])


def test_they_load_as_inference_models_and_are_invariant_under_tta():
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    for name in ("stained", "coloured"):
        model = load_model(f"wsidist.demo.models:{name}")
        out = model(batch)
        np.testing.assert_allclose(out, model(batch[:, ::-1].copy()))
        np.testing.assert_allclose(out, model(np.rot90(batch, axes=(1, 2)).copy()))


def test_a_batch_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        stained(np.zeros((4, 4, 3), np.uint8))
