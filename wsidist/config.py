"""Typed stage-1 job configuration, loadable from YAML and CLI flags, with a stable hash.

A job file (``jobs/*.yaml``) holds the job fields (``inputs``, ``out``, ``scheduler``, ...) and
the stage-1 fields (``tissue``, ``scale``, ``tile_size``, ...) side by side. Only the fields
that change outputs enter :meth:`Stage1Config.config_hash`; where and how the job runs do not.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from wsidist.errors import WsidistError

SCHEMA_VERSION = "1"
JobT = TypeVar("JobT", bound=BaseModel)


class ConfigError(WsidistError, ValueError):
    """Bad configuration: raised before any slide is read, naming the bad value."""


def _tissue_parses(value: str | dict[str, Any]) -> str | dict[str, Any]:
    from wsidist.filters import parse_pipeline

    parse_pipeline(value)
    return value


TissueSpec = Annotated[str | dict[str, Any], AfterValidator(_tissue_parses)]
"""A tissue preset name, filter spec string or its YAML/dict form, checked when parsed."""


class Stage1Config(BaseModel):
    """What stage 1 computes for each slide. Every field here changes the outputs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tissue: TissueSpec = Field(
        "default", description="tissue preset name, filter spec string, or its YAML/dict form"
    )
    refine: str | None = Field(
        None, description="mask refiners appended to the tissue pipeline, e.g. 'fill_holes'"
    )
    scale: float = Field(32.0, gt=1, le=1024, description="downsample of the filtered image")
    tile_size: int | None = Field(None, gt=0, description="tile side in level-0 px")
    tile_um: float | None = Field(None, gt=0, description="tile side in µm (needs mpp)")
    overlap: float = Field(0.0, ge=0, description="tile overlap, in the tile size's unit")
    edge: Literal["keep", "drop"] = Field(
        "keep", description="keep: clipped tiles at the right/bottom edge; drop: whole tiles only"
    )
    mpp: float | None = Field(None, gt=0, description="µm per level-0 px; overrides the slide's")
    scorer: str = Field("seed", description="'seed' or 'module:function' of a tile scorer")
    min_tissue_frac: float = Field(0.5, ge=0, le=1, description="tissue tile threshold")
    batch: bool = Field(False, description="also write every intermediate image")

    @field_validator("refine")
    @classmethod
    def _refine_parses(cls, value: str | None) -> str | None:
        from wsidist.filters import parse_pipeline

        if value is not None:
            parse_pipeline("default").refine(value)
        return value

    def tissue_pipeline(self):  # -> wsidist.filters.Pipeline
        """The tissue pipeline: the preset or spec, with ``refine`` appended."""
        from wsidist.filters import parse_pipeline

        pipeline = parse_pipeline(self.tissue)
        return pipeline.refine(self.refine) if self.refine else pipeline

    @field_validator("scorer")
    @classmethod
    def _scorer_resolves(cls, value: str) -> str:
        from wsidist.scoring import resolve_scorer

        resolve_scorer(value)
        return value

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

    def config_hash(self) -> str:
        """Stable short hash of everything that changes the outputs."""
        payload = json.dumps(
            {"schema": SCHEMA_VERSION, **self.model_dump(exclude={"batch"})}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Stage1Job(BaseModel):
    """A stage-1 job: inputs, output root, where to run, and the stage-1 config."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[str] = Field(default_factory=list)
    out: str | None = None
    scheduler: str | None = None
    workers: int | None = Field(None, gt=0)
    overwrite: bool = False
    cache_dir: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    config: Stage1Config = Field(default_factory=Stage1Config)


def build_job(yaml_path: str | Path | None = None, **overrides: Any) -> Stage1Job:
    """Merge a job YAML file and CLI overrides (``None`` means not given) into a job.

    Raises :class:`ConfigError` naming the bad field and value.
    """
    return merge_job(Stage1Job, Stage1Config, "stage1", yaml_path, overrides)


def merge_job(
    job_cls: type[JobT],
    config_cls: type[BaseModel],
    kind: str,
    yaml_path: str | Path | None,
    overrides: dict[str, Any],
) -> JobT:
    """A ``job_cls`` from a ``kind`` job file plus overrides; non-job fields go to its config."""
    data: dict[str, Any] = load_yaml(yaml_path, kind) if yaml_path is not None else {}
    flat = {**data.pop("config", {}), **data}
    flat.update({k: v for k, v in overrides.items() if v is not None})
    job_names = set(job_cls.model_fields) - {"config"}
    job_fields = {k: v for k, v in flat.items() if k in job_names}
    config_fields = {k: v for k, v in flat.items() if k not in job_names and k != "kind"}
    try:
        return job_cls(**job_fields, config=config_cls(**config_fields))
    except ValidationError as exc:
        raise ConfigError(describe_validation(exc)) from None


def load_yaml(path: str | Path, kind: str = "stage1") -> dict[str, Any]:
    """The mapping in a job file whose ``kind`` (default ``stage1``) is ``kind``."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read job file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"job file {path} must hold a mapping of fields")
    found = data.get("kind", "stage1")
    if found != kind:
        raise ConfigError(f"job file {path}: kind {found!r} is not {kind!r}")
    return data


def describe_validation(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {err['msg']}{shown}")
    return "invalid configuration: " + "; ".join(lines)
