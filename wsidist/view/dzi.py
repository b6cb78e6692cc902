"""Deep Zoom (DZI) tiles of any wsidist :class:`~wsidist.io.slide.Slide`.

DZI level ``L`` of a ``W`` × ``H`` slide has downsample ``2 ** (max_level - L)`` with
``max_level = ceil(log2(max(W, H)))``. A tile is read from the slide level whose downsample
is the largest not above the DZI downsample: read as it is when the two are equal (so a DZI
tile equals ``Slide.read_region`` at that level), area-averaged from the finer level otherwise,
streamed in blocks (never a whole level at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from wsidist.imaging.resample import area_resample
from wsidist.io.slide import Slide

TILE_PX = 254
OVERLAP_PX = 1
BLOCK_PX = 1024  # source blocks of area_resample for a reduced tile


@dataclass(frozen=True)
class DeepZoom:
    """The DZI geometry of a ``width`` × ``height`` image."""

    width: int
    height: int
    tile_px: int = TILE_PX
    overlap_px: int = OVERLAP_PX

    @property
    def max_level(self) -> int:
        return max(0, math.ceil(math.log2(max(self.width, self.height, 1))))

    def downsample(self, level: int) -> int:
        return 2 ** (self.max_level - level)

    def level_size(self, level: int) -> tuple[int, int]:
        d = self.downsample(level)
        return max(1, math.ceil(self.width / d)), max(1, math.ceil(self.height / d))

    def tile_count(self, level: int) -> tuple[int, int]:
        w, h = self.level_size(level)
        return math.ceil(w / self.tile_px), math.ceil(h / self.tile_px)

    def tile_box(self, level: int, col: int, row: int) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of a tile in the pixels of DZI ``level``, overlap included; None
        when the tile does not exist."""
        if not 0 <= level <= self.max_level:
            return None
        cols, rows = self.tile_count(level)
        if not (0 <= col < cols and 0 <= row < rows):
            return None
        w, h = self.level_size(level)
        t, ov = self.tile_px, self.overlap_px
        x0, y0 = col * t - (ov if col else 0), row * t - (ov if row else 0)
        return x0, y0, min(w, (col + 1) * t + ov), min(h, (row + 1) * t + ov)

    def xml(self, fmt: str) -> str:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008" '
            f'Format="{fmt}" Overlap="{self.overlap_px}" TileSize="{self.tile_px}">'
            f'<Size Width="{self.width}" Height="{self.height}"/></Image>'
        )


def read_tile(slide: Slide, dz: DeepZoom, level: int, col: int, row: int) -> np.ndarray:
    """uint8 (h, w, 3) of one DZI tile. Raises KeyError for a tile that does not exist."""
    box = dz.tile_box(level, col, row)
    if box is None:
        raise KeyError((level, col, row))
    x0, y0, x1, y1 = box
    d = dz.downsample(level)
    k = slide.best_level_for_downsample(d)
    if abs(d / float(slide.level_downsamples[k]) - 1) < 1e-9:
        return slide.read_region(x0 * d, y0 * d, k, (x1 - x0, y1 - y0))
    dk = slide.grid_downsample(k)  # the level's own grid (a rounded level is not stretched)
    ratio = d / dk
    # the tile's box in level-k pixels (fractional edges are weighted by area_resample)
    lw, lh = slide.level_dimensions[k]
    sx0, sy0 = (x0 * d) / dk, (y0 * d) / dk
    ix0, iy0 = math.floor(sx0), math.floor(sy0)
    ix1 = min(lw, math.ceil((x1 * d) / dk))
    iy1 = min(lh, math.ceil((y1 * d) / dk))
    if ix1 <= ix0 or iy1 <= iy0:
        return np.full((y1 - y0, x1 - x0, 3), 255, np.uint8)

    def read(x: int, y: int, w: int, h: int) -> np.ndarray:
        return slide.read_level(k, ix0 + x, iy0 + y, w, h)

    out_w, out_h = x1 - x0, y1 - y0
    # output pixels with source under them (a level may be a pixel short of the DZI grid)
    fit_w = min(out_w, math.ceil((ix1 - ix0) / ratio - 1e-9))
    fit_h = min(out_h, math.ceil((iy1 - iy0) / ratio - 1e-9))
    tile = area_resample(read, (ix1 - ix0, iy1 - iy0), (ratio, ratio), (fit_w, fit_h), BLOCK_PX)
    if (fit_w, fit_h) == (out_w, out_h):
        return tile
    full = np.full((out_h, out_w, 3), 255, np.uint8)
    full[:fit_h, :fit_w] = tile
    return full
