"""Background detectors from the seed tutorial; rgb uint8 in, keep-mask (True = tissue) out."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["green_channel", "grays"]


def green_channel(
    rgb: np.ndarray,
    green_thresh: int = 200,
    avoid_overmask: bool = True,
    overmask_thresh_pct: float = 90,
) -> np.ndarray:
    """True where the green channel is below green_thresh (glass is bright in green).

    With avoid_overmask, if overmask_thresh_pct % or more of the image would be masked out,
    the threshold is raised half-way to 255 (ceil) and the filter is retried.
    """
    green = rgb[..., 1]
    thresh = int(green_thresh)
    while True:
        mask = green < thresh
        masked_out_pct = 100.0 * (1.0 - mask.mean()) if mask.size else 0.0
        if not (avoid_overmask and masked_out_pct >= overmask_thresh_pct and thresh < 255):
            return mask
        thresh = math.ceil((255 - thresh) / 2 + thresh)


def grays(rgb: np.ndarray, tolerance: int = 15) -> np.ndarray:
    """False on gray/white/black pixels (all channel differences <= tolerance), True elsewhere."""
    r, g, b = (rgb[..., c].astype(np.int16) for c in range(3))
    gray_px = (
        (np.abs(r - g) <= tolerance) & (np.abs(r - b) <= tolerance) & (np.abs(g - b) <= tolerance)
    )
    return ~gray_px
