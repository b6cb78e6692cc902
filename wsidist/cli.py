"""Command line: ``wsidist info | score | select | extract | top-tiles | rewrite | restore | demo | filters``.

Thin: parse, validate, delegate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.table import Table

from wsidist.cli_output import console, out_console, slide_progress
from wsidist.cli_output import fail as _fail
from wsidist.cli_stage2 import restore_cmd, rewrite_cmd
from wsidist.config import Stage1Job, build_job
from wsidist.errors import WsidistError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
app.command("rewrite")(rewrite_cmd)
app.command("restore")(restore_cmd)


@app.command()
def info(
    slides: Annotated[list[str], typer.Argument(help="slide paths, folders, globs or URLs")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Print each slide's metadata: vendor, levels, mpp, objective, associated images."""
    from wsidist.inputs import expand_inputs
    from wsidist.slide import SlideError, info_table, open_slide

    try:
        urls = expand_inputs(slides)
    except WsidistError as exc:
        raise _fail(str(exc)) from None
    infos, errors = [], []
    for url in urls:
        try:
            with open_slide(url) as slide:
                infos.append(slide.info())
        except SlideError as exc:
            errors.append({"url": url, "error": str(exc)})
    if as_json:
        out_console.print_json(json.dumps([i.as_dict() for i in infos] + errors))
    else:
        out_console.print(info_table(infos))
        for err in errors:
            console.print(f"[red]{err['url']}[/]: {err['error']}")
    if errors:
        raise typer.Exit(1)


TissueOpt = Annotated[
    str | None, typer.Option("--tissue", help="tissue preset or filter spec (see `filters`)")
]


@app.command()
def score(
    slides: Annotated[list[str] | None, typer.Argument(help="slides, folders, globs, URLs")] = None,
    out: Annotated[str | None, typer.Option("--out", help="output folder or s3:// URL")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="job YAML file")] = None,
    scheduler: Annotated[str | None, typer.Option(help="address of a Dask scheduler")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster worker processes")] = None,
    scale: Annotated[float | None, typer.Option(help="downsample for filtering")] = None,
    tissue: TissueOpt = None,
    refine: Annotated[
        str | None, typer.Option(help="refiners after the tissue preset, e.g. 'fill_holes'")
    ] = None,
    tile_size: Annotated[int | None, typer.Option(help="tile side, level-0 px")] = None,
    tile_um: Annotated[float | None, typer.Option(help="tile side in µm (needs mpp)")] = None,
    overlap: Annotated[float | None, typer.Option(help="overlap, unit of the tile size")] = None,
    edge: Annotated[str | None, typer.Option(help="keep | drop partial edge tiles")] = None,
    mpp: Annotated[float | None, typer.Option(help="µm per level-0 px, overrides slides")] = None,
    scorer: Annotated[str | None, typer.Option(help="'seed', 'tissue' or module:function")] = None,
    batch: Annotated[bool | None, typer.Option("--batch", help="write every step image")] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="redo done slides")] = None,
    cache_dir: Annotated[str | None, typer.Option(help="local cache for remote slides")] = None,
) -> None:
    """Stage 1: tissue masks and scored tiles for every slide, as hive-partitioned Parquet."""
    try:
        job = build_job(
            config,
            inputs=slides or None,
            out=out,
            scheduler=scheduler,
            workers=workers,
            scale=scale,
            tissue=tissue,
            refine=refine,
            tile_size=tile_size,
            tile_um=tile_um,
            overlap=overlap,
            edge=edge,
            mpp=mpp,
            scorer=scorer,
            batch=batch,
            overwrite=overwrite,
            cache_dir=cache_dir,
        )
        if not job.inputs:
            raise WsidistError("no slides given: pass SLIDES or `inputs:` in the job file")
        if not job.out:
            raise WsidistError("no output given: pass --out or `out:` in the job file")
    except WsidistError as exc:
        raise _fail(str(exc)) from None
    raise typer.Exit(_run_job(job))


