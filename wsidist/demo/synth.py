"""Synthetic H&E whole-slide images with known tissue and pen masks.

Everything is drawn from a label map on a grid of `CELL` x `CELL` level-0 pixels (glass, tissue,
red/green/blue pen, debris), so the truth is exact at any scale. Level 0 is rendered tile by tile
with seamless coordinate-hashed value noise and written as a tiled pyramidal JPEG TIFF that
OpenSlide opens (aperio or generic-tiff). Memory: the label map (1/16 of level-0 area, 1 byte) and
level 1 (1/16 of level 0, RGB) are held; level 0 never is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile

from wsidist.demo.noise import jitter, value_noise
from wsidist.imaging import area_reduce, summed_area_table

__all__ = [
    "CELL",
    "SynthSpec",
    "SynthTruth",
    "demo_specs",
    "generate_demo_slides",
    "synth_truth",
    "write_synthetic_slide",
]

CELL = 4  # label-map cell size in level-0 px
GLASS, TISSUE, PEN_RED, PEN_GREEN, PEN_BLUE, DEBRIS = range(6)
PEN_LABELS = {"red": PEN_RED, "green": PEN_GREEN, "blue": PEN_BLUE}
# Inks chosen inside the classic python-wsi-preprocessing pen thresholds even after shading:
# red r>150 & g<80 & b<90; green r<45 & g>115 & b>100; blue r<60 & g<120 & b>190 (r<37 & g<95 & b>160).
INK = {PEN_RED: (200, 40, 50), PEN_GREEN: (30, 150, 120), PEN_BLUE: (25, 45, 220)}
EOSIN = ((238, 172, 208), (214, 124, 178))  # light, dark
HEMATOXYLIN = ((152, 102, 176), (118, 70, 160))  # light, dark
APERIO_HEAD = "Aperio Image Library v12.0.15 \r\n"


@dataclass(frozen=True)
class SynthSpec:
    """Parameters of one synthetic slide (sizes in level-0 px unless named otherwise)."""

    width: int = 6000
    height: int = 4000
    tile: int = 256
    mpp: float | None = 0.5
    n_levels: int | None = None  # None: downsamples 1, 4, 16, ... until the largest side <= 1024
    seed: int = 0
    n_blobs: int = 4
    blob_size: float = 1.0  # multiplier on blob radii (about 10-20 % of the short side)
    pens: tuple[str, ...] = ("red", "green", "blue")
    strokes_per_pen: int = 1
    n_debris: int = 40
    glass: tuple[int, int, int] = (242, 240, 236)
    jpeg_quality: int = 85
    vendor_style: Literal["aperio", "generic"] = "aperio"
    objective_power: float | None = 20.0
    # extra vendor metadata (e.g. markup a viewer must escape): aperio "|key = value" fields,
    # or the generic TIFF's ImageDescription
    properties: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError("width and height must be >= 64")
        if self.tile % 16 or self.tile < 16:
            raise ValueError("tile must be a positive multiple of 16")
        if self.mpp is not None and not self.mpp > 0:
            raise ValueError("mpp must be > 0 or None")
        bad = [p for p in self.pens if p not in PEN_LABELS]
        if bad:
            raise ValueError(f"unknown pen colours {bad}; choose from {sorted(PEN_LABELS)}")
        if self.vendor_style not in ("aperio", "generic"):
            raise ValueError("vendor_style must be 'aperio' or 'generic'")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")

    @property
    def level_downsamples(self) -> tuple[int, ...]:
        if self.n_levels is not None:
            return tuple(4**k for k in range(max(1, self.n_levels)))
        ds = [1]
        while max(self.width, self.height) / ds[-1] > 1024:
            ds.append(ds[-1] * 4)
        return tuple(ds)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((-(-self.width // d), -(-self.height // d)) for d in self.level_downsamples)


@dataclass(frozen=True, eq=False)
class SynthTruth:
    """Known answer for a synthetic slide: `labels` on a CELL grid clipped to the slide."""

    spec: SynthSpec
    labels: np.ndarray  # uint8 (ceil(H/CELL), ceil(W/CELL))

    def fraction(self, scale: float, labels: tuple[int, ...]) -> np.ndarray:
        """Fraction of each output pixel's level-0 area covered by `labels`."""
        return _box_fraction(
            np.isin(self.labels, labels), self.spec.width, self.spec.height, float(scale)
        )

    def tissue_mask(self, scale: float) -> np.ndarray:
        """bool (ceil(H/scale), ceil(W/scale)): majority of the pixel's level-0 area is tissue."""
        return self.fraction(scale, (TISSUE,)) > 0.5

    def pen_mask(self, scale: float) -> np.ndarray:
        return self.fraction(scale, tuple(PEN_LABELS.values())) > 0.5

    @property
    def tissue_fraction(self) -> float:
        return float(self.fraction(max(self.spec.width, self.spec.height), (TISSUE,))[0, 0])

    @property
    def pen_fraction(self) -> float:
        big = max(self.spec.width, self.spec.height)
        return float(self.fraction(big, tuple(PEN_LABELS.values()))[0, 0])


