"""Mask refiners (bool mask in, bool mask out) and mask application. Sizes are image pixels."""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage import morphology

__all__ = [
    "apply_mask",
    "square_max",
    "square_min",
    "closing",
    "dilation",
    "erosion",
    "fill_holes",
    "opening",
    "pad",
    "remove_small_holes",
    "remove_small_objects",
]


def remove_small_objects(
    mask: np.ndarray,
    min_px: int = 3000,
    avoid_overmask: bool = True,
    overmask_thresh_pct: float = 95,
) -> np.ndarray:
    """Drop connected objects smaller than min_px pixels (area).

    With avoid_overmask, if overmask_thresh_pct % or more of the image is masked out afterwards
    and min_px > 1, min_px is halved and the removal retried.
    """
    mask = np.asarray(mask, dtype=bool)
    min_size = int(min_px)
    out = _drop_below(mask, min_size)
    while avoid_overmask and min_size > 1 and _masked_out_pct(out) >= overmask_thresh_pct:
        min_size //= 2
        out = _drop_below(mask, min_size)
    return out


def _drop_below(mask: np.ndarray, min_size: int) -> np.ndarray:
    if min_size <= 1:
        return mask.copy()
    return morphology.remove_small_objects(mask, max_size=min_size - 1)


def _masked_out_pct(mask: np.ndarray) -> float:
    return 100.0 * (1.0 - mask.mean()) if mask.size else 0.0


def remove_small_holes(mask: np.ndarray, max_px: int = 3000) -> np.ndarray:
    """Fill holes (background components inside the mask) smaller than max_px pixels."""
    mask = np.asarray(mask, dtype=bool)
    if int(max_px) <= 1:
        return mask.copy()
    return morphology.remove_small_holes(mask, max_size=int(max_px) - 1)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill every hole fully enclosed by the mask."""
    return ndimage.binary_fill_holes(np.asarray(mask, dtype=bool))


def dilation(mask: np.ndarray, radius_px: int = 1) -> np.ndarray:
    """Binary dilation by a disk of radius_px pixels."""
    mask = np.asarray(mask, dtype=bool)
    if radius_px <= 0 or not mask.any():  # (the distance transform is undefined without zeros)
        return mask.copy()
    return morphology.isotropic_dilation(mask, radius_px)


def erosion(mask: np.ndarray, radius_px: int = 1) -> np.ndarray:
    """Binary erosion by a disk of radius_px pixels (the image border does not erode)."""
    mask = np.asarray(mask, dtype=bool)
    if radius_px <= 0 or mask.all():
        return mask.copy()
    return morphology.isotropic_erosion(mask, radius_px)


def opening(mask: np.ndarray, radius_px: int = 1) -> np.ndarray:
    """Binary opening (erosion then dilation) by a disk of radius_px pixels."""
    return dilation(erosion(mask, radius_px), radius_px)


def closing(mask: np.ndarray, radius_px: int = 1) -> np.ndarray:
    """Binary closing (dilation then erosion) by a disk of radius_px pixels."""
    return erosion(dilation(mask, radius_px), radius_px)


def pad(mask: np.ndarray, margin_px: int = 1) -> np.ndarray:
    """Grow the mask by a square margin of margin_px pixels on every side."""
    mask = np.asarray(mask, dtype=bool)
    m = int(margin_px)
    if m <= 0:
        return mask.copy()
    return ndimage.maximum_filter(mask, size=2 * m + 1, mode="constant", cval=False)


def apply_mask(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Copy of the image with pixels outside the mask set to 0."""
    if rgb.shape[:2] != mask.shape:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {rgb.shape[:2]}")
    out = rgb.copy()
    out[~np.asarray(mask, dtype=bool)] = 0
    return out


def _shift_reduce(a: np.ndarray, radius: int, op, fill) -> np.ndarray:
    """``op`` over the (2r+1) x (2r+1) square around every pixel, separably; outside = fill."""
    out = a.copy()
    for axis in (1, 0):
        src = a if axis == 1 else out.copy()  # (the first pass reads the input itself)
        n = src.shape[axis]
        for d in range(1, min(radius, n - 1) + 1):
            lo = [slice(None)] * 2
            hi = [slice(None)] * 2
            lo[axis], hi[axis] = slice(d, None), slice(None, n - d)
            op(out[tuple(lo)], src[tuple(hi)], out=out[tuple(lo)])
            op(out[tuple(hi)], src[tuple(lo)], out=out[tuple(hi)])
    return out


def square_max(a: np.ndarray, radius_px: int = 1) -> np.ndarray:
    """Max over the (2r+1)-square around each pixel (binary dilation for bool); fast, separable."""
    a = np.asarray(a)
    return _shift_reduce(a, int(radius_px), np.logical_or if a.dtype == bool else np.maximum, 0)


def square_min(a: np.ndarray, radius_px: int = 1) -> np.ndarray:
    """Min over the (2r+1)-square around each pixel, clipped at the image edge."""
    a = np.asarray(a)
    return _shift_reduce(a, int(radius_px), np.logical_and if a.dtype == bool else np.minimum, 0)
