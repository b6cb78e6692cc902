"""Typed stage-1 configuration, loadable from a job YAML and CLI flags, with a stable hash.

A job file (``jobs/*.yaml``) holds the job fields (``inputs``, ``out``, ``scheduler``, ...) and
the stage-1 fields (``tissue``, ``scale``, ``tile_size``, ...) side by side. Only the fields
that change outputs enter :meth:`Stage1Config.config_hash`; where and how the job runs do not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from wsidist.errors import ConfigError
from wsidist.filters import Pipeline, TissueSpec, parse_pipeline
from wsidist.runtime.jobconfig import SCHEMA_VERSION, JobSpec, StageConfig, load_yaml, merge_job
from wsidist.stage1.scoring import (
    PinnedScorer,
    Scorer,
    pin_scorer_spec,
    resolve_scorer,
    scorer_digest,
)

__all__ = [
    "SCHEMA_VERSION",
    "ConfigError",
    "Stage1Config",
    "Stage1Job",
    "build_job",
    "load_yaml",
]


MAX_TILE_PX = 1 << 20  # a tile side larger than any slide; bounds the int64 table columns
MAX_TILE_UM = 100_000.0  # 10 cm


class Stage1Config(StageConfig):
    """What stage 1 computes for each slide. Every field but ``batch`` changes the outputs."""

    unhashed_fields: ClassVar[frozenset[str]] = frozenset({"batch"})
    alternatives: ClassVar[tuple[frozenset[str], ...]] = (frozenset({"tile_size", "tile_um"}),)

    tissue: TissueSpec = Field(
        "auto", description="tissue preset name, filter spec string, or its YAML/dict form"
    )
    refine: str | None = Field(
        None, description="mask refiners appended to the tissue pipeline, e.g. 'fill_holes'"
    )
    scale: float = Field(32.0, gt=1, le=1024, description="downsample of the filtered image")
    tile_size: int | None = Field(None, gt=0, le=MAX_TILE_PX, description="tile side in level-0 px")
    tile_um: float | None = Field(
        None, gt=0, le=MAX_TILE_UM, description="tile side in µm (needs mpp)"
    )
    overlap: float = Field(0.0, ge=0, description="tile overlap, in the tile size's unit")
    edge: Literal["keep", "drop"] = Field(
        "keep", description="keep: clipped tiles at the right/bottom edge; drop: whole tiles only"
    )
    mpp: float | None = Field(None, gt=0, description="µm per level-0 px; overrides the slide's")
    scorer: str = Field("seed", description="'seed' or 'module:function' of a tile scorer")
    min_tissue_frac: float = Field(0.5, ge=0, le=1, description="tissue tile threshold")
    best_tiles: int = Field(
        16, ge=0, description="tiles marked tissue_tile when none reaches min_tissue_frac"
    )
    qc: bool = Field(False, description="measure focus of every tissue tile (focus, blurry)")
    blur_threshold: float = Field(
        25.0, ge=0, description="focus (variance of the Laplacian at 1 µm/px) below: blurry"
    )
    batch: bool = Field(False, description="also write every intermediate image")
    # the scorer spec, its file's digest and its rails as the job's driver read them
    # (:meth:`pin_scorer`); it travels with the config (pickled, copied) to the workers, which
    # then read no rails file, to hash or to score
    _pinned: PinnedScorer | None = PrivateAttr(default=None)

    @field_validator("refine")
    @classmethod
    def _refine_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_pipeline("auto").refine(value)
        return value

    def tissue_pipeline(self) -> Pipeline:
        """The tissue pipeline: the preset or spec, with ``refine`` appended."""
        pipeline = parse_pipeline(self.tissue)
        return pipeline.refine(self.refine) if self.refine else pipeline

    @field_validator("scorer")
    @classmethod
    def _scorer_resolves(cls, value: str) -> str:
        resolve_scorer(value)
        return value

    def pin_scorer(self) -> Stage1Config:
        """A copy that carries its scorer file as read now (its digest, its rails): a job's
        driver calls it once, so the job's hashes and scores (on the driver and on every
        worker) read no file and agree with each other, and the next job reads it again."""
        pinned = self.model_copy()
        pinned._pinned = pin_scorer_spec(self.scorer)
        return pinned

    def _pin(self) -> PinnedScorer | None:
        """The job's pin, unless this is a copy with another scorer."""
        pinned = self._pinned
        return pinned if pinned is not None and pinned.spec == self.scorer else None

    def job_scorer(self) -> Scorer:
        """The scorer: as pinned for the job (a rails file's bounds as the driver read them),
        else resolved now (ScorerError names a bad spec or an unreadable file)."""
        pinned = self._pin()
        if pinned is not None and pinned.scorer is not None:
            return pinned.scorer
        return resolve_scorer(self.scorer)

    def config_hash(self) -> str:
        """The fields' hash, with the bounds of a ``rails:FILE`` scorer's file (as pinned for
        the job, else read now): editing the file reruns the slides."""
        pinned = self._pin()
        digest = pinned.digest if pinned is not None else scorer_digest(self.scorer)
        if digest is None:
            return super().config_hash()
        return hashlib.sha256(f"{super().config_hash()}:{digest}".encode()).hexdigest()[:16]

    @model_validator(mode="after")
    def _one_tile_unit(self) -> Stage1Config:
        if self.tile_size is not None and self.tile_um is not None:
            raise ValueError("give tile_size (px) or tile_um (µm), not both")
        side = self.tile_um if self.tile_um is not None else self.tile_size_px
        if self.overlap >= side:
            raise ValueError(f"overlap {self.overlap} must be smaller than the tile size {side}")
        return self

    @property
    def tile_size_px(self) -> int:
        """Tile side in level-0 px when given in px (1024 when neither unit is given)."""
        return self.tile_size if self.tile_size is not None else 1024


class Stage1Job(JobSpec):
    """A stage-1 job: inputs, output root, where to run, and the stage-1 config."""

    config: Stage1Config = Field(default_factory=Stage1Config)
    annotations: str | None = Field(
        None, description="folder or file of GeoJSON/ASAP XML annotations (slide id or stem)"
    )


def build_job(yaml_path: str | Path | None = None, **overrides: Any) -> Stage1Job:
    """Merge a job YAML file and CLI overrides (``None`` means not given) into a job.

    Raises :class:`ConfigError` naming the bad field and value.
    """
    return merge_job(Stage1Job, "stage1", yaml_path, overrides)
