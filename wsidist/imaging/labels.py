"""Class geometries → label masks and per-box class coverage (pure; level-0 px in).

- :func:`rasterise_labels`: a uint8 class-index image, 0 = no class, ``k`` = the ``k``-th
  class name in sorted order. A pixel takes a class when its centre lies inside the class's
  polygons (holes excluded; a centre on an edge by :mod:`wsidist.imaging.raster`'s tie
  rule); where classes overlap, the later name in sorted order wins.
- :func:`box_coverage`: the exact share of each box's area inside each class (shapely areas;
  boxes wholly inside or outside a class cost no intersection).
- :func:`encode_label_png` / :func:`decode_label_png`: an indexed (palette) PNG with the legend
  (class index → name) as JSON in its ``wsidist.legend`` text chunk.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence

import numpy as np
import shapely
from PIL import Image, PngImagePlugin
from shapely.geometry.base import BaseGeometry

from wsidist.imaging.raster import rasterise_geometry

__all__ = [
    "LEGEND_KEY",
    "box_coverage",
    "decode_label_png",
    "encode_label_png",
    "label_palette",
    "rasterise_labels",
]

LEGEND_KEY = "wsidist.legend"
MAX_CLASSES = 255
# Distinct colours (index 0, no class, is black); more classes cycle through them.
_COLOURS = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
    (0, 128, 128), (220, 190, 255), (170, 110, 40), (255, 250, 200), (128, 0, 0),
    (170, 255, 195), (128, 128, 0), (255, 215, 180), (0, 0, 128), (128, 128, 128),
)  # fmt: skip


def rasterise_labels(
    classes: Mapping[str, BaseGeometry], shape: tuple[int, int], px0_per_px: float
) -> np.ndarray:
    """uint8 (h, w) class indices of ``classes`` (level-0 px) drawn at ``px0_per_px`` level-0
    px per output px; pixel (r, c) covers level-0 ``[c, c+1) × [r, r+1)`` times the scale.
    Each class is :func:`wsidist.imaging.raster.rasterise_geometry`; later names win."""
    names = sorted(classes)
    if len(names) > MAX_CLASSES:
        raise ValueError(f"{len(names)} classes: a label mask holds at most {MAX_CLASSES}")
    out = np.zeros(shape, np.uint8)
    for index, name in enumerate(names, start=1):
        out[rasterise_geometry(classes[name], shape, px0_per_px)] = index
    return out


def box_coverage(classes: Mapping[str, BaseGeometry], boxes: np.ndarray) -> dict[str, np.ndarray]:
    """``name -> float64 (n,)``: the share of each level-0 box ``(x, y, w, h)`` inside the class."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    area = np.maximum(boxes[:, 2] * boxes[:, 3], 1e-12)
    out: dict[str, np.ndarray] = {}
    for name in sorted(classes):
        geom = classes[name]
        frac = np.zeros(len(boxes), np.float64)
        if geom.is_empty:
            out[name] = frac
            continue
        gx0, gy0, gx1, gy1 = geom.bounds
        near = np.flatnonzero((x1 > gx0) & (x0 < gx1) & (y1 > gy0) & (y0 < gy1))
        if near.size:
            shapely.prepare(geom)
            cells = shapely.box(x0[near], y0[near], x1[near], y1[near])
            inside = shapely.contains_properly(geom, cells)
            touch = shapely.intersects(geom, cells) & ~inside
            frac[near[inside]] = 1.0
            edge = near[touch]
            if edge.size:
                cut = shapely.area(shapely.intersection(cells[touch], geom))
                frac[edge] = np.clip(cut / area[edge], 0.0, 1.0)
        out[name] = frac
    return out


def label_palette(n_classes: int) -> list[tuple[int, int, int]]:
    """RGB of index 0 (black) and of each class index 1…n."""
    return [(0, 0, 0)] + [_COLOURS[i % len(_COLOURS)] for i in range(n_classes)]


def encode_label_png(labels: np.ndarray, names: Sequence[str]) -> bytes:
    """An indexed PNG of ``labels`` (uint8, 0 = none, k = ``names[k-1]``) with its legend."""
    image = Image.fromarray(np.ascontiguousarray(labels, np.uint8), mode="P")
    flat = [v for rgb in label_palette(len(names)) for v in rgb]
    image.putpalette(flat + [0] * (768 - len(flat)))
    info = PngImagePlugin.PngInfo()
    legend = {"0": "none", **{str(k): n for k, n in enumerate(names, start=1)}}
    info.add_text(LEGEND_KEY, json.dumps(legend))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info, optimize=False)
    return buf.getvalue()


def decode_label_png(data: bytes) -> tuple[np.ndarray, dict[int, str]]:
    """The class indices and the legend (index → name) of :func:`encode_label_png`'s PNG."""
    with Image.open(io.BytesIO(data)) as image:
        legend = json.loads(image.text.get(LEGEND_KEY, "{}"))  # type: ignore[attr-defined]
        labels = np.asarray(image if image.mode == "P" else image.convert("L"), np.uint8)
    return labels.copy(), {int(k): v for k, v in legend.items()}
