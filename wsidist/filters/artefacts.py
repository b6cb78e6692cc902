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

from .glass import Background, channel_luts

__all__ = ["artefacts", "dark_neutral_pixels", "neutral_objects", "neutral_pixels"]

_EIGHT = np.ones((3, 3), bool)


def neutral_pixels(
    rgb: np.ndarray, index: np.ndarray, luts: np.ndarray, tolerance: float = 0.2
) -> np.ndarray:
    """bool per flat ``index``: the channels' densities agree within ``tolerance`` x their mean."""
    px = rgb.reshape(-1, 3)[index]
    od = np.stack([luts[c][px[:, c]] for c in range(3)], axis=1).astype(np.int32)
    mean = od.sum(axis=1) / 3.0
    spread = od.max(axis=1) - od.min(axis=1)
    return spread <= tolerance * np.maximum(mean, 1.0)


def dark_neutral_pixels(
    rgb: np.ndarray, index: np.ndarray, luts: np.ndarray, min_od: float = 0.08
) -> np.ndarray:
    """bool per flat ``index``: neutral and at least ``min_od`` dense in every channel."""
    px = rgb.reshape(-1, 3)[index]
    od = np.stack([luts[c][px[:, c]] for c in range(3)], axis=1).astype(np.int32)
    low, high = od.min(axis=1), od.max(axis=1)
    return (low >= min_od * 1000) & (high - low <= 0.2 * od.mean(axis=1))


def neutral_objects(
    rgb: np.ndarray,
    labels: np.ndarray,
    n: int,
    bg: Background,
    *,
    share: float = 0.6,
    tolerance: float = 0.2,
    keep: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per label 0..n: (neutral share of its pixels >= ``share``, touches the image border).

    ``keep`` (bool per label) restricts the work to the labels that matter.
    """
    flat = labels.reshape(-1)
    index = np.flatnonzero(flat if keep is None else keep[flat])
    lab = flat[index]
    neutral = neutral_pixels(rgb, index, channel_luts(bg), tolerance)
    counts = np.bincount(lab, minlength=n + 1)
    shares = np.bincount(lab, weights=neutral, minlength=n + 1) / np.maximum(counts, 1)
    edge = np.zeros(n + 1, bool)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        edge[side] = True
    edge[0] = False
    return (shares >= share) & (counts > 0), edge


def artefacts(rgb: np.ndarray) -> np.ndarray:
    """True on neutral gray objects darker than the glass: scanner borders, label shadows,
    bubble rims, dust (objects that are mostly near-black are left to the ink filter)."""
    from .auto import detect_tissue

    return detect_tissue(rgb, pens=False).artefacts