@app.command()
def demo(
    slides: Annotated[list[str] | None, typer.Argument(help="extra slides to include")] = None,
    out: Annotated[str, typer.Option("--out", help="output folder")] = "demo-out",
    n: Annotated[int, typer.Option(help="number of synthetic slides")] = 3,
    workers: Annotated[int | None, typer.Option(help="LocalCluster worker processes")] = None,
    batch: Annotated[bool, typer.Option("--batch/--no-batch", help="write step images")] = True,
) -> None:
    """Generate synthetic slides (tissue, pen marks, glass) and run stage 1 on a LocalCluster."""
    from wsidist.synth import generate_demo_slides

    slide_dir = Path(out) / "demo-slides"
    console.print(f"generating {n} synthetic slides in {slide_dir} …")
    paths = [str(p) for p in generate_demo_slides(slide_dir, n=n)]
    try:
        job = build_job(
            None, inputs=paths + list(slides or []), out=out, workers=workers, batch=batch
        )
    except WsidistError as exc:
        raise _fail(str(exc)) from None
    code = _run_job(job)
    console.print(
        f"outputs in [bold]{out}[/]: slides.parquet, tiles/, masks/, thumbnails/"
        + (", batch/" if batch else "")
    )
    raise typer.Exit(code)


@app.command("select")
def select_tiles(
    out: Annotated[str, typer.Argument(help="a stage-1 output folder or s3:// URL")],
    top: Annotated[int | None, typer.Option(help="top N tiles per slide by score")] = None,
    where: Annotated[str | None, typer.Option(help="SQL filter on tile/slide columns")] = None,
    stratum: Annotated[
        list[str] | None,
        typer.Option(help="FRAC:N, e.g. 0.8:10 (repeatable): up to N tiles per tissue band"),
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="selection Parquet (default OUT/selection.parquet)")
    ] = None,
) -> None:
    """Select tiles from a stage-1 output with DuckDB, without touching pixels."""
    from wsidist.select import select, selection_counts, write_selection

    try:
        strata = [_parse_stratum(s) for s in stratum or []] or None
        table = select(out, top=top, where=where, strata=strata)
        url = write_selection(table, to or f"{out.rstrip('/')}/selection.parquet")
    except WsidistError as exc:
        raise _fail(str(exc)) from None
    counts = Table(title=f"{table.num_rows} tiles selected", caption=f"written to {url}")
    counts.add_column("slide_id")
    counts.add_column("tiles", justify="right")
    for row in selection_counts(table).to_pylist():
        counts.add_row(row["slide_id"], str(row["n_tiles"]))
    out_console.print(counts)


def _parse_stratum(text: str) -> tuple[float, int]:
    frac, sep, count = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(frac), int(count)
    except ValueError:
        raise WsidistError(f"bad --stratum {text!r}: expected FRAC:N, e.g. 0.8:10") from None


@app.command("extract")
def extract_cmd(
    selection: Annotated[str, typer.Argument(help="selection Parquet (from `wsidist select`)")],
    dest: Annotated[str, typer.Option("--to", help="destination folder or s3:// URL")],
    level: Annotated[int, typer.Option(help="pyramid level to read")] = 0,
    mpp: Annotated[float | None, typer.Option(help="read at this µm/px instead of a level")] = None,
    size: Annotated[int | None, typer.Option(help="resize patches to SIZE×SIZE px")] = None,
    fmt: Annotated[str, typer.Option("--format", help="png, jpg or webp")] = "png",
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality")] = 90,
    shard_mb: Annotated[float | None, typer.Option(help="WebDataset tar shards of ~MB")] = None,
    mosaic: Annotated[int | None, typer.Option(help="also stitch N patches per slide")] = None,
    scheduler: Annotated[str | None, typer.Option(help="address of a Dask scheduler")] = None,
    workers: Annotated[int | None, typer.Option(help="LocalCluster worker processes")] = None,
) -> None:
    """Extract selected patches from the slides to a folder or bucket, with index.parquet."""
    from wsidist.extract import extract

    try:
        index = extract(
            selection,
            dest,
            level=level,
            mpp=mpp,
            size=size,
            fmt=fmt,
            quality=quality,
            shard_bytes=int(shard_mb * 2**20) if shard_mb else None,
            mosaic=mosaic,
            scheduler=scheduler,
            workers=workers,
        )
    except WsidistError as exc:
        raise _fail(str(exc)) from None
    statuses = index.column("status").to_pylist()
    counts = {s: statuses.count(s) for s in ("written", "skipped", "failed")}
    console.print(
        f"{counts['written']} written, {counts['skipped']} unchanged, {counts['failed']} failed"
        f" → {dest.rstrip('/')}/index.parquet"
    )
    raise typer.Exit(1 if counts["failed"] else 0)


