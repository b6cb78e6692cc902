"""Boolean masks on level-0 grids: boxes → mask, edge smoothing, and resampling onto a grid.

A grid of downsample ``d`` covers the slide with pixels of ``d × d`` level-0 px: pixel (i, j)
covers ``[j·d, (j+1)·d) × [i·d, (i+1)·d)``, and a slide of ``W × H`` level-0 px is
``ceil(H/d) × ceil(W/d)`` pixels (as stage 1's masks and every ``Slide.thumbnail(d)``); the
last row and column are partial boxes, clipped to the slide.

- :func:`mask_downsample`: the one rule for mapping mask or thumbnail pixels to level 0: the
  grid's nominal ``d`` (``scale``), never ``W / cols`` (which differs from ``d`` whenever ``W``
  is not a multiple of it, by up to one pixel at the far edge).

- :func:`box_union_mask`: a pixel is set when its centre lies inside any box (boxes are
  half-open, ``[x, x+w)``, the tie rule of :mod:`wsidist.imaging.raster`), so at ``d = 1``
  the mask is the union of the boxes exactly.
- :func:`smooth_mask`: seed 004's edge smoothing, an opening (erode, then dilate) by a disk.
  It only removes: convex corners are rounded (about ``(1 − π/4)·r²`` px each for a disk of
  radius r) and parts narrower than the disk vanish; concave corners stay.
- :func:`resample_mask`: a mask on another grid (any ratio, per axis), each output pixel set
  when at least half of its area is covered by set source pixels (exact area weights; beyond
  the source counts as unset). Upsampling is then nearest-pixel, except on ties.
"""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin
from skimage import morphology

from wsidist.imaging.raster import rasterise_boxes
from wsidist.imaging.resample import _area_weights

__all__ = [
    "MASK_TEXT_KEY",
    "box_union_mask",
    "decode_mask",
    "encode_mask_png",
    "grid_shape",
    "mask_downsample",
    "resample_mask",
    "smooth_mask",
]

MASK_TEXT_KEY = "wsidist"  # PNG text chunk: JSON of the mask's grid (downsample, width0, …)


def grid_shape(width0: int, height0: int, downsample: float) -> tuple[int, int]:
    """(rows, cols) of a grid of ``downsample`` over a ``width0 × height0`` level-0 slide."""
    if not downsample > 0:
        raise ValueError(f"downsample must be > 0, got {downsample}")
    return math.ceil(height0 / downsample - 1e-9), math.ceil(width0 / downsample - 1e-9)


def mask_downsample(
    width0: int, height0: int, mask_shape: tuple[int, ...], scale: float | None = None
) -> float:
    """Level-0 px per pixel of a ``mask_shape`` (rows, cols, …) mask or thumbnail of a
    ``width0 × height0`` slide.

    With ``scale`` (the grid it was made at: a config's scale, ``slides.parquet``'s ``scale``)
    this is ``scale``, checked against the shape (``ceil(H/scale) × ceil(W/scale)``;
    ``ValueError`` otherwise). Without one (a user's mask, outputs that recorded no scale) it is
    ``W / cols``: the mask is taken to span the slide exactly.
    """
    rows, cols = int(mask_shape[0]), int(mask_shape[1])
    if rows < 1 or cols < 1:
        raise ValueError(f"an empty mask ({cols}×{rows} px) has no downsample")
    if scale is None or not scale > 0:  # None or NaN (a null parquet cell): no scale
        return float(width0) / cols
    scale = float(scale)
    exact = (math.ceil(height0 / scale), math.ceil(width0 / scale))
    if (rows, cols) not in (exact, grid_shape(width0, height0, scale)):
        raise ValueError(
            f"a {cols}×{rows} px mask is not on the grid of scale {scale:g} of a "
            f"{width0}×{height0} px slide ({exact[1]}×{exact[0]} px)"
        )
    return scale


def box_union_mask(
    x: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    h: np.ndarray,
    shape_hw: tuple[int, int],
    downsample: float = 1.0,
) -> np.ndarray:
    """bool ``shape_hw``: pixels whose centre lies inside any level-0 box ``[x, x+w) × [y, y+h)``
    (:func:`wsidist.imaging.raster.rasterise_boxes`: the one rule for boxes and polygons).

    Boxes may overlap, fall between grid lines or reach past the grid (clipped).
    """
    return rasterise_boxes(x, y, w, h, shape_hw, downsample)


