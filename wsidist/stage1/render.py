"""Stage-1 pictures for people (batch mode): the tile summary by tissue class and the score
heat map, drawn on an image read from the slide at a readable size (not the filter-scale
thumbnail), each with its legend or colour bar and a scale bar; and the tissue contours as
QuPath GeoJSON.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from wsidist.imaging.contours import dumps, tissue_geojson
from wsidist.imaging.figures import CLASS_COLORS, heat_colors
from wsidist.imaging.slide_pictures import class_picture, read_display, score_picture
from wsidist.io.slide import Slide

__all__ = ["CLASS_COLORS", "batch_pictures", "contours_json", "heat_colors"]


def tile_boxes(tiles: pa.Table) -> np.ndarray:
    """``(N, 4)`` level-0 ``x, y, w, h`` of a tile table."""
    return np.stack([tiles.column(n).to_numpy() for n in ("x", "y", "w", "h")], axis=1)


def batch_pictures(slide: Slide, tiles: pa.Table, *, name: str, scorer: str) -> dict[str, Any]:
    """``tile_summary.png`` and ``score_heatmap.png`` of one slide, as uint8 RGB arrays."""
    width, height = slide.dimensions
    rgb, downsample = read_display(slide.thumbnail, width, height)
    xywh = tile_boxes(tiles)
    um = slide.mpp_x
    lines = [f"{width:,} × {height:,} px (level 0)"]
    return {
        "tile_summary.png": class_picture(
            rgb, xywh, tiles.column("tissue_class").to_pylist(), downsample,
            title=f"{name}: tiles by tissue class", um_per_px0=um, lines=lines,
        ),
        "score_heatmap.png": score_picture(
            rgb, xywh, tiles.column("score").to_numpy(), downsample,
            title=f"{name}: tile scores", label=f"score ({scorer})", um_per_px0=um, lines=lines,
        ),
    }  # fmt: skip


def contours_json(
    tissue: np.ndarray, scale: float, slide_id: str, bounds: tuple[int, int]
) -> bytes:
    """The tissue mask's contours in level-0 px (one mask pixel = ``scale`` level-0 px),
    clipped to the slide's ``bounds`` (width, height)."""
    return dumps(tissue_geojson(tissue, scale, slide_id, bounds))
