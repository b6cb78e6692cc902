"""Pictures for people: colour maps, tile grids and contours drawn on a slide image, and a
side panel with the title, legend, colour bar and scale bar, so nothing covers the tissue.

Arrays in, arrays out (uint8 RGB); sizes in display pixels. Text uses DejaVu Sans when it is
installed (it ships with matplotlib), else Pillow's own scalable font.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

Color = tuple[int, int, int]

# Seed-000 tile classes by tissue fraction, with the colours of its tile summaries.
TISSUE_CLASSES: tuple[tuple[str, Color, str], ...] = (
    ("high", (0, 200, 0), "high: ≥ 80 % tissue"),
    ("medium", (255, 255, 0), "medium: 10–80 % tissue"),
    ("low", (255, 165, 0), "low: > 0–10 % tissue"),
    ("none", (255, 0, 0), "none: no tissue"),
)
CLASS_COLORS: dict[str, Color] = {name: color for name, color, _ in TISSUE_CLASSES}
CONTOUR_COLOR: Color = (0, 230, 90)
# Anchor colours of a perceptually ordered map (dark blue → teal → yellow), as in viridis.
HEAT_ANCHORS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float64
)
PANEL_PX = 340
MARGIN_PX = 16


def heat_colors(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to uint8 RGB along the anchor colours (NaN → the low end)."""
    v = np.clip(np.nan_to_num(np.asarray(values, np.float64)), 0, 1) * (len(HEAT_ANCHORS) - 1)
    i = np.minimum(v.astype(int), len(HEAT_ANCHORS) - 2)
    t = (v - i)[..., None]
    return ((1 - t) * HEAT_ANCHORS[i] + t * HEAT_ANCHORS[i + 1]).round().astype(np.uint8)


def display_scale(width: int, height: int, long_px: int) -> float:
    """Downsample (≥ 1) that brings a ``width`` × ``height`` slide to ``long_px`` on its long side."""
    return max(1.0, max(width, height) / float(long_px))


def upscale_to(rgb: np.ndarray, min_long_px: int) -> tuple[np.ndarray, int]:
    """``rgb`` enlarged by a whole factor (nearest) until its long side is ≥ ``min_long_px``."""
    factor = max(1, math.ceil(min_long_px / max(rgb.shape[:2])))
    if factor == 1:
        return rgb, 1
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1), factor


def shrink_to(rgb: np.ndarray, long_px: int) -> np.ndarray:
    """``rgb`` area-averaged down to ``long_px`` on its long side (unchanged when smaller)."""
    from wsidist.imaging.resample import area_resample

    h, w = rgb.shape[:2]
    if max(h, w) <= long_px:
        return rgb
    ratio = max(h, w) / float(long_px)
    size = (max(1, math.ceil(w / ratio - 1e-9)), max(1, math.ceil(h / ratio - 1e-9)))
    return area_resample(
        lambda x, y, bw, bh: rgb[y : y + bh, x : x + bw], (w, h), (ratio, ratio), size
    )


def scaled_boxes(xywh: np.ndarray, downsample: float, shape_hw: tuple[int, int]) -> np.ndarray:
    """Level-0 ``(x, y, w, h)`` rows as display ``(x0, y0, x1, y1)``, at least 1 px, clipped."""
    xywh = np.asarray(xywh, np.float64).reshape(-1, 4)
    x0, y0 = np.round(xywh[:, 0] / downsample), np.round(xywh[:, 1] / downsample)
    x1 = np.maximum(x0 + 1, np.round((xywh[:, 0] + xywh[:, 2]) / downsample))
    y1 = np.maximum(y0 + 1, np.round((xywh[:, 1] + xywh[:, 3]) / downsample))
    h, w = shape_hw
    return np.stack([np.minimum(x0, w - 1), np.minimum(y0, h - 1), np.minimum(x1, w),
                     np.minimum(y1, h)], axis=1).astype(np.int64)  # fmt: skip


def paint_tiles(
    rgb: np.ndarray,
    boxes: np.ndarray,
    colors: np.ndarray,
    *,
    alpha: float = 0.45,
    outline: bool = True,
) -> np.ndarray:
    """Blend each box ``(x0, y0, x1, y1)`` with its colour (``(N, 3)`` uint8; a row of -1 leaves
    the box alone) and, when boxes are ≥ 6 px wide, outline it in the same colour."""
    out = rgb.astype(np.float32)
    colors = np.asarray(colors)
    for (x0, y0, x1, y1), col in zip(boxes, colors):
        if col[0] < 0:
            continue
        region = out[y0:y1, x0:x1]
        region *= 1 - alpha
        region += alpha * np.asarray(col, np.float32)
    image = Image.fromarray(out.round().astype(np.uint8))
    if outline and len(boxes) and np.median(boxes[:, 2] - boxes[:, 0]) >= 6:
        draw = ImageDraw.Draw(image)
        for (x0, y0, x1, y1), col in zip(boxes, colors):
            if col[0] >= 0:
                draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=tuple(int(c) for c in col))
    return np.asarray(image)


def draw_rings(
    rgb: np.ndarray, rings: Iterable[np.ndarray], color: Color = CONTOUR_COLOR, width: int = 3
) -> np.ndarray:
    """Closed polylines (``(n, 2)`` display x, y) drawn with a dark halo, so they show on any
    stain."""
    image = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(image)
    rings = [np.asarray(r, np.float64) for r in rings if len(r) >= 2]
    for halo, w in (((20, 20, 20), width + 2), (color, width)):
        for ring in rings:
            draw.line(
                [tuple(p) for p in ring] + [tuple(ring[0])], fill=halo, width=w, joint="curve"
            )
    return np.asarray(image)


@dataclass(frozen=True)
class Legend:
    title: str
    items: Sequence[tuple[Color, str]]


