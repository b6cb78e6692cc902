"""Brute-force references the tests compare wsidist's fast paths with."""

from __future__ import annotations

import math

import numpy as np


def reference_area_average(img: np.ndarray, scale: float) -> np.ndarray:
    """Brute force: dense overlap matrices over the whole image, float64, then rounding."""

    def weights(n: int, n_out: int) -> np.ndarray:
        k = np.arange(n)[None, :]
        j = np.arange(n_out)[:, None]
        lo, hi = j * scale, np.minimum((j + 1) * scale, n)
        return np.clip(np.minimum(k + 1, hi) - np.maximum(k, lo), 0, None)

    h, w = img.shape[:2]
    wy, wx = weights(h, math.ceil(h / scale)), weights(w, math.ceil(w / scale))
    img = img.astype(np.float64)
    out = np.stack([wy @ img[..., c] @ wx.T for c in range(3)], axis=-1)
    area = wy.sum(1)[:, None, None] * wx.sum(1)[None, :, None]
    return np.rint(out / area).astype(np.uint8)
