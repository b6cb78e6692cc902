"""Extract the patches of a selection as image files (local or ``s3://``), on Dask.

:func:`extract` groups a selection table (``wsidist.query.select.select`` output, or any table with
``slide_id, url, x, y, w, h``) by slide and maps one slide per Dask bag partition. Each worker
opens its slide once, reads every patch box (level-0 px) at the requested ``level`` or ``mpp``,
optionally resizes it to ``size`` × ``size``, encodes it with PIL and writes it through
:meth:`wsidist.io.storage.Store.write_bytes` as ``<slide_id>/<slide_id>_x<x>_y<y>_l<level>.<ext>``.

Workers return small per-patch summaries (never pixels); the driver writes ``DEST/index.parquet``
with one row per output object. A key that already holds the same bytes (same sha256) is not
rewritten (status ``skipped``). A slide that cannot be opened or read becomes ``failed`` rows
with the reason while the other slides complete.

Options: ``shard_bytes`` writes WebDataset-style tar shards ``shards/<slide_id>-%06d.tar`` instead
of one file per patch, each patch followed by its ``.json`` metadata member; ``mosaic=N`` also stitches each slide's first N patches (in selection order) into a grid image
``mosaics/<slide_id>.<ext>``, each patch row recording its place as ``mosaic_pos``
(row-major, ``ceil(sqrt(N))`` columns). The index's ``kind`` column says ``patch``, ``shard`` or ``mosaic``; ``edge`` says whether a
patch is ``whole``, ``padded`` with white (beyond the slide, or a clipped tile squared by
``size``) or ``dropped`` (``edge="drop"``: status ``dropped``, nothing written).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wsidist import layout
from wsidist.errors import WsidistError, failure_reason
from wsidist.io.patch import EDGE_MODES, prefetch_patches
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.query.patches import (
    FORMATS,
    ExtractOptions,
    SlidePatches,
    edge_state,
    failed_patch_rows,
    object_row,
    patch_spec,
    put_object,
    read_patch,
    sample_metadata,
    write_mosaic,
    write_shards,
)
from wsidist.runtime.results import prepare_output, run_slide_tasks, write_job_table
from wsidist.runtime.tasks import run_slide_task

__all__ = ["INDEX_SCHEMA", "ExtractOptions", "SlidePatches", "extract", "extract_slide"]

REQUIRED_COLUMNS = ("slide_id", "url", "x", "y", "w", "h")
INDEX_SCHEMA = pa.schema(
    [
        ("slide_id", pa.string()),
        ("kind", pa.string()),  # patch | shard | mosaic
        ("x", pa.int64()),
        ("y", pa.int64()),
        ("w", pa.int64()),
        ("h", pa.int64()),
        ("level", pa.int32()),
        ("mpp", pa.float64()),  # µm per output pixel (null when the slide has no mpp)
        ("out_w", pa.int64()),
        ("out_h", pa.int64()),
        ("key", pa.string()),
        ("member", pa.string()),  # tar member name of a patch inside a shard
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("status", pa.string()),  # written | skipped | failed | dropped
        ("error", pa.string()),
        ("edge", pa.string()),  # whole | padded (white fill) | dropped (an edge box, --edge drop)
        ("mosaic_pos", pa.int32()),  # a patch's place in its slide's mosaic (row-major), or null
        ("bytes_read", pa.int64()),  # bytes this patch's read moved from the slide's source
        ("read_requests", pa.int64()),  # requests it sent (the first patch: the open's too)
    ]
)

PREFETCH_BOXES = 32  # boxes whose tiles a remote slide fetches in one batch

ResultCallback = Callable[[dict[str, Any]], None]


def extract(
    selection: pa.Table | str,
    dest: str,
    *,
    level: int = 0,
    mpp: float | None = None,
    size: int | None = None,
    fmt: str = "png",
    quality: int = 90,
    shard_bytes: int | None = None,
    mosaic: int | None = None,
    edge: str = "pad",
    client=None,
    workers: int | None = None,
    scheduler: str | None = None,
    storage_options: dict[str, Any] | None = None,
    on_result: ResultCallback | None = None,
    on_start: Callable[[int], None] | None = None,
    cache_dir: str | CacheSpec | None = None,
) -> pa.Table:
    """Write the patches of ``selection`` under ``dest``; returns the index it wrote.

    ``level`` (default 0) reads each box at that pyramid level; ``mpp`` instead reads from the
    best level for that resolution and resizes to exactly ``round(w * slide_mpp / mpp)`` px.
    Passing ``mpp`` together with a non-zero ``level`` is an error. ``size`` resizes every patch
    to ``size`` × ``size`` (a non-square box scaled uniformly, padded with white, never
    stretched). ``edge`` ``"pad"`` keeps boxes clipped by or overhanging the slide's edge,
    white beyond it; ``"drop"`` leaves them out (index rows ``dropped``). ``fmt`` is png, jpg/jpeg or webp (``quality`` for the lossy ones).
    ``on_result`` is called on the driver with one summary dict per slide as it finishes;
    ``on_start(n_slides)`` once the options and slides are checked, before any work starts.
    Remote slides are staged to ``cache_dir`` (a folder or a bounded
    :class:`~wsidist.io.remote.CacheSpec`).
    """
    opts = _check_options(level, mpp, size, fmt, quality, shard_bytes, mosaic, edge)
    storage_options = storage_options or {}
    if isinstance(selection, str):
        selection = _read_selection(selection, storage_options)
    tasks = _plan(selection)
    check_slides(tasks, selection, opts)
    store = Store(_root(dest), storage_options)
    prepare_output(store)
    if on_start is not None:
        on_start(len(tasks))

    def lost(task: SlidePatches, exc: BaseException) -> dict[str, Any]:
        error = f"worker failed while extracting: {type(exc).__name__}: {exc}"
        return {"slide_id": task.slide_id, "rows": failed_patch_rows(task, opts, error)}

    summaries = run_slide_tasks(
        extract_slide, tasks, fn_kwargs={"store": store, "opts": opts, "cache_dir": cache_dir},
        lost=lost,
        client=client, scheduler=scheduler, workers=workers,
        on_result=(lambda s: on_result(_progress(s))) if on_result else None,
    )  # fmt: skip
    rows = [row for summary in summaries for row in summary["rows"]]
    return write_job_table(store, layout.PATCH_INDEX, rows, INDEX_SCHEMA)


# -- validation and planning -------------------------------------------------------------------
def _check_options(level, mpp, size, fmt, quality, shard_bytes, mosaic, edge) -> ExtractOptions:
    if edge not in EDGE_MODES:
        raise WsidistError(f"unknown edge mode {edge!r} (choose {' or '.join(EDGE_MODES)})")
    if not isinstance(fmt, str) or fmt.lower() not in FORMATS:
        raise WsidistError(f"unknown image format {fmt!r} (choose png, jpg, jpeg or webp)")
    if mpp is not None and level not in (None, 0):
        raise WsidistError(f"give level or mpp, not both (level={level!r}, mpp={mpp!r})")
    if level is not None and (not isinstance(level, (int, np.integer)) or level < 0):
        raise WsidistError(f"level must be an integer ≥ 0, got {level!r}")
    if mpp is not None and not (isinstance(mpp, (int, float)) and math.isfinite(mpp) and mpp > 0):
        raise WsidistError(f"mpp must be a positive number, got {mpp!r}")
    for name, value in (("size", size), ("shard_bytes", shard_bytes), ("mosaic", mosaic)):
        if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
            raise WsidistError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise WsidistError(f"quality must be an integer in 1..100, got {quality!r}")
    return ExtractOptions(
        level=None if mpp is not None else int(level or 0),
        mpp=float(mpp) if mpp is not None else None,
        size=size, fmt=fmt.lower(), quality=int(quality), shard_bytes=shard_bytes, mosaic=mosaic,
        edge=edge,
    )  # fmt: skip


def _read_selection(url: str, storage_options: dict[str, Any]) -> pa.Table:
    import fsspec

    try:
        with fsspec.open(url, "rb", **storage_options) as fh:
            return pq.read_table(fh)
    except FileNotFoundError:
        raise WsidistError(f"selection not found: {url}") from None


def _plan(selection: pa.Table) -> list[SlidePatches]:
    missing = [c for c in REQUIRED_COLUMNS if c not in selection.column_names]
    if missing:
        raise WsidistError(
            f"selection lacks column(s) {', '.join(missing)} "
            f"(has {', '.join(selection.column_names)})"
        )
    groups: dict[str, tuple[str, list[tuple[int, int, int, int]], list[dict[str, Any]]]] = {}
    cols = [selection.column(c).to_pylist() for c in REQUIRED_COLUMNS]
    others = [c for c in selection.column_names if c not in REQUIRED_COLUMNS or c == "url"]
    extras = selection.select(others).to_pylist()
    for (sid, url, x, y, w, h), extra in zip(zip(*cols), extras):
        if None in (sid, url, x, y, w, h):
            raise WsidistError(f"selection row with a null value: {(sid, url, x, y, w, h)}")
        if w < 1 or h < 1:
            raise WsidistError(f"selection row {sid} x={x} y={y}: box size {w}×{h} is empty")
        url0, boxes, records = groups.setdefault(sid, (url, [], []))
        if url0 != url:
            raise WsidistError(f"slide_id {sid!r} has two urls: {url0!r} and {url!r}")
        boxes.append((int(x), int(y), int(w), int(h)))
        records.append(extra)
    return [
        SlidePatches(sid, url, tuple(boxes), tuple(records))
        for sid, (url, boxes, records) in groups.items()
    ]


def check_slides(tasks: list[SlidePatches], selection: pa.Table, opts: ExtractOptions) -> None:
    """Raise :class:`WsidistError`, before any work, naming the slides that cannot give the
    requested ``level`` (too few levels) or ``mpp`` (no mpp). The facts come from the
    selection's ``level_count`` / ``mpp`` columns, or from opening local slides (metadata
    only); remote slides without them are checked by their worker."""
    facts = _slide_facts(tasks, selection, need_mpp=opts.mpp is not None)
    if opts.mpp is not None:
        no_mpp = sorted(sid for sid, (_, mpp) in facts.items() if not mpp)
        if no_mpp:
            raise WsidistError(
                f"--mpp {opts.mpp:g} needs each slide's mpp; {len(no_mpp)} slide(s) have none: "
                f"{', '.join(no_mpp)} (read them with --level instead)"
            )
    elif opts.level:
        short = {sid: n for sid, (n, _) in facts.items() if n is not None and opts.level >= n}
        if not short:
            return
        if short:
            named = ", ".join(
                f"{sid} ({n} level{'s' * (n != 1)})" for sid, n in sorted(short.items())
            )
            lowest = min(n for n, _ in facts.values() if n is not None)  # ≥ 1
            raise WsidistError(
                f"--level {opts.level} is not in every slide: {named}; levels 0..{lowest - 1} "
                "exist in all of them (or use --mpp)"
            )


def _slide_facts(
    tasks: list[SlidePatches], selection: pa.Table, *, need_mpp: bool
) -> dict[str, tuple[int | None, float | None]]:
    """slide_id → (level count, mpp) from the selection, else from the local slide file;
    slides whose facts are unknown are left out."""
    cols = selection.column_names
    first: dict[str, tuple[Any, Any]] = {}
    if "level_count" in cols or "mpp" in cols:
        ids = selection.column("slide_id").to_pylist()
        counts = selection.column("level_count").to_pylist() if "level_count" in cols else None
        mpps = selection.column("mpp").to_pylist() if "mpp" in cols else None
        for i, sid in enumerate(ids):
            if sid not in first:
                first[sid] = (counts[i] if counts else None, mpps[i] if mpps else None)
    facts = {}
    for task in tasks:
        n, mpp = first.get(task.slide_id, (None, None))
        if n is not None and ("mpp" in cols or not need_mpp):
            facts[task.slide_id] = (n, mpp)
        elif "://" not in task.url:
            try:
                with open_slide(task.url) as slide:
                    facts[task.slide_id] = (slide.level_count, slide.mpp_x)
            except WsidistError:
                pass  # unknown: its worker turns the failure into rows
    return facts


def _root(dest: str) -> str:
    return dest.rstrip("/") if "://" in dest else os.path.abspath(dest)


# -- worker side -------------------------------------------------------------------------------
def extract_slide(
    task: SlidePatches,
    *,
    store: Store,
    opts: ExtractOptions,
    cache_dir: str | CacheSpec | None = None,
) -> dict[str, Any]:
    """Read, encode and write one slide's patches; returns its summary with ``rows`` (no pixels).

    A slide that cannot be opened or read gives one ``failed`` row per box.
    """

    def failed_rows(summary: dict[str, Any]) -> dict[str, Any]:
        if summary["status"] == "ok":
            return {}
        rows = failed_patch_rows(task, opts, summary["error"])
        if rows:  # what the failed open moved
            rows[0].update(bytes_read=summary["bytes_read"], read_requests=summary["read_requests"])
        return {"rows": rows}

    return run_slide_task(
        task,
        lambda: {"rows": _write_patches(task, store, opts, cache_dir)},
        store=store,
        config_hash=opts.config_hash(),
        status_key=None,
        finish=failed_rows,
    )


def _write_patches(
    task: SlidePatches, store: Store, opts: ExtractOptions, cache_dir: str | CacheSpec | None
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    encoded: list[tuple[dict[str, Any], bytes, bytes]] = []  # (row, image, json) to shard
    mosaic_tiles: list[np.ndarray] = []
    records = task.records or ({},) * len(task.boxes)
    with open_slide(task.url, cache_dir=cache_dir) as slide:
        mark = (0, 0)  # the slide's reads so far (the first patch carries the open's)
        for i, ((x, y, w, h), extra) in enumerate(zip(task.boxes, records)):
            if i % PREFETCH_BOXES == 0:  # the next boxes' tiles in one concurrent batch
                prefetch_patches(slide, task.boxes[i : i + PREFETCH_BOXES], patch_spec(opts))
            row = object_row(task.slide_id, "patch", x, y, w, h)
            try:
                row["edge"] = edge_state(slide, x, y, w, h, opts)
                if row["edge"] == "dropped":
                    row.update(level=opts.level, status="dropped")
                    rows.append(row)
                    continue
                rgb, lvl, out_mpp = read_patch(slide, x, y, w, h, opts)
                data = opts.encode(rgb)
            except Exception as exc:  # noqa: BLE001 — one bad patch fails that row only
                row.update(level=opts.level, status="failed", error=failure_reason(exc))
                rows.append(row)
                continue
            finally:
                mark = _charge(row, slide.meter, mark)
            if opts.mosaic and len(mosaic_tiles) < opts.mosaic:
                row["mosaic_pos"] = len(mosaic_tiles)
                mosaic_tiles.append(rgb)
            row.update(level=lvl, mpp=out_mpp, out_w=rgb.shape[1], out_h=rgb.shape[0])
            key = layout.patch_key(task.slide_id, x, y, lvl, opts.ext)
            if opts.shard_bytes:
                row.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
                row["member"] = key.rsplit("/", 1)[1]
                encoded.append((row, data, sample_metadata(row, extra)))
            else:
                put_object(store, row, key, data)
            rows.append(row)
    if opts.shard_bytes:
        rows.extend(write_shards(store, task.slide_id, encoded, opts.shard_bytes))
    if mosaic_tiles:
        rows.append(write_mosaic(store, task.slide_id, mosaic_tiles, opts))
    return rows


def _charge(row: dict[str, Any], meter, mark: tuple[int, int]) -> tuple[int, int]:
    """Put the reads since ``mark`` on ``row``; the new mark."""
    now = (meter.bytes_read, meter.read_requests)
    row.update(bytes_read=now[0] - mark[0], read_requests=now[1] - mark[1])
    return now


def _progress(summary: dict[str, Any]) -> dict[str, Any]:
    rows = summary["rows"]
    statuses = ("written", "skipped", "failed", "dropped")
    counts = {s: sum(r.get("status") == s for r in rows) for s in statuses}
    errors = sorted({r["error"] for r in rows if r.get("error")})
    return {"slide_id": summary["slide_id"], "n": len(rows), **counts, "errors": errors}
