"""Where ``wsidist metrics`` reads masks: a stage-1 output, a folder of masks, or annotations.

:func:`open_source` recognises, for a local path or fsspec URL:

- a **stage-1 output** (it holds ``slides.parquet``): the ``masks/<id>.png`` of its ``ok``
  slides, at their ``scale`` (level-0 px per pixel), with the slides' sizes; its failed slides
  are reported with their reason;
- a **folder of masks** (``.png`` / ``.npy``, set where not 0): one per slide, named by slide
  id or stem (also without a trailing ``.mask``/``_mask``/``-mask``); the scale is read from
  the PNG's ``wsidist`` text chunk (``mask-from-tiles`` writes it), else from the slide's size
  (from ``--slides``, the other side, or a ``slides.parquet`` in the folder above, so
  ``OUT/masks`` is read as the stage-1 output and ``OUT/labels`` gets its slides' sizes); a
  label PNG (a legend in its ``wsidist.legend`` chunk) gives one class (``--class``);
- a **folder of annotations** (``.geojson`` / ``.json`` / ``.xml``, level-0 px);
- or one such file (its slide id is its stem).

Names are matched case-insensitively. Loading one slide gives a :class:`Raster` (bool
array and, when known, its level-0 px per pixel) or a :class:`Vector` (a level-0 geometry).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from shapely.geometry import GeometryCollection

from wsidist import layout
from wsidist.errors import ConfigError, WsidistError
from wsidist.imaging.labels import LEGEND_KEY, decode_label_png
from wsidist.imaging.masks import decode_mask
from wsidist.io.annotations import read_annotations
from wsidist.io.storage import Store

__all__ = ["MASK_SUFFIXES", "Raster", "Source", "Vector", "open_source"]

MASK_SUFFIXES = (".png", ".npy")
ANNOTATION_SUFFIXES = (".geojson", ".json", ".xml")
_MASK_TAIL = re.compile(r"[._-](tissue[._-]?)?mask$", re.IGNORECASE)
_ANNOTATION_TAIL = re.compile(r"[._-]annotations?$", re.IGNORECASE)


@dataclass(frozen=True)
class Raster:
    """A mask: bool (rows, cols), level-0 px per pixel (x, y) when known, where it came from."""

    mask: np.ndarray
    px0: tuple[float, float] | None
    source: str


@dataclass(frozen=True)
class Vector:
    """Annotations of one class in level-0 px (a shapely geometry)."""

    geometry: Any
    source: str
    repaired: int = 0


@dataclass
class Source:
    """One side of a comparison: slide id → the file (or key) holding its mask."""

    url: str
    kind: str  # stage1 | masks | annotations
    store: Store
    items: dict[str, str] = field(default_factory=dict)  # slide id -> key under store
    failed: dict[str, str] = field(default_factory=dict)  # slide id -> why it has no mask
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # level-0 (width, height)
    scales: dict[str, float] = field(default_factory=dict)  # level-0 px per mask px

    def describe(self) -> str:
        return {"stage1": "stage-1 masks", "masks": "mask files", "annotations": "annotations"}[
            self.kind
        ] + f" ({self.url})"

    def load(self, slide_id: str, *, class_name: str | None, max_px: int) -> Raster | Vector:
        """The slide's mask (``WsidistError`` with a reason when it cannot be read)."""
        key = self.items[slide_id]
        where = self.store.full_url(key)
        if self.kind == "annotations":
            return _load_annotations(where, class_name, self.store.storage_options)
        try:
            data = self.store.read_bytes(key)
            mask, grid = decode_mask(data, key, max_px=max_px)
            legend = _legend(data) if key.lower().endswith(".png") else {}
            if legend:  # a label PNG (stage 1's labels/): one class of it
                labels, _ = decode_label_png(data)
                mask = labels == _class_index(legend, class_name, where)
        except WsidistError:
            raise
        except Exception as exc:  # noqa: BLE001 — a corrupt file is that slide's failure
            raise WsidistError(f"cannot read the mask {where}: {exc}") from exc
        px0 = None
        if slide_id in self.scales:
            px0 = (self.scales[slide_id],) * 2
        elif grid.get("downsample"):
            px0 = (float(grid["downsample"]),) * 2
        return Raster(mask, px0, where)

    def size(self, slide_id: str) -> tuple[int, int] | None:
        return self.sizes.get(slide_id)


def _legend(data: bytes) -> dict[int, str]:
    with Image.open(io.BytesIO(data)) as img:
        text = getattr(img, "text", {}).get(LEGEND_KEY)
    return {int(k): v for k, v in json.loads(text).items() if int(k)} if text else {}


def _class_index(legend: dict[int, str], class_name: str | None, where: str) -> int:
    names = [legend[k] for k in sorted(legend)]
    if class_name is None:
        if len(names) == 1:
            return next(iter(legend))
        raise WsidistError(
            f"{where} has {len(names)} classes ({', '.join(names)}): choose one with --class"
        )
    for k, name in sorted(legend.items()):
        if name.lower() == class_name.lower():
            return k
    raise WsidistError(f"{where} has no class {class_name!r} (it has: {', '.join(names)})")