# ---------------------------------------------------------------- layout (label map)
def _stamp_curve(lab: np.ndarray, pts: np.ndarray, radius: float, value: int) -> None:
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


def _layout(spec: SynthSpec, ch: int, cw: int) -> np.ndarray:
    """Label map (ch, cw) on the CELL grid: tissue blobs, holes, debris and pen strokes."""
    rng = np.random.default_rng([spec.seed, 1])
    c, short = CELL, min(spec.width, spec.height)
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
    key = spec.seed * 1000
    lab = np.zeros((ch, cw), np.uint8)
    xs = (np.arange(cw) + 0.5) * c
    mean_r = np.mean([b[2] for b in centres]) if centres else short
    hole_sp = 60.0 / (spec.mpp or 0.5)
    for r0 in range(0, ch, 256):
        ys = (np.arange(r0, min(ch, r0 + 256)) + 0.5) * c
        field = np.full((ys.size, xs.size), -np.inf, np.float32)
        for lx, ly, a, b, th in lobes:
            dx, dy = xs[None, :] - lx, ys[:, None] - ly
            u = (dx * np.cos(th) + dy * np.sin(th)) / a
            v = (-dx * np.sin(th) + dy * np.cos(th)) / b
            field = np.maximum(field, 1.0 - np.sqrt(u * u + v * v))
        field += 0.55 * (value_noise(xs, ys, mean_r * 0.6, mean_r * 0.6, key + 1) - 0.5)
        field += 0.20 * (value_noise(xs, ys, mean_r * 0.15, mean_r * 0.15, key + 2) - 0.5)
        holes = value_noise(xs, ys, hole_sp, hole_sp, key + 3) > 0.86
        lab[r0 : r0 + ys.size][(field > 0) & ~holes] = TISSUE
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
    for i, pen in enumerate(spec.pens):
        for j in range(spec.strokes_per_pen):
            radius = max(rng.uniform(0.005, 0.01) * short, 4 * c) / 2 / c
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
            _stamp_curve(lab, pts / c - 0.5, radius, PEN_LABELS[pen])
    return lab


