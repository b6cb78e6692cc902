"""Pen ink of every colour (red, green, blue and dark blue, black), on tissue and off it.

Marker ink is recognised by hue, saturation and darkness, with one lookup per pixel: a table
over RGB quantised to 6 bits a channel holds the class of every colour (no HSV image is
computed). H&E and IHC stains are purple, pink, brown or pale blue-gray; inks are saturated red,
green/cyan and blue, or near black. A pixel is ink when its colour is clearly ink (*strict*),
or merely ink-like (*loose*: a pen's blended edge, ink thinned over pale tissue) within two
pixels of clearly inked ones, so one fused pass replaces the seed's 36 threshold passes.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from wsidist.imaging.color import red_green_codes

__all__ = ["INK_CLASSES", "InkRules", "ink", "ink_classes", "ink_from_codes", "ink_mask"]

INK_CLASSES = ("none", "red", "green", "blue", "black")
_BITS = 6
_LOOSE = 8  # flag bit of the table: loose (ink-like) colour


@dataclass(frozen=True)
class InkRules:
    """Hue (degrees, ranges may wrap through 0), saturation and value (0-1) of each ink.

    Every colour has a broad hue range with a high saturation and a narrow core range with a
    lower one (ink thinned by glass keeps its hue but loses saturation); ``loose`` is the
    factor on the saturations for ink-like pixels next to clear ink.
    """

    red: tuple[tuple[float, float, float], ...] = ((345.0, 20.0, 0.55), (350.0, 15.0, 0.4))
    green: tuple[tuple[float, float, float], ...] = ((75.0, 200.0, 0.25), (100.0, 185.0, 0.15))
    blue: tuple[tuple[float, float, float], ...] = ((200.0, 258.0, 0.45), (212.0, 248.0, 0.3))
    black_value: tuple[float, float] = (0.17, 0.3)  # any hue at or below this value
    gray_value: tuple[float, float] = (0.35, 0.5)  # neutral (sat <= gray_sat) at or below
    gray_sat: float = 0.3
    loose: float = 0.6


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees, saturation and value in [0, 1] of float rgb in [0, 1] (n, 3)."""
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    delta = mx - mn
    safe = np.where(delta > 0, delta, 1.0)
    r, g, b = rgb.T
    hue = np.where(
        mx == r, (g - b) / safe % 6, np.where(mx == g, (b - r) / safe + 2, (r - g) / safe + 4)
    )
    hue = np.where(delta > 0, hue * 60.0, 0.0)
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return hue, sat, mx


def _in_hue(hue: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (hue >= lo) & (hue <= hi) if lo <= hi else (hue >= lo) | (hue <= hi)


def _classify(hue, sat, val, rules: InkRules, k: int) -> np.ndarray:
    out = np.zeros(hue.shape, np.uint8)
    factor = rules.loose if k else 1.0
    for code, ranges in ((1, rules.red), (2, rules.green), (3, rules.blue)):
        hit = np.zeros(hue.shape, bool)
        for lo, hi, min_sat in ranges:
            hit |= _in_hue(hue, lo, hi) & (sat >= min_sat * factor)
        out[hit & (out == 0)] = code
    black = (val <= rules.black_value[k]) | ((val <= rules.gray_value[k]) & (sat <= rules.gray_sat))
    out[black & (out == 0)] = 4
    return out


@functools.lru_cache(maxsize=4)
def ink_table(rules: InkRules = InkRules()) -> np.ndarray:
    """uint8 table over 6-bit RGB (index ``r<<12 | g<<6 | b`` of the top bits): strict class
    (0 none, 1 red, 2 green, 3 blue, 4 black), plus 8 where the colour is loosely ink-like.

    Read-only and built once per rule set (a pure function of the frozen rules)."""
    n = 1 << _BITS
    q = (np.arange(n, dtype=np.float64) + 0.5) / n
    grid = np.stack(np.meshgrid(q, q, q, indexing="ij"), axis=-1).reshape(-1, 3)
    hue, sat, val = _hsv(grid)
    strict = _classify(hue, sat, val, rules, 0)
    loose = _classify(hue, sat, val, rules, 1)
    table = strict | np.where(loose > 0, _LOOSE, 0).astype(np.uint8)
    table.setflags(write=False)
    return table


def ink_classes(rgb: np.ndarray, table: np.ndarray, index: np.ndarray | None = None) -> np.ndarray:
    """Table entries of every pixel (or of the flat ``index``): uint8, same layout as the table."""
    px = rgb.reshape(-1, rgb.shape[-1])[index] if index is not None else rgb
    shift = 8 - _BITS
    pairs = red_green_codes(px)
    if pairs is not None:  # red and green keyed by one lookup of both
        top = np.arange(256, dtype=np.uint32) >> shift
        keys = ((top[None, :] << (2 * _BITS)) | (top[:, None] << _BITS)).reshape(-1)
        key = np.take(keys, pairs)
    else:
        key = (px[..., 0] >> shift).astype(np.uint32) << (2 * _BITS)
        key |= (px[..., 1] >> shift).astype(np.uint32) << _BITS
    key |= px[..., 2] >> shift
    return np.take(table, key)


def ink_from_codes(codes: np.ndarray, grow_px: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(ink bool, class uint8) from table entries (h, w) of the pixels to look at (0 elsewhere):
    strict ink, and loose ink within ``grow_px`` of it (taking the class of the strongest
    inked neighbour). Only the loose pixels' neighbourhoods are looked at."""
    cls = np.bitwise_and(codes, 7)
    mask = cls > 0
    if not mask.any():
        return mask, np.zeros(codes.shape, np.uint8)
    grow_px = max(grow_px, 0)
    only = np.flatnonzero((codes >= _LOOSE) & ~mask)
    if only.size and grow_px:
        h, w = codes.shape
        r = np.arange(-grow_px, grow_px + 1)
        y, x = np.divmod(only, w)
        ny = np.clip(y[:, None, None] + r[None, :, None], 0, h - 1)
        nx = np.clip(x[:, None, None] + r[None, None, :], 0, w - 1)
        grown = np.take(cls, (ny * w + nx).reshape(len(only), -1)).max(axis=1)
        hit = grown > 0
        mask.reshape(-1)[only[hit]] = True
        cls.reshape(-1)[only[hit]] = grown[hit]
    return mask, cls


def ink_mask(
    rgb: np.ndarray,
    candidates: np.ndarray | None = None,
    table: np.ndarray | None = None,
    grow_px: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """(ink bool (h, w), class uint8 (h, w): 0 none, 1 red, 2 green, 3 blue, 4 black).

    Only ``candidates`` (bool, e.g. pixels darker than the glass) are looked at when given.
    """
    table = ink_table() if table is None else table
    h, w = rgb.shape[:2]
    codes = np.zeros(h * w, np.uint8)
    if candidates is None:
        codes[:] = ink_classes(rgb, table).reshape(-1)
    else:
        index = np.flatnonzero(candidates)
        codes[index] = ink_classes(rgb, table, index)
    return ink_from_codes(codes.reshape(h, w), grow_px)


def ink(rgb: np.ndarray) -> np.ndarray:
    """True on pen ink of any colour (red, green, blue, dark blue, black), on or off tissue."""
    return ink_mask(rgb)[0]
