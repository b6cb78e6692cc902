"""Stage-1 pictures for people: tile summaries and score heat maps (batch mode)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

from wsidist.stage1.tiles import scaled_box

# Seed-000 tile summary colours by tissue class.
CLASS_COLORS = {
    "high": (0, 200, 0),
    "medium": (255, 255, 0),
    "low": (255, 165, 0),
    "none": (255, 0, 0),
}
# Anchor colours of a perceptually ordered map (dark blue → teal → yellow).
_HEAT_ANCHORS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64
)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB along the anchor colours."""
    v = np.clip(np.nan_to_num(values), 0, 1) * (len(_HEAT_ANCHORS) - 1)
    i = np.minimum(v.astype(int), len(_HEAT_ANCHORS) - 2)
    t = (v - i)[..., None]
    return ((1 - t) * _HEAT_ANCHORS[i] + t * _HEAT_ANCHORS[i + 1]).round().astype(np.uint8)


def _boxes(tiles: pa.Table, downsample: float) -> list[tuple[int, int, int, int]]:
    cols = [tiles.column(n).to_numpy() for n in ("x", "y", "w", "h")]
    return [scaled_box(int(x), int(y), int(w), int(h), downsample) for x, y, w, h in zip(*cols)]


def tile_summary(rgb: np.ndarray, tiles: pa.Table, downsample: float) -> np.ndarray:
    """The scaled image with each tile's border coloured by its tissue class."""
    image = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(image)
    classes = tiles.column("tissue_class").to_pylist()
    for (x0, y0, x1, y1), cls in zip(_boxes(tiles, downsample), classes):
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=CLASS_COLORS[cls])
    return np.asarray(image)


def score_heatmap(rgb: np.ndarray, tiles: pa.Table, downsample: float) -> np.ndarray:
    """The scaled image blended with tile scores (relative to the slide's best score)."""
    scores = tiles.column("score").to_numpy()
    top = float(scores.max()) if len(scores) and scores.max() > 0 else 1.0
    heat = np.zeros(rgb.shape[:2], dtype=np.float64)
    for (x0, y0, x1, y1), score in zip(_boxes(tiles, downsample), scores):
        heat[y0:y1, x0:x1] = score / top
    blended = 0.45 * rgb.astype(np.float64) + 0.55 * heat_colors(heat)
    return blended.round().astype(np.uint8)
