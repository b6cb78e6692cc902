"""Extract the patches of a selection as image files (local or ``s3://``), on Dask.

:func:`extract` groups a selection table (``wsidist.select.select`` output, or any table with
``slide_id, url, x, y, w, h``) by slide and maps one slide per Dask bag partition. Each worker
opens its slide once, reads every patch box (level-0 px) at the requested ``level`` or ``mpp``,
optionally resizes it to ``size`` × ``size``, encodes it with PIL and writes it through
:meth:`wsidist.storage.Store.write_bytes` as ``<slide_id>/<slide_id>_x<x>_y<y>_l<level>.<ext>``.

Workers return small per-patch summaries (never pixels); the driver writes ``DEST/index.parquet``
with one row per output object. A key that already holds the same bytes (same sha256) is not
rewritten (status ``skipped``). A slide that cannot be opened or read becomes ``failed`` rows
with the reason while the other slides complete.

Options: ``shard_bytes`` writes WebDataset-style tar shards ``shards/<slide_id>-%06d.tar`` instead
of one file per patch; ``mosaic=N`` also stitches each slide's first N patches into a grid image
``mosaics/<slide_id>.<ext>``. The index's ``kind`` column says ``patch``, ``shard`` or ``mosaic``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dask.bag as db
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wsidist.errors import WsidistError
from wsidist.storage import Store, merge_by_slide_id, rows_to_table

INDEX_KEY = "index.parquet"
FORMATS = {"png": ("PNG", "png"), "jpg": ("JPEG", "jpg"), "jpeg": ("JPEG", "jpg"),
           "webp": ("WEBP", "webp")}  # fmt: skip
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
        ("status", pa.string()),  # written | skipped | failed
        ("error", pa.string()),
    ]
)

ResultCallback = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class ExtractOptions:
    level: int | None
    mpp: float | None
    size: int | None
    fmt: str
    quality: int
    shard_bytes: int | None
    mosaic: int | None

    @property
    def pil_format(self) -> str:
        return FORMATS[self.fmt][0]

    @property
    def ext(self) -> str:
        return FORMATS[self.fmt][1]


@dataclass(frozen=True)
class SlidePatches:
    slide_id: str
    url: str
    boxes: tuple[tuple[int, int, int, int], ...]  # (x, y, w, h) in level-0 px


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
    client=None,
    workers: int | None = None,
    scheduler: str | None = None,
    storage_options: dict[str, Any] | None = None,
    on_result: ResultCallback | None = None,
) -> pa.Table:
    """Write the patches of ``selection`` under ``dest``; returns the index it wrote.

    ``level`` (default 0) reads each box at that pyramid level; ``mpp`` instead reads from the
    best level for that resolution and resizes to exactly ``round(w * slide_mpp / mpp)`` px.
    Passing ``mpp`` together with a non-zero ``level`` is an error. ``size`` resizes every patch
    to ``size`` × ``size``. ``fmt`` is png, jpg/jpeg or webp (``quality`` for the lossy ones).
    ``on_result`` is called on the driver with one summary dict per slide as it finishes.
    """
    opts = _check_options(level, mpp, size, fmt, quality, shard_bytes, mosaic)
    storage_options = storage_options or {}
    if isinstance(selection, str):
        selection = _read_selection(selection, storage_options)
    tasks = _plan(selection)
    store = Store(_root(dest), storage_options)
    rows: list[dict[str, Any]] = []
    if tasks:
        bag = db.from_sequence(tasks, npartitions=len(tasks)).map(
            extract_slide, store=store, opts=opts
        )
        with contextlib.ExitStack() as stack:
            if client is None:
                from wsidist.job import dask_client

                client = stack.enter_context(dask_client(scheduler, workers))
            rows = _collect(client, bag, tasks, opts, on_result)
    table = merge_by_slide_id(store, INDEX_KEY, _as_table(rows))
    store.write_parquet(INDEX_KEY, table)
    return table


# -- validation and planning -------------------------------------------------------------------
def _check_options(level, mpp, size, fmt, quality, shard_bytes, mosaic) -> ExtractOptions:
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
    groups: dict[str, tuple[str, list[tuple[int, int, int, int]]]] = {}
    cols = [selection.column(c).to_pylist() for c in REQUIRED_COLUMNS]
    for sid, url, x, y, w, h in zip(*cols):
        if None in (sid, url, x, y, w, h):
            raise WsidistError(f"selection row with a null value: {(sid, url, x, y, w, h)}")
        if w < 1 or h < 1:
            raise WsidistError(f"selection row {sid} x={x} y={y}: box size {w}×{h} is empty")
        url0, boxes = groups.setdefault(sid, (url, []))
        if url0 != url:
            raise WsidistError(f"slide_id {sid!r} has two urls: {url0!r} and {url!r}")
        boxes.append((int(x), int(y), int(w), int(h)))
    return [SlidePatches(sid, url, tuple(boxes)) for sid, (url, boxes) in groups.items()]


def _root(dest: str) -> str:
    return dest.rstrip("/") if "://" in dest else os.path.abspath(dest)


# -- worker side -------------------------------------------------------------------------------
def patch_key(slide_id: str, x: int, y: int, level: int, ext: str) -> str:
    return f"{slide_id}/{patch_basename(slide_id, x, y, level)}.{ext}"


def patch_basename(slide_id: str, x: int, y: int, level: int) -> str:
    return f"{slide_id}_x{x}_y{y}_l{level}"


def extract_slide(task: SlidePatches, *, store: Store, opts: ExtractOptions) -> dict[str, Any]:
    """Read, encode and write one slide's patches; returns ``{"slide_id", "rows"}`` (no pixels)."""
    from wsidist.slide import open_slide

    try:
        slide = open_slide(task.url)
    except Exception as exc:  # noqa: BLE001 — any open failure fails the slide, not the job
        return _failed_summary(task, opts, f"{type(exc).__name__}: {exc}")
    rows: list[dict[str, Any]] = []
    encoded: list[tuple[dict[str, Any], bytes]] = []  # (row, image bytes) of good patches
    mosaic_tiles: list[np.ndarray] = []
    with slide:
        for x, y, w, h in task.boxes:
            row = _base_row(task.slide_id, "patch", x, y, w, h)
            try:
                rgb, lvl, out_mpp = _read_patch(slide, x, y, w, h, opts)
                data = _encode(rgb, opts)
            except Exception as exc:  # noqa: BLE001 — one bad patch fails that row only
                row.update(level=opts.level, status="failed", error=f"{type(exc).__name__}: {exc}")
                rows.append(row)
                continue
            if opts.mosaic and len(mosaic_tiles) < opts.mosaic:
                mosaic_tiles.append(rgb)
            row.update(level=lvl, mpp=out_mpp, out_w=rgb.shape[1], out_h=rgb.shape[0])
            row.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
            key = patch_key(task.slide_id, x, y, lvl, opts.ext)
            if opts.shard_bytes:
                row["member"] = key.rsplit("/", 1)[1]
                encoded.append((row, data))
            else:
                row["key"] = key
                try:
                    row["status"] = _put(store, key, data, row["sha256"])
                except Exception as exc:  # noqa: BLE001 — a write error fails that row only
                    row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            rows.append(row)
    if opts.shard_bytes:
        rows.extend(_write_shards(store, task.slide_id, encoded, opts.shard_bytes))
    if mosaic_tiles:
        rows.append(_write_mosaic(store, task.slide_id, mosaic_tiles, opts))
    return {"slide_id": task.slide_id, "rows": rows}


