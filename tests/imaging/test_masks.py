"""imaging.mask_metrics and imaging.masks against hand-computed values on small arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely

from wsidist.imaging.contours import rasterise
from wsidist.imaging.mask_metrics import Counts, confusion, mean_of, scores
from wsidist.imaging.masks import (
    box_union_mask,
    decode_mask,
    encode_mask_png,
    grid_shape,
    resample_mask,
    smooth_mask,
)

P = np.array([[1, 1, 0], [0, 1, 0]], bool)
G = np.array([[1, 0, 0], [1, 1, 0]], bool)
EMPTY = np.zeros((2, 3), bool)


def test_metrics_by_hand():
    c = confusion(P, G)
    assert c == Counts(tp=2, fp=1, fn=1, tn=2)
    s = scores(c)
    assert s["dice"] == pytest.approx(4 / 6)
    assert s["jaccard"] == pytest.approx(2 / 4)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["accuracy"] == pytest.approx(4 / 6)
    s = scores(confusion(P, P))
    assert s == {"dice": 1.0, "jaccard": 1.0, "precision": 1.0, "recall": 1.0, "accuracy": 1.0}
    s = scores(confusion(P, ~P))  # disjoint and complementary
    assert s["dice"] == 0 and s["jaccard"] == 0 and s["accuracy"] == 0


def test_empty_masks_are_defined():
    # two empty masks agree perfectly
    assert scores(confusion(EMPTY, EMPTY)) == dict.fromkeys(
        ("dice", "jaccard", "precision", "recall", "accuracy"), 1.0
    )
    # nothing predicted, something true: precision undefined, recall 0
    s = scores(confusion(EMPTY, G))
    assert s["dice"] == 0 and s["jaccard"] == 0 and s["recall"] == 0
    assert s["precision"] is None and s["accuracy"] == pytest.approx(3 / 6)
    # something predicted, nothing true: recall undefined, precision 0
    s = scores(confusion(P, EMPTY))
    assert s["dice"] == 0 and s["precision"] == 0 and s["recall"] is None
    # an empty grid has no accuracy
    assert scores(Counts())["accuracy"] is None
    with pytest.raises(ValueError, match="shape"):
        confusion(P, G[:1])


def test_pooled_and_mean_differ_as_they_should():
    small = confusion(np.array([[1, 0]], bool), np.array([[1, 1]], bool))  # recall 1/2
    big = confusion(np.ones((4, 4), bool), np.ones((4, 4), bool))  # recall 1
    pooled = scores(small + big)
    assert pooled["recall"] == pytest.approx(17 / 18)  # every pixel weighs the same
    mean = mean_of([scores(small), scores(big)])
    assert mean["recall"] == pytest.approx(0.75)  # every slide weighs the same
    undefined = scores(confusion(EMPTY, G))  # precision None is skipped, not a zero
    assert mean_of([undefined, scores(big)])["precision"] == 1.0
    assert mean_of([])["dice"] is None


def test_box_union_is_exact_at_scale_1_and_the_centre_rule_elsewhere():
    rng = np.random.default_rng(3)
    n = 40
    x, y = rng.integers(-20, 200, n), rng.integers(-20, 150, n)
    w, h = rng.integers(1, 60, n), rng.integers(1, 60, n)
    shape = grid_shape(230, 170, 1)
    naive = np.zeros(shape, bool)
    for bx, by, bw, bh in zip(x, y, w, h):
        naive[max(by, 0) : max(by + bh, 0), max(bx, 0) : max(bx + bw, 0)] = True
    got = box_union_mask(x, y, w, h, shape)
    assert np.array_equal(got, naive)
    clip = shapely.box(0, 0, 230, 170)
    union = shapely.union_all(shapely.box(x, y, x + w, y + h)).intersection(clip)
    assert got.sum() == union.area
    # off-grid boxes at downsample 7: equal to shapely's centre-inside rasterisation
    fx, fy = x + rng.random(n) * 3, y + rng.random(n) * 3
    for d in (7, 2.5):
        boxes = list(shapely.box(fx, fy, fx + w, fy + h))
        expected = rasterise(boxes, grid_shape(230, 170, d), d)
        assert np.array_equal(box_union_mask(fx, fy, w, h, grid_shape(230, 170, d), d), expected)
    assert not box_union_mask([], [], [], [], (3, 4)).any()


def test_resample_matches_brute_force_area_coverage():
    rng = np.random.default_rng(5)
    src = rng.random((12, 17)) < 0.4  # 3 level-0 px per pixel
    for grid_px0 in (2, 5, 6, 1):
        shape = grid_shape(17 * 3, 12 * 3, grid_px0)
        fine = np.kron(src, np.ones((3, 3), bool))  # level-0 px
        pad = np.zeros((shape[0] * grid_px0, shape[1] * grid_px0), bool)
        pad[: fine.shape[0], : fine.shape[1]] = fine[: pad.shape[0], : pad.shape[1]]
        frac = pad.reshape(shape[0], grid_px0, shape[1], grid_px0).mean(axis=(1, 3))
        got = resample_mask(src, (3, 3), (grid_px0, grid_px0), shape)
        assert np.array_equal(got, frac >= 0.5), grid_px0
    # the same grid: unchanged; a shape mismatch crops or pads with unset pixels
    assert np.array_equal(resample_mask(src, (3, 3), (3, 3), src.shape), src)
    assert not resample_mask(src, (3, 3), (3, 3), (13, 18))[12:].any()


def test_smoothing_rounds_convex_corners_only():
    mask = np.zeros((120, 160), bool)
    mask[20:100, 20:140] = True
    mask[20:60, 100:140] = False  # an L shape: 5 convex corners, 1 concave
    for diameter in (10, 20, 30):
        r = diameter / 2
        out = smooth_mask(mask, diameter)
        assert not (out & ~mask).any()  # an opening never adds
        removed = int((mask & ~out).sum())
        # the analytic loss is (1 - π/4) r² per convex corner; a pixel of slack per unit of r
        bound = 5 * ((1 - math.pi / 4) * r * r + 2 * r)
        assert 5 * (1 - math.pi / 4) * r * r * 0.5 < removed <= bound, (diameter, removed)
        assert out[59, 99] and out[60, 100]  # the concave corner stays
        assert np.array_equal(out[40:80, 40:80], mask[40:80, 40:80])  # far from corners: kept
    edge = np.zeros((50, 50), bool)
    edge[:, :30] = True  # touching the image border: the border does not erode it
    assert np.array_equal(smooth_mask(edge, 12), edge)
    thin = np.zeros((50, 50), bool)
    thin[10:14, 5:45] = True  # narrower than the disk: it goes
    assert not smooth_mask(thin, 8).any()
    assert np.array_equal(smooth_mask(thin, 0), thin)


def test_mask_png_carries_its_grid_and_npy_reads(tmp_path):
    data = encode_mask_png(P, {"downsample": 4.0, "width0": 12})
    mask, grid = decode_mask(data, "a.png")
    assert np.array_equal(mask, P) and grid == {"downsample": 4.0, "width0": 12}
    path = tmp_path / "m.npy"
    np.save(path, G.astype(np.uint8))
    mask, grid = decode_mask(path.read_bytes(), "m.npy")
    assert np.array_equal(mask, G) and grid == {}
    with pytest.raises(ValueError, match="memory budget"):
        decode_mask(data, "a.png", max_px=5)
