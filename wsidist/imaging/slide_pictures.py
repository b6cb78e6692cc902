"""The three pictures of a slide that people look at, shared by batch mode and the report:
tissue contours, the tile grid by tissue class, and the tile grid by score.

Each is drawn on an image read from the slide at a readable size (``read_display``: long side
``DISPLAY_LONG_PX``, never under ``MIN_LONG_PX``, whatever the filter scale), with a side panel
holding the legend or colour bar and a scale bar. Tiles are level-0 ``(x, y, w, h)`` rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from shapely.geometry import Polygon

from wsidist.imaging.figures import (
    CONTOUR_COLOR,
    TISSUE_CLASSES,
    ColorBar,
    Legend,
    Panel,
    display_scale,
    draw_rings,
    figure,
    heat_colors,
    paint_tiles,
    scaled_boxes,
    upscale_to,
)

DISPLAY_LONG_PX = 1600
MIN_LONG_PX = 1024


def read_display(
    thumbnail: Callable[[float], np.ndarray],
    width: int,
    height: int,
    long_px: int = DISPLAY_LONG_PX,
) -> tuple[np.ndarray, float]:
    """(image, level-0 px per display px) of a ``width`` × ``height`` slide, read with
    ``thumbnail(scale)`` (e.g. ``Slide.thumbnail``) and enlarged when the slide is small."""
    scale = display_scale(width, height, long_px)
    rgb, factor = upscale_to(thumbnail(scale), min(MIN_LONG_PX, long_px))
    return rgb, scale / factor


def enlarge(rgb: np.ndarray, downsample: float) -> tuple[np.ndarray, float]:
    """A small stored image (e.g. the filter-scale thumbnail) enlarged to ``MIN_LONG_PX``."""
    big, factor = upscale_to(rgb, MIN_LONG_PX)
    return big, downsample / factor


def contour_picture(
    rgb: np.ndarray,
    polygons: Sequence[Polygon],
    downsample: float,
    *,
    title: str,
    um_per_px0: float | None = None,
    lines: Sequence[str] = (),
) -> np.ndarray:
    """The slide with its tissue contours (outer rings and holes) in green."""
    rings = []
    for poly in polygons:
        for ring in (poly.exterior, *poly.interiors):
            rings.append(np.asarray(ring.coords)[:, :2] / downsample)
    area_px0 = sum(p.area for p in polygons)
    info = [f"{len(polygons)} tissue region{'s' * (len(polygons) != 1)}"]
    if um_per_px0:
        info.append(f"tissue area {area_px0 * um_per_px0**2 / 1e6:.3g} mm²")
    legend = Legend("key", [(CONTOUR_COLOR, "tissue contour (holes included)")])
    panel = Panel(title, [*lines, *info], legend=legend, um_per_px=_um(um_per_px0, downsample))
    return figure(draw_rings(rgb, rings), panel)


def class_picture(
    rgb: np.ndarray,
    xywh: np.ndarray,
    classes: Sequence[str],
    downsample: float,
    *,
    title: str,
    um_per_px0: float | None = None,
    lines: Sequence[str] = (),
) -> np.ndarray:
    """Every tile tinted and outlined by its tissue class (seed 000's colours)."""
    palette = {name: color for name, color, _ in TISSUE_CLASSES}
    colors = np.array([palette.get(c, (-1, -1, -1)) for c in classes], np.int64).reshape(-1, 3)
    boxes = scaled_boxes(xywh, downsample, rgb.shape[:2])
    counts = {name: 0 for name in palette}
    for c in classes:
        counts[c] = counts.get(c, 0) + 1
    items = [(color, f"{label} ({counts[name]} tiles)") for name, color, label in TISSUE_CLASSES]
    panel = Panel(
        title,
        [*lines, f"{len(classes)} tiles"],
        legend=Legend("tile class (tissue fraction)", items),
        um_per_px=_um(um_per_px0, downsample),
    )
    return figure(paint_tiles(rgb, boxes, colors, alpha=0.35), panel)


def score_picture(
    rgb: np.ndarray,
    xywh: np.ndarray,
    values: np.ndarray,
    downsample: float,
    *,
    title: str,
    label: str = "tile score",
    um_per_px0: float | None = None,
    lines: Sequence[str] = (),
    lo: float | None = None,
    hi: float | None = None,
) -> np.ndarray:
    """Tiles coloured by ``values`` (NaN or ≤ ``lo`` when ``lo`` is 0: left uncoloured), with a
    colour bar from ``lo`` to ``hi`` (defaults: 0 or the minimum, and the maximum)."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    lo = float(min(0.0, finite.min()) if finite.size else 0.0) if lo is None else lo
    hi = float(finite.max()) if hi is None and finite.size else (hi if hi is not None else 1.0)
    hi = hi if hi > lo else lo + 1.0
    shown = np.isfinite(values) & (values > lo if lo == 0 else np.isfinite(values))
    colors = heat_colors((values - lo) / (hi - lo)).astype(np.int64).reshape(-1, 3)
    colors[~shown] = -1
    boxes = scaled_boxes(xywh, downsample, rgb.shape[:2])
    panel = Panel(
        title,
        [*lines, f"{int(shown.sum())} of {len(values)} tiles coloured"],
        colorbar=ColorBar(label, lo, hi),
        um_per_px=_um(um_per_px0, downsample),
        notes=["tiles with no value (or 0) are not coloured"] if (~shown).any() else (),
    )
    return figure(paint_tiles(rgb, boxes, colors, alpha=0.6, outline=False), panel)


def _um(um_per_px0: float | None, downsample: float) -> float | None:
    return um_per_px0 * downsample if um_per_px0 else None
