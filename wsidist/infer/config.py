"""Typed inference (``wsidist infer``) configuration, loadable from YAML (``kind: infer``) and flags.

Patch geometry: a patch is ``patch_px`` px (the model's input side) at pyramid ``level`` or at
``mpp`` µm/px, or ``patch_um`` µm a side (needs the slide's mpp). Neighbouring patches overlap
by ``overlap`` of their side (0.5: stride = half a patch). The heatmap has ``heatmap_scale``
level-0 px per pixel.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from wsidist.errors import ConfigError
from wsidist.filters import TissueSpec
from wsidist.runtime.jobconfig import JobSpec, StageConfig, merge_job

TTA_NAMES = ("flip", "rot90")


class InferConfig(StageConfig):
    """What inference computes for each slide. Every field but the unhashed ones changes output."""

    unhashed_fields: ClassVar[frozenset[str]] = frozenset({"batch_size", "model_threads"})

    models: tuple[str, ...] = Field(
        (), description="ONNX files, TorchScript files, module:function"
    )
    patch_px: int | None = Field(None, ge=8, le=8192, description="patch side, px at level/mpp")
    patch_um: float | None = Field(None, gt=0, description="patch side, µm (needs mpp)")
    overlap: float = Field(0.5, ge=0, lt=1, description="overlap of neighbouring patches")
    level: int = Field(0, ge=0, description="pyramid level to read")
    mpp: float | None = Field(None, gt=0, description="read at this µm/px instead of a level")
    tta: tuple[str, ...] = Field((), description="test-time augmentations: flip, rot90")
    heatmap_scale: float = Field(32.0, ge=1, le=4096, description="level-0 px per heatmap px")
    tissue: TissueSpec = Field("default", description="tissue preset/spec when no stage-1 mask")
    mask_scale: float = Field(32.0, gt=1, le=1024, description="downsample of a computed mask")
    min_tissue: float = Field(0.0, ge=0, le=1, description="grid patches need more tissue than")
    thresholds: tuple[float, ...] = Field((0.5, 0.9), description="heatmap thresholds for regions")
    classes: tuple[int, ...] | None = Field(None, description="classes for regions (default: all "
                                            "but class 0 when there are several)")  # fmt: skip
    normalize: str | None = Field(None, description="stain normaliser JSON applied to patches")
    batch_size: int = Field(32, ge=1, le=4096, description="patches per model call")
    model_threads: int = Field(1, ge=1, le=256, description="model threads per worker")

    @field_validator("tta")
    @classmethod
    def _known_tta(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if v not in TTA_NAMES]
        if bad:
            raise ValueError(f"unknown augmentation {bad[0]!r} (choose {', '.join(TTA_NAMES)})")
        return tuple(dict.fromkeys(value))

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not (0 < t < 1 and math.isfinite(t)) for t in value):
            raise ValueError(f"thresholds must be probabilities in (0, 1), got {value}")
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _geometry(self) -> InferConfig:
        if self.patch_px is not None and self.patch_um is not None:
            raise ValueError("give patch_px or patch_um, not both")
        if self.mpp is not None and self.level:
            raise ValueError(f"give level or mpp, not both (level={self.level}, mpp={self.mpp})")
        if self.normalize is not None and not self.normalize.endswith(".json"):
            raise ValueError(f"normalize must be a stain normaliser .json, got {self.normalize!r}")
        return self


class InferJob(JobSpec):
    """An inference job: ``inputs`` are a selection Parquet, a stage-1 output or slides."""

    config: InferConfig = Field(default_factory=InferConfig)


def build_infer_job(yaml_path: str | Path | None = None, **overrides: Any) -> InferJob:
    """Merge a ``kind: infer`` job file and CLI overrides (``None``: not given) into a job."""
    job = merge_job(InferJob, "infer", yaml_path, overrides)
    if not job.config.models:
        raise ConfigError("no model given: pass --model (an .onnx file, a TorchScript file or "
                          "module:function)")  # fmt: skip
    return job
