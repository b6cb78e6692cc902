"""One slide's report page, built on a worker: pictures from the slide at a readable size
(tissue contours, tiles by class, tiles by score), the top tiles read at full resolution and
stored as small JPEGs, the batch-mode filter steps, the metadata and QC flags, and the page.

The slide is opened once. When it cannot be opened any more, the pictures are drawn from the
stage-1 thumbnail instead and the page says so; a slide that failed in stage 1 gets a page
with its error and whatever metadata can still be read.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from wsidist import layout
from wsidist.errors import SlideError
from wsidist.imaging import encode_image
from wsidist.imaging.contours import geojson_polygons, mask_polygons
from wsidist.imaging.figures import shrink_to
from wsidist.imaging.masks import mask_downsample
from wsidist.imaging.slide_pictures import (
    class_picture,
    contour_picture,
    enlarge,
    read_display,
    score_picture,
)
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import Slide, open_slide
from wsidist.io.storage import Store
from wsidist.report.config import ReportConfig
from wsidist.report.pages import render_slide_page
from wsidist.report.tables import slide_name
from wsidist.runtime.tasks import SlideTask, run_slide_task, utc_now
from wsidist.runtime.tiletable import read_slide_tiles

Row = dict[str, Any]


def report_slide(
    task: SlideTask,
    row: Row,
    pyramid: Row | None,
    config: ReportConfig,
    out: Store,
    dest: Store,
    *,
    cache_dir: str | CacheSpec | None = None,
) -> Row:
    """Write one slide's page and pictures under ``dest``; returns a small row for the index
    (``page_status``, ``thumb``, ``n_top``, ``page_error``). Never raises for slide errors."""

    def work() -> Row:
        return _build(task, row, pyramid, config, out, dest, cache_dir)

    result = run_slide_task(
        task, work, store=dest, config_hash=config.config_hash(), status_key=None
    )
    return {
        "slide_id": task.slide_id,
        "page_status": result["status"],
        "page_error": result.get("error"),
        "thumb": bool(result.get("thumb")),
        "n_top": int(result.get("n_top") or 0),
    }


def _build(task, row, pyramid, config, out, dest, cache_dir) -> Row:
    sid, notes = task.slide_id, []
    name = row.get("name") or slide_name(task.url)
    tiles = _read_tiles(out, sid) if row.get("status") == "ok" else None
    polygons = _read_polygons(out, sid, row)
    with contextlib.ExitStack() as stack:
        slide = None
        try:
            slide = stack.enter_context(open_slide(task.url, cache_dir=cache_dir))
        except SlideError as exc:
            notes.append(f"The slide cannot be opened now ({exc}).")
        rgb, downsample = _display_image(slide, row, out, config, notes)
        pictures = _pictures(rgb, downsample, tiles, polygons, row, dest, sid, config)
        if rgb is not None:
            _put_jpeg(dest, layout.report_thumb_key(sid), shrink_to(rgb, config.thumb_px), config)
        top = _top_tiles(slide, tiles, dest, sid, config) if slide is not None else []
        info = slide.info().as_dict() if slide is not None else None
        properties = sorted(slide.properties.items()) if slide is not None else []
    steps = _copy_steps(out, dest, sid)
    geojson = None
    if out.exists(layout.contours_key(sid)):
        geojson = layout.report_picture_key(sid, "contours.geojson")
        dest.write_bytes(geojson, out.read_bytes(layout.contours_key(sid)))
    page = render_slide_page(
        root="../", source=name, built_at=utc_now()[:16].replace("T", " ") + " UTC",
        version="", name=name, row=row, pyramid=pyramid, info=info,
        properties=properties, pictures=_relative(pictures), top=_relative(top),
        steps=_relative(steps), notes=notes, flags=_flags(row), config=config,
        geojson=_rel(geojson) if geojson else None, out_hint=out.url,
    )  # fmt: skip
    dest.write_bytes(layout.report_page_key(sid), page.encode())
    return {"thumb": rgb is not None, "n_top": len(top)}


def _display_image(slide: Slide | None, row: Row, out: Store, config: ReportConfig, notes):
    if slide is not None:
        width, height = slide.dimensions
        return read_display(slide.thumbnail, width, height, config.picture_px)
    key = layout.thumbnail_key(row["slide_id"])
    if row.get("width") and out.exists(key):
        rgb = np.asarray(Image.open(io.BytesIO(out.read_bytes(key))).convert("RGB"))
        notes.append("Pictures are drawn from the stage-1 thumbnail (at the filter scale).")
        return enlarge(
            rgb, mask_downsample(row["width"], row["height"], rgb.shape, row.get("scale"))
        )
    return None, 1.0


def _pictures(rgb, downsample, tiles, polygons, row, dest, sid, config) -> list[Row]:
    if rgb is None:
        return []
    name, um = row.get("name") or slide_name(row.get("url") or sid), row.get("mpp_x")
    lines = [f"{row['width']:,} × {row['height']:,} px (level 0)"] if row.get("width") else []
    made = []
    title = f"{name}: tissue" if polygons else name
    made.append(("overview.jpg", "Tissue contours" if polygons else "Slide",
                 contour_picture(rgb, polygons, downsample, title=title, um_per_px0=um,
                                 lines=lines)))  # fmt: skip
    if tiles is not None and tiles.num_rows:
        xywh = np.stack([tiles.column(c).to_numpy() for c in ("x", "y", "w", "h")], axis=1)
        made.append(("classes.jpg", "Tiles by tissue class", class_picture(
            rgb, xywh, tiles.column("tissue_class").to_pylist(), downsample,
            title=f"{name}: tiles by tissue class", um_per_px0=um, lines=lines)))  # fmt: skip
        made.append(("scores.jpg", "Tiles by score", score_picture(
            rgb, xywh, tiles.column("score").to_numpy(), downsample,
            title=f"{name}: tile scores", label="score", um_per_px0=um, lines=lines)))  # fmt: skip
    pictures = []
    for file, caption, image in made:
        key = layout.report_picture_key(sid, file)
        _put_jpeg(dest, key, image, config)
        pictures.append({"key": key, "caption": caption, "width": image.shape[1],
                         "height": image.shape[0]})  # fmt: skip
    return pictures


def is_tissue_tile(tile: Row, config) -> bool:
    """Stage 1's ``tissue_tile`` when the table has it, else ``tissue_frac ≥ min_tissue_frac``
    (as ``top-tiles``): a tile that is mostly glass is never a top tile."""
    if tile.get("tissue_tile") is not None:
        return bool(tile["tissue_tile"])
    return (tile.get("tissue_frac") or 0.0) >= config.min_tissue_frac


def _top_tiles(slide: Slide, tiles: pa.Table | None, dest: Store, sid: str, config) -> list[Row]:
    if tiles is None or not tiles.num_rows or not config.top_n:
        return []
    cols = ["rank", "score", "tissue_frac", "tissue_tile", "x", "y", "w", "h", "row", "col"]
    best = sorted(tiles.select([c for c in cols if c in tiles.column_names]).to_pylist(),
                  key=lambda r: r["rank"])  # fmt: skip
    top = []
    for tile in [t for t in best if is_tissue_tile(t, config)][: config.top_n]:
        rgb = slide.read_region(tile["x"], tile["y"], 0, (tile["w"], tile["h"]))
        key = layout.report_top_tile_key(sid, int(tile["rank"]))
        _put_jpeg(dest, key, shrink_to(rgb, config.top_px), config)
        top.append({**tile, "key": key})
    return top


def _rel(key: str) -> str:
    """A key under ``slides/`` as seen from a page in ``slides/``."""
    return key.removeprefix("slides/")


def _relative(items: list[Row]) -> list[Row]:
    return [{**item, "src": _rel(item["key"])} for item in items]


def _flags(row: Row) -> list[str]:
    text = row.get("qc") or ""
    return [f.strip() for f in str(text).split(";") if f.strip()]


def _read_tiles(out: Store, sid: str) -> pa.Table | None:
    return read_slide_tiles(out, sid)


def _read_polygons(out: Store, sid: str, row: Row) -> list:
    key = layout.contours_key(sid)
    if out.exists(key):
        return geojson_polygons(json.loads(out.read_bytes(key)))
    mask_key = layout.mask_key(sid)
    if out.exists(mask_key) and row.get("scale"):  # outputs from before contours were written
        mask = np.asarray(Image.open(io.BytesIO(out.read_bytes(mask_key)))).astype(bool)
        return mask_polygons(mask, float(row["scale"]))
    return []


def _copy_steps(out: Store, dest: Store, sid: str) -> list[Row]:
    keys = [k for k in out.list(f"batch/{sid}") if k.endswith(".png")]
    keys += out.list(f"batch/{sid}/steps")
    wanted = [
        k for k in keys if k.rsplit("/", 1)[-1] not in ("tile_summary.png", "score_heatmap.png")
    ]
    steps = []
    for key in wanted:
        name = key.rsplit("/", 1)[-1]
        target = layout.report_picture_key(sid, f"steps/{name}")
        dest.write_bytes(target, out.read_bytes(key))
        steps.append({"key": target, "name": name.removesuffix(".png")})
    return sorted(steps, key=lambda s: s["name"])


def _put_jpeg(dest: Store, key: str, rgb: np.ndarray, config: ReportConfig) -> None:
    dest.write_bytes(key, encode_image(rgb, "jpeg", quality=config.jpeg_quality))
