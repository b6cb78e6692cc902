"""``wsidist score | demo | filters``: stage 1 and its tissue presets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wsidist.cli.common import (
    CacheDirOpt,
    MppOpt,
    OutOpt,
    OverwriteOpt,
    ScaleOpt,
    SchedulerOpt,
    SlidesArg,
    Stage1ConfigOpt,
    TileSizeOpt,
    TileUmOpt,
    TissueOpt,
    WorkersOpt,
    run_slide_job,
)
from wsidist.cli.output import (
    STAGE1_COLUMNS,
    auto_explained,
    console,
    filters_table,
    out_console,
    presets_table,
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
        str | None, typer.Option(help="refiners after the tissue preset, e.g. 'fill_holes'")
    ] = None,
    tile_size: TileSizeOpt = None,
    tile_um: TileUmOpt = None,
    overlap: Annotated[float | None, typer.Option(help="overlap, unit of the tile size")] = None,
    edge: Annotated[str | None, typer.Option(help="keep | drop partial edge tiles")] = None,
    mpp: MppOpt = None,
    scorer: Annotated[str | None, typer.Option(help="'seed', 'tissue' or module:function")] = None,
    batch: Annotated[bool | None, typer.Option("--batch", help="write every step image")] = None,
    qc: Annotated[
        bool | None, typer.Option("--qc", help="focus of every tissue tile (focus, blurry)")
    ] = None,
    overwrite: OverwriteOpt = None,
    cache_dir: CacheDirOpt = None,
) -> None:
    """Stage 1: tissue masks and scored tiles for every slide, as hive-partitioned Parquet."""
    from wsidist.stage1.config import build_job

    fields = dict(
        inputs=slides or None, out=out, scheduler=scheduler, workers=workers, scale=scale,
        tissue=tissue, refine=refine, tile_size=tile_size, tile_um=tile_um, overlap=overlap,
        edge=edge, mpp=mpp, scorer=scorer, batch=batch, qc=qc, overwrite=overwrite,
        cache_dir=cache_dir,
    )  # fmt: skip
    raise typer.Exit(_run(lambda: build_job(config, **fields)))


def demo(
    slides: Annotated[list[str] | None, typer.Argument(help="extra slides to include")] = None,
    out: Annotated[str, typer.Option("--out", help="output folder")] = "demo-out",
    n: Annotated[int, typer.Option(help="number of synthetic slides")] = 3,
    workers: WorkersOpt = None,
    batch: Annotated[bool, typer.Option("--batch/--no-batch", help="write step images")] = True,
) -> None:
    """Generate synthetic slides (tissue, pen marks, glass) and run stage 1 on a LocalCluster."""
    from wsidist.demo.synth import generate_demo_slides
    from wsidist.stage1.config import build_job

    slide_dir = Path(out) / "demo-slides"
    console.print(f"generating {n} synthetic slides in {slide_dir} …")
    paths = [str(p) for p in generate_demo_slides(slide_dir, n=n)]
    inputs = paths + list(slides or [])
    code = _run(lambda: build_job(None, inputs=inputs, out=out, workers=workers, batch=batch))
    console.print(
        f"outputs in [bold]{out}[/]: slides.parquet, tiles/, masks/, thumbnails/"
        + (", batch/" if batch else "")
    )
    raise typer.Exit(code)


def filters() -> None:
    """List tissue presets, how the default one works, and the filters a spec can use."""
    out_console.print(presets_table())
    out_console.print(auto_explained())
    out_console.print(filters_table())


def _run(build) -> int:
    from wsidist.stage1.driver import run_stage1

    def run(job, tasks, on_result):
        return run_stage1(
            tasks, job.out, job.config, scheduler=job.scheduler, workers=job.workers,
            overwrite=job.overwrite, cache_dir=job.cache_dir,
            storage_options=job.storage_options, on_result=on_result,
        )  # fmt: skip

    return run_slide_job("stage 1", build, run, STAGE1_COLUMNS, width=110)
