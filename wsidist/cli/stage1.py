"""``wsidist score | demo | filters``: stage 1 and its tissue presets."""

from __future__ import annotations

import shlex
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
    ScaleOpt,
    SchedulerOpt,
    SlidesArg,
    Stage1ConfigOpt,
    TileSizeOpt,
    TileUmOpt,
    TissueOpt,
    TlsCaOpt,
    TlsCertOpt,
    TlsKeyOpt,
    WorkersOpt,
    default,
    opt,
    run_slide_job,
    shell_words,
)
from wsidist.cli.output import (
    STAGE1_COLUMNS,
    auto_explained,
    console,
    filters_table,
    out_console,
    presets_table,
    print_closing,
)


def score(
    slides: SlidesArg = None,
    out: OutOpt = None,
    config: Stage1ConfigOpt = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    scale: ScaleOpt = None,
    tissue: TissueOpt = None,
    refine: Annotated[
        str | None, opt(help="refiners after the tissue preset, e.g. 'fill_holes'", metavar="SPEC")
    ] = None,
    tile_size: TileSizeOpt = None,
    tile_um: TileUmOpt = None,
    overlap: Annotated[
        float | None, opt(help=default("tile overlap, in the tile size's unit", 0), metavar="N")
    ] = None,
    edge: Annotated[
        str | None, opt(help=default("keep or drop partial edge tiles", "keep"), metavar="MODE")
    ] = None,
    mpp: MppOpt = None,
    scorer: Annotated[
        str | None,
        opt(help=default("'seed', 'tissue' or module:function", "seed"), metavar="NAME"),
    ] = None,
    batch: Annotated[
        bool | None, opt("--batch/--no-batch", help=default("also write every step image", "no"))
    ] = None,
    qc: Annotated[
        bool | None,
        opt("--qc/--no-qc", help=default("focus of every tissue tile (focus, blurry)", "no")),
    ] = None,
    overwrite: OverwriteOpt = None,
    cache_dir: CacheDirOpt = None,
    remote_read: RemoteReadOpt = None,  # noqa: ARG001 — applied by its callback
    range_concurrency: RangeConcurrencyOpt = None,
    range_request_mb: RangeRequestMbOpt = None,
    range_cache_mb: RangeCacheMbOpt = None,
    cache_max_gb: CacheMaxGbOpt = None,
    manifest: ManifestOpt = None,
    annotations: Annotated[
        str | None,
        opt(
            help="folder (or URL) of .geojson/.json/.xml annotations, one per slide, matched "
            "by slide id or file stem (a manifest 'annotations' column names them instead)",
            metavar="DIR|URL",
        ),
    ] = None,
    cluster: ClusterOpt = None,
    dashboard: DashboardOpt = None,
    tls_ca: TlsCaOpt = None,
    tls_cert: TlsCertOpt = None,
    tls_key: TlsKeyOpt = None,
) -> None:
    """Stage 1: tissue masks and scored tiles for every slide (hive-partitioned Parquet).

    Writes OUT/slides.parquet, OUT/tiles/slide_id=<id>/part-0.parquet, OUT/masks/<id>.png,
    OUT/thumbnails/<id>.jpg, OUT/status/<id>.json (and OUT/batch/<id>/ with --batch;
    OUT/labels/<id>.png and label columns with --annotations).
    A job file (--config) holds the same fields; flags override it.
    """
    from wsidist.stage1.config import build_job

    fields = dict(
        inputs=slides or None, out=out, scheduler=scheduler, workers=workers, scale=scale,
        tissue=tissue, refine=refine, tile_size=tile_size, tile_um=tile_um, overlap=overlap,
        edge=edge, mpp=mpp, scorer=scorer, batch=batch, qc=qc, overwrite=overwrite,
        cache_dir=cache_dir, cache_max_gb=cache_max_gb, range_concurrency=range_concurrency,
        range_request_mb=range_request_mb, range_cache_mb=range_cache_mb, manifest=manifest, annotations=annotations,
        cluster=cluster, dashboard=dashboard, tls_ca=tls_ca, tls_cert=tls_cert, tls_key=tls_key,
    )  # fmt: skip
    raise typer.Exit(_run(lambda: _with_annotations(build_job(config, **fields))))


