"""``wsidist report``: the static site of a stage-1 output (and its stage-2 and tile tables).

The dataset table comes from Parquet through DuckDB on the driver; each slide's page needs
pixels (pictures at a readable size, the top tiles at full resolution), so it is one Dask task
per slide, run through :func:`wsidist.runtime.results.run_slide_tasks`. The driver then writes
the charts, the table extract (``data/slides.js`` for pages opened from the file system, and
``data/slides.json``) and ``index.html``. The site needs no server and no network.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from distributed import Client

from wsidist import layout
from wsidist.errors import WsidistError
from wsidist.io.remote import CacheSpec
from wsidist.io.storage import Store
from wsidist.report.charts import CHARTS, render_charts
from wsidist.report.config import ReportConfig
from wsidist.report.pages import ASSETS, asset, render_index, script_json
from wsidist.report.tables import COLUMNS, dataset_rows, slide_stats
from wsidist.report.worker import report_slide
from wsidist.runtime.results import ProgressCallback, run_slide_tasks

Row = dict[str, Any]
PYRAMID_FIELDS = {
    "status": "pyr_status", "error": "pyr_error", "codec": "pyr_codec",
    "reduction_pct": "reduction_pct", "ssim": "ssim", "psnr_db": "psnr_db",
    "source_bytes": "source_bytes", "output_bytes": "output_bytes",
}  # fmt: skip
EXTRA_FIELDS = ("id", "url", "thumb", "warning", "page_status")


@dataclass(frozen=True)
class ReportTask:
    """One slide page to build: the slide and its rows from the job tables."""

    url: str
    slide_id: str
    row: Row = field(hash=False, compare=False)
    pyramid: Row | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True)
class ReportSummary:
    index_url: str
    n_slides: int
    n_pages_failed: int
    seconds: float
    failed_pages: tuple[str, ...] = ()


def _root(url: str) -> str:
    return url.rstrip("/") if "://" in url else os.path.abspath(url)


def build_report(
    out: str,
    to: str | None = None,
    config: ReportConfig | None = None,
    *,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    cache_dir: str | CacheSpec | None = None,
    storage_options: dict[str, Any] | None = None,
    on_result: ProgressCallback | None = None,
) -> ReportSummary:
    """Build the report of stage-1 output ``out`` into ``to`` (default ``OUT/report``)."""
    started = time.perf_counter()
    config = config or ReportConfig()
    source = Store(_root(out), storage_options or {})
    dest = Store(_root(to) if to else f"{source.url}/{layout.REPORT_DIR}", storage_options or {})
    rows = dataset_rows(source)
    if not rows:
        raise WsidistError(f"{out}: slides.parquet has no rows")
    tasks = [ReportTask(r["url"] or r["id"], r["id"], r, _pyramid(r)) for r in rows]
    pages = run_slide_tasks(
        _report_task,
        tasks,
        fn_kwargs={"config": config, "out": source, "dest": dest, "cache_dir": cache_dir},
        lost=lambda task, exc: {"slide_id": task.slide_id, "page_status": "failed",
                                "page_error": f"{type(exc).__name__}: {exc}"},  # fmt: skip
        client=client, scheduler=scheduler, workers=workers, on_result=on_result,
    )  # fmt: skip
    by_id = {p["slide_id"]: p for p in pages}
    for row in rows:
        row.update({k: v for k, v in by_id.get(row["id"], {}).items() if k != "slide_id"})
    write_site(dest, rows, config, source_label=out)
    failed = tuple(r["id"] for r in rows if r.get("page_status") != "ok")
    return ReportSummary(
        dest.full_url(layout.REPORT_INDEX), len(rows), len(failed),
        round(time.perf_counter() - started, 3), failed,
    )  # fmt: skip


def _report_task(task: ReportTask, **kwargs: Any) -> Row:
    return report_slide(task, task.row, task.pyramid, **kwargs)


def _pyramid(row: Row) -> Row | None:
    if not row.get("pyr_status"):
        return None
    return {k: row.get(v) for k, v in PYRAMID_FIELDS.items()}


def write_site(dest: Store, rows: Sequence[Row], config: ReportConfig, *, source_label: str):
    """The driver's part: charts, the table extract, the index page and the assets."""
    charts = []
    for name, png in render_charts(rows).items():
        dest.write_bytes(layout.report_chart_key(name), png)
        charts.append({"key": layout.report_chart_key(name), "title": CHARTS[name][0]})
    columns = [
        {"key": k, "label": label, "kind": kind, "unit": unit}
        for k, label, kind, unit in COLUMNS
        if k in ("name", "status", "error") or any(r.get(k) is not None for r in rows)
    ]
    fields = list(EXTRA_FIELDS) + [c["key"] for c in columns if c["key"] not in EXTRA_FIELDS]
    extract = {
        "fields": fields,
        "columns": columns,
        "rows": [[_plain(r.get(f)) for f in fields] for r in rows],
        "page_size": config.page_size,
    }
    dest.write_bytes(layout.REPORT_DATA_JSON, script_json(extract).encode())
    dest.write_bytes(
        layout.REPORT_DATA_JS, f"window.WSIDIST_REPORT = {script_json(extract)};\n".encode()
    )
    for name in ASSETS:
        dest.write_bytes(layout.report_asset_key(name), asset(name))
    flagged = sum(1 for r in rows if r.get("status") == "ok" and (r.get("warning") or r.get("qc")))
    counts = {
        "slides": len(rows),
        "ok": sum(r.get("status") == "ok" for r in rows),
        "failed": sum(r.get("status") == "failed" for r in rows),
        "flagged": flagged,
        "gigapixels": sum((r.get("mpix") or 0) for r in rows) / 1000,
        "tissue_tiles": sum((r.get("n_tissue_tiles") or 0) for r in rows),
        "pyramids": sum(1 for r in rows if r.get("pyr_status") == "ok"),
        "saved_bytes": sum(
            (r.get("saved_bytes") or 0) for r in rows if r.get("pyr_status") == "ok"
        ),
    }
    html = render_index(
        root="", source=source_label, built_at=_now(), version=_version(), counts=counts,
        stats=slide_stats(rows), charts=charts, page_size=config.page_size,
    )  # fmt: skip
    dest.write_bytes(layout.REPORT_INDEX, html.encode())


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return (
            round(value, 6)
            if value == value and value not in (float("inf"), float("-inf"))
            else None
        )
    return value


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wsidist")
    except PackageNotFoundError:
        return "(source)"
