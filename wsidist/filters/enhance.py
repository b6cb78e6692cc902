"""Contrast and smoothing: uint8 image (rgb or gray) in, uint8 image of the same shape out."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import exposure
from skimage.filters import rank
from skimage.morphology import disk

from .color import to_uint8

__all__ = [
    "adaptive_equalization",
    "black_to_white",
    "contrast_stretch",
    "histogram_equalization",
    "local_equalization",
    "median_blur",
]


def contrast_stretch(image: np.ndarray, low_pct: float = 40, high_pct: float = 60) -> np.ndarray:
    """Stretch intensities between the low_pct and high_pct percentiles to 0-255."""
    if not 0 <= low_pct < high_pct <= 100:
        raise ValueError(f"need 0 <= low_pct < high_pct <= 100, got {low_pct}, {high_pct}")
    lo, hi = np.percentile(image, (low_pct, high_pct))
    if hi <= lo:
        return image.astype(np.uint8, copy=True)
    out = exposure.rescale_intensity(image, in_range=(lo, hi), out_range=(0, 255))
    return out.astype(np.uint8)


def histogram_equalization(image: np.ndarray, nbins: int = 256) -> np.ndarray:
    """Global histogram equalization, uint8 out."""
    return to_uint8(exposure.equalize_hist(image, nbins=nbins))


def adaptive_equalization(
    image: np.ndarray, nbins: int = 256, clip_limit: float = 0.01
) -> np.ndarray:
    """Contrast-limited adaptive histogram equalization (CLAHE), uint8 out."""
    return to_uint8(exposure.equalize_adapthist(image, nbins=nbins, clip_limit=clip_limit))


def local_equalization(gray: np.ndarray, radius_px: int = 50) -> np.ndarray:
    """Rank equalization of a gray image over a disk of radius_px image pixels."""
    return rank.equalize(gray, footprint=disk(max(int(radius_px), 1)))


def median_blur(image: np.ndarray, size_px: int = 3) -> np.ndarray:
    """Median filter over a size_px x size_px square (per channel for rgb)."""
    size = max(int(size_px), 1)
    if size == 1:
        return image.copy()
    window = (size, size, 1) if image.ndim == 3 else (size, size)
    return ndimage.median_filter(image, size=window, mode="nearest")


def black_to_white(rgb: np.ndarray, threshold: int = 50) -> np.ndarray:
    """Set pixels whose channels are all <= threshold (black: scanner borders, ink) to white."""
    out = rgb.copy()
    dark = (rgb <= threshold).all(axis=-1) if rgb.ndim == 3 else rgb <= threshold
    out[dark] = 255
    return out