def _with_annotations(job):
    """The job, once its annotation folder lists (a bad one exits before any work)."""
    if job.annotations:
        from wsidist.io.annotation_match import annotation_index

        annotation_index(job.annotations, job.storage_options)
    return job


def demo(
    slides: Annotated[
        list[str] | None, typer.Argument(help="extra slides to include", metavar="SLIDES")
    ] = None,
    out: Annotated[str, opt("--out", help=default("output folder", "demo-out"), metavar="OUT")] = (
        "demo-out"
    ),
    n: Annotated[int, opt(help=default("number of synthetic slides", 3), metavar="N")] = 3,
    workers: WorkersOpt = None,
    batch: Annotated[
        bool, opt("--batch/--no-batch", help=default("write every step image", "yes"))
    ] = True,
    dashboard: DashboardOpt = None,
) -> None:
    """Generate synthetic slides (tissue, pen marks, glass) and run stage 1 on them.

    The slides go to OUT/demo-slides/, their true tissue masks to OUT/truth/ (score them
    with: wsidist metrics OUT OUT/truth), the truth as QuPath GeoJSON (tissue, fat, pen) to
    OUT/annotations/ (for score --annotations); the stage-1 outputs to OUT, as score writes them.
    """
    from wsidist import layout
    from wsidist.demo.synth import generate_demo_slides
    from wsidist.stage1.config import build_job

    slide_dir = Path(out) / "demo-slides"
    console.print(f"generating {n} synthetic slides in {slide_dir} …", markup=False)
    truth_dir = Path(out) / layout.DEMO_TRUTH_DIR
    notes_dir = Path(out) / layout.DEMO_ANNOTATIONS_DIR
    paths = [
        str(p)
        for p in generate_demo_slides(
            slide_dir, n=n, truth_dir=truth_dir, annotations_dir=notes_dir
        )
    ]
    inputs = paths + list(slides or [])
    code = _run(
        lambda: build_job(
            None, inputs=inputs, out=out, workers=workers, batch=batch, dashboard=dashboard
        )
    )
    raise typer.Exit(code)


def filters() -> None:
    """List tissue presets, how the default one works, and the filters a spec can use."""
    out_console.print(presets_table())
    out_console.print(auto_explained())
    out_console.print(filters_table())
    print_closing(
        "(nothing written)",
        [],
        ["wsidist score SLIDES --out OUT --tissue otsu", "wsidist score SLIDES --out OUT "
         "--tissue 'default' --refine 'fill_holes |> dilation(radius_um=20)'"],
    )  # fmt: skip


def stage1_closing(job, table) -> Closing:
    """Where stage 1 wrote, and what to run next."""
    out = job.out.rstrip("/")
    outputs = [
        "slides.parquet       one row per slide (status, error, warning, sizes, mpp, …)",
        "tiles/               slide_id=<id>/part-0.parquet: one row per tile (hive-partitioned)",
        "masks/<id>.png       tissue masks",
        "thumbnails/<id>.jpg  the images the filters ran on",
        "status/<id>.json     per-slide status (a rerun skips done slides)",
    ]
    if job.config.batch:
        outputs.append("batch/<id>/          step images, tile summary, score heat map")
    if getattr(job, "annotations", None) or any(r.get("annotation_url") for r in table.to_pylist()):
        outputs.append("labels/<id>.png      annotation classes (palette PNG, legend inside)")
    ok = [r for r in table.to_pylist() if r["status"] == "ok"]
    steps = [f"wsidist select {out} --top 20"] if ok else []
    if ok:
        sources = [shell_words(job.inputs)] if job.inputs else []
        if job.manifest:
            sources.append(f"--manifest {shlex.quote(job.manifest)}")
        steps.append(f"wsidist rewrite {' '.join(sources)} --out {out}   # glass-removed pyramids")
    return out, outputs, steps or ["fix the failed slides above and run the same command again"]


def _run(build) -> int:
    from wsidist.stage1.driver import run_stage1

    def run(job, tasks, on_result, client):
        return run_stage1(
            tasks, job.out, job.config, client=client, overwrite=job.overwrite,
            cache_dir=job.cache(), storage_options=job.storage_options, on_result=on_result,
            manifest=job.manifest, annotations=getattr(job, "annotations", None),
        )  # fmt: skip

    return run_slide_job("stage 1", build, run, STAGE1_COLUMNS, stage1_closing)
