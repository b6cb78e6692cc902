"""Non-tissue things darker than the glass: scanner borders, label shadows, bubble rims, dust.

They have one thing in common that stained tissue lacks: they are *neutral*. A neutral absorber
darkens every channel by the same optical density, a stain does not (eosin absorbs green,
hematoxylin red and green, DAB blue). Per connected object of candidate pixels:

- a mostly neutral object touching the image border is a scanner border or label shadow;
- a mostly neutral object elsewhere is dust, debris or an air-bubble rim.

Black pen ink is neutral too; objects that are mostly near-black are left to the ink filter.
"""

from __future__ import annotations

import numpy as np

__all__ = ["border_labels", "channel_densities", "neutral_pixels", "neutral_pixels_at"]


def channel_densities(px: np.ndarray, luts: np.ndarray, columns: bool = False):
    """int16 (n, 3): each channel's density (x 1000) of rgb pixels (n, 3) relative to the glass;
    with ``columns``, a tuple of the three int32 columns instead (what
    :func:`neutral_pixels_at` reads)."""
    if columns:
        wide = luts.astype(np.int32)
        return tuple(np.take(wide[c], px[:, c]) for c in range(3))
    return np.stack([np.take(luts[c], px[:, c]) for c in range(3)], axis=1)


def neutral_pixels(
    od: np.ndarray, tolerance: float = 0.2, min_od: float = 0.08
) -> tuple[np.ndarray, np.ndarray]:
    """(neutral, dark and neutral) per pixel of :func:`channel_densities`: the channels agree
    within ``tolerance`` x their mean; dark ones also have at least ``min_od`` in every channel."""
    return neutral_pixels_at(od, (tolerance,), min_od)[0]


def neutral_pixels_at(
    od: np.ndarray, tolerances: tuple[float, ...], min_od: float = 0.08
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`neutral_pixels` at several tolerances, from one pass over the channels (``od``
    may also be the three columns of :func:`channel_densities`)."""
    cols = od if isinstance(od, tuple) else (od[:, i] for i in range(3))
    a, b, c = (col.astype(np.int32) for col in cols)  # column-wise: no short-axis passes
    low, high = np.minimum(np.minimum(a, b), c), np.maximum(np.maximum(a, b), c)
    a += b
    a += c
    scale = np.maximum(a / 3.0, 1.0)
    spread = high - low
    dark = low >= min_od * 1000
    out = []
    for tolerance in tolerances:
        neutral = spread <= tolerance * scale
        out.append((neutral, neutral & dark))
    return out


def border_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """bool per label 0..n: the object touches the image border (label 0 never)."""
    edge = np.zeros(n + 1, bool)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[side] = True
    edge[0] = False
    return edge
