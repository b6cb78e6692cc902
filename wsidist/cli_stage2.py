"""Command line of stage 2a: ``wsidist rewrite`` (glass-removed pyramids) and ``restore``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from wsidist.cli_output import console, fail, out_console, slide_progress
from wsidist.errors import WsidistError


def rewrite_cmd(
    slides: Annotated[list[str] | None, typer.Argument(help="slides, folders, globs, URLs")] = None,
    out: Annotated[str | None, typer.Option("--out", help="output folder or s3:// URL")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="job YAML (kind: rewrite)")
    ] = None,
    masks: Annotated[
        str | None, typer.Option(help="stage-1 output with masks/ (default: --out)")
    ] = None,
    codec: Annotated[str | None, typer.Option(help="jpegxl (default) or jpeg")] = None,
    distance: Annotated[float | None, typer.Option(help="JPEG-XL distance, 1 ≈ lossless")] = None,
    effort: Annotated[int | None, typer.Option(help="JPEG-XL effort 1..9")] = None,
    lossless: Annotated[bool | None, typer.Option("--lossless", help="lossless JPEG-XL")] = None,
    jpeg_quality: Annotated[int | None, typer.Option(help="quality of --codec jpeg")] = None,
    glass: Annotated[str | None, typer.Option(help="empty (zero-byte), white or keep")] = None,
    margin_um: Annotated[
        float | None, typer.Option(help="tissue margin around the mask, µm")
    ] = None,
    tile: Annotated[int | None, typer.Option(help="output tile side, px")] = None,
    transcode: Annotated[
        bool | None,
        typer.Option("--transcode", help="JPEG tiles → JPEG-XL losslessly (JPEG sources only)"),
    ] = None,
    tissue: Annotated[
        str | None, typer.Option(help="tissue preset/spec when a slide has no stage-1 mask")
    ] = None,
    mpp: Annotated[float | None, typer.Option(help="µm per level-0 px, overrides slides")] = None,
    scheduler: Annotated[str | None, typer.Option(help="address of a Dask scheduler")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster worker processes")] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="redo done slides")] = None,
    cache_dir: Annotated[str | None, typer.Option(help="local cache for remote slides")] = None,
) -> None:
    """Stage 2a: rewrite slides as glass-removed JPEG-XL (or JPEG) pyramids, with a report."""
    from wsidist.job import plan_tasks
    from wsidist.rewrite import run_rewrite
    from wsidist.rewrite_config import build_rewrite_job

    try:
        job = build_rewrite_job(
            config,
            inputs=slides or None,
            out=out,
            masks=masks,
            scheduler=scheduler,
            workers=workers,
            overwrite=overwrite,
            cache_dir=cache_dir,
            codec=codec,
            distance=distance,
            effort=effort,
            lossless=lossless,
            jpeg_quality=jpeg_quality,
            glass=glass,
            margin_um=margin_um,
            tile=tile,
            transcode=transcode,
            tissue=tissue,
            mpp=mpp,
        )
        if not job.inputs:
            raise WsidistError("no slides given: pass SLIDES or `inputs:` in the job file")
        if not job.out:
            raise WsidistError("no output given: pass --out or `out:` in the job file")
        tasks = plan_tasks(job.inputs)
    except WsidistError as exc:
        raise fail(str(exc)) from None
    with slide_progress("rewrite", len(tasks)) as on_result:
        table = run_rewrite(
            [t.url for t in tasks],
            job.out,
            job.config,
            masks=job.masks,
            scheduler=job.scheduler,
            workers=job.workers,
            overwrite=job.overwrite,
            cache_dir=job.cache_dir,
            storage_options=job.storage_options,
            on_result=on_result,
        )
    raise typer.Exit(print_rewrite_summary(table, {t.slide_id for t in tasks}))


def print_rewrite_summary(table: pa.Table, this_run: set[str]) -> int:
    """Print one line per slide of this run; 1 when any slide failed, else 0."""
    rows = [r for r in table.to_pylist() if r["slide_id"] in this_run]
    summary = Table(title="rewrite", box=box.SIMPLE_HEAD)
    columns = ("slide_id", "status", "glass%", "src MB", "out MB", "saved%", "PSNR", "SSIM",
               "s", "MP/s/w")  # fmt: skip
    for name in columns:
        summary.add_column(name, justify="left" if name == "slide_id" else "right", no_wrap=True)

    def num(value: float | None, fmt: str, scale: float = 1.0) -> str:
        return "-" if value is None else format(value * scale, fmt)

    for r in rows:
        status = "[green]ok[/]" if r["status"] == "ok" else "[red]failed[/]"
        summary.add_row(
            r["slide_id"],
            "[dim]skipped[/]" if r["skipped"] else status,
            num(r["glass_fraction"], ".1f", 100),
            num(r["source_bytes"], ".2f", 1e-6),
            num(r["output_bytes"], ".2f", 1e-6),
            num(r["reduction_pct"], ".1f"),
            num(r["psnr_db"], ".1f"),
            num(r["ssim"], ".3f"),
            num(r["seconds"], ".1f"),
            num(r["mp_per_s_per_worker"], ".1f"),
        )
    wide = Console(width=max(out_console.width, 110))  # never squeeze the numbers
    wide.print(summary)
    failed = [r for r in rows if r["status"] != "ok"]
    for r in failed:
        console.print(f"[red]{r['slide_id']}[/]: {r['error']}")
    if failed:
        console.print(f"[bold red]{len(failed)} slide(s) failed[/]")
    return 1 if failed else 0


def restore_cmd(
    pyramid: Annotated[Path, typer.Argument(help="a pyramid written by `rewrite --transcode`")],
    out: Annotated[Path, typer.Option("--out", help="the JPEG TIFF to write")],
) -> None:
    """Rebuild a JPEG TIFF whose tiles are byte-identical to the source's tissue tiles."""
    from wsidist.transcode import restore_jpeg_tiff

    try:
        counts = restore_jpeg_tiff(pyramid, out)
    except (WsidistError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(f"restored {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
