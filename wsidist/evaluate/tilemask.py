"""``wsidist mask-from-tiles``: the union of a selection's level-0 boxes → one mask per slide.

Reads the selection Parquet (``slide_id, x, y, w, h`` in level-0 px; boxes may overlap and
fall between stage-1 tiles) and, for slide sizes, mpp and the stage-1 mask scale, a
``slides.parquet`` (by default the one next to the selection). No slide is opened.

Per slide the mask is on a grid of ``downsample`` level-0 px per pixel (``--scale``; or
``--mpp`` µm per pixel over the slide's mpp; by default the slide's stage-1 ``scale``), a pixel
set when its centre lies in a box (:func:`wsidist.imaging.masks.box_union_mask`), then
optionally smoothed by an opening with a disk of ``smooth_px0`` level-0 px across (seed 004).
Written as ``<out>/<id>.png`` (1-bit, the grid in its ``wsidist`` text chunk, so ``metrics``
reads its scale back) and ``<out>/tile-masks.parquet``, one row per slide; a slide that cannot
be drawn is a ``failed`` row with its reason, and the others complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wsidist import layout
from wsidist.errors import ConfigError, WsidistError
from wsidist.imaging.masks import box_union_mask, encode_mask_png, grid_shape, smooth_mask
from wsidist.io.storage import Store, rows_to_table
from wsidist.runtime.budget import DEFAULT_MEMORY_BUDGET_MB, check_memory

__all__ = ["TILE_MASKS_SCHEMA", "TileMaskOptions", "masks_from_tiles", "split_url"]

BOX_COLUMNS = ("slide_id", "x", "y", "w", "h")
TILE_MASKS_SCHEMA = pa.schema(
    [
        ("slide_id", pa.string()),
        ("status", pa.string()),  # ok | failed
        ("error", pa.string()),
        ("warning", pa.string()),
        ("mask", pa.string()),  # the PNG's URL
        ("width", pa.int64()),  # the slide, level-0 px
        ("height", pa.int64()),
        ("downsample", pa.float64()),  # level-0 px per mask px
        ("mask_width", pa.int64()),
        ("mask_height", pa.int64()),
        ("n_boxes", pa.int64()),
        ("mask_frac", pa.float64()),  # share of the mask's pixels set
        ("smooth_px0", pa.float64()),  # the smoothing disk's diameter, level-0 px (0: none)
    ]
)
BYTES_PER_MASK_PX = 3  # the bool mask, its smoothed copy, and the PNG being encoded
BYTES_PER_SMOOTHED_PX = 24  # the opening's float64 distance transforms and padded copies


@dataclass(frozen=True)
class TileMaskOptions:
    """The mask grid (``scale`` or ``mpp``; default the stage-1 scale) and smoothing."""

    scale: float | None = None  # level-0 px per mask px
    mpp: float | None = None  # µm per mask px (needs the slide's mpp)
    smooth_px0: float = 0.0  # smoothing disk diameter in level-0 px; 0 = none
    memory_budget_mb: float = DEFAULT_MEMORY_BUDGET_MB

    def __post_init__(self) -> None:
        if self.scale is not None and self.mpp is not None:
            raise ConfigError("give --scale or --mpp, not both")
        for name in ("scale", "mpp"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"--{name} must be > 0, got {value}")
        if not self.smooth_px0 >= 0:
            raise ConfigError(f"--smooth must be ≥ 0 level-0 px, got {self.smooth_px0}")


def split_url(url: str) -> tuple[str, str]:
    """(folder, file name) of a local path or fsspec URL of a file."""
    if "://" not in url:
        url = os.path.abspath(url)
    root, _, name = url.rstrip("/").rpartition("/")
    if not name:
        raise ConfigError(f"{url!r} names no file")
    return root or "/", name


def read_table(url: str, what: str, storage_options: dict[str, Any] | None = None) -> pa.Table:
    """A Parquet file as a table; a missing or unreadable file is a ``ConfigError``."""
    root, name = split_url(url)
    try:
        return Store(root, storage_options or {}).read_parquet(name)
    except FileNotFoundError:
        raise ConfigError(f"no {what} at {url}") from None
    except Exception as exc:  # noqa: BLE001 — corrupt file, credentials, network
        raise ConfigError(f"cannot read the {what} {url}: {exc}") from exc


def slides_url(selection: str, slides: str | None) -> str:
    """The slides table: ``slides`` (a file, or a stage-1 folder), else next to the selection."""
    if slides is None:
        return f"{split_url(selection)[0]}/{layout.SLIDES_TABLE}"
    return slides if slides.endswith(".parquet") else f"{slides.rstrip('/')}/{layout.SLIDES_TABLE}"


def masks_from_tiles(
    selection: str,
    out: str | None = None,
    options: TileMaskOptions | None = None,
    *,
    slides: str | None = None,
    storage_options: dict[str, Any] | None = None,
) -> tuple[pa.Table, str]:
    """Write one mask per slide of ``selection``; returns (the table written, its URL).

    ``out`` defaults to ``tile-masks/`` next to the selection. Bad options, a selection
    without the box columns or no slides table fail before anything is written.
    """
    options = options or TileMaskOptions()
    boxes = read_table(selection, "selection", storage_options)
    missing = [c for c in BOX_COLUMNS if c not in boxes.column_names]
    if missing:
        raise ConfigError(f"the selection {selection} lacks the columns {missing}")
    sizes = _slide_rows(
        read_table(slides_url(selection, slides), "slides.parquet", storage_options)
    )
    out = out or f"{split_url(selection)[0]}/{layout.TILE_MASKS_DIR}"
    store = Store(out if "://" in out else os.path.abspath(out), storage_options or {})
    store.check_writable()
    rows = []
    for slide_id in sorted(set(boxes.column("slide_id").to_pylist())):
        mine = boxes.filter(pc.equal(boxes["slide_id"], slide_id))
        try:
            rows.append(_one_slide(store, slide_id, mine, sizes.get(slide_id), options))
        except (WsidistError, ValueError) as exc:
            store.remove(layout.tile_mask_key(slide_id))  # no older mask beside a failed row
            rows.append(_failed(slide_id, len(mine), options, str(exc)))
    table = rows_to_table(rows, TILE_MASKS_SCHEMA)
    store.write_parquet(layout.TILE_MASKS_TABLE, table)
    return table, store.full_url(layout.TILE_MASKS_TABLE)


def _slide_rows(slides: pa.Table) -> dict[str, dict]:
    if "slide_id" not in slides.column_names:
        raise ConfigError("slides.parquet lacks the column slide_id")
    keep = [
        c for c in ("slide_id", "width", "height", "mpp_x", "scale") if c in slides.column_names
    ]
    return {r["slide_id"]: r for r in slides.select(keep).to_pylist()}


def _downsample(slide: dict, options: TileMaskOptions) -> float:
    if options.scale is not None:
        return float(options.scale)
    if options.mpp is not None:
        if not slide.get("mpp_x"):
            raise WsidistError("the slide has no mpp in slides.parquet: use --scale, not --mpp")
        return float(options.mpp) / float(slide["mpp_x"])
    if not slide.get("scale"):
        raise WsidistError("no stage-1 scale in slides.parquet: give --scale")
    return float(slide["scale"])


def _one_slide(
    store: Store, slide_id: str, boxes: pa.Table, slide: dict | None, options: TileMaskOptions
) -> dict:
    if slide is None:
        raise WsidistError("not in slides.parquet (its size is unknown)")
    width, height = slide.get("width"), slide.get("height")
    if not width or not height:
        raise WsidistError("slides.parquet has no size for it (did stage 1 fail?)")
    d = _downsample(slide, options)
    shape = grid_shape(width, height, d)
    check_memory(
        f"slide {slide_id} ({width}×{height} px at downsample {d:g})",
        {
            "mask": shape[0] * shape[1] * BYTES_PER_MASK_PX,
            "smoothing": shape[0] * shape[1] * BYTES_PER_SMOOTHED_PX * bool(options.smooth_px0),
        },
        options.memory_budget_mb,
        advice="use a larger --scale",
    )
    cols = {c: boxes.column(c).to_numpy(zero_copy_only=False) for c in ("x", "y", "w", "h")}
    if any(np.isnan(v.astype(np.float64)).any() for v in cols.values()):
        raise WsidistError("a box has a missing coordinate")
    mask = box_union_mask(cols["x"], cols["y"], cols["w"], cols["h"], shape, d)
    warning = None
    if options.smooth_px0:
        mask = smooth_mask(mask, options.smooth_px0 / d)
        side = float(min(cols["w"].min(), cols["h"].min()))
        if options.smooth_px0 >= side / 2:
            warning = (
                f"--smooth {options.smooth_px0:g} px is at least half the smallest box side "
                f"({side:g} px): features of one tile may vanish"
            )
    grid = {"downsample": d, "width0": int(width), "height0": int(height), "slide_id": slide_id}
    key = layout.tile_mask_key(slide_id)
    store.write_bytes(key, encode_mask_png(mask, grid))
    return {
        "slide_id": slide_id,
        "status": "ok",
        "warning": warning,
        "mask": store.full_url(key),
        "width": int(width),
        "height": int(height),
        "downsample": d,
        "mask_width": shape[1],
        "mask_height": shape[0],
        "n_boxes": len(boxes),
        "mask_frac": float(mask.mean()) if mask.size else 0.0,
        "smooth_px0": float(options.smooth_px0),
    }


def _failed(slide_id: str, n_boxes: int, options: TileMaskOptions, error: str) -> dict:
    return {
        "slide_id": slide_id,
        "status": "failed",
        "error": error,
        "n_boxes": n_boxes,
        "smooth_px0": float(options.smooth_px0),
    }
