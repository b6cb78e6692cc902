"""``wsidist rewrite | restore | export``: glass-removed pyramids, and files other readers open."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wsidist.cli.common import (
    CacheDirOpt,
    CacheMaxGbOpt,
    Closing,
    ClusterOpt,
    DashboardOpt,
    ManifestOpt,
    MppOpt,
    OutOpt,
    OverwriteOpt,
    RangeCacheMbOpt,
    RangeConcurrencyOpt,
    RangeRequestMbOpt,
    RemoteReadOpt,
    RewriteConfigOpt,
    SchedulerOpt,
    SlidesArg,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    WorkersOpt,
    default,
    opt,
    run_slide_job,
    shell_words,
)
from wsidist.cli.output import REWRITE_COLUMNS, console, num, print_closing, reported
from wsidist.errors import WsidistError

ONLY_WSIDIST = (
    "JPEG-XL pyramids (TIFF compression 50002) open only in wsidist (wsidist.open_slide, "
    "score, select, extract); other viewers need wsidist export (or wsidist restore "
    "for --transcode pyramids)."
)


def rewrite_cmd(
    slides: SlidesArg = None,
    out: OutOpt = None,
    config: RewriteConfigOpt = None,
    masks: Annotated[
        str | None, opt(help="stage-1 output with masks/  [default: OUT]", metavar="DIR")
    ] = None,
    codec: Annotated[
        str | None,
        opt(help=default("jpegxl or jpeg (OpenSlide-readable)", "jpegxl"), metavar="CODEC"),
    ] = None,  # fmt: skip
    distance: Annotated[
        float | None,
        opt(
            help=default("JPEG-XL distance (1 ≈ visually lossless); the finest used", 1.0),
            metavar="D",
        ),
    ] = None,  # fmt: skip
    match_source: Annotated[
        bool | None,
        opt(
            "--match-source/--no-match-source",
            help=default(
                "per slide, coarsen the distance until its PSNR matches a JPEG or "
                "JPEG 2000 source's own measured PSNR (never finer than --distance)",
                "on",
            ),
        ),
    ] = None,  # fmt: skip
    effort: Annotated[int | None, opt(help=default("JPEG-XL effort 1..9", 3), metavar="N")] = None,
    lossless: Annotated[
        bool | None, opt("--lossless/--lossy", help=default("lossless JPEG-XL", "lossy"))
    ] = None,
    jpeg_quality: Annotated[
        int | None, opt(help=default("quality of --codec jpeg", 90), metavar="Q")
    ] = None,
    glass: Annotated[
        str | None,
        opt(
            help=default("glass tiles: empty (zero bytes), white or keep", "empty"), metavar="MODE"
        ),
    ] = None,  # fmt: skip
    margin_um: Annotated[
        float | None, opt(help=default("tissue margin around the mask, µm", 50), metavar="UM")
    ] = None,
    tile: Annotated[
        int | None, opt(help=default("output tile side, px", 256), metavar="PX")
    ] = None,
    transcode: Annotated[
        bool | None,
        opt(
            "--transcode/--no-transcode",
            help=default("JPEG tiles → JPEG-XL losslessly (JPEG sources only)", "no"),
        ),
    ] = None,  # fmt: skip
    tissue: Annotated[
        str | None,
        opt(
            help=default("tissue preset/spec when a slide has no stage-1 mask", "default"),
            metavar="SPEC",
        ),
    ] = None,  # fmt: skip
    mpp: MppOpt = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = None,
    cache_dir: CacheDirOpt = None,
    remote_read: RemoteReadOpt = None,  # noqa: ARG001 — applied by its callback
    range_concurrency: RangeConcurrencyOpt = None,
    range_request_mb: RangeRequestMbOpt = None,
    range_cache_mb: RangeCacheMbOpt = None,
    cache_max_gb: CacheMaxGbOpt = None,
    manifest: ManifestOpt = None,
    cluster: ClusterOpt = None,
    dashboard: DashboardOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Stage 2a: rewrite slides as glass-removed JPEG-XL (or JPEG) pyramids, with a report.

    Writes OUT/pyramids/<id>.tiff, OUT/pyramids/<id>.json and OUT/pyramids.parquet.
    JPEG-XL pyramids open only in wsidist: wsidist export writes a JPEG TIFF for other viewers.
    """
    from wsidist.stage2.config import build_rewrite_job
    from wsidist.stage2.driver import run_rewrite

    fields = dict(
        inputs=slides or None, out=out, masks=masks, scheduler=scheduler, workers=workers,
        overwrite=overwrite, cache_dir=cache_dir, cache_max_gb=cache_max_gb, range_concurrency=range_concurrency,
        range_request_mb=range_request_mb, range_cache_mb=range_cache_mb, codec=codec, distance=distance,
        match_source=match_source, effort=effort, lossless=lossless, jpeg_quality=jpeg_quality,
        glass=glass, margin_um=margin_um, tile=tile, transcode=transcode, tissue=tissue, mpp=mpp,
        manifest=manifest, cluster=cluster, dashboard=dashboard, tls_ca=tls_ca,
        tls_cert=tls_cert, tls_key=tls_key,
    )  # fmt: skip

    def run(job, tasks, on_result, client):
        return run_rewrite(
            tasks, job.out, job.config, masks=job.masks, client=client,
            overwrite=job.overwrite, cache_dir=job.cache(),
            storage_options=job.storage_options, on_result=on_result, manifest=job.manifest,
        )  # fmt: skip

    build = lambda: build_rewrite_job(config, **fields)  # noqa: E731
    raise typer.Exit(run_slide_job("rewrite", build, run, REWRITE_COLUMNS, rewrite_closing))