def smooth_mask(mask: np.ndarray, diameter_px: float) -> np.ndarray:
    """Opening by a disk of ``diameter_px`` (mask pixels); the image border does not erode."""
    mask = np.asarray(mask, dtype=bool)
    radius = diameter_px / 2
    if radius < 0.5 or not mask.any():
        return mask.copy()
    pad = math.ceil(radius) + 1
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    r0, r1 = max(rows[0] - pad, 0), min(rows[-1] + pad + 1, mask.shape[0])
    c0, c1 = max(cols[0] - pad, 0), min(cols[-1] + pad + 1, mask.shape[1])
    padded = np.pad(mask[r0:r1, c0:c1], pad, mode="edge")  # only around the set pixels
    if padded.all():
        return mask.copy()
    opened = morphology.isotropic_erosion(padded, radius)
    if opened.any():
        opened = morphology.isotropic_dilation(opened, radius)
    out = np.zeros_like(mask)
    out[r0:r1, c0:c1] = opened[pad:-pad, pad:-pad]
    return out


def resample_mask(
    mask: np.ndarray,
    source_px0: tuple[float, float],
    grid_px0: tuple[float, float],
    shape_hw: tuple[int, int],
) -> np.ndarray:
    """``mask`` (pixels of ``source_px0`` = (x, y) level-0 px each) on a grid of ``grid_px0``
    level-0 px per pixel and ``shape_hw``, both grids starting at level-0 (0, 0).

    An output pixel is set when at least half of it is covered by set source pixels.
    """
    mask = np.asarray(mask, dtype=bool)
    rows, cols = shape_hw
    (sx, sy), (gx, gy) = source_px0, grid_px0
    rx, ry = gx / sx, gy / sy  # source px per output px
    if abs(rx - 1) < 1e-9 and abs(ry - 1) < 1e-9:
        out = np.zeros(shape_hw, bool)
        h, w = min(rows, mask.shape[0]), min(cols, mask.shape[1])
        out[:h, :w] = mask[:h, :w]
        return out
    out = np.zeros(shape_hw, bool)
    sh, sw = mask.shape
    if not (sh and sw and rows and cols) or not mask.any():
        return out
    wy, y_lo, y_hi = _area_weights(0, sh, ry, rows)
    wx, x_lo, x_hi = _area_weights(0, sw, rx, cols)
    covered = np.asarray(wx @ np.asarray(wy @ mask.astype(np.float32)).T).T  # (y rows, x cols)
    out[y_lo:y_hi, x_lo:x_hi] = covered >= 0.5 * rx * ry - 1e-6 * rx * ry
    return out


def encode_mask_png(mask: np.ndarray, grid: dict[str, Any]) -> bytes:
    """A 1-bit PNG of ``mask`` with ``grid`` (JSON-able) in its ``wsidist`` text chunk."""
    info = PngImagePlugin.PngInfo()
    info.add_text(MASK_TEXT_KEY, json.dumps(grid, sort_keys=True))
    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, dtype=bool)).convert("1").save(
        buf, format="PNG", optimize=True, pnginfo=info
    )
    return buf.getvalue()


def decode_mask(
    data: bytes, name: str = "", max_px: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """A mask PNG or ``.npy`` as bool (rows, cols) and its ``wsidist`` grid (``{}`` if none).

    A PNG of several channels or grey levels is set where it is not 0 (any channel);
    a ``.npy`` must hold a 2-D array (set where not 0). A mask of more than ``max_px`` pixels
    is refused (``ValueError``) from its header, before it is decoded.
    """

    def check(rows: int, cols: int) -> None:
        if max_px is not None and rows * cols > max_px:
            raise ValueError(
                f"{name or 'mask'} is {cols}×{rows} px, over the {max_px} px the memory "
                "budget allows"
            )

    if name.lower().endswith(".npy") or data[:6] == b"\x93NUMPY":
        buf = io.BytesIO(data)
        major, _ = np.lib.format.read_magic(buf)
        read_header = (
            np.lib.format.read_array_header_1_0
            if major == 1
            else np.lib.format.read_array_header_2_0
        )
        shape, _, _ = read_header(buf)
        if len(shape) != 2:
            raise ValueError(f"{name or 'mask'}: a 2-D array is needed, got shape {shape}")
        check(*shape)
        array = np.load(io.BytesIO(data), allow_pickle=False)
        return array != 0, {}
    with Image.open(io.BytesIO(data)) as img:
        check(img.height, img.width)
        grid = json.loads(img.text.get(MASK_TEXT_KEY, "{}")) if hasattr(img, "text") else {}
        array = np.asarray(img.convert("L") if img.mode == "1" else img)
    if array.ndim == 3:
        array = array[..., :3].any(axis=2) if array.shape[2] >= 3 else array[..., 0]
    return array != 0, grid
