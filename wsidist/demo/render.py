"""Pixels of synthetic slides: one level-0 tile at a time, from the label map.

Glass carries slow brightness drift and sensor noise; tissue is eosin/hematoxylin texture
(``he``), faint bluish counterstain on tinted glass (``ihc``) or bright nuclei on a dark slide
(``fluorescence``), faded towards the glass by ``spec.faint``. Fat is empty cells with thin
membranes; dust, bubble rims and scanner borders are neutral gray. Pens are opaque colours
(``pen_style="opaque"``, the classic inks) or translucent ink multiplied over what lies below
(``"ink"``). Everything is seamless coordinate-hashed noise, so any tile renders on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from wsidist.demo.layout import (
    BORDER,
    BUBBLE,
    CELL,
    DEBRIS,
    FAT,
    GLASS,
    PEN_BLACK,
    PEN_BLUE,
    PEN_GREEN,
    PEN_LABELS,
    PEN_NAVY,
    PEN_RED,
    TISSUE,
    TISSUE_LABELS,
    blur_discs,
)
from wsidist.demo.noise import _hash01, jitter, value_noise
from wsidist.imaging import TileCodec

if TYPE_CHECKING:
    from wsidist.demo.spec import SynthSpec

__all__ = ["INK", "INK_TRANSLUCENT", "TileSource", "render_tile"]

# Inks chosen inside the classic python-wsi-preprocessing pen thresholds even after shading:
# red r>150 & g<80 & b<90; green r<45 & g>115 & b>100; blue r<60 & g<120 & b>190 (r<37 & g<95 & b>160).
INK = {PEN_RED: (200, 40, 50), PEN_GREEN: (30, 150, 120), PEN_BLUE: (25, 45, 220)}
INK_EXTRA = {PEN_BLACK: (38, 38, 44), PEN_NAVY: (28, 34, 100)}
# Transmittance (x 255) of translucent marker ink, multiplied over glass or tissue.
INK_TRANSLUCENT = {
    PEN_RED: (225, 50, 70),
    PEN_GREEN: (45, 170, 140),
    PEN_BLUE: (45, 70, 200),
    PEN_NAVY: (35, 45, 120),
    PEN_BLACK: (48, 48, 55),
}
# (light, dark) base colours and (light, dark) nuclei per stain
STAINS = {
    "he": (((238, 172, 208), (214, 124, 178)), ((152, 102, 176), (118, 70, 160))),
    "ihc": (((222, 226, 238), (176, 184, 210)), ((138, 146, 190), (104, 112, 168))),
    "fluorescence": (((3, 6, 24), (6, 12, 60)), ((30, 50, 170), (60, 90, 250))),
}


def _tissue_texture(spec: SynthSpec, xs, ys, rng, key: int) -> np.ndarray:
    t = spec.tile
    um = 1.0 / (spec.mpp or 0.5)
    (light, dark), (hl, hd) = (
        tuple(np.asarray(c, np.float32) for c in pair) for pair in STAINS[spec.stain]
    )
    m = value_noise(xs, ys, 60 * um, 60 * um, key + 1)[..., None]
    tis = light + (dark - light) * (0.15 + 0.85 * m)
    w = value_noise(xs, ys, 150 * um, 150 * um, key + 2)
    fa = value_noise(xs, ys, 12 * um, 2 * um, key + 3)
    fb = value_noise(xs, ys, 2 * um, 12 * um, key + 4)
    tis *= (1.08 - 0.16 * (fb + w * (fa - fb)))[..., None]
    cel = value_noise(xs, ys, 120 * um, 120 * um, key + 5)
    a = value_noise(xs, ys, 6 * um, 6 * um, key + 6) - (0.86 - 0.16 * cel)
    a = np.clip(a * 25, 0, 1)[..., None]
    hem = hl + (hd - hl) * value_noise(xs, ys, 1.5 * um, 1.5 * um, key + 7)[..., None]
    tis += a * (hem - tis)
    tis += jitter(rng, (t, t, 3), 3.5)
    return tis


def _fade(spec: SynthSpec, tis: np.ndarray) -> np.ndarray:
    """Scale the stain's optical density (or, on a dark slide, its glow) by ``spec.faint``."""
    if spec.faint == 1.0:
        return tis
    glass = np.asarray(spec.glass, np.float32)
    if spec.stain == "fluorescence":
        return glass + (tis - glass) * spec.faint
    ratio = np.clip(tis, 1, 255) / np.maximum(glass, 1)
    return glass * ratio**spec.faint