def _base_row(slide_id: str, kind: str, x=None, y=None, w=None, h=None) -> dict[str, Any]:
    return {"slide_id": slide_id, "kind": kind, "x": x, "y": y, "w": w, "h": h}


def _failed_summary(task: SlidePatches, opts: ExtractOptions, error: str) -> dict[str, Any]:
    rows = []
    for x, y, w, h in task.boxes:
        row = _base_row(task.slide_id, "patch", x, y, w, h)
        row.update(level=opts.level, status="failed", error=error)
        rows.append(row)
    return {"slide_id": task.slide_id, "rows": rows}


def _read_patch(slide, x: int, y: int, w: int, h: int, opts: ExtractOptions):
    """(uint8 RGB, level read, µm per output px or None) for one level-0 box."""
    from PIL import Image

    mpp0 = slide.mpp_x
    if opts.mpp is not None:
        if not mpp0:
            raise WsidistError(f"{slide.url}: slide has no mpp, cannot extract at mpp {opts.mpp}")
        ratio = opts.mpp / mpp0
        level = slide.best_level_for_downsample(ratio)
        target = (max(1, round(w / ratio)), max(1, round(h / ratio)))
    else:
        level = opts.level
        target = None
    if not 0 <= level < slide.level_count:
        raise WsidistError(f"{slide.url}: level {level} out of range (0..{slide.level_count - 1})")
    ds = slide.level_downsamples[level]
    read_size = (max(1, round(w / ds)), max(1, round(h / ds)))
    rgb = slide.read_region(x, y, level, read_size)
    if opts.size is not None:
        target = (opts.size, opts.size)
    if target is not None and target != (rgb.shape[1], rgb.shape[0]):
        img = Image.fromarray(rgb).resize(target, Image.Resampling.LANCZOS)
        rgb = np.asarray(img)
    out_mpp = mpp0 * w / rgb.shape[1] if mpp0 else None
    return rgb, level, out_mpp


