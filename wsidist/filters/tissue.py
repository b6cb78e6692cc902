"""Tissue masks: the :class:`Mask` a preset or spec gives on a thumbnail.

The named presets are in :mod:`wsidist.filters.presets`. Any preset can be refined, e.g.
``tissue_mask(rgb, "otsu", ctx, refine="fill_holes |> remove_small_objects(min_um2=5000)")``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .context import FilterContext
from .pens import pen_mask
from .pipeline import Pipeline, parse_pipeline
from .presets import PRESETS

__all__ = ["PRESETS", "Mask", "pen_mask", "tissue_mask"]


@dataclass(frozen=True, eq=False)
class Mask:
    """A bool tissue mask (h, w) and its downsample (level-0 pixels per mask pixel)."""

    array: np.ndarray
    downsample: float

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim != 2:
            raise ValueError(f"a mask must be 2-D, got shape {array.shape}")
        object.__setattr__(self, "array", array.astype(bool, copy=False))
        if not self.downsample > 0:
            raise ValueError(f"downsample must be > 0, got {self.downsample!r}")

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape

    @property
    def fraction(self) -> float:
        """Fraction of pixels that are tissue."""
        return float(self.array.mean()) if self.array.size else 0.0


def tissue_mask(
    rgb: np.ndarray,
    spec_or_preset: str | Mapping | Pipeline = "default",
    ctx: FilterContext | None = None,
    *,
    refine: str | Sequence | None = None,
    keep_steps: bool = False,
) -> tuple[Mask, list[tuple[str, np.ndarray]]]:
    """Tissue mask of a thumbnail with a preset or spec; ``refine`` appends mask -> mask steps.

    Returns the Mask (at the thumbnail's downsample) and the intermediate steps (empty unless
    ``keep_steps``).
    """
    ctx = ctx or FilterContext()
    pipeline = parse_pipeline(spec_or_preset)
    if refine:
        pipeline = pipeline.refine(refine)
    result = pipeline.run(rgb, ctx, keep_steps=keep_steps)
    return Mask(result.mask, ctx.downsample), result.steps
