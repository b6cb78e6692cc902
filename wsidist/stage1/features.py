"""Per-tile features of a whole grid at once, from the scaled image (no loop over tiles).

Window sums (tissue coverage, pen) are integer sums over row then column bands
(:mod:`wsidist.stage1.windows`); gray-level entropy and peak share come from
:mod:`wsidist.stage1.graystats`. HSV moments are taken over tissue pixels only, as
``skimage.color.rgb2hsv`` defines them, bit for bit (no HSV image): the pixels are gathered
once, their hue, saturation and value computed in small chunks from the uint8 channels, and
summed per window by one ``bincount`` per moment in pixel order."""

from __future__ import annotations

import numpy as np

from wsidist.imaging import rgb_to_gray
from wsidist.stage1.graystats import PEAK_LEVELS, tile_entropy, tile_gray_stats, tile_peak_frac
from wsidist.stage1.windows import Windows, classes, window_sums

__all__ = [
    "PEAK_LEVELS",
    "Windows",
    "gray_of",
    "hsv_moments",
    "tile_entropy",
    "tile_gray_stats",
    "tile_peak_frac",
    "window_sums",
]

_CHUNK_PX = 1 << 16  # pixels per chunk of per-pixel work (temporaries stay small)
_LEVEL = 1.0 / 255.0  # a uint8 channel k is the level k * _LEVEL, as skimage scales it


def gray_of(rgb: np.ndarray) -> np.ndarray:
    """:func:`wsidist.imaging.rgb_to_gray` (integer arithmetic in bands of rows)."""
    return rgb_to_gray(rgb)


def _pixel_weights(pixels: np.ndarray, hue_range: tuple[int, int]) -> np.ndarray:
    """float64 (7, n): in-range hue count, degree and degree² (0 out of range), s, s², v, v²
    of uint8 rgb (n, 3) pixels, as skimage's rgb2hsv gives them bit for bit (channel levels
    ``k * (1 / 255)``, max and min taken on the uint8 channels, blue over green over red, hue
    ``(h / 6) % 1`` as ``h / 6 + 1`` where negative); in chunks, so temporaries stay small."""
    lo, hi = hue_range
    out = np.empty((7, len(pixels)), np.float64)
    for i0 in range(0, len(pixels), _CHUNK_PX):
        planes = np.ascontiguousarray(pixels[i0 : i0 + _CHUNK_PX, :3].T)
        r, g, b = planes
        n_hue, sum_hue, sum_hue2, sum_s, sum_s2, sum_v, sum_v2 = out[:, i0 : i0 + len(r)]
        top = np.maximum(np.maximum(r, g), b)
        low = np.minimum(np.minimum(r, g), b)
        np.multiply(top, _LEVEL, out=sum_v)
        delta = low * _LEVEL
        np.subtract(sum_v, delta, out=delta)
        np.divide(delta, np.maximum(sum_v, _LEVEL), out=sum_s)  # 0 where max == min
        np.multiply(sum_s, sum_s, out=sum_s2)
        np.multiply(sum_v, sum_v, out=sum_v2)
        fr, fg, fb = r * _LEVEL, g * _LEVEL, b * _LEVEL
        b_top, g_top = b == top, g == top
        h = np.where(b_top, fr - fg, np.where(g_top, fb - fr, fg - fb))
        with np.errstate(invalid="ignore", divide="ignore"):
            h /= delta  # nan where max == min: no hue
        h += np.where(b_top, 4.0, np.where(g_top, 2.0, 0.0))
        h /= 6.0
        np.add(h, 1.0, out=h, where=h < 0)
        h *= 360
        with np.errstate(invalid="ignore"):
            deg = h.astype(np.int32)
        spread = top != low
        in_range = spread & (deg >= lo) & (deg <= hi)
        if lo <= 0 <= hi:  # max == min: hue 0
            in_range |= ~spread
            deg[~spread] = 0
        n_hue[...] = in_range
        np.multiply(deg, in_range, out=sum_hue)
        np.multiply(sum_hue, sum_hue, out=sum_hue2)
    return out


def hsv_moments(
    rgb: np.ndarray, tissue: np.ndarray, win: Windows, hue_range: tuple[int, int]
) -> dict[str, np.ndarray]:
    """Per window, over its tissue pixels: ``n_hue, sum_hue, sum_hue2`` of the integer hue
    degrees within ``hue_range`` and ``sum_s, sum_s2, sum_v, sum_v2`` of saturation and value
    (non-tissue pixels count as black, i.e. zero)."""
    shape = win.shape
    names = ("n_hue", "sum_hue", "sum_hue2", "sum_s", "sum_s2", "sum_v", "sum_v2")
    out = {name: np.zeros(shape, np.float64) for name in names}
    flat = np.flatnonzero(tissue)
    if flat.size == 0:
        return out
    channels = rgb.shape[-1]
    if rgb.flags.c_contiguous:  # one gather of 3-byte (or 4-byte) pixels
        pixels = rgb.reshape(-1).view(np.dtype((np.void, channels))).take(flat)
        pixels = pixels.view(np.uint8).reshape(-1, channels)
    else:
        pixels = rgb.reshape(-1, channels)[flat]
    weights = _pixel_weights(pixels, hue_range)
    width = tissue.shape[1]
    py = flat // width
    px = flat - py * width
    for row_map, col_map, rows, cols in classes(win, tissue.shape):
        ry, cx = row_map[py], col_map[px]
        tid = ry.astype(np.intp)
        tid *= len(cols)
        tid += cx
        ok = (ry >= 0) & (cx >= 0)
        every = bool(ok.all())
        for name, vals in zip(names, weights):  # bincount adds in pixel order
            sums = np.bincount(
                tid if every else tid[ok],
                weights=vals if every else vals[ok],
                minlength=len(rows) * len(cols),
            )
            out[name][np.ix_(rows, cols)] += sums.reshape(len(rows), len(cols))
    return out