@dataclass(frozen=True)
class ColorBar:
    label: str  # what the colours mean, with the unit
    lo: float
    hi: float
    n_ticks: int = 5


@dataclass(frozen=True)
class Panel:
    """What the side panel says: title, free lines, a legend, a colour bar, a scale bar."""

    title: str
    lines: Sequence[str] = ()
    legend: Legend | None = None
    colorbar: ColorBar | None = None
    um_per_px: float | None = None  # display px size; draws a scale bar when known
    notes: Sequence[str] = field(default_factory=tuple)


def figure(image: np.ndarray, panel: Panel) -> np.ndarray:
    """``image`` with a white side panel on its right holding ``panel``'s text and keys."""
    h, w = image.shape[:2]
    height = max(h, 560) + 2 * MARGIN_PX
    canvas = Image.new("RGB", (w + PANEL_PX + 3 * MARGIN_PX, height), "white")
    canvas.paste(Image.fromarray(np.ascontiguousarray(image[..., :3])), (MARGIN_PX, MARGIN_PX))
    draw = ImageDraw.Draw(canvas)
    x, y = w + 2 * MARGIN_PX, MARGIN_PX
    y = _text_block(draw, x, y, panel.title, _font(24), PANEL_PX) + 8
    for line in panel.lines:
        y = _text_block(draw, x, y, line, _font(17), PANEL_PX) + 2
    if panel.legend is not None:
        y = _text_block(draw, x, y + 14, panel.legend.title, _font(18, bold=True), PANEL_PX) + 6
        for color, label in panel.legend.items:
            draw.rectangle((x, y + 2, x + 22, y + 22), fill=color, outline=(40, 40, 40))
            y = max(y + 26, _text_block(draw, x + 32, y + 2, label, _font(17), PANEL_PX - 32) + 4)
    if panel.colorbar is not None:
        y = _colorbar(canvas, draw, x, y + 14, panel.colorbar)
    if panel.um_per_px:
        y = _scalebar(draw, x, y + 18, panel.um_per_px)
    for note in panel.notes:
        y = _text_block(draw, x, y + 10, note, _font(15), PANEL_PX, fill=(90, 90, 90))
    return np.asarray(canvas)


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 × 10^k not above ``target`` (> 0)."""
    k = math.floor(math.log10(target))
    for m in (5, 2, 1):
        if m * 10**k <= target:
            return m * 10**k
    return 10**k


def format_length_um(um: float) -> str:
    return f"{um / 1000:g} mm" if um >= 1000 else f"{um:g} µm"


def format_tick(value: float) -> str:
    return f"{value:.3g}"


# -- internals ---------------------------------------------------------------------------------
def _colorbar(canvas: Image.Image, draw: ImageDraw.ImageDraw, x: int, y: int, bar: ColorBar) -> int:
    y = _text_block(draw, x, y, bar.label, _font(18, bold=True), PANEL_PX) + 8
    bar_w, bar_h = 28, 240
    ramp = heat_colors(np.linspace(1, 0, bar_h))[:, None, :].repeat(bar_w, axis=1)
    canvas.paste(Image.fromarray(ramp), (x, y))
    draw.rectangle((x, y, x + bar_w - 1, y + bar_h - 1), outline=(40, 40, 40))
    n = max(2, bar.n_ticks)
    for i in range(n):
        frac = i / (n - 1)
        ty = y + round((1 - frac) * (bar_h - 1))
        draw.line((x + bar_w, ty, x + bar_w + 6, ty), fill=(40, 40, 40), width=2)
        value = bar.lo + frac * (bar.hi - bar.lo)
        draw.text((x + bar_w + 10, ty), format_tick(value), fill=(20, 20, 20), font=_font(16),
                  anchor="lm")  # fmt: skip
    return y + bar_h + 4


def _scalebar(draw: ImageDraw.ImageDraw, x: int, y: int, um_per_px: float) -> int:
    um = nice_length(0.8 * PANEL_PX * um_per_px)
    length = max(1, round(um / um_per_px))
    if length > PANEL_PX:
        return y
    draw.text((x, y), "scale", fill=(20, 20, 20), font=_font(18, bold=True))
    y += 28
    draw.rectangle((x, y, x + length, y + 8), fill=(20, 20, 20))
    draw.text((x, y + 14), format_length_um(um), fill=(20, 20, 20), font=_font(17))
    return y + 40


def _text_block(draw, x: int, y: int, text: str, font, width: int, fill=(20, 20, 20)) -> int:
    """Draw ``text`` wrapped to ``width`` px at (x, y) (long words broken); return the y below."""
    lines, line = [], ""
    for word in _pieces(draw, text.split(), font, width):
        trial = f"{line} {word}".strip()
        if line and draw.textlength(trial, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    size = getattr(font, "size", 16)
    for text_line in lines:
        draw.text((x, y), text_line, fill=fill, font=font)
        y += round(size * 1.3)
    return y


def _pieces(draw, words: list[str], font, width: int) -> list[str]:
    """Words, with any word wider than ``width`` cut into pieces that fit."""
    out = []
    for word in words:
        while draw.textlength(word, font=font) > width and len(word) > 1:
            cut = len(word) - 1
            while cut > 1 and draw.textlength(word[:cut], font=font) > width:
                cut -= 1
            out.append(word[:cut])
            word = word[cut:]
        out.append(word)
    return out


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False):
    path = _dejavu(bold)
    if path:
        return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=2)
def _dejavu(bold: bool) -> str | None:
    spec = importlib.util.find_spec("matplotlib")
    for base in spec.submodule_search_locations or [] if spec else []:
        name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
        path = os.path.join(base, "mpl-data", "fonts", "ttf", name)
        if os.path.exists(path):
            return path
    return None
