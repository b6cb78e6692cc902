"""Read one level-0 box of a slide as a patch at a pyramid level or at a resolution in µm/px.

The one box reader the extraction, dataset and inference stages share, so a patch a dataset
yields is byte-equal to the patch extraction writes for the same box (a test holds both to it).

Geometry: the output size is computed first, from the box and the request (``size`` × ``size``,
or ``round(w · slide_mpp / mpp)`` px, or the box at the level); then a slightly larger region
is read at the chosen level and the box's exact (sub-pixel) extent inside it is resampled to
that size, so sizes are never off by one and the resampler sees the pixels around the box.
A box that is not square is never stretched by ``size``: it is scaled uniformly and padded with
white (background), as is the part of a box beyond the slide; :func:`is_edge_box` names the
clipped or overhanging boxes an extraction may drop instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from wsidist.errors import ConfigError, SlideError

__all__ = ["EDGE_MODES", "PatchPlan", "PatchSpec", "is_edge_box", "patch_geometry", "read_patch"]

EDGE_MODES = ("pad", "drop")
BACKGROUND = 255  # white: glass
LANCZOS_SUPPORT = 3  # source px each side of a sample, at scale 1


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


@dataclass(frozen=True)
class PatchPlan:
    """How one box is read: ``read_size`` level px from level-0 ``read_xy`` at ``level``; the
    box spans ``box`` (level px, sub-pixel) of that read, resampled to ``content_size`` and
    placed at the top left of an ``out_size`` white canvas; ``padded`` when any output pixel is
    background fill (beyond the slide, or squaring a non-square box)."""

    level: int
    read_xy: tuple[int, int]
    read_size: tuple[int, int]
    box: tuple[float, float, float, float] | None  # None: the read is the output as is
    content_size: tuple[int, int]
    out_size: tuple[int, int]
    padded: bool


def is_edge_box(slide, x: int, y: int, w: int, h: int) -> bool:
    """True for a box reaching beyond the slide, or a non-square box touching its right or
    bottom edge (a tile clipped by the slide's end)."""
    width, height = slide.dimensions
    if x < 0 or y < 0 or x + w > width or y + h > height:
        return True
    return w != h and (x + w >= width or y + h >= height)


def _output_size(slide, w: int, h: int, spec: PatchSpec, ds: float) -> tuple[int, int]:
    if spec.size is not None:
        scale = spec.size / max(w, h)  # uniform: a non-square box is padded, never stretched
        return (max(1, min(spec.size, round(w * scale))), max(1, min(spec.size, round(h * scale))))
    if spec.mpp is not None:
        mpp0 = slide.mpp_x  # round(w · mpp0 / mpp), in this order, as documented
        return max(1, round(w * mpp0 / spec.mpp)), max(1, round(h * mpp0 / spec.mpp))
    return max(1, round(w / ds)), max(1, round(h / ds))


def _span(lo: float, hi: float, scale: float, limit: int) -> tuple[int, int]:
    """Integer read span around [lo, hi) level px: a resampling margin, kept inside
    [0, limit) where the slide has pixels (the box itself is always covered)."""
    margin = math.ceil(LANCZOS_SUPPORT * max(scale, 1.0)) + 1
    a, b = math.floor(lo), math.ceil(hi)
    return min(a, max(0, a - margin)), max(b, min(limit, b + margin))


def patch_geometry(slide, x: int, y: int, w: int, h: int, spec: PatchSpec) -> PatchPlan:
    """The :class:`PatchPlan` of one level-0 box, checked: a box wholly outside the slide (it
    would be a white picture) or a level out of range is a ``SlideError``.

    With ``spec.mpp`` the box is read from the best level for that resolution and resampled to
    ``round(w * slide_mpp / mpp)`` px; ``spec.size`` gives ``size`` × ``size`` (the longer side
    of a non-square box spans it, the rest is white).
    """
    width, height = slide.dimensions
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise SlideError(
            f"box x={x} y={y} {w}×{h} lies wholly outside the slide ({width}×{height} px)"
        )
    if spec.mpp is not None:
        if not slide.mpp_x:
            raise SlideError(f"{slide.url}: slide has no mpp, cannot read at mpp {spec.mpp}")
        level = slide.best_level_for_downsample(spec.mpp / slide.mpp_x)
    else:
        level = spec.level or 0
    if not 0 <= level < slide.level_count:
        raise SlideError(f"{slide.url}: level {level} out of range (0..{slide.level_count - 1})")
    ds = float(slide.level_downsamples[level])
    content = _output_size(slide, w, h, spec, ds)
    out = (spec.size, spec.size) if spec.size is not None else content
    overhang = x < 0 or y < 0 or x + w > width or y + h > height
    padded = overhang or content != out
    box = (x / ds, y / ds, (x + w) / ds, (y + h) / ds)
    aligned = all(float(v).is_integer() for v in box[:2])
    if aligned and content == (round(box[2] - box[0]), round(box[3] - box[1])):
        return PatchPlan(level, (x, y), content, None, content, out, padded)
    if spec.size is None and spec.mpp is None:  # the box at its level, as the level has it
        return PatchPlan(level, (x, y), content, None, content, out, padded)
    lw, lh = slide.level_dimensions[level]
    x0, x1 = _span(box[0], box[2], (box[2] - box[0]) / content[0], lw)
    y0, y1 = _span(box[1], box[3], (box[3] - box[1]) / content[1], lh)
    inner = (box[0] - x0, box[1] - y0, box[2] - x0, box[3] - y0)
    read_xy = (round(x0 * ds), round(y0 * ds))
    return PatchPlan(level, read_xy, (x1 - x0, y1 - y0), inner, content, out, padded)


def prefetch_patches(slide, boxes, spec: PatchSpec) -> None:
    """Fetch in one concurrent batch what :func:`read_patch` of each level-0 ``(x, y, w, h)``
    box will read (a remote slide read by ranges; boxes that would fail are left out)."""
    regions: dict[int, list[tuple[int, int, int, int]]] = {}
    for x, y, w, h in boxes:
        try:
            plan = patch_geometry(slide, x, y, w, h, spec)
        except Exception:  # noqa: BLE001 — its read reports the problem
            continue
        regions.setdefault(plan.level, []).append((*plan.read_xy, *plan.read_size))
    for level, found in regions.items():
        slide.prefetch(level, found)


def read_patch(
    slide, x: int, y: int, w: int, h: int, spec: PatchSpec
) -> tuple[np.ndarray, int, float | None]:
    """(uint8 RGB (h, w, 3), level read, µm per output px or None) for one level-0 box (see
    :func:`patch_geometry`); a box overhanging an edge is white beyond it."""
    plan = patch_geometry(slide, x, y, w, h, spec)
    rgb = slide.read_region(*plan.read_xy, plan.level, plan.read_size)
    if plan.box is not None:
        image = Image.fromarray(rgb)
        rgb = np.asarray(image.resize(plan.content_size, Image.Resampling.LANCZOS, box=plan.box))
    if plan.out_size != plan.content_size:
        canvas = np.full((plan.out_size[1], plan.out_size[0], 3), BACKGROUND, np.uint8)
        canvas[: rgb.shape[0], : rgb.shape[1]] = rgb
        rgb = canvas
    mpp0 = slide.mpp_x
    out_mpp = mpp0 * w / plan.content_size[0] if mpp0 else None
    return rgb, plan.level, out_mpp
