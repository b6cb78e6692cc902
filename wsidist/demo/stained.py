"""Synthetic slides stained with known H&E vectors, with a known dark region.

Pixels follow Beer–Lambert: ``I = glass · exp(-(c_H · h + c_E · e))`` with unit optical-density
vectors ``h`` and ``e`` given in the spec, and concentrations drawn from seamless value noise
(eosin everywhere in tissue, hematoxylin in nuclei, where eosin is faint), periodic every
1024 px so that gigapixel slides render quickly. Tissue is an
ellipse; inside it the ``dark`` ellipse has ``dark_factor`` times the concentrations, so a
model of "darkness" has an exact answer. Truth masks are computed from the ellipses at any
scale, without pixels. Level 0 is rendered tile by tile (never held whole) and written as a
generic tiled pyramidal JPEG TIFF with mpp in the resolution tags (OpenSlide's generic-tiff).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from wsidist.demo.noise import jitter, value_noise
from wsidist.imaging import area_reduce

__all__ = [
    "REFERENCE_STAINS",
    "RUIFROK_STAINS",
    "StainedSpec",
    "StainedTruth",
    "write_stained_slide",
]

# (hematoxylin, eosin) optical-density directions (R, G, B)
RUIFROK_STAINS = ((0.650, 0.704, 0.286), (0.072, 0.990, 0.105))  # Ruifrok & Johnston 2001
REFERENCE_STAINS = ((0.5626, 0.7201, 0.4062), (0.2159, 0.8012, 0.5581))  # Macenko's reference

Ellipse = tuple[float, float, float, float]  # cx, cy, rx, ry as fractions of width / height


@dataclass(frozen=True)
class StainedSpec:
    """One stained slide; sizes in level-0 px, ellipses as fractions of the slide's sides."""

    width: int = 4096
    height: int = 3072
    tile: int = 256
    mpp: float = 0.5
    seed: int = 0
    hematoxylin: tuple[float, float, float] = RUIFROK_STAINS[0]
    eosin: tuple[float, float, float] = RUIFROK_STAINS[1]
    tissue: Ellipse = (0.5, 0.5, 0.4, 0.4)
    dark: Ellipse | None = (0.4, 0.45, 0.14, 0.16)
    dark_factor: float = 3.0
    glass: tuple[int, int, int] = (242, 240, 236)
    jpeg_quality: int = 90
    min_level_px: int = 1024  # downsamples 1, 4, 16, … until the largest side is ≤ this

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64 or self.tile % 16:
            raise ValueError("width/height must be ≥ 64 and tile a multiple of 16")
        for name in ("hematoxylin", "eosin"):
            v = np.asarray(getattr(self, name), float)
            if v.shape != (3,) or (v < 0).any() or not v.any():
                raise ValueError(f"{name} must be 3 non-negative optical densities, got {v}")

    @property
    def stain_matrix(self) -> np.ndarray:
        """(2, 3) unit stain vectors, hematoxylin first."""
        m = np.asarray([self.hematoxylin, self.eosin], np.float64)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    @property
    def level_downsamples(self) -> tuple[int, ...]:
        ds = [1]
        while max(self.width, self.height) / ds[-1] > self.min_level_px:
            ds.append(ds[-1] * 4)
        return tuple(ds)