def rewrite_closing(job, table) -> Closing:
    """Where the rewrite wrote, the JPEG-XL caveat, and what to run next."""
    out = job.out.rstrip("/")
    outputs = [
        "pyramids/<id>.tiff   the glass-removed pyramid, one per slide",
        "pyramids/<id>.json   the slide's row (a rerun skips slides already written)",
        "pyramids.parquet     one row per slide: sizes, distance, PSNR/SSIM, timings, warning",
    ]
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    steps = []
    if ok and job.config.codec == "jpegxl":
        console.print(ONLY_WSIDIST, style="yellow", soft_wrap=True)
        key, sid = ok[0]["key"], ok[0]["slide_id"]
        tool = "restore" if job.config.transcode else "export"
        extra = "" if job.config.transcode else " --codec jpeg"
        steps.append(f"wsidist {tool} {shell_words([f'{out}/{key}'])}{extra} --out {sid}.tiff")
    if ok:
        steps.append(f"wsidist score {out}/pyramids/ --out {out}-pyramids   # stage 1 on them")
    return out, outputs, steps or ["fix the failed slides above and run the same command again"]


def restore_cmd(
    pyramid: Annotated[Path, typer.Argument(help="a pyramid written by rewrite --transcode")],
    out: Annotated[Path, opt("--out", help="the JPEG TIFF to write", metavar="FILE")],
) -> None:
    """Rebuild a JPEG TIFF whose tiles are byte-identical to the source's tissue tiles."""
    from wsidist.stage2.restore import restore_jpeg_tiff

    with reported(WsidistError, OSError) as caught:
        counts = restore_jpeg_tiff(pyramid, out)
    caught.exit_on_error()
    console.print(", ".join(f"{k} {v}" for k, v in counts.items()), markup=False)
    print_closing(str(out.parent), [out.name], [f"wsidist info {shell_words([str(out)])}"])


def export_cmd(
    pyramid: Annotated[Path, typer.Argument(help="a pyramid written by wsidist rewrite")],
    out: Annotated[Path, opt("--out", help="the TIFF to write", metavar="FILE")],
    codec: Annotated[
        str, opt(help=default("tile codec of the export (jpeg)", "jpeg"), metavar="CODEC")
    ] = "jpeg",
    jpeg_quality: Annotated[int, opt(help=default("JPEG quality", 90), metavar="Q")] = 90,
    workers: Annotated[
        int | None, opt(help="encoder threads  [default: one per core]", metavar="N")
    ] = None,
) -> None:
    """Write a pyramid as a generic tiled JPEG TIFF that OpenSlide-based viewers open.

    Lossy pyramids are decoded and re-encoded as JPEG (glass tiles white); a --transcode
    pyramid is restored bit for bit instead.
    """
    from wsidist.stage2.export import export_pyramid

    with reported(WsidistError, OSError) as caught:
        result = export_pyramid(pyramid, out, codec=codec, jpeg_quality=jpeg_quality,
                                workers=workers)  # fmt: skip
    caught.exit_on_error()
    quality = (
        f", PSNR {num(result['psnr_db'], '.1f')} dB vs the pyramid"
        if result["mode"] == "reencoded"
        else ", tiles restored bit for bit"
    )
    console.print(
        f"{result['mode']}: {result['levels']} levels, {result['output_bytes'] / 1e6:.2f} MB"
        + quality,
        markup=False,
    )
    print_closing(str(out.parent), [out.name], [f"wsidist info {shell_words([str(out)])}"])
