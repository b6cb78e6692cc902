"""The one gray conversion: luminance of an RGB image, rounded to uint8."""

from __future__ import annotations

import numpy as np

LUMA_WEIGHTS = (0.2125, 0.7154, 0.0721)  # ITU-R BT.709, as scikit-image's rgb2gray
_LUMA_TEN_THOUSANDTHS = (2125, 7154, 721)  # the same weights, exact in integers
_BAND_PX = 1 << 17  # pixels converted at a time (the band's temporaries stay in cache)


def red_green_codes(rgb: np.ndarray) -> np.ndarray | None:
    """uint16 ``R + 256 G`` of every pixel of a uint8 (..., 3) array whose pixels are packed
    (3 bytes each, rows contiguous), as a view (no copy), or None for other layouts.

    One lookup in a 65,536-entry table of R and G together then does the work of two
    per-channel lookups (each lookup's cost is mostly converting its indices).
    """
    if rgb.dtype != np.uint8 or rgb.ndim < 2 or rgb.shape[-1] != 3 or not rgb.size:
        return None
    if not rgb.flags.c_contiguous:
        return None
    # byte i of pixel p is at 3 p + i: two bytes from each pixel's first, little-endian
    return np.ndarray(rgb.shape[:-1], np.dtype("<u2"), rgb.reshape(-1), 0, rgb.strides[:-1])


def _float_gray(rgb: np.ndarray) -> np.ndarray:
    """The defining formula: one float64 lookup table per channel, summed R, G, B in that
    order, rounded half to even (the same result on every BLAS)."""
    levels = np.arange(256, dtype=np.float64)
    r, g, b = (levels * w for w in LUMA_WEIGHTS)
    gray = r[rgb[..., 0]]
    gray += g[rgb[..., 1]]
    gray += b[rgb[..., 2]]
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def _integer_gray(rgb: np.ndarray, out: np.ndarray) -> None:
    """:func:`_float_gray` of a band, in uint32: ``n = 2125 R + 7154 G + 721 B`` is the exact
    luminance in ten-thousandths, so ``(n + 5000) // 10000`` is the float result wherever the
    luminance is not exactly halfway between two levels (the float sum is then at least
    1e-4 from the rounding point). Halfway colours (about one in 10,000) go by the formula."""
    wr, wg, wb = _LUMA_TEN_THOUSANDTHS
    n = np.multiply(rgb[..., 0], wr, dtype=np.uint32)
    part = np.multiply(rgb[..., 1], wg, dtype=np.uint32)
    n += part
    np.multiply(rgb[..., 2], wb, out=part, dtype=np.uint32)
    n += part
    n += 5000
    q = np.floor_divide(n, 10000)
    np.multiply(q, 10000, out=part)
    out[...] = q
    halfway = part == n
    if halfway.any():
        out[halfway] = _float_gray(rgb[halfway])


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (h, w): ``round(0.2125 R + 0.7154 G + 0.0721 B)``; a 2-D input passes through.

    uint8 input gives, bit for bit, one float64 lookup table per channel summed R, G, B in that
    order and rounded half to even, computed in integers in bands of rows (no float copy of
    the image); other dtypes are multiplied out.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.uint8, copy=False)
    if rgb.dtype != np.uint8:
        gray = rgb[..., :3].astype(np.float64) @ np.asarray(LUMA_WEIGHTS)
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    if rgb.ndim != 3:
        return _float_gray(rgb)
    out = np.empty(rgb.shape[:2], np.uint8)
    step = max(1, _BAND_PX // max(rgb.shape[1], 1))
    for r0 in range(0, rgb.shape[0], step):
        _integer_gray(rgb[r0 : r0 + step], out[r0 : r0 + step])
    return out
