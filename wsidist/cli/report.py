"""``wsidist report | stats | view``: look at the results (static site, tables, deep zoom)."""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from wsidist.cli.common import (
    CacheDirOpt,
    CacheMaxGbOpt,
    SchedulerOpt,
    WorkersOpt,
    cache_spec,
    default,
    opt,
    shell_words,
)
from wsidist.cli.output import console, fail, num, out_console, print_closing, print_lines
from wsidist.errors import WsidistError


def report_cmd(
    out: Annotated[str, typer.Argument(help="a stage-1 output folder or s3:// URL")],
    to: Annotated[
        str | None, opt("--to", help="report folder  [default: OUT/report]", metavar="DIR")
    ] = None,
    top: Annotated[
        int | None, opt(help="top tiles shown per slide  [default: 12]", metavar="N")
    ] = None,
    picture_px: Annotated[
        int | None,
        opt(help="long side of slide pictures, px (≥ 1024)  [default: 1280]", metavar="PX"),
    ] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    cache_dir: CacheDirOpt = None,
    cache_max_gb: CacheMaxGbOpt = None,
) -> None:
    """Build a static HTML report (slide table, charts, one page per slide); no server needed."""
    from wsidist.cli.output import slide_progress
    from wsidist.io.storage import Store
    from wsidist.report.config import ReportConfig
    from wsidist.report.driver import build_report
    from wsidist.report.tables import dataset_rows

    cache = cache_spec(cache_dir, cache_max_gb)
    try:
        config = ReportConfig.build(top_n=top, picture_px=picture_px)
        n = len(dataset_rows(Store(out.rstrip("/") if "://" in out else os.path.abspath(out))))
        with slide_progress("report", n) as on_result:
            summary = build_report(
                out, to, config, scheduler=scheduler, workers=workers, cache_dir=cache,
                on_result=lambda row: on_result({"slide_id": row["slide_id"], "status": row["page_status"]}),
            )  # fmt: skip
    except WsidistError as exc:
        raise fail(str(exc)) from None
    console.print(
        Text.assemble(
            f"{summary.n_slides} slide pages in {summary.seconds:.1f} s → ",
            (summary.index_url, "bold"),
        )  # fmt: skip
    )
    for sid in summary.failed_pages:
        console.print(Text.assemble(("page failed: ", "red"), sid))
    index = summary.index_url
    local = "://" not in index or index.startswith("file://")
    steps = [f"open {index.removeprefix('file://')}   # in a browser"] if local else []
    if "://" not in out:
        steps.append(f"wsidist view {shell_words([out])}   # deep zoom with masks and tiles")
    print_closing(
        index.rsplit("/", 1)[0],
        ["index.html  the dataset page (opens from the file system, no server)",
         "slides/<id>.html  one page per slide", "data/slides.json  the slide table"],
        steps,
    )  # fmt: skip
    raise typer.Exit(1 if summary.failed_pages else 0)


def stats_cmd(
    slides: Annotated[list[str], typer.Argument(help="slides, folders, globs, URLs, or one OUT")],
    as_json: Annotated[bool, opt("--json", help="print JSON")] = False,
    as_csv: Annotated[bool, opt("--csv", help="print slide_info as CSV")] = False,
    charts: Annotated[
        str | None, opt(help="write the charts (PNG) and both tables (CSV) to DIR", metavar="DIR")
    ] = None,
    threads: Annotated[int, opt(help=default("slides opened at once", 8), metavar="N")] = 8,
) -> None:
    """Seed 000's slide_info and slide_stats: metadata and size statistics, without stage 1."""
    from wsidist.report.charts import render_charts
    from wsidist.report.stats import INFO_COLUMNS, collect, is_output, stats

    if as_json and as_csv:
        raise fail("give --json or --csv, not both")
    try:
        rows = collect(slides, threads=threads)
    except WsidistError as exc:
        raise fail(str(exc)) from None
    table_stats = stats(rows)
    columns = [c for c in INFO_COLUMNS if any(c in r for r in rows)]
    if charts:
        os.makedirs(charts, exist_ok=True)
        for name, png in render_charts(rows, ["status", "vendor", "size", "dimensions"]).items():
            with open(os.path.join(charts, f"{name}.png"), "wb") as fh:
                fh.write(png)
        with open(os.path.join(charts, "slide_info.csv"), "w", newline="") as fh:
            fh.write(_csv(rows, columns))
        with open(os.path.join(charts, "slide_stats.csv"), "w", newline="") as fh:
            fh.write(_csv(table_stats, ["attribute", "pixels", "slide"]))
    if as_json:
        out_console.print_json(json.dumps({"slide_info": [{c: r.get(c) for c in columns} for r in rows],
                                           "slide_stats": table_stats}, default=str))  # fmt: skip
    elif as_csv:
        typer.echo(_csv(rows, columns), nl=False)
    else:
        wide = Console(width=max(out_console.width, 130))
        wide.print(_info_table(rows))
        wide.print(_stats_table(table_stats))
    for row in rows:
        if row.get("status") == "failed":
            console.print(
                Text.assemble((row.get("name") or row["url"], "red"), ": ", str(row.get("error")))
            )
    words = shell_words(slides)
    if len(slides) == 1 and is_output(slides[0]):
        steps = [f"wsidist report {words}   # the same tables with charts and slide pages"]
    else:
        steps = [f"wsidist score {words} --out OUT   # stage 1: tissue masks and tiles"]
    if charts:
        names = sorted(os.listdir(charts))
        print_closing(charts, [n for n in names if n.endswith((".png", ".csv"))], steps)
    else:
        print_lines("next:", steps)
    raise typer.Exit(1 if any(r.get("status") == "failed" for r in rows) else 0)


