"""What every command shares: option types, and running a slide job with progress and summary."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsidist.cli.output import Column, fail, note, print_job_summary, slide_progress
from wsidist.errors import WsidistError

if TYPE_CHECKING:
    import pyarrow as pa
    from distributed import Client

    from wsidist.runtime.jobconfig import JobSpec
    from wsidist.runtime.tasks import SlideTask

SlidesArg = Annotated[list[str] | None, typer.Argument(help="slides, folders, globs, URLs")]
OutOpt = Annotated[str | None, typer.Option("--out", help="output folder or s3:// URL")]
SchedulerOpt = Annotated[str | None, typer.Option(help="address of a Dask scheduler")]
WorkersOpt = Annotated[int | None, typer.Option(help="LocalCluster worker processes")]
OverwriteOpt = Annotated[bool | None, typer.Option("--overwrite", help="redo done slides")]
CacheDirOpt = Annotated[str | None, typer.Option(help="local cache for remote slides")]
ManifestOpt = Annotated[
    str | None,
    typer.Option(help="CSV/Parquet of slides: url, optional mpp, slide_id, label columns"),
]
MppOpt = Annotated[float | None, typer.Option(help="µm per level-0 px, overrides the slides'")]
ScaleOpt = Annotated[float | None, typer.Option(help="downsample for filtering")]
TileSizeOpt = Annotated[int | None, typer.Option(help="tile side, level-0 px")]
TileUmOpt = Annotated[float | None, typer.Option(help="tile side in µm (needs mpp)")]
TissueOpt = Annotated[
    str | None, typer.Option("--tissue", help="tissue preset or filter spec (see `filters`)")
]


ClusterOpt = Annotated[
    str | None,
    typer.Option(help="local (default), or slurm | pbs | lsf from Dask's jobqueue config"),
]
DashboardOpt = Annotated[
    bool | None, typer.Option("--dashboard", help="serve and print the Dask dashboard link")
]
TlsCaOpt = Annotated[str | None, typer.Option(help="TLS: CA certificate file (PEM)")]
TlsCertOpt = Annotated[str | None, typer.Option(help="TLS: this client's certificate (PEM)")]
TlsKeyOpt = Annotated[str | None, typer.Option(help="TLS: this client's private key (PEM)")]


Stage1ConfigOpt = Annotated[Path | None, typer.Option("--config", help="job YAML file")]
RewriteConfigOpt = Annotated[Path | None, typer.Option("--config", help="job YAML (kind: rewrite)")]


def run_slide_job(
    title: str,
    build: Callable[[], JobSpec],
    run: Callable[
        [JobSpec, Sequence[SlideTask], Callable[[dict[str, Any]], None], Client], pa.Table
    ],
    columns: Sequence[Column],
    *,
    width: int = 0,
) -> int:
    """Build and check a job (exit 2 naming a bad value), plan its slides once, start or
    connect to its cluster, run it with a progress bar and print its summary; the exit code
    (1 when a slide failed)."""
    from wsidist.io.storage import Store
    from wsidist.runtime.cluster import subscribe_progress
    from wsidist.runtime.preflight import check_output_root, check_stored_ids
    from wsidist.runtime.tasks import plan_job

    try:
        job = build()
        job.require_inputs_and_out()
        check_output_root(job.out, job.storage_options)
        plan = plan_job(
            job.inputs, exclude=(job.out,), manifest=job.manifest,
            storage_options=job.storage_options,
        )  # fmt: skip
        check_stored_ids(Store(job.out, job.storage_options), plan.tasks)
    except WsidistError as exc:
        raise fail(str(exc)) from None
    for line in plan.notes:
        note(line)
    try:
        with job_client(job) as client, slide_progress(title, len(plan.tasks)) as progress:
            subscribe_progress(client, progress.blocks)
            table = run(job, plan.tasks, progress, client)
    except WsidistError as exc:
        raise fail(str(exc)) from None
    this_run = {t.slide_id for t in plan.tasks}
    return print_job_summary(title, table, this_run, columns, width=width)


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