def _fat(spec: SynthSpec, xs, ys, base: np.ndarray, key: int, edge: np.ndarray) -> np.ndarray:
    """Adipose tissue: empty cells (glass) with ~4 µm eosin walls, cells of ``spec.fat_um``
    on average (0.6-1.4 x that across).

    Walls run between the cells of a jittered lattice and along ``edge`` (fat cells next to
    glass), so every fat cell is closed.
    """
    um = 1.0 / (spec.mpp or 0.5)
    sp = spec.fat_um * um
    gx, gy = xs / sp, ys / sp
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    d1 = np.full((ys.size, xs.size), np.inf, np.float32)
    d2 = d1.copy()
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            lx, ly = (ix + ox)[None, :], (iy + oy)[:, None]
            px = lx + 0.15 + 0.7 * _hash01(lx, ly, key + 11)
            py = ly + 0.15 + 0.7 * _hash01(lx, ly, key + 12)
            d = np.hypot(gx[None, :] - px, gy[:, None] - py).astype(np.float32)
            d2 = np.minimum(d2, np.maximum(d1, d))
            d1 = np.minimum(d1, d)
    wall = np.clip(1.5 - (d2 - d1) * sp / (4.0 * um), 0, 1)
    wall = np.maximum(wall, edge)[..., None]
    membrane = np.asarray(STAINS["he"][0][1], np.float32)
    return base + wall * (membrane - base)


def _fat_edge(lab: np.ndarray, x0: int, y0: int, t: int) -> np.ndarray:
    """float32 (t, t): 1 on fat cells with a non-tissue 4-neighbour (the outer wall)."""
    c = CELL
    r0, c0 = y0 // c, x0 // c
    n = t // c
    h, w = lab.shape
    crop = lab[max(r0 - 1, 0) : min(r0 + n + 1, h), max(c0 - 1, 0) : min(c0 + n + 1, w)]
    before = (int(r0 == 0), int(c0 == 0))
    after = (n + 2 - crop.shape[0] - before[0], n + 2 - crop.shape[1] - before[1])
    pad = np.pad(crop, ((before[0], after[0]), (before[1], after[1])), mode="edge")
    fat = pad[1:-1, 1:-1] == FAT
    tissue = np.isin(pad, TISSUE_LABELS)
    closed = tissue[:-2, 1:-1] & tissue[2:, 1:-1] & tissue[1:-1, :-2] & tissue[1:-1, 2:]
    edge = (fat & ~closed).astype(np.float32)
    return np.repeat(np.repeat(edge, c, 0), c, 1)


