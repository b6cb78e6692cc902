"""The pieces of patch extraction that run on a worker: read a box, write objects, shards, mosaics.

Every object written gets an index row (``kind`` ``patch``, ``shard`` or ``mosaic``) with its
key, size and sha256; a key that already holds the same bytes is not rewritten (``skipped``).
In a shard each patch ``<key>.<ext>`` is followed by its metadata ``<key>.json`` (WebDataset's
key convention): its index row's box, level and mpp, and the selection's other columns.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import tarfile
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

from wsidist import layout
from wsidist.errors import OutputError
from wsidist.imaging import encode_image
from wsidist.io.patch import PatchSpec, is_edge_box, patch_geometry
from wsidist.io.patch import read_patch as read_box
from wsidist.io.slide import Slide
from wsidist.io.storage import Store
from wsidist.runtime.budget import DEFAULT_MEMORY_BUDGET_MB, check_memory

FORMATS = {"png": "png", "jpg": "jpg", "jpeg": "jpg", "webp": "webp"}  # name -> file extension
Row = dict[str, Any]


@dataclass(frozen=True)
class ExtractOptions:
    """How every patch is read and written (checked by ``extract`` before any work)."""

    level: int | None
    mpp: float | None
    size: int | None
    fmt: str
    quality: int
    shard_bytes: int | None
    mosaic: int | None
    edge: str = "pad"  # pad | drop: boxes clipped by or overhanging the slide's edge

    @property
    def ext(self) -> str:
        return FORMATS[self.fmt]

    def config_hash(self) -> str:
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:16]

    def encode(self, rgb: np.ndarray) -> bytes:
        return encode_image(rgb, self.fmt, self.quality)


@dataclass(frozen=True)
class SlidePatches:
    """One slide's share of a selection."""

    slide_id: str
    url: str
    boxes: tuple[tuple[int, int, int, int], ...]  # (x, y, w, h) in level-0 px
    records: tuple[dict[str, Any], ...] = ()  # per box: the selection's other columns


def object_row(slide_id: str, kind: str, x=None, y=None, w=None, h=None) -> Row:
    return {"slide_id": slide_id, "kind": kind, "x": x, "y": y, "w": w, "h": h}


def failed_patch_rows(task: SlidePatches, opts: ExtractOptions, error: str) -> list[Row]:
    """One ``failed`` row per box of a slide that could not be read at all."""
    rows = []
    for x, y, w, h in task.boxes:
        row = object_row(task.slide_id, "patch", x, y, w, h)
        row.update(level=opts.level, status="failed", error=error)
        rows.append(row)
    return rows


def patch_spec(opts: ExtractOptions) -> PatchSpec:
    return PatchSpec(level=opts.level if opts.mpp is None else None, mpp=opts.mpp, size=opts.size)


def edge_state(slide: Slide, x: int, y: int, w: int, h: int, opts: ExtractOptions) -> str:
    """``dropped`` (an edge box under ``edge="drop"``), ``padded`` (white fill: beyond the
    slide, or squaring a non-square box for ``size``) or ``whole``."""
    if opts.edge == "drop" and is_edge_box(slide, x, y, w, h):
        return "dropped"
    return "padded" if patch_geometry(slide, x, y, w, h, patch_spec(opts)).padded else "whole"


def read_patch(slide: Slide, x: int, y: int, w: int, h: int, opts: ExtractOptions):
    """(uint8 RGB, level read, µm per output px or None) for one level-0 box, through the one
    box reader (:func:`wsidist.io.patch.read_patch`), refused before reading when the box and
    its output would exceed the memory budget."""
    spec = patch_spec(opts)
    plan = patch_geometry(slide, x, y, w, h, spec)
    (rw, rh), (ow, oh) = plan.read_size, plan.out_size
    check_memory(
        f"box x={x} y={y} {w}×{h} read at level {plan.level} ({rw}×{rh} px)",
        {"the patch": rw * rh * 3, "its output": ow * oh * 6},
        DEFAULT_MEMORY_BUDGET_MB, advice="read it at a smaller level or mpp",
    )  # fmt: skip
    return read_box(slide, x, y, w, h, spec)


INDEX_FIELDS = ("slide_id", "x", "y", "w", "h", "level", "mpp", "out_w", "out_h", "edge")


def sample_metadata(row: Row, extra: dict[str, Any]) -> bytes:
    """The ``.json`` member of one shard sample: the selection's columns (``extra``; its
    ``level``/``mpp`` kept as ``selection_level``/``selection_mpp``), then the index row's
    slide id, box (level-0 px), level read, µm per output px, output size and edge state."""
    meta = {k: v for k, v in extra.items() if k not in INDEX_FIELDS}
    for name in ("level", "mpp"):
        if name in extra:
            meta[f"selection_{name}"] = extra[name]
    meta.update({k: row.get(k) for k in INDEX_FIELDS})
    return json.dumps(meta, default=str, sort_keys=True).encode()


def put_if_changed(store: Store, key: str, data: bytes, sha: str) -> str:
    """Write ``data`` unless ``key`` already holds the same bytes; ``written`` or ``skipped``."""
    if store.exists(key) and hashlib.sha256(store.read_bytes(key)).hexdigest() == sha:
        return "skipped"
    store.write_bytes(key, data)
    return "written"


def put_object(store: Store, row: Row, key: str, data: bytes) -> Row:
    """Write one object and fill its row's key, bytes, sha256 and status (``failed`` + error
    when the write fails: that row only)."""
    sha = hashlib.sha256(data).hexdigest()
    row.update(key=key, bytes=len(data), sha256=sha)
    try:
        row["status"] = put_if_changed(store, key, data, sha)
    except OutputError as exc:
        if exc.permanent:
            raise  # read-only, full, …: the job stops with this message
        row.update(status="failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 — a write error fails that row only
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    return row


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
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


def write_shards(
    store: Store, slide_id: str, encoded: list[tuple[Row, bytes, bytes]], shard_bytes: int
) -> list[Row]:
    """Pack ``(row, image, metadata json)`` samples into tars of at most ~``shard_bytes`` (a
    shard holds ≥ 1 sample): ``<key>.<ext>`` then ``<key>.json``, one sample after another."""
    groups: list[list[tuple[Row, bytes, bytes]]] = []
    size = 0
    for item in encoded:
        cost = len(item[1]) + len(item[2]) + 2048  # headers and padding
        if not groups or (size + cost > shard_bytes and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(item)
        size += cost
    rows = []
    for i, group in enumerate(groups):
        members = []
        for row, blob, meta in group:
            members += [(row["member"], blob), (row["member"].rpartition(".")[0] + ".json", meta)]
        data = tar_bytes(members)
        shard = put_object(
            store, object_row(slide_id, "shard"), layout.shard_key(slide_id, i), data
        )
        for row, _, _ in group:
            row.update(key=shard["key"], status=shard["status"], error=shard.get("error"))
        rows.append(shard)
    return rows


def write_mosaic(store: Store, slide_id: str, tiles: list[np.ndarray], opts: ExtractOptions) -> Row:
    """Stitch ``tiles`` row-major into a ceil(sqrt(N))-column grid (white where empty)."""
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
    row = object_row(slide_id, "mosaic")
    row.update(out_w=grid.shape[1], out_h=grid.shape[0])
    return put_object(store, row, layout.mosaic_key(slide_id, opts.ext), opts.encode(grid))
