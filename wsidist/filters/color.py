"""Colour conversions: rgb uint8 (h, w, 3) in, uint8 image out."""

from __future__ import annotations

import numpy as np
from skimage import color, exposure

from wsidist.imaging.color import rgb_to_gray

__all__ = [
    "complement",
    "eosin",
    "hematoxylin",
    "hsv_hue",
    "hsv_saturation",
    "hsv_value",
    "rgb_to_gray",
    "rgb_to_hed",
    "rgb_to_hsv",
    "to_uint8",
]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] -> uint8 in [0, 255] (rounded, clipped); uint8 passes through."""
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(np.asarray(image, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def complement(image: np.ndarray) -> np.ndarray:
    """255 - image for a uint8 rgb or gray image."""
    return (255 - image.astype(np.uint8, copy=False)).astype(np.uint8)


def rgb_to_hed(rgb: np.ndarray) -> np.ndarray:
    """Colour deconvolution into haematoxylin, eosin, DAB; each channel min-max rescaled to uint8."""
    hed = color.rgb2hed(rgb[..., :3])
    out = np.empty(hed.shape, dtype=np.uint8)
    for c in range(3):
        out[..., c] = exposure.rescale_intensity(hed[..., c], out_range=(0, 255)).astype(np.uint8)
    return out


def hematoxylin(rgb: np.ndarray) -> np.ndarray:
    """Haematoxylin channel of the HED deconvolution, rescaled to uint8 (h, w)."""
    hed = color.rgb2hed(rgb[..., :3])[..., 0]
    return exposure.rescale_intensity(hed, out_range=(0, 255)).astype(np.uint8)


def eosin(rgb: np.ndarray) -> np.ndarray:
    """Eosin channel of the HED deconvolution, rescaled to uint8 (h, w)."""
    hed = color.rgb2hed(rgb[..., :3])[..., 1]
    return exposure.rescale_intensity(hed, out_range=(0, 255)).astype(np.uint8)


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """HSV of an rgb image, float64 (h, w, 3) with every channel in [0, 1]."""
    return color.rgb2hsv(rgb[..., :3])


def hsv_hue(rgb: np.ndarray) -> np.ndarray:
    """Hue channel, uint8 (0-255 spans the full hue circle)."""
    return to_uint8(rgb_to_hsv(rgb)[..., 0])


def hsv_saturation(rgb: np.ndarray) -> np.ndarray:
    """Saturation channel, uint8."""
    return to_uint8(rgb_to_hsv(rgb)[..., 1])


def hsv_value(rgb: np.ndarray) -> np.ndarray:
    """Value (max of r, g, b) channel, uint8."""
    return rgb[..., :3].max(axis=-1).astype(np.uint8)
