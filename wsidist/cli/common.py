"""What every command shares: option types, and running a slide job with progress and summary.

Options whose value may come from a job file default to None here (so a flag overrides the
file only when given); their help names the stage config's default, which a test compares
with the config classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsidist.cli.output import (
    Column,
    fail,
    note,
    print_closing,
    print_job_summary,
    reported,
    slide_progress,
)
from wsidist.errors import WsidistError

if TYPE_CHECKING:
    import pyarrow as pa
    from distributed import Client

    from wsidist.runtime.jobconfig import JobSpec
    from wsidist.runtime.tasks import SlideTask

Closing = tuple[str, Sequence[str], Sequence[str]]  # root, outputs under it, next commands


def shell_words(items: Sequence[str]) -> str:
    """Paths as shell words; many files of one folder as that folder."""
    import os
    import shlex

    items = list(items)
    parents = {os.path.dirname(i) for i in items}
    if len(items) > 2 and len(parents) == 1 and "" not in parents:
        items = [parents.pop() + "/"]
    return " ".join(shlex.quote(i) for i in items)


def default(text: str, value: object) -> str:
    """Help text that names the default of an option whose value may come from a job file."""
    return f"{text}  [default: {value}]"


def opt(*names: str, help: str, metavar: str | None = None, **kw: Any) -> Any:
    """A typer option with a metavar (never a type label) and no click default shown."""
    return typer.Option(*names, help=help, metavar=metavar, show_default=False, **kw)


SlidesArg = Annotated[
    list[str] | None, typer.Argument(help="slides, folders, globs or URLs", metavar="SLIDES")
]
OutOpt = Annotated[str | None, opt("--out", help="output folder or s3:// URL", metavar="OUT")]
SchedulerOpt = Annotated[
    str | None,
    opt(help="address of a Dask scheduler  [default: a LocalCluster]", metavar="ADDR"),
]
WorkersOpt = Annotated[
    int | None, opt(help="LocalCluster worker processes  [default: one per core]", metavar="N")
]
OverwriteOpt = Annotated[
    bool | None, opt("--overwrite/--no-overwrite", help=default("redo slides already done", "no"))
]
CacheDirOpt = Annotated[str | None, opt(help="local cache for remote slides", metavar="DIR")]


def _remote_read(value: str | None) -> str | None:
    """Check ``--remote-read`` and hand it to this process and its workers (environment)."""
    import os

    if value is None:
        return None
    if value not in ("range", "stage"):
        raise typer.BadParameter(f"{value!r}: choose range or stage")
    os.environ["WSIDIST_REMOTE_READ"] = value
    return value


RemoteReadOpt = Annotated[
    str | None,
    opt(
        help=default(
            "remote TIFF-family slides: range (read only the bytes needed) or stage (download "
            "whole first)",
            "range",
        ),
        metavar="MODE",
        callback=_remote_read,
    ),
]
CacheMaxGbOpt = Annotated[
    float | None,
    opt(help=default("bound of that cache (LRU; open slides stay)", "20 GB"), metavar="GB"),
]
RangeConcurrencyOpt = Annotated[
    int | None,
    opt(help=default("range reads: requests in flight per open slide", 8), metavar="N"),
]
RangeRequestMbOpt = Annotated[
    float | None,
    opt(help=default("range reads: largest coalesced request", "8 MiB"), metavar="MIB"),
]
RangeCacheMbOpt = Annotated[
    float | None,
    opt(help=default("range reads: span cache per open slide", "32 MiB"), metavar="MIB"),
]
MppOpt = Annotated[
    float | None,
    opt(help="µm per level-0 px, overrides the slides'  [default: the slide's]", metavar="UM"),
]
ScaleOpt = Annotated[float | None, opt(help=default("downsample for filtering", 32), metavar="N")]
TileSizeOpt = Annotated[
    int | None, opt(help=default("tile side, level-0 px (or --tile-um)", 1024), metavar="PX")
]
TileUmOpt = Annotated[float | None, opt(help="tile side in µm (needs mpp)", metavar="UM")]
TissueOpt = Annotated[
    str | None,
    opt("--tissue", help=default("tissue preset or filter spec (see: filters)", "auto"),
        metavar="SPEC"),
]  # fmt: skip


ClusterOpt = Annotated[
    str | None,
    opt(help="local, or slurm | pbs | lsf from Dask's jobqueue config  [default: local]",
        metavar="KIND"),
]  # fmt: skip
DashboardOpt = Annotated[
    bool | None, opt("--dashboard", help="serve and print the Dask dashboard link")
]
TlsCaOpt = Annotated[str | None, opt(help="TLS: CA certificate file (PEM)", metavar="PEM")]
TlsCertOpt = Annotated[str | None, opt(help="TLS: this client's certificate (PEM)", metavar="PEM")]
TlsKeyOpt = Annotated[str | None, opt(help="TLS: this client's private key (PEM)", metavar="PEM")]
ManifestOpt = Annotated[
    str | None,
    opt(help="CSV/Parquet of slides: url, optional mpp, slide_id, label columns", metavar="FILE"),
]

Stage1ConfigOpt = Annotated[Path | None, opt("--config", help="job YAML file", metavar="YAML")]
RewriteConfigOpt = Annotated[
    Path | None, opt("--config", help="job YAML file (kind: rewrite)", metavar="YAML")
]


def cache_spec(cache_dir: str | None, cache_max_gb: float | None, **ranges: float | None) -> Any:
    """The staging cache (and the range reads, ``range_concurrency``, ``range_request_mb``,
    ``range_cache_mb``) of a command without a job file (exit 2 naming a bad value)."""
    from pydantic import ValidationError

    from wsidist.io.staging_cache import DEFAULT_CACHE_MAX_GB, CacheSpec
    from wsidist.runtime.jobconfig import JobSpec, describe_validation

    gb = DEFAULT_CACHE_MAX_GB if cache_max_gb is None else cache_max_gb
    if not gb > 0:
        raise fail(f"--cache-max-gb must be > 0, got {gb:g}")
    try:
        spec = JobSpec(**{k: v for k, v in ranges.items() if v is not None}).range_spec()
    except ValidationError as exc:
        raise fail(describe_validation(exc)) from None
    return CacheSpec(cache_dir, gb, range_reads=spec)


def run_slide_job(
    title: str,
    build: Callable[[], JobSpec],
    run: Callable[
        [JobSpec, Sequence[SlideTask], Callable[[dict[str, Any]], None], Client], pa.Table
    ],
    columns: Sequence[Column],
    closing: Callable[[JobSpec, pa.Table], Closing],
) -> int:
    """Build and check a job (exit 2 naming a bad value), plan its slides once, start or
    connect to its cluster, run it with a progress bar, print its summary, where its outputs
    are and what to run next; the exit code (1 when a slide failed)."""
    from wsidist.io.storage import Store
    from wsidist.runtime.cluster import subscribe_progress
    from wsidist.runtime.preflight import check_output_root, check_stored_ids
    from wsidist.runtime.tasks import plan_job

    with reported() as caught:
        job = build()
        job.require_inputs_and_out()
        check_output_root(job.out, job.storage_options)
        plan = plan_job(
            job.inputs, exclude=(job.out,), manifest=job.manifest,
            storage_options=job.storage_options,
        )  # fmt: skip
        check_stored_ids(Store(job.out, job.storage_options), plan.tasks)
    caught.exit_on_error()
    for line in plan.notes:
        note(line)
    with (
        reported() as caught,
        job_client(job) as client,
        slide_progress(title, len(plan.tasks)) as progress,
    ):
        subscribe_progress(client, progress.blocks)
        table = run(job, plan.tasks, progress, client)
    caught.exit_on_error()
    code = print_job_summary(title, table, {t.slide_id for t in plan.tasks}, columns)
    print_closing(*closing(job, table))
    return code


@contextlib.contextmanager
def job_client(job: JobSpec) -> Iterator[Client]:
    """The job's Dask client (exit 2 with the reason when it cannot start or connect); prints
    the dashboard link with ``--dashboard``."""
    from wsidist.runtime.cluster import dask_client

    with contextlib.ExitStack() as stack:
        try:
            client = stack.enter_context(dask_client(**job.client_options()))
        except WsidistError as exc:
            raise fail(str(exc)) from None
        except (OSError, TimeoutError) as exc:  # refused, unreachable, TLS handshake failed
            where = job.scheduler or f"the {job.cluster} cluster"
            raise fail(f"cannot connect to the Dask scheduler at {where}: {exc}") from None
        except TypeError as exc:  # Dask's word for a tls:// address without certificates
            if "TLS" not in str(exc):
                raise
            raise fail(
                f"cannot connect to the Dask scheduler at {job.scheduler}: it needs TLS; pass "
                "--tls-ca, --tls-cert and --tls-key (or set Dask's distributed.comm.tls config)"
            ) from None
        if job.dashboard:
            note(f"Dask dashboard: {client.dashboard_link}")
        yield client
