"""The job-configuration base every stage shares: job fields, config hash, job files.

A job file (``jobs/*.yaml``) holds a ``kind`` (``stage1`` by default), the job fields of
:class:`JobSpec` (``inputs``, ``out``, ``scheduler``, …) and the stage's own config fields side
by side. :func:`merge_job` merges a file with command-line overrides into a validated job;
any bad value raises :class:`~wsidist.errors.ConfigError` naming the field and the value, before
any slide is read. Only the fields that change outputs enter :meth:`StageConfig.config_hash`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from wsidist.errors import ConfigError
from wsidist.io.ranged import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_SPAN_CACHE_BYTES,
    RangeSpec,
)
from wsidist.io.staging_cache import DEFAULT_CACHE_MAX_GB, CacheSpec
from wsidist.runtime.budget import DEFAULT_MEMORY_BUDGET_MB

SCHEMA_VERSION = "1"
JobT = TypeVar("JobT", bound="JobSpec")


class StageConfig(BaseModel):
    """Base of a stage's config: frozen, no unknown fields, and a stable hash of its outputs.

    ``memory_budget_mb`` bounds what one slide may need (checked before its work; a slide over
    it is a ``failed`` row naming its size); it changes no output, so it is not hashed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    unhashed_fields: ClassVar[frozenset[str]] = frozenset()  # fields that change no output
    # groups of fields that give one concept in different units (e.g. tile_size / tile_um):
    # a flag for one replaces the job file's value for the others
    alternatives: ClassVar[tuple[frozenset[str], ...]] = ()

    memory_budget_mb: float = Field(
        DEFAULT_MEMORY_BUDGET_MB, gt=0, description="memory one slide may need, MB"
    )

    def config_hash(self) -> str:
        """Stable short hash of everything that changes the outputs."""
        fields = self.model_dump(exclude={*self.unhashed_fields, "memory_budget_mb"})
        payload = json.dumps({"schema": SCHEMA_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


class JobSpec(BaseModel):
    """The fields of every job: inputs, output root, where to run. Stages add ``config``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inputs: list[str] = Field(default_factory=list)
    manifest: str | None = Field(
        None, description="CSV/Parquet of slides: url, optional mpp, slide_id and labels"
    )
    out: str | None = None
    scheduler: str | None = None
    workers: int | None = Field(None, gt=0, le=1024)
    overwrite: bool = False
    cache_dir: str | None = None
    cache_max_gb: float = Field(
        DEFAULT_CACHE_MAX_GB, gt=0, description="bound of the cache of staged remote slides, GB"
    )
    range_concurrency: int = Field(
        DEFAULT_MAX_CONCURRENCY, ge=1, le=256,
        description="range reads: requests in flight per open remote slide",
    )  # fmt: skip
    range_request_mb: float = Field(
        DEFAULT_MAX_REQUEST_BYTES / 2**20, ge=0.0625, le=1024,
        description="range reads: largest coalesced request, MiB",
    )  # fmt: skip
    range_cache_mb: float = Field(
        DEFAULT_SPAN_CACHE_BYTES / 2**20, gt=0, le=65536,
        description="range reads: span cache per open remote slide, MiB (holds one request)",
    )  # fmt: skip
    storage_options: dict[str, Any] = Field(default_factory=dict)
    cluster: Literal["local", "slurm", "pbs", "lsf"] = "local"  # without a scheduler
    dashboard: bool = False
    tls_ca: str | None = None  # CA, certificate and key files: every connection over TLS
    tls_cert: str | None = None
    tls_key: str | None = None

    @model_validator(mode="after")
    def _where_to_run(self) -> JobSpec:
        tls = {"tls_ca": self.tls_ca, "tls_cert": self.tls_cert, "tls_key": self.tls_key}
        given = [name for name, path in tls.items() if path]
        if given and len(given) < len(tls):
            missing = ", ".join(sorted(set(tls) - set(given)))
            raise ValueError(f"TLS needs tls_ca, tls_cert and tls_key; missing {missing}")
        for name in given:
            if not Path(tls[name]).is_file():
                raise ValueError(f"{name}: no such file {tls[name]!r}")
        if self.range_cache_mb < self.range_request_mb:
            raise ValueError(
                f"range_cache_mb ({self.range_cache_mb:g}) must hold one request: at least "
                f"range_request_mb ({self.range_request_mb:g})"
            )
        if self.scheduler and self.cluster != "local":
            raise ValueError(f"give a scheduler or cluster {self.cluster!r}, not both")
        if given and self.scheduler and not self.scheduler.startswith("tls://"):
            raise ValueError(
                f"TLS certificates given, but scheduler {self.scheduler!r} is not tls://"
            )
        return self

    def cache(self) -> CacheSpec:
        """Where this job's workers stage remote slides, the bound of that cache, and how they
        read slides by ranges."""
        return CacheSpec(self.cache_dir, self.cache_max_gb, range_reads=self.range_spec())

    def range_spec(self) -> RangeSpec:
        return RangeSpec(
            self.range_concurrency,
            int(self.range_request_mb * 2**20),
            int(self.range_cache_mb * 2**20),
        )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`wsidist.runtime.cluster.dask_client` for this job."""
        from wsidist.runtime.cluster import tls_security

        security = tls_security(self.tls_ca, self.tls_cert, self.tls_key) if self.tls_ca else None
        return {
            "scheduler": self.scheduler, "workers": self.workers, "cluster": self.cluster,
            "security": security, "dashboard": self.dashboard,
        }  # fmt: skip

    def require_inputs_and_out(self) -> None:
        """ConfigError unless the job names its slides and its output."""
        if not self.inputs and not self.manifest:
            raise ConfigError(
                "no slides given: pass SLIDES, --manifest, or `inputs:` in the job file"
            )
        if not self.out:
            raise ConfigError("no output given: pass --out or `out:` in the job file")


def merge_job(
    job_cls: type[JobT], kind: str, yaml_path: str | Path | None, overrides: dict[str, Any]
) -> JobT:
    """A ``job_cls`` from a ``kind`` job file plus overrides (``None`` means not given).

    Fields of ``job_cls`` go to the job; every other field goes to its ``config``. A flag
    overrides the file's field of the same concept: ``tile_um`` given as a flag replaces the
    file's ``tile_size`` and the other way round (the config's ``alternatives``).
    """
    config_cls = job_cls.model_fields["config"].annotation
    data: dict[str, Any] = load_yaml(yaml_path, kind) if yaml_path is not None else {}
    nested = data.pop("config", {})
    nested = {} if nested is None else nested
    if not isinstance(nested, dict):
        raise ConfigError(
            f"job file {yaml_path}: config must be a mapping of fields, got {nested!r}"
        )
    flat = {**nested, **data}
    given = {k: v for k, v in overrides.items() if v is not None}
    for group in getattr(config_cls, "alternatives", ()):
        if group & given.keys():
            for name in group - given.keys():
                flat.pop(name, None)
    flat.update(given)
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
    """One line naming every bad field and the value it got."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "config"
        value = err.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {err['msg']}{shown}")
    return "invalid configuration: " + "; ".join(lines)