def _load_annotations(url: str, class_name: str | None, storage_options: dict) -> Vector:
    """One class of the file: ``class_name`` (exact, else ignoring case), or its only class."""
    notes = read_annotations(url, storage_options)
    names = notes.names
    if class_name is None:
        if len(names) > 1:
            raise WsidistError(
                f"{url} has {len(names)} classes ({', '.join(names)}): choose one with --class"
            )
        chosen = names[0] if names else None
    else:
        folded = [n for n in names if n.lower() == class_name.lower()]
        chosen = class_name if class_name in names else (folded[0] if folded else None)
        if chosen is None:
            raise WsidistError(
                f"{url} has no class {class_name!r} (it has: {', '.join(names) or 'none'})"
            )
    geometry = notes.classes[chosen] if chosen is not None else GeometryCollection()
    return Vector(geometry, url, notes.repaired)


def open_source(url: str, storage_options: dict[str, Any] | None = None) -> Source:
    """The slides a PRED or GT argument holds (``ConfigError`` when it holds none)."""
    options = storage_options or {}
    local = "://" not in url
    if local:
        url = os.path.abspath(url)
        if not os.path.exists(url):
            raise ConfigError(f"{url} does not exist")
    root = url.rstrip("/")
    store = Store(root, options)
    name = posixpath.basename(root)
    suffix = os.path.splitext(name)[1].lower()
    if suffix in MASK_SUFFIXES + ANNOTATION_SUFFIXES and not store.fs.isdir(store.root):
        parent, _, _ = root.rpartition("/")
        kind = "masks" if suffix in MASK_SUFFIXES else "annotations"
        source = Source(url, kind, Store(parent or "/", options))
        source.items[_slide_name(name, kind)] = name
        return source
    if store.exists(layout.SLIDES_TABLE):
        return _stage1_source(url, store)
    parent = root.rpartition("/")[0]
    if name == layout.mask_key("x").split("/")[0] and parent:  # OUT/masks: stage 1's
        above = Store(parent, options)
        if above.exists(layout.SLIDES_TABLE):
            return _stage1_source(parent, above)
    try:
        names = sorted(posixpath.basename(p.rstrip("/")) for p in store.fs.ls(store.root))
    except FileNotFoundError:
        raise ConfigError(f"{url} does not exist") from None
    names = [n for n in names if not n.startswith((".", layout.TEMP_PREFIX))]
    masks = [n for n in names if n.lower().endswith(MASK_SUFFIXES)]
    notes = [n for n in names if n.lower().endswith(ANNOTATION_SUFFIXES)]
    if masks and notes:
        raise ConfigError(f"{url} holds both masks and annotations: give one kind per folder")
    if not masks and not notes:
        raise ConfigError(
            f"{url}: no slides.parquet, no masks (.png, .npy), no annotations "
            "(.geojson, .json, .xml)"
        )
    kind = "masks" if masks else "annotations"
    source = Source(url, kind, store)
    for n in masks or notes:
        sid = _slide_name(n, kind)
        if sid.lower() in {s.lower() for s in source.items}:
            other = next(v for s, v in source.items.items() if s.lower() == sid.lower())
            raise ConfigError(f"{url}: {other} and {n} are both for slide {sid!r}")
        source.items[sid] = n
    if parent and Store(parent, options).exists(layout.SLIDES_TABLE):  # e.g. OUT/labels/
        source.sizes = _stage1_source(parent, Store(parent, options)).sizes
    return source


def _slide_name(name: str, kind: str) -> str:
    stem = name.rsplit(".", 1)[0]
    tail = _MASK_TAIL if kind == "masks" else _ANNOTATION_TAIL
    return tail.sub("", stem) or stem


def _stage1_source(url: str, store: Store) -> Source:
    try:
        slides = store.read_parquet(layout.SLIDES_TABLE)
    except Exception as exc:  # noqa: BLE001 — corrupt file, credentials, network
        raise ConfigError(f"cannot read {url}/{layout.SLIDES_TABLE}: {exc}") from exc
    missing = {"slide_id", "status"} - set(slides.column_names)
    if missing:
        raise ConfigError(f"{url}/{layout.SLIDES_TABLE} lacks the columns {sorted(missing)}")
    source = Source(url, "stage1", store)
    for r in slides.to_pylist():
        sid = r["slide_id"]
        if r.get("width") and r.get("height"):
            source.sizes[sid] = (int(r["width"]), int(r["height"]))
        if r["status"] != "ok":
            source.failed[sid] = f"stage 1 {r['status']}: {r.get('error') or 'no reason given'}"
            continue
        source.items[sid] = layout.mask_key(sid)
        if r.get("scale"):
            source.scales[sid] = float(r["scale"])
    return source


def slide_sizes(url: str, storage_options: dict[str, Any] | None = None) -> dict:
    """``slide_id → (width, height)`` from a ``slides.parquet`` (or a stage-1 folder)."""
    if not url.endswith(".parquet"):
        url = f"{url.rstrip('/')}/{layout.SLIDES_TABLE}"
    root, _, name = (url if "://" in url else os.path.abspath(url)).rpartition("/")
    try:
        table = Store(root or "/", storage_options or {}).read_parquet(name)
    except FileNotFoundError:
        raise ConfigError(f"no slides table at {url}") from None
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"cannot read the slides table {url}: {exc}") from exc
    if not {"slide_id", "width", "height"} <= set(table.column_names):
        raise ConfigError(f"{url} lacks slide_id, width or height")
    return {
        r["slide_id"]: (int(r["width"]), int(r["height"]))
        for r in table.select(["slide_id", "width", "height"]).to_pylist()
        if r["width"] and r["height"]
    }
