"""Tissue or glass: which output tiles a slide's tissue mask keeps (the margin rule).

A tile is *tissue* when any mask pixel in its box, grown by a margin on every side, is set;
every other tile is *glass*. Mask pixel (i, j) covers level-0 px [j*ds, (j+1)*ds) ×
[i*ds, (i+1)*ds).
"""

from __future__ import annotations

import math

import numpy as np

from wsidist.errors import PyramidError
from wsidist.imaging import box_sums, summed_area_table

__all__ = ["fit_mask", "level_tissue", "quality_sample", "tissue_tiles"]


def tissue_tiles(
    mask: np.ndarray,
    downsample: float,
    width: int,
    height: int,
    tile: int,
    margin_px0: float = 0.0,
) -> np.ndarray:
    """bool (rows, cols): level-0 tile (r, c) is tissue if any mask pixel in its box is set.

    The tile box [c*tile, (c+1)*tile) × [r*tile, (r+1)*tile) (level-0 px) is grown by
    ``margin_px0`` on every side; mask pixel (i, j) covers [j*ds, (j+1)*ds) × [i*ds, (i+1)*ds).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise PyramidError(f"tissue mask must be 2-D, got shape {mask.shape}")
    if not downsample > 0:
        raise PyramidError(f"mask downsample must be > 0, got {downsample}")
    mh, mw = mask.shape
    exp_w, exp_h = math.ceil(width / downsample), math.ceil(height / downsample)
    if abs(mw - exp_w) > 1 or abs(mh - exp_h) > 1:
        raise PyramidError(
            f"tissue mask shape {mask.shape} does not match a {width}×{height} slide at "
            f"downsample {downsample:g} (expected about ({exp_h}, {exp_w}))"
        )
    sat = summed_area_table(mask)

    def bounds(n_tiles: int, n_mask: int) -> tuple[np.ndarray, np.ndarray]:
        start = np.arange(n_tiles) * tile - margin_px0
        stop = (np.arange(n_tiles) + 1) * tile + margin_px0
        lo = np.clip(np.floor(start / downsample), 0, n_mask).astype(np.int64)
        hi = np.clip(np.ceil(stop / downsample), 0, n_mask).astype(np.int64)
        return lo, hi

    x0, x1 = bounds(math.ceil(width / tile), mw)
    y0, y1 = bounds(math.ceil(height / tile), mh)
    return box_sums(sat, y0[:, None], x0[None, :], y1[:, None], x1[None, :]) > 0


def fit_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop/pad ``mask`` to ``shape``; cropped rows/columns are OR-ed into the last kept one."""
    h, w = shape
    out = np.zeros((h, w), bool)
    m = mask[:h, :w]
    out[: m.shape[0], : m.shape[1]] = m
    if mask.shape[0] > h:
        out[-1, : m.shape[1]] |= mask[h:, :w].any(axis=0)
    if mask.shape[1] > w:
        out[: m.shape[0], -1] |= mask[:h, w:].any(axis=1)
        if mask.shape[0] > h:
            out[-1, -1] |= bool(mask[h:, w:].any())
    return out


def level_tissue(
    mask: np.ndarray,
    ds_mask: float,
    width0: int,
    level_size: tuple[int, int],
    tile: int,
    margin: float,
) -> np.ndarray:
    """bool (rows, cols) tissue tiles of a source level of ``level_size`` px with ``tile`` px
    tiles: the level-0 mask mapped by ``width0 / level width``, margin in level-0 px."""
    w0, (lw, lh), t = width0, level_size, tile
    d = w0 / lw
    ds = ds_mask / d  # mask pixel (i, j) covers level px [j*ds, (j+1)*ds)
    if d != 1:  # rounding of reduced level sizes can be off by more than a mask pixel
        mask = fit_mask(mask, (int(np.ceil(lh / ds)), int(np.ceil(lw / ds))))
    return tissue_tiles(mask, ds, lw, lh, t, margin / d)


def quality_sample(tissue0: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` tissue tiles, evenly spread, for PSNR/SSIM."""
    idx = np.flatnonzero(tissue0)
    step = max(1, len(idx) // max(n, 1))
    sample = np.zeros(tissue0.size, bool)
    sample[idx[::step][:n]] = True
    return sample.reshape(tissue0.shape)