def _border(spec: SynthSpec, xs, ys, lum) -> np.ndarray:
    """Scanner border / label shadow: black at the slide edge, easing to gray inwards."""
    t = spec.tile
    pos = np.ones((t, t), np.float32)
    for edge in spec.dark_borders:
        size = spec.width if edge in ("left", "right") else spec.height
        depth = max(2, int(0.03 * -(-size // CELL))) * CELL
        dist = {"left": xs[None, :], "right": spec.width - xs[None, :]}.get(edge)
        if dist is None:
            dist = ys[:, None] if edge == "top" else spec.height - ys[:, None]
        pos = np.minimum(pos, np.clip(dist / depth, 0, 1))
    ramp = np.clip((pos - 0.6) / 0.4, 0, 1)
    gray = 28 + (0.55 * float(np.mean(spec.glass)) - 28) * ramp
    return (gray[..., None] + lum).astype(np.float32)


def _blur(spec: SynthSpec, img: np.ndarray, xs, ys) -> np.ndarray:
    um = 1.0 / (spec.mpp or 0.5)
    weight = np.zeros((ys.size, xs.size), np.float32)
    for cx, cy, r in blur_discs(spec):
        d = np.hypot(xs[None, :] - cx, ys[:, None] - cy)
        weight = np.maximum(weight, np.clip((r - d) / (20 * um) + 0.5, 0, 1))
    if not weight.any():
        return img
    soft = ndimage.gaussian_filter(img, sigma=(3 * um, 3 * um, 0), mode="reflect")
    return img + weight[..., None] * (soft - img)


def render_tile(
    spec: SynthSpec, lab: np.ndarray, x0: int, y0: int, under: np.ndarray | None = None
) -> np.ndarray:
    """uint8 (tile, tile, 3) level-0 pixels of the tile at (x0, y0) (level-0 px)."""
    t, c = spec.tile, CELL
    cells = lab[y0 // c : (y0 + t) // c, x0 // c : (x0 + t) // c]
    lt = np.repeat(np.repeat(cells, c, 0), c, 1)[..., None]
    present = set(np.unique(cells).tolist())
    below = None
    if under is not None:
        below = under[y0 // c : (y0 + t) // c, x0 // c : (x0 + t) // c]
        below = np.repeat(np.repeat(below, c, 0), c, 1)[..., None] if below.any() else None
    xs, ys = x0 + np.arange(t) + 0.5, y0 + np.arange(t) + 0.5
    rng = np.random.default_rng([spec.seed, 7, y0, x0])
    extra = np.random.default_rng([spec.seed, 8, y0, x0])
    um = 1.0 / (spec.mpp or 0.5)  # level-0 px per micrometre
    key = spec.seed * 1000 + 100
    lum = jitter(rng, (t, t, 1), 1.5)
    img = np.asarray(spec.glass, np.float32) + jitter(rng, (t, t, 3), 1.0)
    img -= 5 * value_noise(xs, ys, 400 * um, 400 * um, key)[..., None]
    img += lum
    glass = img.copy() if below is not None or FAT in present else None
    tis = None
    if TISSUE in present or (below is not None and spec.pen_style == "ink"):
        tis = _fade(spec, _tissue_texture(spec, xs, ys, rng, key))
        np.copyto(img, tis, where=lt == TISSUE)
    if FAT in present:
        edge = _fat_edge(lab, x0, y0, t)
        fat = _fade(spec, _fat(spec, xs, ys, glass, key, edge))
        np.copyto(img, fat, where=lt == FAT)
    if DEBRIS in present:
        gray = 45 + 100 * value_noise(xs, ys, 10, 10, key + 8)[..., None] + 2 * lum
        np.copyto(img, gray, where=lt == DEBRIS)
    if BUBBLE in present:
        rim = 95 + 45 * value_noise(xs, ys, 8 * um, 8 * um, key + 20)[..., None] + 2 * lum
        np.copyto(img, rim, where=lt == BUBBLE)
    if spec.pen_style == "opaque":
        for label, ink in {**INK, **INK_EXTRA}.items():
            if label in present:
                f = 0.93 + 0.07 * value_noise(xs, ys, 30 * um, 30 * um, key + 9 + label)[..., None]
                noise = jitter(rng if label in INK else extra, (t, t, 3), 2.3)
                np.copyto(img, np.asarray(ink, np.float32) * f + noise, where=lt == label)
    else:
        base = img if below is None else np.where(below, tis, glass)
        for label, ink in INK_TRANSLUCENT.items():
            if label in present:
                f = 0.9 + 0.1 * value_noise(xs, ys, 30 * um, 30 * um, key + 9 + label)[..., None]
                col = base * (np.asarray(ink, np.float32) / 255.0) * f
                np.copyto(img, col + jitter(extra, (t, t, 3), 2.0), where=lt == label)
    if BORDER in present:
        np.copyto(img, _border(spec, xs, ys, lum), where=lt == BORDER)
    if spec.n_blur:
        img = _blur(spec, img, xs, ys)
    img += 0.5
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


class TileSource:
    """Level-0 tiles as JPEG bytes; with ``texture="atlas"`` classes reuse one rendered tile."""

    def __init__(self, spec: SynthSpec, lab: np.ndarray, under: np.ndarray | None):
        self.spec, self.lab, self.under = spec, lab, under
        self.codec = TileCodec("jpeg", jpeg_quality=spec.jpeg_quality)
        self.atlas: dict[tuple[int, bool], np.ndarray] = {}
        self.glass: tuple[bytes, np.ndarray] | None = None
        self.blurred = [
            (cx - r, cy - r, cx + r, cy + r) for cx, cy, r in blur_discs(spec)
        ]  # fmt: skip

    def _class_tile(self, label: int, over_tissue: bool) -> np.ndarray:
        key = (label, over_tissue)
        if key not in self.atlas:
            n = self.spec.tile // CELL
            lab = np.full((n, n), label, np.uint8)
            under = np.full((n, n), over_tissue) if self.under is not None else None
            self.atlas[key] = render_tile(self.spec, lab, 0, 0, under).astype(np.uint8)
        return self.atlas[key]

    def _needs_full_render(self, cells: np.ndarray, x0: int, y0: int) -> bool:
        t = self.spec.tile
        if self.spec.texture == "noise" or (cells == BORDER).any():
            return True
        return any(x0 < bx1 and x0 + t > bx0 and y0 < by1 and y0 + t > by0
                   for bx0, by0, bx1, by1 in self.blurred)  # fmt: skip

    def tile(self, x0: int, y0: int) -> tuple[bytes, np.ndarray]:
        """(JPEG bytes, pixels) of the tile at (x0, y0)."""
        t, c = self.spec.tile, CELL
        cells = self.lab[y0 // c : (y0 + t) // c, x0 // c : (x0 + t) // c]
        if self._needs_full_render(cells, x0, y0):
            img = render_tile(self.spec, self.lab, x0, y0, self.under)
            return self.codec.encode(img), img
        if not cells.any():  # glass only: one encoded tile for all
            if self.glass is None:
                img = self._class_tile(GLASS, False)
                self.glass = (self.codec.encode(img), img)
            return self.glass
        img = self._class_tile(GLASS, False).copy()
        lt = np.repeat(np.repeat(cells, c, 0), c, 1)
        below = None
        if self.under is not None:
            below = self.under[y0 // c : (y0 + t) // c, x0 // c : (x0 + t) // c]
            below = np.repeat(np.repeat(below, c, 0), c, 1)
        for label in np.unique(cells).tolist():
            if label == GLASS:
                continue
            where = lt == label
            if below is not None and label in PEN_LABELS.values():
                np.copyto(img, self._class_tile(label, True), where=(where & below)[..., None])
                where &= ~below
            np.copyto(img, self._class_tile(label, False), where=where[..., None])
        return self.codec.encode(img), img