def view_cmd(
    targets: Annotated[list[str], typer.Argument(help="one stage-1 OUT, or slides and folders")],
    port: Annotated[
        int,
        opt(
            help=default("port on 127.0.0.1 (0: a free one)", 8000),
            metavar="PORT",
            min=0,
            max=65535,
        ),
    ] = 8000,
    host: Annotated[
        str,
        opt(
            help=default("address to bind (default: this machine only)", "127.0.0.1"),
            metavar="ADDR",
        ),
    ] = "127.0.0.1",
    cache_mb: Annotated[float, opt(help=default("tile cache, MB", 256), metavar="MB")] = 256,
    cache_dir: CacheDirOpt = None,
    cache_max_gb: CacheMaxGbOpt = None,
) -> None:
    """Deep-zoom viewer of slides and rewritten pyramids, with mask, contour, tile and selection overlays."""
    from wsidist.view.app import bind, make_viewer, serve

    cache = cache_spec(cache_dir, cache_max_gb)
    try:
        viewer, app = make_viewer(targets, cache_mb=cache_mb, cache_dir=cache)
        sock = bind(host, port)
    except WsidistError as exc:
        raise fail(str(exc)) from None
    n = sum(1 for e in viewer.catalog.entries.values() if e.kind == "slide")
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{bound_host if ':' not in bound_host else f'[{bound_host}]'}:{bound_port}/"
    console.print(Text.assemble(f"serving {n} slides at ", (url, "bold"), " (Ctrl-C stops)"))
    for path in viewer.catalog.skipped:
        console.print(Text.assemble(("left out (outside its folder): ", "yellow"), path))
    serve(app, sock)


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: r.get(c) for c in columns} for r in rows)
    return buf.getvalue()


def _info_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="slide_info", box=box.SIMPLE_HEAD)
    longest = max((len(str(r.get("name") or r.get("url"))) for r in rows), default=8)
    table.add_column("slide", overflow="fold", min_width=min(longest, 40))
    for col in ("status", "vendor", "width", "height", "Mpx", "levels", "mpp", "obj", "MB"):
        table.add_column(
            col, justify="right" if col not in ("status", "vendor") else "left", no_wrap=True
        )
    for r in rows:
        table.add_row(
            Text(str(r.get("name") or r.get("url"))), Text(str(r.get("status"))),
            Text(str(r.get("vendor") or "-")), num(r.get("width"), ",.0f"), num(r.get("height"), ",.0f"),
            num(r.get("mpix"), ".1f"), num(r.get("level_count"), ".0f"), num(r.get("mpp_x"), ".4g"),
            num(r.get("objective_power"), "g"), num(r.get("file_bytes"), ".1f", 1e-6),
        )  # fmt: skip
    return table


def _stats_table(table_stats: list[dict[str, Any]]) -> Table:
    table = Table(title="slide_stats", box=box.SIMPLE_HEAD)
    table.add_column("attribute")
    table.add_column("size (px)", justify="right")
    table.add_column("slide", overflow="fold")
    for s in table_stats:
        table.add_row(s["attribute"], f"{s['pixels']:,}", Text(s["slide"] or ""))
    return table