def _encode(rgb: np.ndarray, opts: ExtractOptions) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    kwargs: dict[str, Any] = {}
    if opts.pil_format in ("JPEG", "WEBP"):
        kwargs["quality"] = opts.quality
    Image.fromarray(rgb).save(buf, opts.pil_format, **kwargs)
    return buf.getvalue()


def _put(store: Store, key: str, data: bytes, sha: str) -> str:
    """Write ``data`` unless ``key`` already holds the same bytes; ``written`` or ``skipped``."""
    if store.exists(key) and hashlib.sha256(store.read_bytes(key)).hexdigest() == sha:
        return "skipped"
    store.write_bytes(key, data)
    return "written"


def _tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A deterministic tar (fixed mtime, owner and mode), so equal content gives equal bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _write_shards(
    store: Store, slide_id: str, encoded: list[tuple[dict[str, Any], bytes]], shard_bytes: int
) -> list[dict[str, Any]]:
    """Pack patches into tars of at most ~``shard_bytes`` (a shard holds ≥ 1 patch)."""
    groups: list[list[tuple[dict[str, Any], bytes]]] = []
    size = 0
    for item in encoded:
        cost = len(item[1]) + 1024  # header and padding
        if not groups or (size + cost > shard_bytes and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += cost
    rows = []
    for i, group in enumerate(groups):
        key = f"shards/{slide_id}-{i:06d}.tar"
        data = _tar_bytes([(row["member"], blob) for row, blob in group])
        sha = hashlib.sha256(data).hexdigest()
        shard = _base_row(slide_id, "shard")
        shard.update(key=key, bytes=len(data), sha256=sha)
        try:
            shard["status"] = _put(store, key, data, sha)
        except Exception as exc:  # noqa: BLE001
            shard.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        for row, _ in group:
            row.update(key=key, status=shard["status"], error=shard.get("error"))
        rows.append(shard)
    return rows


def _write_mosaic(
    store: Store, slide_id: str, tiles: list[np.ndarray], opts: ExtractOptions
) -> dict[str, Any]:
    """Stitch ``tiles`` row-major into a ceil(sqrt(N))-column grid (white where empty)."""
    from PIL import Image

    n = opts.mosaic or len(tiles)
    cols = math.ceil(math.sqrt(n))
    nrows = math.ceil(len(tiles) / cols)
    th, tw = tiles[0].shape[:2]
    grid = np.full((nrows * th, cols * tw, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        if tile.shape[:2] != (th, tw):
            tile = np.asarray(Image.fromarray(tile).resize((tw, th), Image.Resampling.LANCZOS))
        r, c = divmod(i, cols)
        grid[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = tile
    data = _encode(grid, opts)
    key = f"mosaics/{slide_id}.{opts.ext}"
    row = _base_row(slide_id, "mosaic")
    sha = hashlib.sha256(data).hexdigest()
    row.update(key=key, bytes=len(data), sha256=sha, out_w=grid.shape[1], out_h=grid.shape[0])
    try:
        row["status"] = _put(store, key, data, sha)
    except Exception as exc:  # noqa: BLE001
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    return row


# -- driver side -------------------------------------------------------------------------------
def _collect(
    client,
    bag: db.Bag,
    tasks: list[SlidePatches],
    opts: ExtractOptions,
    on_result: ResultCallback | None,
) -> list[dict[str, Any]]:
    from wsidist.job import partition_results

    by_slide: dict[str, list[dict[str, Any]]] = {}
    for task, summary, exc in partition_results(client, bag, tasks):
        if exc is not None:
            summary = _failed_summary(
                task, opts, f"worker failed while extracting: {type(exc).__name__}: {exc}"
            )
        by_slide[task.slide_id] = summary["rows"]
        if on_result:
            on_result(_progress(summary))
    return [row for t in tasks for row in by_slide[t.slide_id]]


def _progress(summary: dict[str, Any]) -> dict[str, Any]:
    rows = summary["rows"]
    counts = {s: sum(r.get("status") == s for r in rows) for s in ("written", "skipped", "failed")}
    errors = sorted({r["error"] for r in rows if r.get("error")})
    return {"slide_id": summary["slide_id"], "n": len(rows), **counts, "errors": errors}


def _as_table(rows: list[dict[str, Any]]) -> pa.Table:
    return rows_to_table(rows, INDEX_SCHEMA)
