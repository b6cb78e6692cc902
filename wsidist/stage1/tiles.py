"""Tile grids in level-0 pixels and per-tile features from the scaled image and mask.

Grid: tiles of ``tile_px0`` level-0 px laid every ``stride_px0`` px from (0, 0). Edge handling:

- ``keep`` (default): the last column/row of tiles is clipped at the slide edge, so its
  ``w``/``h`` is smaller than the tile size; every level-0 pixel is in some tile.
- ``drop``: only whole tiles; a strip narrower than a tile at the right/bottom is not tiled.

Features are computed on the scaled image: a tile's box maps to scaled pixels
``[round(x/ds), round((x+w)/ds))`` (at least one pixel), so neighbouring tiles share borders.
The whole grid's features are computed at once (:mod:`wsidist.stage1.features`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa

from wsidist.stage1.features import (
    Windows,
    gray_of,
    hsv_moments,
    tile_gray_stats,
    window_sums,
)
from wsidist.stage1.scoring import (
    HUE_MAX_DEG,
    HUE_MIN_DEG,
    Scorer,
    TileView,
    color_factors,
    quantity_factors,
    sv_factors,
    vectorised_scorer,
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


def scaled_box(
    x: int,
    y: int,
    w: int,
    h: int,
    downsample: float,
    edge: tuple[int, int, int, int] | None = None,
) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) in scaled px of a level-0 box; at least one pixel a side.

    ``edge`` = (slide width, height, scaled cols, rows): a box reaching the slide's right or
    bottom edge ends at the scaled image's (its last pixel, partial, lies inside the box)."""
    x0, y0 = round(x / downsample), round(y / downsample)
    x1, y1 = round((x + w) / downsample), round((y + h) / downsample)
    if edge is not None:
        width, height, cols, rows = edge
        x1 = cols if x + w >= width else x1
        y1 = rows if y + h >= height else y1
    return x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)


def grid_windows(
    grid: TileGrid, width: int, height: int, downsample: float, scaled: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, Windows]:
    """Level-0 column starts/widths and row starts/heights, and the scaled windows
    (:func:`scaled_box` for every tile, clipped to the ``scaled`` (h, w) image).

    ``downsample`` is the image's nominal scale (:func:`wsidist.imaging.masks.mask_downsample`),
    so windows of tiles a whole number of scaled px are uniform. A tile reaching the slide's
    edge takes the image's last (partial) pixel, which lies inside it."""
    xs = np.asarray(grid._starts(width), np.int64)
    ys = np.asarray(grid._starts(height), np.int64)
    ws = np.minimum(grid.tile_px0, width - xs)
    hs = np.minimum(grid.tile_px0, height - ys)

    def axis(start, size, n_scaled, length):
        lo = np.rint(start / downsample).astype(np.int64)
        hi = np.rint((start + size) / downsample).astype(np.int64)
        hi = np.maximum(lo + 1, np.where(start + size >= length, n_scaled, hi))
        hi = np.minimum(hi, n_scaled)
        return np.minimum(lo, hi - 1), hi

    x0, x1 = axis(xs, ws, scaled[1], width)
    y0, y1 = axis(ys, hs, scaled[0], height)
    return np.stack([xs, ws]), np.stack([ys, hs]), Windows(x0, x1, y0, y1)


