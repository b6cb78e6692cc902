"""Label maps of synthetic slides: what lies where, on a grid of CELL x CELL level-0 pixels.

:func:`layout_labels` draws tissue blobs (with glass holes), fatty regions, small fragments,
dust, air-bubble rims, pen strokes and dark scanner borders into a uint8 label map. The labels
are the truth; :mod:`wsidist.demo.render` paints pixels from them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from wsidist.demo.labels import (
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
)
from wsidist.demo.noise import value_noise

if TYPE_CHECKING:
    from wsidist.demo.spec import SynthSpec

__all__ = [
    "BORDER",
    "BUBBLE",
    "CELL",
    "DEBRIS",
    "FAT",
    "GLASS",
    "PEN_BLACK",
    "PEN_BLUE",
    "PEN_GREEN",
    "PEN_LABELS",
    "PEN_NAVY",
    "PEN_RED",
    "TISSUE",
    "TISSUE_LABELS",
    "blur_discs",
    "layout_labels",
]


def stamp_curve(lab: np.ndarray, pts: np.ndarray, radius: float, value: int) -> None:
    """Paint a thick polyline (points in cell units, (x, y)) into lab."""
    r = max(radius, 0.75)
    k = int(math.ceil(r))
    yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
    disk = xx * xx + yy * yy <= r * r
    seg = np.diff(pts, axis=0)
    n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / max(r / 2, 0.5))).astype(int)
    dense = [pts[:1]]
    for p, d, m in zip(pts[:-1], seg, n, strict=True):
        dense.append(p + d * (np.arange(1, m + 1)[:, None] / m))
    h, w = lab.shape
    for cx, cy in np.rint(np.concatenate(dense)).astype(int):
        y0, y1, x0, x1 = cy - k, cy + k + 1, cx - k, cx + k + 1
        if y1 <= 0 or x1 <= 0 or y0 >= h or x0 >= w:
            continue
        sub = disk[
            max(0, -y0) : disk.shape[0] - max(0, y1 - h),
            max(0, -x0) : disk.shape[1] - max(0, x1 - w),
        ]
        lab[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)][sub] = value


def _blobs(spec: SynthSpec, rng: np.random.Generator) -> tuple[list, list]:
    short = min(spec.width, spec.height)
    lobes, centres = [], []
    for _ in range(spec.n_blobs):
        cx = rng.uniform(0.18, 0.82) * spec.width
        cy = rng.uniform(0.18, 0.82) * spec.height
        base = rng.uniform(0.12, 0.22) * short * spec.blob_size
        centres.append((cx, cy, base))
        for _ in range(rng.integers(1, 4)):
            ang = rng.uniform(0, np.pi)
            off = rng.uniform(0, 0.6) * base
            a, b = base * rng.uniform(0.7, 1.2), base * rng.uniform(0.4, 0.9)
            lobes.append(
                (cx + off * np.cos(ang), cy + off * np.sin(ang), a, b, rng.uniform(0, np.pi))
            )
    return lobes, centres


def _fragments(spec: SynthSpec, rng: np.random.Generator) -> list:
    """Small elliptical pieces (sizes in µm), kept apart from each other and from the edge."""
    um = 1.0 / (spec.mpp or 0.5)
    lo, hi = spec.fragment_um
    pieces: list[tuple[float, float, float, float, float]] = []
    for _ in range(spec.n_fragments * 30):
        if len(pieces) == spec.n_fragments:
            break
        a = rng.uniform(lo, hi) * um / 2
        b = a * rng.uniform(0.35, 0.9)
        cx = rng.uniform(0.06, 0.94) * spec.width
        cy = rng.uniform(0.06, 0.94) * spec.height
        if any(math.hypot(cx - p[0], cy - p[1]) < 1.25 * (a + p[2]) for p in pieces):
            continue
        pieces.append((cx, cy, a, b, rng.uniform(0, np.pi)))
    return pieces


def _paint_tissue(spec: SynthSpec, lab: np.ndarray, lobes: list, centres: list) -> None:
    """Blobs (value-noise edges, glass holes), fragments and fat, band by band."""
    ch, cw = lab.shape
    c, short = CELL, min(spec.width, spec.height)
    key = spec.seed * 1000
    xs = (np.arange(cw) + 0.5) * c
    mean_r = np.mean([b[2] for b in centres]) if centres else short
    hole_sp = 60.0 / (spec.mpp or 0.5)
    fat_sp = 400.0 / (spec.mpp or 0.5)
    frags = spec_fragments(spec)
    reach = [1.4 * max(a, b) for _, _, a, b, _ in lobes]  # field <= 1 - r + 0.375 < 0 beyond
    for r0 in range(0, ch, 256):
        ys = (np.arange(r0, min(ch, r0 + 256)) + 0.5) * c
        band = lab[r0 : r0 + ys.size]
        near = [
            i for i, lobe in enumerate(lobes) if abs(lobe[1] - ys.mean()) < reach[i] + np.ptp(ys)
        ]
        if near:  # only the columns a lobe of this band can reach
            x0 = max(0, int(min(lobes[i][0] - reach[i] for i in near) // c))
            x1 = min(cw, int(max(lobes[i][0] + reach[i] for i in near) // c) + 2)
            xb = xs[x0:x1]
            field = np.full((ys.size, xb.size), -np.inf, np.float32)
            for i in near:
                lx, ly, a, b, th = lobes[i]
                dx, dy = xb[None, :] - lx, ys[:, None] - ly
                u = (dx * np.cos(th) + dy * np.sin(th)) / a
                v = (-dx * np.sin(th) + dy * np.cos(th)) / b
                field = np.maximum(field, 1.0 - np.sqrt(u * u + v * v))
            field += 0.55 * (value_noise(xb, ys, mean_r * 0.6, mean_r * 0.6, key + 1) - 0.5)
            field += 0.20 * (value_noise(xb, ys, mean_r * 0.15, mean_r * 0.15, key + 2) - 0.5)
            holes = value_noise(xb, ys, hole_sp, hole_sp, key + 3) > 0.86
            sub = band[:, x0:x1]
            sub[(field > 0) & ~holes] = TISSUE
            if spec.fat > 0:
                fatty = value_noise(xb, ys, fat_sp, fat_sp, key + 4) < spec.fat
                sub[(field > 0) & fatty] = FAT  # adipose: its empty cells are tissue too
        for fx, fy, a, b, th in frags:
            if fy + a < ys[0] - c or fy - a > ys[-1] + c:
                continue
            x0, x1 = int(max(0, (fx - a) // c)), int(min(cw, (fx + a) // c + 2))
            dx, dy = xs[None, x0:x1] - fx, ys[:, None] - fy
            u = (dx * np.cos(th) + dy * np.sin(th)) / a
            v = (-dx * np.sin(th) + dy * np.cos(th)) / b
            wobble = 0.15 * (value_noise(xs[x0:x1], ys, a * 0.5, a * 0.5, key + 5) - 0.5)
            band[:, x0:x1][1.0 - np.sqrt(u * u + v * v) + wobble > 0] = TISSUE


def spec_fragments(spec: SynthSpec) -> list:
    """The fragments of ``spec`` (deterministic: their own random stream)."""
    if spec.n_fragments <= 0:
        return []
    return _fragments(spec, np.random.default_rng([spec.seed, 2]))


def _debris(spec: SynthSpec, lab: np.ndarray, rng: np.random.Generator) -> None:
    ch, cw = lab.shape
    for _ in range(spec.n_debris):  # gray/black specks on glass only
        x, y = rng.uniform(0, cw), rng.uniform(0, ch)
        rad = rng.choice([0.8, 1.2, 2.0, 3.5], p=[0.4, 0.3, 0.2, 0.1])
        k = int(math.ceil(rad))
        y0, x0 = int(y) - k, int(x) - k
        if y0 < 0 or x0 < 0 or y0 + 2 * k + 1 > ch or x0 + 2 * k + 1 > cw:
            continue
        yy, xx = np.mgrid[-k : k + 1, -k : k + 1]
        spot = xx * xx + yy * yy * rng.uniform(0.5, 2.0) <= rad * rad
        sub = lab[y0 : y0 + 2 * k + 1, x0 : x0 + 2 * k + 1]
        sub[spot & (sub == GLASS)] = DEBRIS


def _bubbles(spec: SynthSpec, lab: np.ndarray) -> None:
    """Air-bubble rims: thin rings, 150-600 µm across, on glass and over tissue edges."""
    rng = np.random.default_rng([spec.seed, 3])
    um = 1.0 / (spec.mpp or 0.5)
    t = np.linspace(0, 2 * np.pi, 240)[:, None]
    for _ in range(spec.n_bubbles):
        r = rng.uniform(75, 300) * um
        cx, cy = rng.uniform(0.1, 0.9) * spec.width, rng.uniform(0.1, 0.9) * spec.height
        pts = np.concatenate([cx + r * np.cos(t), cy + r * rng.uniform(0.8, 1.0) * np.sin(t)], 1)
        stamp_curve(lab, pts / CELL - 0.5, max(2.5 * um, 2 * CELL) / CELL, BUBBLE)


def _pens(spec: SynthSpec, lab: np.ndarray, rng: np.random.Generator, centres: list) -> None:
    c, short = CELL, min(spec.width, spec.height)
    um = 1.0 / (spec.mpp or 0.5)
    for i, pen in enumerate(spec.pens):
        for j in range(spec.strokes_per_pen):
            radius = max(rng.uniform(0.005, 0.01) * short, 4 * c) / 2 / c
            if spec.pen_width_um is not None:
                radius = spec.pen_width_um * um * (0.8 + 0.4 * (j % 2)) / 2 / c
            kind = (i + j) % 3
            if kind == 1 and centres:  # annotation ring around a blob
                bx, by, br = centres[rng.integers(len(centres))]
                t0 = rng.uniform(0, 2 * np.pi)
                t = t0 + np.linspace(0, rng.uniform(1.4, 1.9) * np.pi, 200)
                rr = br * rng.uniform(1.3, 1.7) * (1 + 0.08 * np.sin(3 * t))
                pts = np.stack([bx + rr * np.cos(t), by + 0.8 * rr * np.sin(t)], 1)
            else:  # quadratic stroke, through a blob centre for kind 0 (pen over tissue)
                p0 = rng.uniform(0.05, 0.95, 2) * (spec.width, spec.height)
                p2 = rng.uniform(0.05, 0.95, 2) * (spec.width, spec.height)
                if kind == 0 and centres:
                    bx, by, _ = centres[rng.integers(len(centres))]
                    p1 = 2 * np.array([bx, by]) - (p0 + p2) / 2
                else:
                    p1 = rng.uniform(0, 1, 2) * (spec.width, spec.height)
                t = np.linspace(0, 1, 200)[:, None]
                pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
            stamp_curve(lab, pts / c - 0.5, radius, PEN_LABELS[pen])


def _borders(spec: SynthSpec, lab: np.ndarray) -> None:
    """Dark scanner borders / label shadows: bands along the named edges."""
    ch, cw = lab.shape
    for edge in spec.dark_borders:
        depth = max(2, int(0.03 * (cw if edge in ("left", "right") else ch)))
        if edge == "left":
            lab[:, :depth] = BORDER
        elif edge == "right":
            lab[:, cw - depth :] = BORDER
        elif edge == "top":
            lab[:depth] = BORDER
        else:
            lab[ch - depth :] = BORDER


def blur_discs(spec: SynthSpec) -> list[tuple[float, float, float]]:
    """Out-of-focus discs (cx, cy, radius) in level-0 px: centred on the first blobs."""
    if spec.n_blur <= 0:
        return []
    _, centres = _blobs(spec, np.random.default_rng([spec.seed, 1]))
    return [(cx, cy, 0.9 * r) for cx, cy, r in centres[: spec.n_blur]]


def layout_labels(spec: SynthSpec, ch: int, cw: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Label map (ch, cw) on the CELL grid, and where pens cover tissue (for translucent ink).

    The second array is None unless ``spec.pen_style == "ink"``.
    """
    rng = np.random.default_rng([spec.seed, 1])
    lobes, centres = _blobs(spec, rng)
    lab = np.zeros((ch, cw), np.uint8)
    _paint_tissue(spec, lab, lobes, centres)
    _debris(spec, lab, rng)
    _bubbles(spec, lab)
    under = None
    if spec.pen_style == "ink" and spec.pens:
        under = np.isin(lab, TISSUE_LABELS)
    _pens(spec, lab, rng, centres)
    _borders(spec, lab)
    return lab, under
