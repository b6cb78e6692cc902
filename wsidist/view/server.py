"""The viewer's web app (starlette): pages, DZI descriptors and tiles, overlays, static files.

Read-only (GET and HEAD only) and key-based: a request names a slide by its catalogue key,
never by a path, so ``..``, encoded slashes and links out of a root find nothing (404). Tiles
are decoded server-side through wsidist's :class:`~wsidist.io.slide.Slide` (every format it
opens, JPEG-XL and transcoded pyramids included), encoded as JPEG (or PNG on request) and kept
in an LRU cache bounded by bytes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from wsidist.errors import SlideError
from wsidist.imaging import encode_image
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import Slide, open_slide
from wsidist.view import overlays
from wsidist.view.cache import ByteLRU
from wsidist.view.catalog import Catalog, Entry
from wsidist.view.dzi import DeepZoom, read_tile

FORMATS = {
    "jpeg": ("jpeg", "image/jpeg"),
    "jpg": ("jpeg", "image/jpeg"),
    "png": ("png", "image/png"),
}
HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'"
    ),
}


@dataclass
class OpenSlides:
    """At most ``limit`` open slides (least recently used closed first), one lock each."""

    limit: int = 16
    cache_dir: str | CacheSpec | None = None
    _open: OrderedDict[str, tuple[Slide, threading.Lock]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, entry: Entry) -> tuple[Slide, threading.Lock]:
        with self._lock:
            if entry.key in self._open:
                self._open.move_to_end(entry.key)
                return self._open[entry.key]
        slide = open_slide(entry.url, cache_dir=self.cache_dir)
        with self._lock:
            if entry.key in self._open:  # another thread opened it meanwhile
                slide.close()
                return self._open[entry.key]
            self._open[entry.key] = (slide, threading.Lock())
            while len(self._open) > self.limit:
                _, (old, old_lock) = self._open.popitem(last=False)
                with old_lock:
                    old.close()
            return self._open[entry.key]

    def close(self) -> None:
        with self._lock:
            for slide, lock in self._open.values():
                with lock:
                    slide.close()
            self._open.clear()


@dataclass
class Viewer:
    """What the app serves: the catalogue, open slides, the tile cache, tile settings."""

    catalog: Catalog
    cache: ByteLRU
    slides: OpenSlides
    jpeg_quality: int = 85
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)  # slides.parquet by slide_id
    tiles_made: int = 0  # tiles decoded (cache misses), for tests and benchmarks

    def entry(self, key: str) -> Entry:
        found = self.catalog.get(key)
        if found is None:
            raise KeyError(key)
        return found

    def deep_zoom(self, entry: Entry) -> DeepZoom:
        slide, _ = self.slides.get(entry)
        w, h = slide.dimensions
        return DeepZoom(w, h)

    def tile(self, entry: Entry, level: int, col: int, row: int, fmt: str) -> bytes:
        def make() -> bytes:
            slide, lock = self.slides.get(entry)
            with lock:
                rgb = read_tile(slide, DeepZoom(*slide.dimensions), level, col, row)
            self.tiles_made += 1
            return encode_image(rgb, fmt, quality=self.jpeg_quality)

        return self.cache.get_or_make((entry.key, level, col, row, fmt), make)


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("wsidist.view", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _not_found(what: str = "not found") -> PlainTextResponse:
    return PlainTextResponse(what, status_code=404, headers=HEADERS)


def create_app(viewer: Viewer) -> Starlette:
    """The starlette app serving ``viewer``."""

    def lookup(request: Request) -> Entry | None:
        return viewer.catalog.get(request.path_params.get("key", ""))

    def index(request: Request) -> Response:
        entries = sorted(viewer.catalog.entries.values(), key=lambda e: (e.name, e.kind))
        html = _templates().get_template("index.html.j2").render(
            entries=[e for e in entries if e.kind == "slide"], catalog=viewer.catalog,
            pyramids={e.slide_id for e in entries if e.kind == "pyramid"},
        )  # fmt: skip
        return HTMLResponse(html, headers=HEADERS)

    def page(request: Request) -> Response:
        entry = lookup(request)
        if entry is None:
            return _not_found()
        html = _templates().get_template("viewer.html.j2").render(entry=entry)
        return HTMLResponse(html, headers=HEADERS)

    def info(request: Request) -> Response:
        entry = lookup(request)
        if entry is None:
            return _not_found()
        try:
            slide, _ = viewer.slides.get(entry)
        except SlideError as exc:
            return PlainTextResponse(f"cannot open the slide: {exc}", 422, headers=HEADERS)
        return JSONResponse(_info(viewer, entry, slide), headers=HEADERS)

    def descriptor(request: Request) -> Response:
        entry = lookup(request)
        if entry is None:
            return _not_found()
        try:
            dz = viewer.deep_zoom(entry)
        except SlideError as exc:
            return PlainTextResponse(f"cannot open the slide: {exc}", 422, headers=HEADERS)
        return Response(dz.xml("jpeg"), media_type="application/xml", headers=HEADERS)

    def tile(request: Request) -> Response:
        entry, p = lookup(request), request.path_params
        fmt = FORMATS.get(p["fmt"])
        if entry is None or fmt is None:
            return _not_found()
        try:
            data = viewer.tile(entry, p["level"], p["col"], p["row"], fmt[0])
        except KeyError:
            return _not_found("no such tile")
        except SlideError as exc:
            return PlainTextResponse(str(exc), 422, headers=HEADERS)
        return Response(
            data, media_type=fmt[1], headers={**HEADERS, "Cache-Control": "max-age=3600"}
        )

    def overlay(request: Request) -> Response:
        entry, out = lookup(request), viewer.catalog.out
        if entry is None or out is None:
            return _not_found()
        name, sid = request.path_params["name"], entry.slide_id
        row = viewer.rows.get(sid, {})
        if name == "contours.geojson":
            data = overlays.contours(out, sid, row)
            return _bytes_or_404(data, "application/geo+json")
        if name == "mask.png":
            return _bytes_or_404(overlays.mask_layer(out, sid), "image/png")
        if name == "selection.json":
            return JSONResponse(overlays.selection(out, sid), headers=HEADERS)
        if name in ("grid.png", "grid.json"):
            tiles = overlays.read_tiles(out, sid)
            stride = row.get("stride_px0") or row.get("tile_px0")
            if tiles is None or not tiles.num_rows or not stride:
                return _not_found("no tiles")
            try:
                grid = overlays.grid_layer(
                    tiles, request.query_params.get("column", "score"), stride
                )
            except KeyError:
                return _not_found("no such tile column")
            if name == "grid.png":
                return Response(grid.png, media_type="image/png", headers=HEADERS)
            return JSONResponse(grid.meta, headers=HEADERS)
        return _not_found()

    static = resources.files("wsidist.view").joinpath("static")
    routes = [
        Route("/", index),
        Route("/view/{key}", page),
        Route("/api/{key}/info", info),
        Route("/api/{key}/{name}", overlay),
        Route("/dzi/{key}.dzi", descriptor),
        Route("/dzi/{key}_files/{level:int}/{col:int}_{row:int}.{fmt}", tile),
        Mount(
            "/static", app=StaticFiles(directory=str(static), follow_symlink=False), name="static"
        ),
    ]
    return Starlette(routes=routes)


def _bytes_or_404(data: bytes | None, media_type: str) -> Response:
    if data is None:
        return _not_found()
    return Response(data, media_type=media_type, headers=HEADERS)


def _info(viewer: Viewer, entry: Entry, slide: Slide) -> dict[str, Any]:
    w, h = slide.dimensions
    out, sid = viewer.catalog.out, entry.slide_id
    layers: dict[str, Any] = {}
    if out is not None:
        from wsidist import layout

        row = viewer.rows.get(sid, {})
        if out.exists(layout.mask_key(sid)) and row.get("scale"):
            layers["mask"] = {"scale": row["scale"]}
        if out.exists(layout.contours_key(sid)) or "mask" in layers:
            layers["contours"] = {}
        tiles = overlays.read_tiles(out, sid)
        if tiles is not None and tiles.num_rows:
            layers["grid"] = {"columns": ["tissue_class", *overlays.numeric_columns(tiles)]}
        if out.exists(layout.SELECTION_TABLE):
            layers["selection"] = {}
    pair = viewer.catalog.get(entry.pair) if entry.pair else None
    return {
        "key": entry.key, "name": entry.name, "kind": entry.kind, "width": w, "height": h,
        "mpp": slide.mpp_x, "vendor": slide.vendor, "backend": slide.backend,
        "levels": [list(d) for d in slide.level_dimensions], "dzi": f"/dzi/{entry.key}.dzi",
        "layers": layers,
        "pair": {"key": pair.key, "name": pair.name, "kind": pair.kind,
                 "dzi": f"/dzi/{pair.key}.dzi"} if pair else None,
    }  # fmt: skip
