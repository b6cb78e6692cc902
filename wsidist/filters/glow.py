"""Objects on a dark (fluorescence) slide judged by the light they emit above its black."""

from __future__ import annotations

import numpy as np

__all__ = ["foreign_glow", "glow_sums", "neutral_glow"]


def glow_sums(rgb, labels, n, keep, bg) -> np.ndarray:
    """(n + 1, 3) float: per label kept, the light it emits above the slide's black, summed
    per channel (zeros for the other labels)."""
    flat = labels.reshape(-1)
    index = np.flatnonzero(keep[flat])
    glow = np.clip(
        np.take(rgb.reshape(-1, 3), index, axis=0).astype(np.float32) - np.asarray(bg.rgb), 0, None
    )
    lab = flat[index]
    return np.stack([np.bincount(lab, weights=glow[:, c], minlength=n + 1) for c in range(3)], 1)


def foreign_glow(sums: np.ndarray, max_angle_deg: float = 60.0) -> np.ndarray:
    """Per label, on a dark slide: its mean emitted colour is more than ``max_angle_deg`` away
    from the slide's overall emitted colour (e.g. red-glowing ink on a DAPI slide)."""
    total = sums.sum(axis=0)
    norms = np.linalg.norm(sums, axis=1) * max(float(np.linalg.norm(total)), 1e-9)
    cosine = (sums @ total) / np.maximum(norms, 1e-9)
    foreign = cosine < np.cos(np.radians(max_angle_deg))
    foreign[0] = False
    return foreign & (sums.sum(axis=1) > 0)


def neutral_glow(px: np.ndarray, bg, max_chroma: float = 0.2, min_glow: float = 4.0):
    """Per pixel (n, 3) of a dark slide: it glows gray, as no stain does (a scanner border, a
    label lit from above): at least ``min_glow`` levels above the slide's black, and its
    channels (or the light they add to a tinted black) within ``max_chroma`` of the brightest
    one."""
    rgb = px[:, :3].astype(np.float32)
    glow = rgb - np.asarray(bg.rgb, np.float32)
    top, level = glow.max(axis=1), rgb.max(axis=1)
    gray = (top - glow.min(axis=1) <= max_chroma * top) | (
        level - rgb.min(axis=1) <= max_chroma * level
    )
    return (top >= min_glow) & gray