def synth_truth(spec: SynthSpec) -> SynthTruth:
    """The truth for `spec` without rendering pixels (fast)."""
    ch, cw = -(-spec.height // CELL), -(-spec.width // CELL)
    return SynthTruth(spec, _layout(spec, ch, cw))


# ---------------------------------------------------------------- truth at any scale
def _box_fraction(cells: np.ndarray, width: int, height: int, scale: float) -> np.ndarray:
    """Exact covered fraction of each ceil(H/s) x ceil(W/s) box of a piecewise-constant map."""
    if not scale > 0:
        raise ValueError("scale must be > 0")
    ch, cw = cells.shape
    sat = summed_area_table(cells, np.int32)
    nx, ny = math.ceil(width / scale - 1e-9), math.ceil(height / scale - 1e-9)
    xb = np.minimum(np.arange(nx + 1) * scale, width) / CELL
    ix = np.minimum(np.floor(xb).astype(int), cw - 1)
    fx = xb - ix
    out = np.empty((ny, nx), np.float32)
    wid = np.diff(xb)
    for r0 in range(0, ny, 512):
        yb = np.minimum(np.arange(r0, min(ny, r0 + 512) + 1) * scale, height) / CELL
        iy = np.minimum(np.floor(yb).astype(int), ch - 1)
        fy = (yb - iy)[:, None]
        rows = sat[iy].astype(np.float64) * (1 - fy) + sat[iy + 1] * fy
        g = rows[:, ix] * (1 - fx) + rows[:, ix + 1] * fx
        area = g[1:, 1:] - g[:-1, 1:] - g[1:, :-1] + g[:-1, :-1]
        out[r0 : r0 + yb.size - 1] = area / np.maximum(np.diff(yb)[:, None] * wid[None, :], 1e-12)
    return out


# ---------------------------------------------------------------- rendering
def _render_tile(spec: SynthSpec, lab: np.ndarray, x0: int, y0: int) -> np.ndarray:
    t, c = spec.tile, CELL
    cells = lab[y0 // c : (y0 + t) // c, x0 // c : (x0 + t) // c]
    lt = np.repeat(np.repeat(cells, c, 0), c, 1)[..., None]
    xs, ys = x0 + np.arange(t) + 0.5, y0 + np.arange(t) + 0.5
    rng = np.random.default_rng([spec.seed, 7, y0, x0])
    um = 1.0 / (spec.mpp or 0.5)  # level-0 px per micrometre
    key = spec.seed * 1000 + 100
    lum = jitter(rng, (t, t, 1), 1.5)
    img = np.asarray(spec.glass, np.float32) + jitter(rng, (t, t, 3), 1.0)
    img -= 5 * value_noise(xs, ys, 400 * um, 400 * um, key)[..., None]
    img += lum
    if (cells == TISSUE).any():
        m = value_noise(xs, ys, 60 * um, 60 * um, key + 1)[..., None]
        light, dark = (np.asarray(e, np.float32) for e in EOSIN)
        tis = light + (dark - light) * (0.15 + 0.85 * m)
        w = value_noise(xs, ys, 150 * um, 150 * um, key + 2)
        fa = value_noise(xs, ys, 12 * um, 2 * um, key + 3)
        fb = value_noise(xs, ys, 2 * um, 12 * um, key + 4)
        tis *= (1.08 - 0.16 * (fb + w * (fa - fb)))[..., None]
        cel = value_noise(xs, ys, 120 * um, 120 * um, key + 5)
        a = value_noise(xs, ys, 6 * um, 6 * um, key + 6) - (0.86 - 0.16 * cel)
        a = np.clip(a * 25, 0, 1)[..., None]
        hl, hd = (np.asarray(e, np.float32) for e in HEMATOXYLIN)
        hem = hl + (hd - hl) * value_noise(xs, ys, 1.5 * um, 1.5 * um, key + 7)[..., None]
        tis += a * (hem - tis)
        tis += jitter(rng, (t, t, 3), 3.5)
        np.copyto(img, tis, where=lt == TISSUE)
    if (cells == DEBRIS).any():
        gray = 45 + 100 * value_noise(xs, ys, 10, 10, key + 8)[..., None] + 2 * lum
        np.copyto(img, gray, where=lt == DEBRIS)
    for label, ink in INK.items():
        if (cells == label).any():
            f = 0.93 + 0.07 * value_noise(xs, ys, 30 * um, 30 * um, key + 9 + label)[..., None]
            col = np.asarray(ink, np.float32) * f + jitter(rng, (t, t, 3), 2.3)
            np.copyto(img, col, where=lt == label)
    img += 0.5
    np.clip(img, 0, 255, out=img)
    return img.astype(np.uint8)


def write_synthetic_slide(path: str | Path, spec: SynthSpec | None = None) -> SynthTruth:
    """Write a tiled pyramidal JPEG TIFF for `spec` at `path`; return its truth."""
    spec = spec or SynthSpec()
    path, t = Path(path), spec.tile
    ntx, nty = -(-spec.width // t), -(-spec.height // t)
    lab = np.zeros((nty * t // CELL, ntx * t // CELL), np.uint8)
    ch, cw = -(-spec.height // CELL), -(-spec.width // CELL)
    lab[:ch, :cw] = _layout(spec, ch, cw)
    dims = spec.level_dimensions
    levels: list[np.ndarray] = []
    if len(dims) > 1:
        levels.append(np.zeros((dims[1][1], dims[1][0], 3), np.uint8))

    def level0_tiles():
        for ty in range(nty):
            # render the whole band first: tifffile stops pulling after the last tile
            band = np.concatenate([_render_tile(spec, lab, tx * t, ty * t) for tx in range(ntx)], 1)
            if levels:
                rows = band[: min(t, spec.height - ty * t), : spec.width]
                levels[0][ty * t // 4 : ty * t // 4 + -(-rows.shape[0] // 4)] = area_reduce(rows, 4)
            for tx in range(ntx):
                yield band[:, tx * t : (tx + 1) * t]

    desc0 = f"{spec.width}x{spec.height} [0,0 {spec.width}x{spec.height}] ({t}x{t})"
    q = spec.jpeg_quality

    def meta(k: int) -> dict:
        if spec.vendor_style == "aperio":
            d = APERIO_HEAD + desc0
            if k:
                d += f" -> {dims[k][0]}x{dims[k][1]}"
            d += f" JPEG/RGB Q={q}"
            if k == 0:
                if spec.objective_power:
                    d += f"|AppMag = {spec.objective_power:g}"
                if spec.mpp:
                    d += f"|MPP = {spec.mpp:g}"
                d += "".join(f"|{key} = {value}" for key, value in spec.properties)
            return {"description": d}
        extra = {}
        if k == 0 and spec.properties:
            extra["description"] = "; ".join(f"{key}={value}" for key, value in spec.properties)
        if spec.mpp:
            ppcm = 1e4 / (spec.mpp * spec.level_downsamples[k])
            return {"resolution": (ppcm, ppcm), "resolutionunit": "CENTIMETER", **extra}
        return extra

    kw = dict(photometric="rgb", compression="jpeg", compressionargs={"level": q}, metadata=None)
    bigtiff = spec.width * spec.height * 3 > 2**31
    tmp = path.with_name(path.name + ".part")
    with tifffile.TiffWriter(tmp, bigtiff=bigtiff) as tw:
        tw.write(
            level0_tiles(),
            shape=(spec.height, spec.width, 3),
            dtype=np.uint8,
            tile=(t, t),
            **kw,
            **meta(0),
        )
        for _ in dims[2:]:
            levels.append(area_reduce(levels[-1], 4))
        if spec.vendor_style == "aperio":  # stripped thumbnail as the second page, like Aperio
            thumb = levels[-1] if levels else _render_tile(spec, lab, 0, 0)
            tw.write(
                thumb,
                **kw,
                description=APERIO_HEAD + f"{desc0} -> {thumb.shape[1]}x{thumb.shape[0]} - ",
            )
        for k, arr in enumerate(levels, start=1):
            # Aperio marks levels as full-resolution images (tifffile's SVS reader relies on it)
            reduced = int(spec.vendor_style == "generic")
            tw.write(arr, tile=(t, t), subfiletype=reduced, **kw, **meta(k))
    tmp.replace(path)
    return SynthTruth(spec, lab[:ch, :cw].copy())


def demo_specs(n: int = 3, seed: int = 0) -> list[SynthSpec]:
    """Varied small specs: typical, heavy pens (generic TIFF), mostly glass at 0.25 mpp."""
    base = [
        SynthSpec(width=6000, height=4000, n_blobs=4),
        SynthSpec(width=8000, height=6000, n_blobs=3, strokes_per_pen=3, vendor_style="generic"),
        SynthSpec(
            width=7000,
            height=5000,
            n_blobs=1,
            blob_size=0.8,
            pens=("blue",),
            mpp=0.25,
            objective_power=40,
        ),
    ]
    return [replace(base[i % 3], seed=seed * 1000 + i) for i in range(n)]


def generate_demo_slides(folder: str | Path, n: int = 3, seed: int = 0) -> list[Path]:
    """Write `n` demo slides into `folder` (aperio ones as .svs, generic as .tiff)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = ("typical", "pens", "sparse")
    out = []
    for i, spec in enumerate(demo_specs(n, seed)):
        ext = ".svs" if spec.vendor_style == "aperio" else ".tiff"
        p = folder / f"synth_{i:02d}_{names[i % 3]}{ext}"
        write_synthetic_slide(p, spec)
        out.append(p)
    return out
