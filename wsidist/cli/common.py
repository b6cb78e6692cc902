"""What every command shares: option types, and running a slide job with progress and summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from wsidist.cli.output import Column, fail, print_job_summary, slide_progress
from wsidist.errors import WsidistError

if TYPE_CHECKING:
    import pyarrow as pa

    from wsidist.runtime.jobconfig import JobSpec
    from wsidist.runtime.tasks import SlideTask

SlidesArg = Annotated[list[str] | None, typer.Argument(help="slides, folders, globs, URLs")]
OutOpt = Annotated[str | None, typer.Option("--out", help="output folder or s3:// URL")]
SchedulerOpt = Annotated[str | None, typer.Option(help="address of a Dask scheduler")]
WorkersOpt = Annotated[int | None, typer.Option(help="LocalCluster worker processes")]
OverwriteOpt = Annotated[bool | None, typer.Option("--overwrite", help="redo done slides")]
CacheDirOpt = Annotated[str | None, typer.Option(help="local cache for remote slides")]
MppOpt = Annotated[float | None, typer.Option(help="µm per level-0 px, overrides the slides'")]
ScaleOpt = Annotated[float | None, typer.Option(help="downsample for filtering")]
TileSizeOpt = Annotated[int | None, typer.Option(help="tile side, level-0 px")]
TileUmOpt = Annotated[float | None, typer.Option(help="tile side in µm (needs mpp)")]
TissueOpt = Annotated[
    str | None, typer.Option("--tissue", help="tissue preset or filter spec (see `filters`)")
]


Stage1ConfigOpt = Annotated[Path | None, typer.Option("--config", help="job YAML file")]
RewriteConfigOpt = Annotated[Path | None, typer.Option("--config", help="job YAML (kind: rewrite)")]


def run_slide_job(
    title: str,
    build: Callable[[], JobSpec],
    run: Callable[[JobSpec, Sequence[SlideTask], Callable[[dict[str, Any]], None]], pa.Table],
    columns: Sequence[Column],
    *,
    width: int = 0,
) -> int:
    """Build and check a job (exit 2 naming a bad value), plan its slides once, run it with a
    progress bar and print its summary; the exit code (1 when a slide failed)."""
    from wsidist.runtime.tasks import plan_tasks

    try:
        job = build()
        job.require_inputs_and_out()
        tasks = plan_tasks(job.inputs)
    except WsidistError as exc:
        raise fail(str(exc)) from None
    try:
        with slide_progress(title, len(tasks)) as on_result:
            table = run(job, tasks, on_result)
    except WsidistError as exc:  # e.g. an output that cannot be written: one message, no trace
        raise fail(str(exc)) from None
    return print_job_summary(title, table, {t.slide_id for t in tasks}, columns, width=width)
