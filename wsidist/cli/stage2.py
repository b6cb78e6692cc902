"""``wsidist rewrite | restore``: glass-removed pyramids, and JPEG tiles back from a transcode."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wsidist.cli.common import (
    CacheDirOpt,
    ClusterOpt,
    DashboardOpt,
    ManifestOpt,
    MppOpt,
    OutOpt,
    OverwriteOpt,
    RewriteConfigOpt,
    SchedulerOpt,
    SlidesArg,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    WorkersOpt,
    run_slide_job,
)
from wsidist.cli.output import REWRITE_COLUMNS, console, fail
from wsidist.errors import WsidistError


def rewrite_cmd(
    slides: SlidesArg = None,
    out: OutOpt = None,
    config: RewriteConfigOpt = None,
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
    mpp: MppOpt = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = None,
    cache_dir: CacheDirOpt = None,
    manifest: ManifestOpt = None,
    cluster: ClusterOpt = None,
    dashboard: DashboardOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Stage 2a: rewrite slides as glass-removed JPEG-XL (or JPEG) pyramids, with a report."""
    from wsidist.stage2.config import build_rewrite_job
    from wsidist.stage2.driver import run_rewrite

    fields = dict(
        inputs=slides or None, out=out, masks=masks, scheduler=scheduler, workers=workers,
        overwrite=overwrite, cache_dir=cache_dir, codec=codec, distance=distance, effort=effort,
        lossless=lossless, jpeg_quality=jpeg_quality, glass=glass, margin_um=margin_um,
        tile=tile, transcode=transcode, tissue=tissue, mpp=mpp, manifest=manifest, cluster=cluster,
        dashboard=dashboard, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
    )  # fmt: skip

    def run(job, tasks, on_result, client):
        return run_rewrite(
            tasks, job.out, job.config, masks=job.masks, client=client,
            overwrite=job.overwrite, cache_dir=job.cache_dir,
            storage_options=job.storage_options, on_result=on_result, manifest=job.manifest,
        )  # fmt: skip

    build = lambda: build_rewrite_job(config, **fields)  # noqa: E731
    raise typer.Exit(run_slide_job("rewrite", build, run, REWRITE_COLUMNS, width=110))


def restore_cmd(
    pyramid: Annotated[Path, typer.Argument(help="a pyramid written by `rewrite --transcode`")],
    out: Annotated[Path, typer.Option("--out", help="the JPEG TIFF to write")],
) -> None:
    """Rebuild a JPEG TIFF whose tiles are byte-identical to the source's tissue tiles."""
    from wsidist.stage2.restore import restore_jpeg_tiff

    try:
        counts = restore_jpeg_tiff(pyramid, out)
    except (WsidistError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"restored {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), markup=False
    )
