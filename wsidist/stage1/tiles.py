"""Tile grids in level-0 pixels and per-tile features from the scaled image and mask.

Grid: tiles of ``tile_px0`` level-0 px laid every ``stride_px0`` px from (0, 0). Edge handling:

- ``keep`` (default): the last column/row of tiles is clipped at the slide edge, so its
  ``w``/``h`` is smaller than the tile size; every level-0 pixel is in some tile.
- ``drop``: only whole tiles; a strip narrower than a tile at the right/bottom is not tiled.

Features are computed on the scaled image: a tile's box maps to scaled pixels
``[round(x/ds), round((x+w)/ds))`` (at least one pixel), so neighbouring tiles share borders.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from skimage.color import rgb2hsv

from wsidist.imaging import box_sums, rgb_to_gray, summed_area_table
from wsidist.stage1.scoring import (
    Scorer,
    TileView,
    color_factor,
    quantity_factor,
    saturation_value_factor,
)


@dataclass(frozen=True)
class TileGrid:
    """A regular grid of tiles, sizes in level-0 px."""

    tile_px0: int
    stride_px0: int
    edge: Literal["keep", "drop"] = "keep"

    def __post_init__(self) -> None:
        if self.tile_px0 <= 0 or self.stride_px0 <= 0:
            raise ValueError(f"tile {self.tile_px0} and stride {self.stride_px0} must be > 0")
        if self.stride_px0 > self.tile_px0:
            raise ValueError(f"stride {self.stride_px0} larger than tile {self.tile_px0}")

    @classmethod
    def from_units(
        cls,
        *,
        tile_px: int | None = None,
        tile_um: float | None = None,
        overlap: float = 0.0,
        mpp: float | None = None,
        edge: Literal["keep", "drop"] = "keep",
    ) -> TileGrid:
        """A grid from a tile size in px or µm (µm needs ``mpp``), overlap in the same unit."""
        if tile_um is not None:
            if mpp is None:
                raise ValueError(
                    f"tile size {tile_um} µm needs the slide's microns per pixel, which it "
                    "does not record: pass --mpp or give the tile size in px (--tile-size)"
                )
            tile = max(1, round(tile_um / mpp))
            stride = max(1, round((tile_um - overlap) / mpp))
        else:
            tile = tile_px if tile_px is not None else 1024
            stride = max(1, round(tile - overlap))
        return cls(tile, min(stride, tile), edge)

    def _starts(self, length: int) -> list[int]:
        if self.edge == "drop":
            n = (length - self.tile_px0) // self.stride_px0 + 1 if length >= self.tile_px0 else 0
        else:
            n = math.ceil(max(length - self.tile_px0, 0) / self.stride_px0) + 1
        return [i * self.stride_px0 for i in range(n)]

    def shape(self, width: int, height: int) -> tuple[int, int]:
        """(rows, cols) of the grid on a slide of ``width`` × ``height`` level-0 px."""
        return len(self._starts(height)), len(self._starts(width))

    def boxes(self, width: int, height: int) -> Iterator[tuple[int, int, int, int, int, int]]:
        """(row, col, x, y, w, h) of every tile, row-major, in level-0 px."""
        for row, y in enumerate(self._starts(height)):
            h = min(self.tile_px0, height - y)
            for col, x in enumerate(self._starts(width)):
                yield row, col, x, y, min(self.tile_px0, width - x), h


def scaled_box(x: int, y: int, w: int, h: int, downsample: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in scaled px of a level-0 box; at least one pixel a side."""
    x0, y0 = round(x / downsample), round(y / downsample)
    x1 = max(x0 + 1, round((x + w) / downsample))
    y1 = max(y0 + 1, round((y + h) / downsample))
    return x0, y0, x1, y1


