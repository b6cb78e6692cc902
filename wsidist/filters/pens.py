"""Pen-ink detectors: rgb uint8 in, bool mask out.

The channel filters and the ``*_pen`` filters return *keep-masks* (True = not that colour), so
they AND together with tissue masks; ``pen_mask`` returns True where any pen ink is found.
Threshold sets are the seed tutorial's, as (red, green, blue) triples; each colour's sets are
fused into one lookup table, exactly equal to ANDing the filters one by one.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "BLUE_PEN_THRESHOLDS",
    "GREEN_PEN_THRESHOLDS",
    "RED_PEN_THRESHOLDS",
    "blue_filter",
    "blue_pen",
    "green_filter",
    "green_pen",
    "pen_mask",
    "red_filter",
    "red_pen",
]

# (red_lower, green_upper, blue_upper)
RED_PEN_THRESHOLDS: tuple[tuple[int, int, int], ...] = (
    (150, 80, 90), (110, 20, 30), (185, 65, 105), (195, 85, 125), (220, 115, 145),
    (125, 40, 70), (200, 120, 150), (100, 50, 65), (85, 25, 45),
)  # fmt: skip
# (red_upper, green_lower, blue_lower)
GREEN_PEN_THRESHOLDS: tuple[tuple[int, int, int], ...] = (
    (150, 160, 140), (70, 110, 110), (45, 115, 100), (30, 75, 60), (195, 220, 210),
    (225, 230, 225), (170, 210, 200), (20, 30, 20), (50, 60, 40), (30, 50, 35),
    (65, 70, 60), (100, 110, 105), (165, 180, 180), (140, 140, 150), (185, 195, 195),
)  # fmt: skip
# (red_upper, green_upper, blue_lower)
BLUE_PEN_THRESHOLDS: tuple[tuple[int, int, int], ...] = (
    (60, 120, 190), (120, 170, 200), (175, 210, 230), (145, 180, 210), (37, 95, 160),
    (30, 65, 130), (130, 155, 180), (40, 35, 85), (30, 20, 65), (90, 90, 140),
    (60, 60, 120), (110, 110, 175),
)  # fmt: skip


def _channels(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return rgb[..., 0], rgb[..., 1], rgb[..., 2]


def red_filter(rgb: np.ndarray, red_lower: int, green_upper: int, blue_upper: int) -> np.ndarray:
    """False where r > red_lower and g < green_upper and b < blue_upper (reddish), else True."""
    r, g, b = _channels(rgb)
    return ~((r > red_lower) & (g < green_upper) & (b < blue_upper))


def green_filter(rgb: np.ndarray, red_upper: int, green_lower: int, blue_lower: int) -> np.ndarray:
    """False where r < red_upper and g > green_lower and b > blue_lower (greenish), else True."""
    r, g, b = _channels(rgb)
    return ~((r < red_upper) & (g > green_lower) & (b > blue_lower))


def blue_filter(rgb: np.ndarray, red_upper: int, green_upper: int, blue_lower: int) -> np.ndarray:
    """False where r < red_upper and g < green_upper and b > blue_lower (bluish), else True."""
    r, g, b = _channels(rgb)
    return ~((r < red_upper) & (g < green_upper) & (b > blue_lower))


def red_pen(rgb: np.ndarray) -> np.ndarray:
    """Keep-mask: False on red pen ink (AND of the red filters over RED_PEN_THRESHOLDS)."""
    return ~_inked(rgb, "red")


def green_pen(rgb: np.ndarray) -> np.ndarray:
    """Keep-mask: False on green pen ink (AND of the green filters over GREEN_PEN_THRESHOLDS)."""
    return ~_inked(rgb, "green")


def blue_pen(rgb: np.ndarray) -> np.ndarray:
    """Keep-mask: False on blue pen ink (AND of the blue filters over BLUE_PEN_THRESHOLDS)."""
    return ~_inked(rgb, "blue")


@functools.lru_cache(maxsize=3)
def _red_bound(colour: str) -> np.ndarray:
    """The threshold sets of one colour fused into one (g, b) table of red bounds.

    Every seed rule is ``r ? R and g ? G and b ? B``: for a pixel's (g, b) the rules whose g and
    b tests pass leave one test on r, and the loosest of their red bounds decides. So a pixel
    is inked exactly when ``r > low[g, b]`` (red pens) or ``r < high[g, b]`` (green, blue):
    one lookup instead of 9-15 passes. Read-only."""
    g = np.arange(256)[:, None]
    b = np.arange(256)[None, :]
    if colour == "red":  # r > R and g < G and b < B: the smallest R whose g, b tests pass
        bound = np.full((256, 256), 256, np.int16)
        for rr, gg, bb in RED_PEN_THRESHOLDS:
            bound = np.where((g < gg) & (b < bb), np.minimum(bound, rr), bound)
    else:  # r < R and g > G and b > B (green) / g < G and b > B (blue): the largest R
        bound = np.full((256, 256), 0, np.int16)
        sets = GREEN_PEN_THRESHOLDS if colour == "green" else BLUE_PEN_THRESHOLDS
        for rr, gg, bb in sets:
            ok = (g > gg) & (b > bb) if colour == "green" else (g < gg) & (b > bb)
            bound = np.where(ok, np.maximum(bound, rr), bound)
    bound = bound.astype(np.int16)
    bound.setflags(write=False)
    return bound


def _inked(rgb: np.ndarray, colour: str) -> np.ndarray:
    bound = _red_bound(colour)[rgb[..., 1], rgb[..., 2]]
    r = rgb[..., 0].astype(np.int16)
    return r > bound if colour == "red" else r < bound


def pen_mask(rgb: np.ndarray) -> np.ndarray:
    """True where any red, green or blue pen ink is detected (the seed's thresholds)."""
    return _inked(rgb, "red") | _inked(rgb, "green") | _inked(rgb, "blue")
