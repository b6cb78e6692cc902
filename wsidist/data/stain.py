"""Fit a stain normaliser on a reference patch (an image file) or a reference slide.

On a slide, the reference pixels are those of ``n_patches`` patches (``patch_px`` a side at
``level``) of a grid over its tissue mask, taken evenly among the patches that are more than
half tissue, so the fit sees the stains at full resolution rather than blurred in a thumbnail.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from wsidist.errors import ConfigError
from wsidist.filters import FilterContext, tissue_mask
from wsidist.imaging import box_sums, summed_area_table
from wsidist.imaging.masks import mask_downsample
from wsidist.imaging.stain import StainNormalizer
from wsidist.io.patch import PatchSpec, read_patch
from wsidist.io.slide import open_slide

__all__ = ["fit_normalizer", "reference_pixels"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def reference_pixels(
    url: str, *, n_patches: int = 16, patch_px: int = 256, level: int = 0,
    tissue: str = "default", mask_scale: float = 32.0,
) -> np.ndarray:  # fmt: skip
    """uint8 (n, 3) pixels of a reference: all of an image file, tissue patches of a slide."""
    if str(url).lower().endswith(IMAGE_SUFFIXES):
        try:
            return np.asarray(Image.open(url).convert("RGB")).reshape(-1, 3)
        except OSError as exc:
            raise ConfigError(f"cannot read reference image {url}: {exc}") from None
    with open_slide(str(url)) as slide:
        width, height = slide.dimensions
        rgb = slide.thumbnail(mask_scale)
        ds = mask_downsample(width, height, rgb.shape, mask_scale)
        mask, _ = tissue_mask(rgb, tissue, FilterContext(downsample=ds, mpp=slide.mpp_x))
        if level >= slide.level_count:
            raise ConfigError(f"{url}: level {level} out of range (0..{slide.level_count - 1})")
        side = round(patch_px * slide.level_downsamples[level])
        sat = summed_area_table(mask.array.astype(np.uint8))
        xs = np.arange(0, max(1, width - side + 1), side)
        ys = np.arange(0, max(1, height - side + 1), side)
        gx, gy = (a.ravel() for a in np.meshgrid(xs, ys))
        x0, y0 = (gx / ds).astype(int), (gy / ds).astype(int)
        x1 = np.minimum(np.ceil((gx + side) / ds).astype(int), mask.shape[1])
        y1 = np.minimum(np.ceil((gy + side) / ds).astype(int), mask.shape[0])
        frac = box_sums(sat, y0, x0, y1, x1) / np.maximum((x1 - x0) * (y1 - y0), 1)
        order = [i for i in np.argsort(-frac, kind="stable") if frac[i] > 0.5]
        if not order:
            raise ConfigError(f"{url}: no tissue patch to fit a stain normaliser on")
        picks = order[:: max(1, len(order) // n_patches)][:n_patches]
        spec = PatchSpec(level=level, size=patch_px)
        patches = [read_patch(slide, gx[i], gy[i], side, side, spec)[0] for i in picks]
    return np.concatenate([p.reshape(-1, 3) for p in patches])


def fit_normalizer(url: str, method: str = "macenko", **kwargs) -> StainNormalizer:
    """A normaliser fitted on a reference image file or slide (see :func:`reference_pixels`)."""
    return StainNormalizer.fit(reference_pixels(url, **kwargs), method)
