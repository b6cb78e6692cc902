"""Test-time augmentations: the dihedral transforms of a patch batch and their inverses on maps.

``flip`` adds the horizontal and vertical flips, ``rot90`` the rotations by 90, 180 and 270
degrees; the identity always comes first. A model's ``(N, C, h, w)`` output for a transformed
batch is mapped back with the inverse transform, so every augmentation's map lines up with the
patch; ``(N, C)`` outputs need nothing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["augmentations", "forward", "inverse"]

# name -> (rotations k by 90°, flip axis after the rotation: None, "h" or "v")
_TRANSFORMS = {
    "identity": (0, None),
    "hflip": (0, "h"),
    "vflip": (0, "v"),
    "rot90": (1, None),
    "rot180": (2, None),
    "rot270": (3, None),
}
_GROUPS = {"flip": ("hflip", "vflip"), "rot90": ("rot90", "rot180", "rot270")}


def augmentations(tta: tuple[str, ...]) -> tuple[str, ...]:
    """The transforms of ``tta`` names (``flip``, ``rot90``), identity first."""
    names = ["identity"]
    for group in tta:
        names += [n for n in _GROUPS[group] if n not in names]
    return tuple(names)


def forward(name: str, batch: np.ndarray) -> np.ndarray:
    """A transformed (N, H, W, 3) batch."""
    k, flip = _TRANSFORMS[name]
    out = np.rot90(batch, k, axes=(1, 2)) if k else batch
    if flip == "h":
        out = out[:, :, ::-1]
    elif flip == "v":
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def inverse(name: str, maps: np.ndarray) -> np.ndarray:
    """Model maps (N, C, h, w) of a transformed batch, mapped back onto the patch."""
    if maps.ndim == 2:
        return maps
    k, flip = _TRANSFORMS[name]
    if flip == "h":
        maps = maps[..., ::-1]
    elif flip == "v":
        maps = maps[..., ::-1, :]
    return np.rot90(maps, -k, axes=(2, 3)) if k else maps
