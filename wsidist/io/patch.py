"""Read one level-0 box of a slide as a patch at a pyramid level or at a resolution in µm/px.

The one box reader the dataset and inference stages share. It reads exactly as ``wsidist
extract`` does (same level choice, same read size, same Lanczos resize), so a patch a dataset
yields is byte-equal to the patch extraction writes for the same box (a test holds both to it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wsidist.errors import ConfigError, SlideError

__all__ = ["PatchSpec", "patch_geometry", "read_patch"]


@dataclass(frozen=True)
class PatchSpec:
    """How a box is read: at ``level`` or at ``mpp`` (µm per output px), resized to ``size``."""

    level: int | None = 0
    mpp: float | None = None
    size: int | None = None

    def __post_init__(self) -> None:
        if self.mpp is not None and self.level not in (None, 0):
            raise ConfigError(f"give level or mpp, not both (level={self.level}, mpp={self.mpp})")
        if self.mpp is not None and not (math.isfinite(self.mpp) and self.mpp > 0):
            raise ConfigError(f"mpp must be a positive number, got {self.mpp!r}")
        if self.level is not None and (not isinstance(self.level, int) or self.level < 0):
            raise ConfigError(f"level must be an integer ≥ 0, got {self.level!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
            raise ConfigError(f"size must be a positive integer, got {self.size!r}")
        if self.mpp is not None:
            object.__setattr__(self, "level", None)


def patch_geometry(
    slide, x: int, y: int, w: int, h: int, spec: PatchSpec
) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(level read, size read, output size) of one level-0 box, checked: a box wholly outside
    the slide (it would be a white picture) or a level out of range is a ``SlideError``.

    With ``spec.mpp`` the box is read from the best level for that resolution and resized to
    ``round(w * slide_mpp / mpp)`` px; ``spec.size`` resizes it to ``size`` × ``size``.
    """
    width, height = slide.dimensions
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise SlideError(
            f"box x={x} y={y} {w}×{h} lies wholly outside the slide ({width}×{height} px)"
        )
    target = None
    if spec.mpp is not None:
        mpp0 = slide.mpp_x
        if not mpp0:
            raise SlideError(f"{slide.url}: slide has no mpp, cannot read at mpp {spec.mpp}")
        ratio = spec.mpp / mpp0
        level = slide.best_level_for_downsample(ratio)
        target = (max(1, round(w / ratio)), max(1, round(h / ratio)))
    else:
        level = spec.level or 0
    if not 0 <= level < slide.level_count:
        raise SlideError(f"{slide.url}: level {level} out of range (0..{slide.level_count - 1})")
    ds = slide.level_downsamples[level]
    read_size = (max(1, round(w / ds)), max(1, round(h / ds)))
    if spec.size is not None:
        target = (spec.size, spec.size)
    return level, read_size, target or read_size


def read_patch(
    slide, x: int, y: int, w: int, h: int, spec: PatchSpec
) -> tuple[np.ndarray, int, float | None]:
    """(uint8 RGB (h, w, 3), level read, µm per output px or None) for one level-0 box (see
    :func:`patch_geometry`); a box overhanging an edge is white beyond it."""
    level, read_size, out_size = patch_geometry(slide, x, y, w, h, spec)
    rgb = slide.read_region(x, y, level, read_size)
    if out_size != (rgb.shape[1], rgb.shape[0]):
        rgb = np.asarray(Image.fromarray(rgb).resize(out_size, Image.Resampling.LANCZOS))
    mpp0 = slide.mpp_x
    out_mpp = mpp0 * w / rgb.shape[1] if mpp0 else None
    return rgb, level, out_mpp
