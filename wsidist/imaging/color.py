"""The one gray conversion: luminance of an RGB image, rounded to uint8."""

from __future__ import annotations

import numpy as np

LUMA_WEIGHTS = (0.2125, 0.7154, 0.0721)  # ITU-R BT.709, as scikit-image's rgb2gray


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 (h, w): ``round(0.2125 R + 0.7154 G + 0.0721 B)``; a 2-D input passes through.

    uint8 input goes through one float64 lookup table per channel, summed R, G, B in that
    order and rounded half to even (no float copy of the image, and the same result on every
    BLAS); other dtypes are multiplied out.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.uint8, copy=False)
    if rgb.dtype == np.uint8:
        levels = np.arange(256, dtype=np.float64)
        r, g, b = (levels * w for w in LUMA_WEIGHTS)
        gray = r[rgb[..., 0]]
        gray += g[rgb[..., 1]]
        gray += b[rgb[..., 2]]
    else:
        gray = rgb[..., :3].astype(np.float64) @ np.asarray(LUMA_WEIGHTS)
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
