"""Brute-force references the tests compare wsidist's fast paths with."""

from __future__ import annotations

import math

import numpy as np


def reference_area_average(
    img: np.ndarray, scale: float, scale_y: float | None = None, out_size=None
) -> np.ndarray:
    """Brute force: the overlap of every output pixel with every source pixel (matrices over
    the whole image, stored sparse: most overlaps are 0), float64, then rounding.

    ``scale`` across (and down, unless ``scale_y``); ``out_size`` (w, h) defaults to ceil."""
    from scipy import sparse

    def weights(n: int, n_out: int, scale: float) -> np.ndarray:
        k = np.arange(n)[None, :]
        j = np.arange(n_out)[:, None]
        lo, hi = j * scale, np.minimum((j + 1) * scale, n)
        return np.clip(np.minimum(k + 1, hi) - np.maximum(k, lo), 0, None)

    h, w = img.shape[:2]
    sy = scale if scale_y is None else scale_y
    ow, oh = out_size or (math.ceil(w / scale), math.ceil(h / sy))
    wy, wx = weights(h, oh, sy), weights(w, ow, scale)
    area = wy.sum(1)[:, None, None] * wx.sum(1)[None, :, None]
    wy, wx = sparse.csr_array(wy), sparse.csr_array(wx)
    out = np.stack([(wx @ (wy @ img[..., c].astype(np.float64)).T).T for c in range(3)], axis=-1)
    return np.rint(out / area).astype(np.uint8)


def reference_tile_features(rgb, tissue, pen, grid, width, height, downsample):
    """The per-tile loop stage 1 once ran: every feature of every tile, one tile at a time."""
    from skimage.color import rgb2hsv

    from wsidist.imaging import rgb_to_gray
    from wsidist.stage1.scoring import color_factor, quantity_factor, saturation_value_factor
    from wsidist.stage1.tiles import gray_entropy, scaled_box

    masked = np.where(tissue[..., None], rgb, 0).astype(np.uint8)
    hsv = rgb2hsv(masked)
    hue_deg = (hsv[..., 0] * 360).astype(np.int32)
    gray = rgb_to_gray(rgb)
    pen_only = pen & ~tissue
    h_img, w_img = tissue.shape
    rows = []
    for row, col, x, y, w, h in grid.boxes(width, height):
        x0, y0, x1, y1 = scaled_box(x, y, w, h, downsample, (width, height, w_img, h_img))
        x1, y1 = min(x1, w_img), min(y1, h_img)
        x0, y0 = min(x0, x1 - 1), min(y0, y1 - 1)
        win = (slice(y0, y1), slice(x0, x1))
        t = float(tissue[win].mean())
        p = float(pen_only[win].mean())
        rows.append(
            {
                "row": row, "col": col, "x": x, "y": y, "w": w, "h": h,
                "tissue_frac": t, "pen_frac": p, "background_frac": max(0.0, 1.0 - t - p),
                "entropy": gray_entropy(gray[win]), "color_factor": color_factor(hue_deg[win]),
                "sv_factor": saturation_value_factor(hsv[win][..., 1], hsv[win][..., 2]),
                "quantity_factor": quantity_factor(t),
            }
        )  # fmt: skip
    return rows
