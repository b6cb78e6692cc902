"""The gray conversion: integer arithmetic against the defining float formula, every colour."""

from __future__ import annotations

import numpy as np

from wsidist.imaging import rgb_to_gray
from wsidist.imaging.color import LUMA_WEIGHTS


def _float_formula(rgb: np.ndarray) -> np.ndarray:
    levels = np.arange(256, dtype=np.float64)
    r, g, b = (levels * w for w in LUMA_WEIGHTS)
    return np.clip(np.rint(r[rgb[..., 0]] + g[rgb[..., 1]] + b[rgb[..., 2]]), 0, 255)


def test_gray_of_every_colour_is_the_float_formula():
    halfway_up = halfway_down = 0
    for red in range(0, 256, 16):  # 16 reds at a time: all 2^24 colours, bounded memory
        code = np.arange(red << 16, (red + 16) << 16, dtype=np.uint32).reshape(-1, 4096)
        rgb = np.empty((*code.shape, 3), np.uint8)
        rgb[..., 0], rgb[..., 1], rgb[..., 2] = code >> 16, (code >> 8) & 255, code & 255
        got = rgb_to_gray(rgb)
        assert got.dtype == np.uint8
        assert np.array_equal(got, _float_formula(rgb)), red
        # halfway colours (luminance exactly k + 0.5) go either way, as the float sum does
        r, g, b = (rgb[..., c].astype(np.int64) for c in range(3))
        n = 2125 * r + 7154 * g + 721 * b  # luminance in ten-thousandths, exact
        halfway = n % 10000 == 5000
        up = got[halfway].astype(np.int64) * 10000 > n[halfway]
        halfway_up, halfway_down = halfway_up + up.sum(), halfway_down + (~up).sum()
    assert halfway_up > 100 and halfway_down > 100


def test_gray_of_views_and_alpha():
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (61, 83, 4), dtype=np.uint8)
    for image in (rgba, rgba[::2, ::3], rgba[..., :3], np.asfortranarray(rgba[..., :3])):
        assert np.array_equal(rgb_to_gray(image), _float_formula(image))
    gray = rgba[..., 0]
    assert rgb_to_gray(gray) is gray


def test_red_green_codes_view_packed_pixels_only():
    from wsidist.imaging.color import red_green_codes

    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    for packed in (rgb, rgb[5:9], rgb.reshape(-1, 3), rgb[3]):
        got = red_green_codes(packed)
        assert got is not None and got.dtype == np.uint16 and got.shape == packed.shape[:-1]
        np.testing.assert_array_equal(got, packed[..., 0] + 256 * packed[..., 1].astype(np.uint16))
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    for other in (rgba[..., :3], rgb[:, ::2], rgb.astype(np.uint16), rgb[..., :2], rgb[3, 4]):
        assert red_green_codes(other) is None