def tile_features(
    rgb: np.ndarray,
    tissue: np.ndarray,
    pen: np.ndarray,
    grid: TileGrid,
    width: int,
    height: int,
    downsample: float,
    scorer: Scorer,
) -> pa.Table:
    """Features and score of every tile of a slide, from its scaled image and masks.

    ``rgb`` (uint8), ``tissue`` and ``pen`` (bool) share the scaled shape; ``width`` and
    ``height`` are the slide's level-0 size. Columns: row, col, x, y, w, h, tissue_frac,
    pen_frac, background_frac, entropy, color_factor, sv_factor, quantity_factor,
    tissue_class, score, rank (1 = best score in the slide).
    """
    if rgb.shape[:2] != tissue.shape or tissue.shape != pen.shape:
        raise ValueError(f"shapes differ: rgb {rgb.shape}, tissue {tissue.shape}, pen {pen.shape}")
    pen_only = pen & ~tissue
    tissue_sat, pen_sat = summed_area_table(tissue), summed_area_table(pen_only)
    masked = np.where(tissue[..., None], rgb, 0).astype(np.uint8)
    hsv = rgb2hsv(masked)
    hue_deg = (hsv[..., 0] * 360).astype(np.int32)
    gray = rgb_to_gray(rgb)
    scaled_h, scaled_w = tissue.shape
    names = (
        "row col x y w h tissue_frac pen_frac background_frac entropy "
        "color_factor sv_factor quantity_factor score"
    ).split()
    columns: dict[str, list] = {name: [] for name in names}
    for row, col, x, y, w, h in grid.boxes(width, height):
        x0, y0, x1, y1 = scaled_box(x, y, w, h, downsample)
        x1, y1 = min(x1, scaled_w), min(y1, scaled_h)
        x0, y0 = min(x0, x1 - 1), min(y0, y1 - 1)
        area = (x1 - x0) * (y1 - y0)
        t_frac = float(box_sums(tissue_sat, y0, x0, y1, x1)) / area
        p_frac = float(box_sums(pen_sat, y0, x0, y1, x1)) / area
        window = (slice(y0, y1), slice(x0, x1))
        features = {
            "tissue_frac": t_frac,
            "pen_frac": p_frac,
            "background_frac": max(0.0, 1.0 - t_frac - p_frac),
            "entropy": gray_entropy(gray[window]),
            "color_factor": color_factor(hue_deg[window]),
            "sv_factor": saturation_value_factor(hsv[window][..., 1], hsv[window][..., 2]),
            "quantity_factor": quantity_factor(t_frac),
        }
        view = TileView(row, col, x, y, w, h, masked[window], tissue[window], features)
        score = float(scorer(view))
        for name, value in zip(("row", "col", "x", "y", "w", "h"), (row, col, x, y, w, h)):
            columns[name].append(value)
        for name, value in features.items():
            columns[name].append(value)
        columns["score"].append(score)
    return _finish_table(columns)


def gray_entropy(gray: np.ndarray) -> float:
    """Shannon entropy (bits) of the gray levels of a uint8 array."""
    counts = np.bincount(gray.ravel(), minlength=256)
    p = counts[counts > 0] / gray.size
    return float(-(p * np.log2(p)).sum()) + 0.0


def tissue_class(tissue_frac: np.ndarray) -> np.ndarray:
    """Seed-000 tissue classes: high (≥80 %), medium (≥10 %), low (>0), none."""
    return np.select(
        [tissue_frac >= 0.8, tissue_frac >= 0.1, tissue_frac > 0], ["high", "medium", "low"], "none"
    )


def _finish_table(columns: dict[str, list]) -> pa.Table:
    int_cols = ("row", "col", "x", "y", "w", "h")
    arrays = {
        name: pa.array(values, type=pa.int32() if name in ("row", "col") else pa.int64())
        if name in int_cols
        else pa.array(values, type=pa.float64())
        for name, values in columns.items()
    }
    scores = np.asarray(columns["score"], dtype=np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))
    rank = np.empty(len(scores), dtype=np.int32)
    rank[order] = np.arange(1, len(scores) + 1, dtype=np.int32)
    arrays["tissue_class"] = pa.array(
        tissue_class(np.asarray(columns["tissue_frac"], dtype=np.float64)), type=pa.string()
    )
    arrays["rank"] = pa.array(rank)
    return pa.table(arrays)
