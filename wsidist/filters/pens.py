"""Pen-ink detectors: rgb uint8 in, bool mask out.

The channel filters and the ``*_pen`` filters return *keep-masks* (True = not that colour), so
they AND together with tissue masks; ``pen_mask`` returns True where any pen ink is found.
Threshold sets are the seed tutorial's, as (red, green, blue) triples.
"""

from __future__ import annotations

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
    return _keep_all(rgb, red_filter, RED_PEN_THRESHOLDS)


def green_pen(rgb: np.ndarray) -> np.ndarray:
    """Keep-mask: False on green pen ink (AND of the green filters over GREEN_PEN_THRESHOLDS)."""
    return _keep_all(rgb, green_filter, GREEN_PEN_THRESHOLDS)


def blue_pen(rgb: np.ndarray) -> np.ndarray:
    """Keep-mask: False on blue pen ink (AND of the blue filters over BLUE_PEN_THRESHOLDS)."""
    return _keep_all(rgb, blue_filter, BLUE_PEN_THRESHOLDS)


def _keep_all(rgb: np.ndarray, channel_filter, thresholds) -> np.ndarray:
    """AND of one channel filter over several threshold sets."""
    keep = np.ones(rgb.shape[:2], dtype=bool)
    for t in thresholds:
        keep &= channel_filter(rgb, *t)
    return keep


def pen_mask(rgb: np.ndarray) -> np.ndarray:
    """True where any red, green or blue pen ink is detected."""
    return ~(red_pen(rgb) & green_pen(rgb) & blue_pen(rgb))
