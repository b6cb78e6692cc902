"""Unit tests of the pure filter functions on small arrays with known answers."""

import numpy as np
import pytest

from wsidist import filters as F

WHITE = (255, 255, 255)
PINK = (230, 150, 200)  # eosin-ish tissue
PURPLE = (120, 60, 150)  # hematoxylin-ish tissue


def canvas(h=40, w=40, colour=WHITE):
    img = np.empty((h, w, 3), np.uint8)
    img[:] = colour
    return img


def bimodal(h=40, w=40):
    """Left half dark (60), right half bright (200), plus mild noise."""
    rng = np.random.default_rng(0)
    g = np.full((h, w), 60, np.int16)
    g[:, w // 2 :] = 200
    return np.clip(g + rng.integers(-10, 11, g.shape), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- colour


def test_rgb_to_gray_luminance_and_complement():
    img = canvas(2, 2, (255, 0, 0))
    img[1, 1] = (0, 255, 0)
    gray = F.rgb_to_gray(img)
    assert gray.dtype == np.uint8 and gray.shape == (2, 2)
    assert gray[0, 0] == round(0.2125 * 255) and gray[1, 1] == round(0.7154 * 255)
    assert F.complement(gray)[0, 0] == 255 - gray[0, 0]
    assert (F.complement(img)[0, 0] == (0, 255, 255)).all()


def test_hed_channels_rank_stains():
    img = canvas(2, 2, PURPLE)
    img[0, 0] = PINK
    img[0, 1] = WHITE
    h, e = F.hematoxylin(img), F.eosin(img)
    assert h.dtype == np.uint8 and e.dtype == np.uint8
    assert h[1, 1] > h[0, 0] and h[1, 1] > h[0, 1]  # purple has the most haematoxylin
    assert F.rgb_to_hed(img).shape == (2, 2, 3)


def test_hsv_helpers():
    img = canvas(1, 2, (255, 0, 0))
    img[0, 1] = (128, 128, 128)
    assert F.hsv_saturation(img).tolist() == [[255, 0]]
    assert F.hsv_value(img).tolist() == [[255, 128]]
    assert F.rgb_to_hsv(img).shape == (1, 2, 3)


# ---------------------------------------------------------------- thresholds


def test_basic_threshold_and_otsu_split_bimodal():
    g = bimodal()
    assert F.threshold(g, threshold=128)[:, 20:].all()
    mask = F.otsu(g)
    assert mask.dtype == bool
    assert mask[:, 20:].all() and not mask[:, :20].any()
    assert not F.otsu(np.full((5, 5), 7, np.uint8)).any()  # constant image: nothing


def test_hysteresis_keeps_weak_pixels_connected_to_strong():
    g = np.zeros((5, 9), np.uint8)
    g[2, 1:4] = (120, 70, 70)  # strong seed with weak neighbours
    g[2, 6:8] = 70  # weak, isolated
    mask = F.hysteresis(g, low=50, high=100)
    assert mask[2, 1:4].all() and not mask[2, 6:8].any()
    with pytest.raises(ValueError):
        F.hysteresis(g, low=100, high=50)


def test_local_otsu_entropy_canny():
    g = bimodal()
    assert F.local_otsu(g, radius_px=3).shape == g.shape
    flat = np.full((30, 30), 100, np.uint8)
    noisy = np.random.default_rng(1).integers(0, 256, (30, 30)).astype(np.uint8)
    assert not F.entropy(flat).any()
    assert F.entropy(noisy, neighborhood_px=9, threshold=5).mean() > 0.9
    edges = F.canny(bimodal())
    assert edges[:, 18:22].any() and not edges[:, :15].any() and not edges[:, 25:].any()


def test_otsu_saturation_finds_stained_pixels():
    img = canvas(20, 20)
    img[5:15, 5:15] = PINK
    mask = F.otsu_saturation(img)
    assert mask[5:15, 5:15].all() and mask.sum() == 100


# ---------------------------------------------------------------- enhance


def test_contrast_stretch_and_equalizations_return_uint8():
    g = bimodal()
    stretched = F.contrast_stretch(g, low_pct=40, high_pct=60)
    assert stretched.dtype == np.uint8 and stretched.min() == 0 and stretched.max() == 255
    for out in (
        F.histogram_equalization(g),
        F.adaptive_equalization(g),
        F.local_equalization(g, radius_px=5),
        F.adaptive_equalization(canvas(16, 16, PINK)),
    ):
        assert out.dtype == np.uint8
    with pytest.raises(ValueError):
        F.contrast_stretch(g, low_pct=60, high_pct=40)


def test_median_blur_removes_salt_and_black_to_white():
    img = canvas(9, 9, PINK)
    img[4, 4] = (0, 0, 0)
    assert (F.median_blur(img, size_px=3)[4, 4] == PINK).all()
    whitened = F.black_to_white(img, threshold=50)
    assert (whitened[4, 4] == WHITE).all() and (whitened[0, 0] == PINK).all()


# ---------------------------------------------------------------- background and pens


def test_red_pen_flags_red_stroke_on_white():
    img = canvas()
    img[10:12, :] = (200, 30, 40)  # red ink
    keep = F.red_pen(img)
    assert not keep[10:12].any() and keep[:10].all() and keep[12:].all()
    assert F.green_pen(img).all() and F.blue_pen(img).all()


def test_green_and_blue_pens():
    img = canvas()
    img[0:3] = (40, 140, 120)  # green ink
    img[5:8] = (40, 60, 180)  # blue ink
    img[20:] = PINK  # tissue is not pen
    assert not F.green_pen(img)[0:3].any() and F.green_pen(img)[20:].all()
    assert not F.blue_pen(img)[5:8].any() and F.blue_pen(img)[20:].all()
    pen = F.pen_mask(img)
    assert pen[0:3].all() and pen[5:8].all() and not pen[20:].any()


def test_channel_filter_semantics():
    px = canvas(1, 1, (200, 50, 60))
    assert not F.red_filter(px, 150, 80, 90)[0, 0]
    assert F.red_filter(px, 210, 80, 90)[0, 0]  # r not above red_lower
    px = canvas(1, 1, (50, 200, 150))
    assert not F.green_filter(px, 100, 150, 100)[0, 0]
    px = canvas(1, 1, (50, 60, 200))
    assert not F.blue_filter(px, 100, 100, 150)[0, 0]
    assert F.blue_filter(px, 100, 50, 150)[0, 0]  # g not below green_upper


def test_grays_flags_gray_white_black():
    img = canvas(1, 4, WHITE)
    img[0, 1] = (128, 135, 120)
    img[0, 2] = (0, 0, 0)
    img[0, 3] = PINK
    assert F.grays(img, tolerance=15).tolist() == [[False, False, False, True]]
    assert F.grays(img, tolerance=5)[0, 1]  # 15-level spread is colour at tolerance 5


def test_green_channel_threshold_and_overmask_avoidance():
    img = canvas(10, 10, (240, 210, 240))  # pale: green 210 >= 200 everywhere
    img[0, 0] = (100, 100, 100)
    plain = F.green_channel(img, green_thresh=200, avoid_overmask=False)
    assert plain.sum() == 1
    # 99 % masked out >= 90 %: threshold raised to ceil(27.5 + 200) = 228, then all tissue
    avoided = F.green_channel(img, green_thresh=200)
    assert avoided.all()
    assert F.green_channel(img, green_thresh=211, avoid_overmask=False).all()
    white = canvas(4, 4)  # nothing below 255 at all: gives up at 255
    assert not F.green_channel(white).any()


# ---------------------------------------------------------------- morphology


def blobs():
    m = np.zeros((30, 30), bool)
    m[1:4, 1] = True  # 3 px blob
    m[10:25, 10:25] = True  # 225 px object
    return m


def test_remove_small_objects_removes_tiny_keeps_big():
    out = F.remove_small_objects(blobs(), min_px=10)
    assert not out[1:4, 1].any() and out[10:25, 10:25].all()
    assert F.remove_small_objects(blobs(), min_px=3).sum() == 228  # size 3 is not < 3


def test_remove_small_objects_overmask_avoidance_halves_min_size():
    m = blobs()  # 228 / 900 = 25 % tissue
    # removing both objects masks out 100 % >= 80 %; halving 400 -> 200 keeps the big one
    # (75 % masked out, under the limit), still dropping the 3 px blob
    out = F.remove_small_objects(m, min_px=400, overmask_thresh_pct=80)
    assert out[10:25, 10:25].all() and not out[1:4, 1].any()
    assert not F.remove_small_objects(m, min_px=400, avoid_overmask=False).any()
    # at 70 % it keeps halving until nothing is removed
    assert F.remove_small_objects(m, min_px=400, overmask_thresh_pct=70).sum() == 228


def test_holes_and_fill():
    m = np.zeros((20, 20), bool)
    m[2:18, 2:18] = True
    m[5, 5] = False  # 1 px hole
    m[8:14, 8:14] = False  # 36 px hole
    small = F.remove_small_holes(m, max_px=10)
    assert small[5, 5] and not small[10, 10]
    assert F.fill_holes(m)[2:18, 2:18].all()


def test_dilation_erosion_opening_closing_pad():
    dot = np.zeros((11, 11), bool)
    dot[5, 5] = True
    d = F.dilation(dot, radius_px=2)
    assert d.sum() == 13  # disk of radius 2
    assert F.erosion(d, radius_px=2).sum() == 1
    assert not F.opening(dot, radius_px=1).any()
    gap = np.ones((9, 9), bool)
    gap[:, 4] = False
    assert F.closing(gap, radius_px=1)[1:-1, 4].all()
    assert F.pad(dot, margin_px=2).sum() == 25  # 5x5 square
    assert (F.dilation(dot, radius_px=0) == dot).all()
    empty, full = np.zeros((5, 5), bool), np.ones((5, 5), bool)
    for op in (F.dilation, F.erosion, F.opening, F.closing):
        assert not op(empty, radius_px=2).any() and op(full, radius_px=2).all()


def test_apply_mask():
    img = canvas(2, 2, PINK)
    out = F.apply_mask(img, np.array([[True, False], [False, True]]))
    assert (out[0, 1] == 0).all() and (out[0, 0] == PINK).all()
    with pytest.raises(ValueError):
        F.apply_mask(img, np.ones((3, 3), bool))


# ---------------------------------------------------------------- segmentation


def test_superpixel_segmentations_paint_mean_colours():
    img = canvas(40, 40)
    img[:, :20] = PURPLE
    for out in (
        F.kmeans_segmentation(img, n_segments=8),
        F.rag_threshold(img, n_segments=8, threshold=9),
    ):
        assert out.dtype == np.uint8 and out.shape == img.shape
        assert len(np.unique(out.reshape(-1, 3), axis=0)) <= 8
        assert (out[:, 25:] == WHITE).all() and (out[:, :15] == PURPLE).all()


def test_fused_pen_tables_equal_the_seed_filters_one_by_one():
    from wsidist.filters import pens

    axes = np.meshgrid(np.arange(256), np.arange(256), np.arange(0, 256, 5), indexing="ij")
    every = np.stack(axes, -1).reshape(-1, 1, 3).astype(np.uint8)
    for one, sets, fused in [
        (pens.red_filter, pens.RED_PEN_THRESHOLDS, pens.red_pen),
        (pens.green_filter, pens.GREEN_PEN_THRESHOLDS, pens.green_pen),
        (pens.blue_filter, pens.BLUE_PEN_THRESHOLDS, pens.blue_pen),
    ]:
        keep = np.ones(every.shape[:2], bool)
        for t in sets:
            keep &= one(every, *t)
        assert np.array_equal(keep, fused(every)), one.__name__
        assert (~keep).any()
