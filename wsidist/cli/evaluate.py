"""``wsidist mask-from-tiles | metrics``: masks from selected tiles, and scores against truth."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from wsidist import layout
from wsidist.cli.common import default, opt, shell_words
from wsidist.cli.output import (
    console,
    fitted_table,
    num,
    print_closing,
    print_fitted,
    print_lines,
    reported,
)


def mask_from_tiles_cmd(
    selection: Annotated[str, typer.Argument(help="selection Parquet (select, or any boxes)")],
    out: Annotated[
        str | None,
        opt(help="folder for <id>.png  [default: tile-masks/ next to SELECTION]", metavar="DIR"),
    ] = None,
    scale: Annotated[
        float | None,
        opt(help="level-0 px per mask px  [default: the slide's stage-1 scale]", metavar="N"),
    ] = None,
    mpp: Annotated[
        float | None, opt(help="µm per mask px instead of --scale", metavar="UM")
    ] = None,
    smooth: Annotated[
        float, opt(help=default("edge smoothing: disk diameter, level-0 px", 0), metavar="PX")
    ] = 0.0,
    slides: Annotated[
        str | None,
        opt(help="slides.parquet for sizes  [default: next to SELECTION]", metavar="FILE"),
    ] = None,
) -> None:
    """The union of the selected (overlapping, off-grid) level-0 boxes as one mask per slide.

    Writes DIR/<id>.png (1-bit; a pixel is set when its centre is inside a box; its grid in
    the PNG's "wsidist" text chunk) and DIR/tile-masks.parquet. --smooth opens the mask with
    a disk (erode, then dilate), rounding the blocky edges. Reads no pixels.
    """
    from wsidist.evaluate.tilemask import TileMaskOptions, masks_from_tiles

    with reported() as caught:
        options = TileMaskOptions(scale=scale, mpp=mpp, smooth_px0=smooth)
        table, url = masks_from_tiles(selection, out, options, slides=slides)
    caught.exit_on_error()
    rows = table.to_pylist()
    ok = [r for r in rows if r["status"] == "ok"]
    cells = [
        [r["slide_id"], str(r["n_boxes"]), f"{r['mask_width']}×{r['mask_height']}",
         num(r["downsample"], ".4g"), num(r["mask_frac"], ".1f", 100)]
        for r in ok
    ]  # fmt: skip
    title = f"{len(ok)} mask(s) from {sum(r['n_boxes'] for r in rows)} boxes"
    print_fitted(*fitted_table(title, ["slide_id", "boxes", "px", "px0/px", "set %"], cells,
                               console.width))  # fmt: skip
    print_lines("warnings:", [f"{r['slide_id']}: {r['warning']}" for r in ok if r["warning"]])
    failed = [r for r in rows if r["status"] != "ok"]
    print_lines(
        f"{len(failed)} slide(s) failed:",
        (Text.assemble((r["slide_id"], "red"), ": ", r["error"] or "") for r in failed),
        style="bold red",
    )  # fmt: skip
    root = url.rpartition("/")[0]
    print_closing(
        root,
        [f"<id>.png  {len(ok)} mask(s)", f"{layout.TILE_MASKS_TABLE}  one row per slide"],
        [f"wsidist metrics {shell_words([root])} GROUND_TRUTH"],
    )
    raise typer.Exit(1 if failed else 0)


def metrics_cmd(
    pred: Annotated[str, typer.Argument(help="stage-1 output, mask folder/file, or annotations")],
    gt: Annotated[str, typer.Argument(help="the ground truth: the same kinds as PRED")],
    to: Annotated[
        str, opt(help=default("the metrics table", layout.METRICS_TABLE), metavar="FILE")
    ] = layout.METRICS_TABLE,
    grid: Annotated[
        str,
        opt(help=default("common grid: coarser, finer, pred or gt", "coarser"), metavar="WHICH"),
    ] = "coarser",
    scale: Annotated[
        float | None, opt(help="level-0 px per grid px (needs slide sizes)", metavar="N")
    ] = None,
    class_name: Annotated[
        str | None,
        opt("--class", help="the annotation class  [default: the only one]", metavar="NAME"),
    ] = None,  # fmt: skip
    slides: Annotated[
        str | None,
        opt(help="slides.parquet with slide sizes  [default: a stage-1 side's]", metavar="FILE"),
    ] = None,
) -> None:
    """Dice, Jaccard, precision, recall and accuracy per slide, pooled and mean of slides.

    Slides are matched by id (ignoring case); slides on one side only are listed. Masks at
    different scales are resampled to one grid per slide (area-weighted, a pixel set when at
    least half covered); annotations are rasterised on it (pixel centres). Writes FILE.
    """
    from wsidist.evaluate.metrics import MetricsOptions, compare
    from wsidist.evaluate.tilemask import split_url
    from wsidist.io.storage import Store

    with reported() as caught:
        options = MetricsOptions(grid=grid, scale=scale, class_name=class_name, slides=slides)
        table = compare(pred, gt, options)
        root, name = split_url(to)
        store = Store(root)
        store.write_parquet(name, table)
        url = store.full_url(name)
    caught.exit_on_error()
    rows = table.to_pylist()
    print_fitted(*metrics_table(rows, console.width))
    slide_rows = [r for r in rows if r["scope"] == "slide"]
    grids = sorted({f"{r['grid']}{_px0(r)}; PRED {r['pred_resampled']}, GT {r['gt_resampled']}"
                    for r in slide_rows if r["status"] == "ok"})  # fmt: skip
    print_lines("grid (per slide):", grids)
    meta = json.loads(table.schema.metadata[b"wsidist"])
    console.print(
        f"pooled: counts summed over the slides; mean: mean of the slides' values. "
        f"PRED: {meta['pred']}; GT: {meta['gt']}",
        markup=False,
        soft_wrap=True,
    )
    unmatched = [r for r in slide_rows if r["status"] != "ok"]
    print_lines(
        f"{len(unmatched)} slide(s) not scored:",
        (Text.assemble((r["slide_id"], "red"), f" [{r['status']}] ", r["error"] or "")
         for r in unmatched),
        style="bold red",
    )  # fmt: skip
    print_closing(
        root,
        [f"{name}  per slide, pooled and mean rows (scope), with the grid of each slide"],
        [f"duckdb -c \"SELECT slide_id, dice, jaccard FROM '{url}' WHERE scope = 'slide'\""],
    )
    raise typer.Exit(1 if any(r["status"] == "failed" for r in slide_rows) else 0)


def _px0(row: dict) -> str:
    x, y = row["grid_px0_x"], row["grid_px0_y"]
    if x is None:
        return ""
    return f", {x:.4g} level-0 px per px" if x == y else f", {x:.4g}×{y:.4g} level-0 px per px"


def metrics_table(rows: list[dict], width: int):
    """The printed table: one line per scored slide, then pooled and mean."""
    names = ("dice", "jaccard", "precision", "recall", "accuracy")
    cells = []
    for r in rows:
        if r["status"] != "ok":
            continue
        label = r["slide_id"] if r["scope"] == "slide" else f"({r['scope']}, {r['n_slides']})"
        cells.append([label, *(num(r[n], ".3f") for n in names)])
    n = sum(r["scope"] == "slide" and r["status"] == "ok" for r in rows)
    return fitted_table(f"metrics of {n} slide(s)", ["slide_id", *names], cells, width)
