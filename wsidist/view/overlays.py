"""Overlays of one slide from a stage-1 output, for the viewer: tissue mask and contours, the
tile grid coloured by any numeric tile column (or by tissue class), and the selection.

The grid is an RGBA image with one pixel per tile (transparent where a tile has no tissue), so
any number of tiles draws as one layer; the viewer places it over the slide in level-0 px.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from wsidist import layout
from wsidist.imaging.contours import dumps, tissue_geojson
from wsidist.imaging.figures import CLASS_COLORS, HEAT_ANCHORS, heat_colors
from wsidist.io.storage import Store
from wsidist.runtime.tiletable import read_slide_tiles

MASK_RGBA = (0, 220, 90, 90)
GRID_ALPHA = 150
NOT_NUMERIC = {"slide_id", "row", "col", "x", "y", "w", "h", "tissue_class"}


@dataclass(frozen=True)
class Grid:
    """A tile-grid layer: its PNG and where it goes."""

    png: bytes
    meta: dict[str, Any]  # column, kind, lo, hi, rows, cols, stride_px0, width_px0, height_px0


def read_tiles(out: Store, slide_id: str) -> pa.Table | None:
    """The slide's tile table in either layout (partitioned or compacted), or None."""
    return read_slide_tiles(out, slide_id)


def numeric_columns(tiles: pa.Table) -> list[str]:
    """Tile columns the grid can be coloured by (score first)."""
    names = [
        f.name
        for f in tiles.schema
        if f.name not in NOT_NUMERIC
        and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    ]
    return sorted(names, key=lambda n: (n != "score", n))


def grid_layer(tiles: pa.Table, column: str, stride_px0: int) -> Grid:
    """The grid coloured by ``column`` (numeric, or ``tissue_class``); raises KeyError."""
    if column not in tiles.column_names or (column in NOT_NUMERIC and column != "tissue_class"):
        raise KeyError(column)
    rows = tiles.column("row").to_numpy().astype(np.int64)
    cols = tiles.column("col").to_numpy().astype(np.int64)
    n_rows, n_cols = int(rows.max()) + 1, int(cols.max()) + 1
    rgba = np.zeros((n_rows, n_cols, 4), np.uint8)
    has_tissue = np.asarray(pc.fill_null(pc.greater(tiles.column("tissue_frac"), 0), False))
    meta: dict[str, Any] = {"column": column}
    if column == "tissue_class":
        classes = tiles.column(column).to_pylist()
        colors = np.array([CLASS_COLORS.get(c, (0, 0, 0)) for c in classes], np.uint8)
        rgba[rows, cols, :3] = colors
        rgba[rows, cols, 3] = np.where(has_tissue, GRID_ALPHA, GRID_ALPHA // 3)  # glass: faint
        meta.update(kind="class", legend={k: list(v) for k, v in CLASS_COLORS.items()})
    else:
        values = tiles.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
        finite = np.isfinite(values)
        lo = float(values[finite & has_tissue].min()) if (finite & has_tissue).any() else 0.0
        hi = float(values[finite & has_tissue].max()) if (finite & has_tissue).any() else 1.0
        norm = (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)
        rgba[rows, cols, :3] = heat_colors(norm)
        rgba[rows, cols, 3] = np.where(finite & has_tissue, GRID_ALPHA, 0)
        meta.update(kind="numeric", lo=lo, hi=hi, colors=HEAT_ANCHORS.astype(int).tolist())
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    meta.update(rows=n_rows, cols=n_cols, stride_px0=int(stride_px0),
                width_px0=n_cols * int(stride_px0), height_px0=n_rows * int(stride_px0))  # fmt: skip
    return Grid(buf.getvalue(), meta)


def mask_layer(out: Store, slide_id: str) -> bytes | None:
    """The tissue mask as a tinted, otherwise transparent PNG (one pixel per mask pixel)."""
    key = layout.mask_key(slide_id)
    if not out.exists(key):
        return None
    mask = np.asarray(Image.open(io.BytesIO(out.read_bytes(key)))).astype(bool)
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = MASK_RGBA
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def contours(out: Store, slide_id: str, row: dict[str, Any]) -> bytes | None:
    """The slide's contour GeoJSON (computed from the mask for outputs that predate it)."""
    key = layout.contours_key(slide_id)
    if out.exists(key):
        return out.read_bytes(key)
    mask_key = layout.mask_key(slide_id)
    if out.exists(mask_key) and row.get("scale") and row.get("width"):
        mask = np.asarray(Image.open(io.BytesIO(out.read_bytes(mask_key)))).astype(bool)
        bounds = (int(row["width"]), int(row["height"]))
        return dumps(tissue_geojson(mask, float(row["scale"]), slide_id, bounds))
    return None


def selection(out: Store, slide_id: str) -> list[dict[str, Any]]:
    """The slide's tiles in ``OUT/selection.parquet`` (x, y, w, h, score, rank)."""
    if not out.exists(layout.SELECTION_TABLE):
        return []
    table = out.read_parquet(layout.SELECTION_TABLE)
    if "slide_id" not in table.column_names:
        return []
    table = table.filter(pc.equal(table.column("slide_id"), slide_id))
    keep = [c for c in ("x", "y", "w", "h", "score", "rank") if c in table.column_names]
    return json.loads(json.dumps(table.select(keep).to_pylist(), default=float))
