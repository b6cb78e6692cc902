"""Tissue masks: the :class:`Mask` a preset or spec gives on a thumbnail, and the full
:class:`~wsidist.filters.auto.TissueDetection` (coverage, ink, artefacts) stage 1 uses.

The named presets are in :mod:`wsidist.filters.presets`. Any preset can be refined, e.g.
``tissue_mask(rgb, "otsu", ctx, refine="fill_holes |> remove_small_objects(min_um2=5000)")``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from .auto import TissueDetection, detect_tissue
from .context import FilterContext
from .coverage import coverage_fraction
from .glass import estimate_background
from .ink import ink_mask
from .pens import pen_mask
from .pipeline import Pipeline, call_kwargs, parse_pipeline
from .presets import PRESETS
from .registry import FILTERS
from .spec import Call, Pipe

__all__ = ["PRESETS", "Mask", "TissueDetection", "detect", "pen_mask", "tissue_mask"]

_ADAPTIVE = {"auto_tissue": None, "fluorescence_tissue": "fluorescence"}


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
    spec_or_preset: str | Mapping | Pipeline = "auto",
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


def _split(pipeline: Pipeline) -> tuple[Call | None, list[Call]]:
    """(the adaptive detector call, the refiners after it), or (None, []) for other specs."""
    node, refiners = pipeline.root, []
    while isinstance(node, Pipe) and node.op == "|>":
        refiners.insert(0, node.step)
        node = node.source
    if isinstance(node, Call) and node.name in _ADAPTIVE:
        return node, refiners
    return None, []


def _object_px(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask, np.ones((3, 3), bool))
    return np.bincount(labels.reshape(-1), minlength=n + 1)[1:]


def detect(
    rgb: np.ndarray,
    spec_or_preset: str | Mapping | Pipeline = "auto",
    ctx: FilterContext | None = None,
    *,
    keep_steps: bool = False,
) -> tuple[TissueDetection, list[tuple[str, np.ndarray]]]:
    """The tissue mask of any preset or spec with its sub-pixel coverage, pen ink and artefacts.

    The adaptive presets (``auto``, ``fluorescence``, optionally refined) report what they
    found themselves; for every other spec the mask is the spec's, and ink and coverage are
    measured afterwards, coverage clamped to agree with the mask (>= 50 % exactly on it).
    """
    ctx = ctx or FilterContext()
    pipeline = parse_pipeline(spec_or_preset)
    pipeline.check(ctx)
    rgb = np.asarray(rgb)[..., :3]
    steps: list[tuple[str, np.ndarray]] = []

    def record(name: str, array: np.ndarray) -> None:
        if keep_steps:
            steps.append((f"{len(steps) + 1:02d}-{name}", array))

    call, refiners = _split(pipeline)
    if call is not None:
        kwargs = call_kwargs(call, ctx)
        det = detect_tissue(rgb, force=_ADAPTIVE[call.name], record=record, **kwargs)
        if not refiners:
            return det, steps
        mask = det.mask
        for step in refiners:
            mask = np.asarray(FILTERS[step.name].func(mask, **call_kwargs(step, ctx)), bool)
        glass = ~mask & ~det.ink & ~det.artefacts
        cov = coverage_fraction(rgb, mask, det.background, glass)
        record("refined", mask)
        return replace(det, mask=mask, coverage=cov, object_px=_object_px(mask)), steps
    result = pipeline.run(rgb, ctx, keep_steps=keep_steps)
    steps.extend(result.steps)
    mask = np.asarray(result.mask, bool)
    bg = estimate_background(rgb)
    shape = mask.shape
    ink, ink_cls = (np.zeros(shape, bool), np.zeros(shape, np.uint8))
    if not bg.dark:
        ink, ink_cls = ink_mask(rgb)
    cov = coverage_fraction(rgb, mask, bg, ~mask & ~ink)
    det = TissueDetection(mask, cov, ink, ink_cls, np.zeros(shape, bool), bg, _object_px(mask))
    return det, steps
