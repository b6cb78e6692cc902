"""Thresholds: uint8 gray (or rgb where noted) in, bool mask out.

Convention: every threshold keeps the *bright* side (``gray > t``), as in the seed tutorial.
Tissue is darker than the glass, so apply ``complement`` first for tissue masks.
"""

from __future__ import annotations

import numpy as np
from skimage import feature, filters
from skimage.filters import rank
from skimage.morphology import disk

from .color import hsv_saturation

__all__ = [
    "canny",
    "entropy",
    "hysteresis",
    "local_otsu",
    "otsu",
    "otsu_saturation",
    "threshold",
]


def threshold(gray: np.ndarray, threshold: float) -> np.ndarray:
    """True where gray > threshold."""
    return gray > threshold


def otsu(gray: np.ndarray) -> np.ndarray:
    """True where gray is above its Otsu threshold (all False on a constant image)."""
    if gray.min() == gray.max():
        return np.zeros(gray.shape, dtype=bool)
    return gray > filters.threshold_otsu(gray)


def otsu_saturation(rgb: np.ndarray) -> np.ndarray:
    """True where HSV saturation is above its Otsu threshold (stained tissue is saturated)."""
    return otsu(hsv_saturation(rgb))


def local_otsu(gray: np.ndarray, radius_px: int = 3) -> np.ndarray:
    """True where gray exceeds the Otsu threshold of its disk neighbourhood (radius_px)."""
    return gray > rank.otsu(gray, footprint=disk(max(int(radius_px), 1)))


def hysteresis(gray: np.ndarray, low: float = 50, high: float = 100) -> np.ndarray:
    """Hysteresis threshold: pixels > low connected to a pixel > high."""
    if low > high:
        raise ValueError(f"hysteresis needs low <= high, got low={low}, high={high}")
    return filters.apply_hysteresis_threshold(gray, low, high)


def entropy(gray: np.ndarray, neighborhood_px: int = 9, threshold: float = 5.0) -> np.ndarray:
    """True where the local entropy (bits) over a square neighbourhood exceeds threshold."""
    n = max(int(neighborhood_px), 1)
    return rank.entropy(gray, footprint=np.ones((n, n), dtype=np.uint8)) > threshold


def canny(gray: np.ndarray, sigma: float = 1.0, low: float = 0, high: float = 25) -> np.ndarray:
    """Canny edges; thresholds are on the 0-255 intensity scale."""
    return feature.canny(
        gray.astype(np.float64), sigma=sigma, low_threshold=low, high_threshold=high
    )
