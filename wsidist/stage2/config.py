"""Typed stage-2a (``wsidist rewrite``) configuration, loadable from YAML and CLI flags.

A job file (``kind: rewrite``) holds the job fields (``inputs``, ``out``, ``masks``, ...) and the
rewrite fields (``codec``, ``distance``, ``glass``, ...) side by side, as for stage 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from wsidist.filters import TissueSpec
from wsidist.runtime.jobconfig import JobSpec, StageConfig, merge_job
from wsidist.stage2.pyramid import PyramidOptions


class RewriteConfig(StageConfig):
    """What the rewrite writes for each slide. Every field here changes the output file."""

    codec: Literal["jpegxl", "jpeg"] = Field("jpegxl", description="tile codec of the pyramid")
    distance: float = Field(
        1.0, gt=0, le=25, description="JPEG-XL distance (1 ≈ visually lossless)"
    )
    effort: int = Field(3, ge=1, le=9, description="JPEG-XL encoder effort")
    lossless: bool = Field(False, description="lossless JPEG-XL")
    jpeg_quality: int = Field(90, ge=1, le=100, description="quality of --codec jpeg")
    glass: Literal["empty", "white", "keep"] = Field(
        "empty", description="glass tiles: zero bytes, one white tile, or kept pixels"
    )
    margin_um: float = Field(50.0, ge=0, description="tissue safety margin around the mask, µm")
    tile: int = Field(256, ge=16, le=4096, description="output tile side, px")
    transcode: bool = Field(
        False, description="carry JPEG source tiles over losslessly as JPEG-XL (no pixel changes)"
    )
    match_source: bool = Field(
        True,
        description="JPEG-XL: per slide, the coarsest distance (never finer than `distance`) "
        "whose PSNR matches a JPEG / JPEG 2000 source's own measured PSNR",
    )
    tissue: TissueSpec = Field(
        "default", description="tissue preset/spec when no stage-1 mask exists"
    )
    scale: float = Field(32.0, gt=1, le=1024, description="mask downsample when computing it")
    mpp: float | None = Field(None, gt=0, description="µm per level-0 px; overrides the slide's")

    @field_validator("tile")
    @classmethod
    def _tile_multiple_of_16(cls, value: int) -> int:
        if value % 16:
            raise ValueError(f"tile must be a multiple of 16, got {value}")
        return value

    @model_validator(mode="after")
    def _transcode_is_jpegxl(self) -> RewriteConfig:
        if self.transcode and self.codec != "jpegxl":
            raise ValueError("transcode writes JPEG-XL: it cannot be combined with codec jpeg")
        if self.transcode and self.glass != "empty":
            raise ValueError("transcode drops glass tiles: glass must be 'empty'")
        return self

    @property
    def lossy_jpegxl(self) -> bool:
        """Whether tiles are re-encoded as lossy JPEG-XL (the mode that has a distance)."""
        return self.codec == "jpegxl" and not self.lossless and not self.transcode

    def pyramid_options(self, mpp: float | None) -> PyramidOptions:
        """The :func:`~wsidist.stage2.pyramid.write_pyramid` options for a slide of ``mpp``
        (``mpp`` overrides the slide's)."""
        return PyramidOptions(
            codec=self.codec,
            distance=self.distance,
            effort=self.effort,
            lossless=self.lossless,
            jpeg_quality=self.jpeg_quality,
            glass=self.glass,
            margin_um=self.margin_um,
            tile=self.tile,
            mpp=self.mpp or mpp,
        )


class RewriteJob(JobSpec):
    """A rewrite job: inputs, output root, where the stage-1 masks are, where to run."""

    masks: str | None = Field(None, description="stage-1 output root with masks/ (default: out)")
    config: RewriteConfig = Field(default_factory=RewriteConfig)


def build_rewrite_job(yaml_path: str | Path | None = None, **overrides: Any) -> RewriteJob:
    """Merge a ``kind: rewrite`` job file and CLI overrides (``None``: not given) into a job."""
    return merge_job(RewriteJob, "rewrite", yaml_path, overrides)
