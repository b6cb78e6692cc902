"""A selection's tiles as QuPath GeoJSON: one FeatureCollection of ``tile`` polygons per slide,
in level-0 px, with the tile's score, rank and tissue fraction as measurements."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

from wsidist import layout
from wsidist.imaging.contours import dumps, tile_geojson
from wsidist.io.storage import Store

MEASURED = ("score", "rank", "tissue_frac", "stratum")


def write_selection_geojson(
    table: pa.Table, dest: str, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """Write ``dest/<slide_id>.geojson`` for every slide of a selection; returns the URLs."""
    store = Store(dest if "://" in dest else os.path.abspath(dest), storage_options or {})
    measured = [c for c in MEASURED if c in table.column_names]
    by_slide: dict[str, list[dict[str, Any]]] = {}
    for row in table.select(["slide_id", "x", "y", "w", "h", *measured]).to_pylist():
        by_slide.setdefault(row["slide_id"], []).append(row)
    urls = []
    for slide_id, rows in sorted(by_slide.items()):
        boxes = [(r["x"], r["y"], r["w"], r["h"]) for r in rows]
        values = [{c: r[c] for c in measured} for r in rows]
        key = layout.selection_geojson_key(slide_id)
        store.write_bytes(key, dumps(tile_geojson(boxes, slide_id, values)))
        urls.append(store.full_url(key))
    return urls