@app.command("top-tiles")
def top_tiles_cmd(
    slide: Annotated[str, typer.Argument(help="a slide path or URL")],
    out: Annotated[str, typer.Option("--out", help="folder (or URL) for the tiles")],
    n: Annotated[int, typer.Option(help="number of tiles")] = 20,
    size: Annotated[int | None, typer.Option(help="resize tiles to SIZE×SIZE px")] = None,
    fmt: Annotated[str, typer.Option("--format", help="png or jpg")] = "png",
    tissue: TissueOpt = None,
    scale: Annotated[float | None, typer.Option(help="downsample for filtering")] = None,
    tile_size: Annotated[int | None, typer.Option(help="tile side, level-0 px")] = None,
    tile_um: Annotated[float | None, typer.Option(help="tile side in µm (needs mpp)")] = None,
    mpp: Annotated[
        float | None, typer.Option(help="µm per level-0 px, overrides the slide")
    ] = None,
) -> None:
    """Dynamic mode: the best tiles straight from the slide, no intermediate files."""
    from wsidist.dynamic import write_top_tiles

    try:
        config = build_job(
            None, tissue=tissue, scale=scale, tile_size=tile_size, tile_um=tile_um, mpp=mpp
        ).config
        paths = write_top_tiles(slide, out, n=n, size=size, fmt=fmt, config=config)
    except WsidistError as exc:
        raise _fail(str(exc)) from None
    console.print(f"wrote {len(paths)} tiles to {out}")


@app.command()
def filters() -> None:
    """List tissue presets and the filters a pipeline spec can use."""
    from wsidist.filters import describe_filters
    from wsidist.tissue import PRESETS

    table = Table(title="tissue presets")
    table.add_column("preset")
    table.add_column("pipeline")
    for name, spec in PRESETS.items():
        table.add_row(name, str(spec))
    out_console.print(table)
    out_console.print(describe_filters())


def _run_job(job: Stage1Job) -> int:
    from wsidist.job import plan_tasks, run_stage1

    try:
        tasks = plan_tasks(job.inputs)
    except WsidistError as exc:
        raise _fail(str(exc)) from None
    with slide_progress("stage 1", len(tasks)) as on_result:
        table = run_stage1(
            [t.url for t in tasks],
            job.out,
            job.config,
            scheduler=job.scheduler,
            workers=job.workers,
            overwrite=job.overwrite,
            cache_dir=job.cache_dir,
            storage_options=job.storage_options,
            on_result=on_result,
        )
    return _print_summary(table, {t.slide_id for t in tasks})


def _print_summary(table: pa.Table, this_run: set[str]) -> int:
    rows = [r for r in table.to_pylist() if r["slide_id"] in this_run]
    summary = Table(title="stage 1")
    for name in ("slide_id", "status", "tiles", "tissue tiles", "tissue %", "mpp", "s", "note"):
        summary.add_column(name)
    for r in rows:
        note = r["error"] or r["warning"] or ("skipped (done)" if r["skipped"] else "")
        summary.add_row(
            r["slide_id"],
            "[green]ok[/]" if r["status"] == "ok" else "[red]failed[/]",
            str(r["n_tiles"] if r["n_tiles"] is not None else "-"),
            str(r["n_tissue_tiles"] if r["n_tissue_tiles"] is not None else "-"),
            f"{100 * r['tissue_frac']:.1f}" if r["tissue_frac"] is not None else "-",
            f"{r['mpp_x']:.3f}" if r["mpp_x"] else "-",
            f"{r['seconds']:.1f}" if r["seconds"] is not None else "-",
            note,
        )
    out_console.print(summary)
    failed = [r["slide_id"] for r in rows if r["status"] != "ok"]
    if failed:
        console.print(f"[bold red]{len(failed)} slide(s) failed:[/] {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    app()
