"""FilterContext: the scale of the image a pipeline runs on, and unit conversion of sizes."""

from __future__ import annotations

import math
from dataclasses import dataclass

from wsidist.errors import PipelineError

__all__ = ["LENGTH_UNITS", "AREA_UNITS", "FilterContext"]

#: unit suffixes accepted for lengths and areas in pipeline specs
LENGTH_UNITS: tuple[str, ...] = ("px", "px0", "um")
AREA_UNITS: tuple[str, ...] = ("px", "px0", "um2")


@dataclass(frozen=True)
class FilterContext:
    """downsample: level-0 pixels per image pixel; mpp: level-0 µm per pixel (None if unknown)."""

    downsample: float = 1.0
    mpp: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.downsample) and self.downsample > 0):
            raise PipelineError(f"downsample must be a positive number, got {self.downsample!r}")
        if self.mpp is not None and not (math.isfinite(self.mpp) and self.mpp > 0):
            raise PipelineError(f"mpp must be a positive number or None, got {self.mpp!r}")

    @property
    def um_per_px(self) -> float | None:
        """Microns per image pixel, or None without mpp."""
        return None if self.mpp is None else self.mpp * self.downsample

    def to_image_px(self, value: float, unit: str, *, area: bool, label: str = "size") -> float:
        """Convert a length (or area if ``area``) given in ``unit`` to image pixels (float).

        ``label`` names the parameter in the error raised when µm are used without mpp.
        """
        power = 2 if area else 1
        if unit == "px":
            return float(value)
        if unit == "px0":
            return float(value) / self.downsample**power
        if unit in ("um", "um2"):
            if self.mpp is None:
                base = label.rsplit("_", 1)[0]
                raise PipelineError(
                    f"parameter {label!r} is in µm, but the slide has no mpp (microns per pixel); "
                    f"pass --mpp or give the size in pixels ({base}_px or {base}_px0)"
                )
            return float(value) / (self.mpp * self.downsample) ** power
        raise PipelineError(f"unknown size unit {unit!r} in {label!r}")