def tile_features(
    rgb: np.ndarray,
    tissue: np.ndarray,
    pen: np.ndarray,
    grid: TileGrid,
    width: int,
    height: int,
    downsample: float,
    scorer: Scorer,
    coverage: np.ndarray | None = None,
) -> pa.Table:
    """Features and score of every tile of a slide, from its scaled image and masks.

    ``rgb`` (uint8), ``tissue`` and ``pen`` (bool) share the scaled shape; ``width`` and
    ``height`` are the slide's level-0 size; ``coverage`` (uint8, 255 = all tissue) gives the
    tissue share of each scaled pixel (default: the tissue mask). Columns: row, col, x, y, w,
    h, tissue_frac, pen_frac, background_frac, entropy, peak_frac (seed 004: the share of
    the tile's gray pixels in its 3 most populous levels), color_factor, sv_factor,
    quantity_factor, tissue_class, score, rank (1 = best score in the slide). Features of the
    whole grid are computed at once; only a custom scorer sees one :class:`TileView` per tile.
    """
    if rgb.shape[:2] != tissue.shape or tissue.shape != pen.shape:
        raise ValueError(f"shapes differ: rgb {rgb.shape}, tissue {tissue.shape}, pen {pen.shape}")
    (xs, ws), (ys, hs), win = grid_windows(grid, width, height, downsample, tissue.shape)
    n_rows, n_cols = win.shape
    area = win.area.astype(np.float64)
    cov = tissue.astype(np.uint8) * 255 if coverage is None else coverage
    t_frac = window_sums(cov, win) / (255.0 * np.maximum(area, 1))
    p_frac = window_sums(pen & ~tissue, win) / np.maximum(area, 1)
    m = hsv_moments(rgb, tissue, win, (HUE_MIN_DEG, HUE_MAX_DEG))
    gray = gray_of(rgb)
    entropy, peak_frac = tile_gray_stats(gray, win)
    features = {
        "tissue_frac": t_frac,
        "pen_frac": p_frac,
        "background_frac": np.maximum(0.0, 1.0 - t_frac - p_frac),
        "entropy": entropy,
        "peak_frac": peak_frac,
        "color_factor": color_factors(m["n_hue"], m["sum_hue"], m["sum_hue2"]),
        "sv_factor": sv_factors(m, area),
        "quantity_factor": quantity_factors(t_frac),
    }
    rows, cols = np.meshgrid(np.arange(n_rows), np.arange(n_cols), indexing="ij")
    boxes = {
        "row": rows, "col": cols, "x": np.broadcast_to(xs[None, :], rows.shape),
        "y": np.broadcast_to(ys[:, None], rows.shape),
        "w": np.broadcast_to(ws[None, :], rows.shape), "h": np.broadcast_to(hs[:, None], rows.shape),
    }  # fmt: skip
    flat = {k: np.ascontiguousarray(v).reshape(-1) for k, v in {**boxes, **features}.items()}
    vectorised = vectorised_scorer(scorer)
    if vectorised is not None:
        scores = vectorised({k: flat[k] for k in features})
    else:
        scores = _score_each(rgb, tissue, win, flat, features, scorer)
    return _finish_table(flat, np.asarray(scores, np.float64))


def _score_each(rgb, tissue, win, flat, features, scorer) -> np.ndarray:
    """One :class:`TileView` per tile for a custom scorer (the only per-tile loop)."""
    n_cols = len(win.x0)
    masked = np.where(tissue[..., None], rgb, 0).astype(np.uint8)
    names = ("row", "col", "x", "y", "w", "h")
    scores = np.empty(len(flat["row"]), np.float64)
    for i in range(len(scores)):
        r, c = divmod(i, n_cols)
        window = (slice(win.y0[r], win.y1[r]), slice(win.x0[c], win.x1[c]))
        box = (int(flat[n][i]) for n in names)
        values = {k: float(flat[k][i]) for k in features}
        view = TileView(*box, masked[window], tissue[window], values)
        scores[i] = float(scorer(view))
    return scores


def gray_entropy(gray: np.ndarray) -> float:
    """Shannon entropy (bits) of the gray levels of a uint8 array."""
    counts = np.bincount(gray.ravel(), minlength=256)
    p = counts[counts > 0] / gray.size
    return float(-(p * np.log2(p)).sum()) + 0.0


TISSUE_CLASSES = ("none", "low", "medium", "high")


def _tissue_class_codes(tissue_frac: np.ndarray) -> np.ndarray:
    """int8 index into :data:`TISSUE_CLASSES`: high (≥80 %), medium (≥10 %), low (>0), none."""
    t = np.asarray(tissue_frac)
    codes = (t > 0).astype(np.int8)
    codes += t >= 0.1
    codes += t >= 0.8
    return codes


def tissue_class(tissue_frac: np.ndarray) -> np.ndarray:
    """Seed-000 tissue classes: high (≥80 %), medium (≥10 %), low (>0), none."""
    return np.asarray(TISSUE_CLASSES)[_tissue_class_codes(tissue_frac)]


def _finish_table(flat: dict[str, np.ndarray], scores: np.ndarray) -> pa.Table:
    int_cols = ("row", "col", "x", "y", "w", "h")
    arrays = {
        name: pa.array(values, type=pa.int32() if name in ("row", "col") else pa.int64())
        if name in int_cols
        else pa.array(values, type=pa.float64())
        for name, values in flat.items()
    }
    arrays["score"] = pa.array(scores, type=pa.float64())
    order = np.argsort(-scores, kind="stable")  # ties: the earlier tile first
    rank = np.empty(len(scores), dtype=np.int32)
    rank[order] = np.arange(1, len(scores) + 1, dtype=np.int32)
    classes = pa.array(TISSUE_CLASSES, type=pa.string())
    arrays["tissue_class"] = classes.take(pa.array(_tissue_class_codes(flat["tissue_frac"])))
    arrays["rank"] = pa.array(rank)
    return pa.table(arrays)
