"""``wsidist select | extract | top-tiles``: re-select tiles, extract patches, dynamic mode."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from wsidist import layout
from wsidist.cli.common import (
    MppOpt,
    ScaleOpt,
    SchedulerOpt,
    TileSizeOpt,
    TileUmOpt,
    TissueOpt,
    WorkersOpt,
)
from wsidist.cli.output import console, fail, out_console
from wsidist.errors import WsidistError


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
    geojson: Annotated[
        str | None,
        typer.Option(help="also write DIR/<slide_id>.geojson: the tiles as QuPath polygons"),
    ] = None,
) -> None:
    """Select tiles from a stage-1 output with DuckDB, without touching pixels."""
    from wsidist.query.geojson import write_selection_geojson
    from wsidist.query.select import select, selection_counts, write_selection

    try:
        strata = [_parse_stratum(s) for s in stratum or []] or None
        table = select(out, top=top, where=where, strata=strata)
        url = write_selection(table, to or f"{out.rstrip('/')}/{layout.SELECTION_TABLE}")
        if geojson:
            n_files = len(write_selection_geojson(table, geojson))
            url += f" and {n_files} GeoJSON files to {geojson}"
    except WsidistError as exc:
        raise fail(str(exc)) from None
    counts = Table(
        title=Text(f"{table.num_rows} tiles selected"), caption=Text(f"written to {url}")
    )
    counts.add_column("slide_id")
    counts.add_column("tiles", justify="right")
    for row in selection_counts(table).to_pylist():
        counts.add_row(Text(row["slide_id"]), str(row["n_tiles"]))
    out_console.print(counts)


def _parse_stratum(text: str) -> tuple[float, int]:
    frac, sep, count = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(frac), int(count)
    except ValueError:
        raise WsidistError(f"bad --stratum {text!r}: expected FRAC:N, e.g. 0.8:10") from None


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
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Extract selected patches from the slides to a folder or bucket, with index.parquet."""
    from wsidist.query.extract import extract

    try:
        index = extract(
            selection, dest, level=level, mpp=mpp, size=size, fmt=fmt, quality=quality,
            shard_bytes=int(shard_mb * 2**20) if shard_mb else None, mosaic=mosaic,
            scheduler=scheduler, workers=workers,
        )  # fmt: skip
    except WsidistError as exc:
        raise fail(str(exc)) from None
    statuses = index.column("status").to_pylist()
    counts = {s: statuses.count(s) for s in ("written", "skipped", "failed")}
    console.print(
        f"{counts['written']} written, {counts['skipped']} unchanged, {counts['failed']} failed"
        f" → {dest.rstrip('/')}/{layout.PATCH_INDEX}",
        markup=False,
    )
    raise typer.Exit(1 if counts["failed"] else 0)


def top_tiles_cmd(
    slide: Annotated[str, typer.Argument(help="a slide path or URL")],
    out: Annotated[str, typer.Option("--out", help="folder (or URL) for the tiles")],
    n: Annotated[int, typer.Option(help="number of tiles")] = 20,
    size: Annotated[int | None, typer.Option(help="resize tiles to SIZE×SIZE px")] = None,
    fmt: Annotated[str, typer.Option("--format", help="png or jpg")] = "png",
    tissue: TissueOpt = None,
    scale: ScaleOpt = None,
    tile_size: TileSizeOpt = None,
    tile_um: TileUmOpt = None,
    mpp: MppOpt = None,
) -> None:
    """Dynamic mode: the best tiles straight from the slide, no intermediate files."""
    from wsidist.stage1.config import build_job
    from wsidist.stage1.dynamic import write_top_tiles

    try:
        config = build_job(
            None, tissue=tissue, scale=scale, tile_size=tile_size, tile_um=tile_um, mpp=mpp
        ).config
        paths = write_top_tiles(slide, out, n=n, size=size, fmt=fmt, config=config)
    except (WsidistError, ValueError) as exc:  # e.g. a size in µm on a slide without mpp
        raise fail(str(exc)) from None
    console.print(f"wrote {len(paths)} tiles to {out}", markup=False)