@dataclass(frozen=True)
class StainedTruth:
    """Exact masks of a :class:`StainedSpec` at any scale (level-0 px per output px)."""

    spec: StainedSpec

    def _inside(self, ellipse: Ellipse, scale: float) -> np.ndarray:
        s = self.spec
        ny, nx = -(-s.height // int(scale)), -(-s.width // int(scale))
        xs = (np.arange(nx) + 0.5) * scale
        ys = (np.arange(ny) + 0.5) * scale
        return _ellipse(xs[None, :], ys[:, None], ellipse, s.width, s.height)

    def tissue_mask(self, scale: float) -> np.ndarray:
        return self._inside(self.spec.tissue, scale)

    def dark_mask(self, scale: float) -> np.ndarray:
        if self.spec.dark is None:
            return np.zeros_like(self.tissue_mask(scale))
        return self._inside(self.spec.dark, scale) & self.tissue_mask(scale)


def _ellipse(xs, ys, ellipse: Ellipse, width: int, height: int) -> np.ndarray:
    cx, cy, rx, ry = ellipse
    return ((xs - cx * width) / (rx * width)) ** 2 + ((ys - cy * height) / (ry * height)) ** 2 <= 1


TEXTURE_PX = 1024  # period of the concentration textures, level-0 px


def stain_texture(spec: StainedSpec) -> np.ndarray:
    """float32 (2, P, P) eosin concentration and nucleus weight, periodic with P = 1024 px
    (value noise computed once per slide, so tiles render at memory speed)."""
    xs = np.arange(TEXTURE_PX) + 0.5
    um, key = 1.0 / spec.mpp, spec.seed * 1000 + 500
    c_e = 0.25 + 0.5 * value_noise(xs, xs, 50 * um, 50 * um, key)
    nuclei = np.clip((value_noise(xs, xs, 5 * um, 5 * um, key + 1) - 0.62) * 12, 0, 1)
    return np.stack([c_e, nuclei]).astype(np.float32)


def render_tile(
    spec: StainedSpec, x0: int, y0: int, w: int, h: int, texture: np.ndarray | None = None
) -> np.ndarray:
    """uint8 (h, w, 3) of the level-0 box at (x0, y0), from ``stain_texture(spec)``."""
    xs, ys = x0 + np.arange(w) + 0.5, y0 + np.arange(h) + 0.5
    tissue = _ellipse(xs[None, :], ys[:, None], spec.tissue, spec.width, spec.height)
    glass = np.asarray(spec.glass, np.float32)
    rng = np.random.default_rng([spec.seed, 3, y0, x0])
    noise = jitter(rng, (h, w, 3), 1.0)
    if not tissue.any():
        return np.clip(glass + noise + 0.5, 0, 255).astype(np.uint8)
    tex = stain_texture(spec) if texture is None else texture
    iy, ix = (y0 + np.arange(h)) % TEXTURE_PX, (x0 + np.arange(w)) % TEXTURE_PX
    c_e, nuclei = tex[0][np.ix_(iy, ix)], tex[1][np.ix_(iy, ix)]
    c_h = 0.05 + 1.1 * nuclei
    c_e = c_e * (1 - 0.85 * nuclei)
    factor = np.where(tissue, 1.0, 0.0).astype(np.float32)
    if spec.dark is not None:
        dark = _ellipse(xs[None, :], ys[:, None], spec.dark, spec.width, spec.height)
        factor[dark & tissue] = spec.dark_factor
    m = spec.stain_matrix.astype(np.float32)
    od = (c_h * factor)[..., None] * m[0] + (c_e * factor)[..., None] * m[1]
    img = glass * np.exp(-od) + noise
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


def write_stained_slide(path: str | Path, spec: StainedSpec | None = None) -> StainedTruth:
    """Write ``spec`` as a tiled pyramidal JPEG TIFF at ``path``; return its truth."""
    spec = spec or StainedSpec()
    path, t = Path(path), spec.tile
    ntx, nty = -(-spec.width // t), -(-spec.height // t)
    ds = spec.level_downsamples
    level1 = (
        np.zeros((-(-spec.height // 4), -(-spec.width // 4), 3), np.uint8) if len(ds) > 1 else None
    )

    texture = stain_texture(spec)

    def level0_tiles():
        for ty in range(nty):
            band = np.concatenate(
                [render_tile(spec, tx * t, ty * t, t, t, texture) for tx in range(ntx)], 1
            )
            if level1 is not None:
                rows = band[: min(t, spec.height - ty * t), : spec.width]
                level1[ty * t // 4 : ty * t // 4 + -(-rows.shape[0] // 4)] = area_reduce(rows, 4)
            for tx in range(ntx):
                yield band[:, tx * t : (tx + 1) * t]

    def resolution(k: int) -> dict:
        ppcm = 1e4 / (spec.mpp * ds[k])
        return {"resolution": (ppcm, ppcm), "resolutionunit": "CENTIMETER"}

    kw = dict(
        photometric="rgb", compression="jpeg", compressionargs={"level": spec.jpeg_quality},
        metadata=None, tile=(t, t),
    )  # fmt: skip
    tmp = path.with_name(path.name + ".part")
    with tifffile.TiffWriter(tmp, bigtiff=spec.width * spec.height * 3 > 2**31) as tw:
        tw.write(
            level0_tiles(), shape=(spec.height, spec.width, 3), dtype=np.uint8, **kw,
            **resolution(0),
        )  # fmt: skip
        level = level1
        for k in range(1, len(ds)):
            tw.write(level, subfiletype=1, **kw, **resolution(k))
            if k + 1 < len(ds):
                level = area_reduce(level, 4)
    tmp.replace(path)
    return StainedTruth(spec)
