"""Small files that claim huge slides: the failure class "memory bounded by what a file says".

:func:`write_sparse_giant` writes a tiled pyramidal JPEG TIFF that declares ``width × height``
pixels (e.g. 400000 × 400000) yet stays a few megabytes: almost every tile is stored empty
(zero bytes, which readers show as white) and one tile in ``every`` holds a small tissue-pink
JPEG. OpenSlide opens it as a generic TIFF; reading it whole would need terabytes.
"""

from __future__ import annotations

import math
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

PINK = (230, 160, 200)


def write_sparse_giant(
    path: str | Path, width: int, height: int, *, tile: int = 256, every: int = 997
) -> Path:
    """Write the sparse giant at ``path`` (levels downsampled by 4 until ≤ 1024 px)."""
    path = Path(path)
    data = imagecodecs.jpeg8_encode(np.full((tile, tile, 3), PINK, np.uint8), level=80)
    dims = [(width, height)]
    while max(dims[-1]) > 1024:
        dims.append((math.ceil(dims[-1][0] / 4), math.ceil(dims[-1][1] / 4)))
    tmp = path.with_name(path.name + ".part")
    with tifffile.TiffWriter(tmp, bigtiff=False) as tw:
        for k, (w, h) in enumerate(dims):
            n = math.ceil(w / tile) * math.ceil(h / tile)
            tiles = (data if i % every == 0 else b"" for i in range(n))
            tw.write(
                tiles, shape=(h, w, 3), dtype=np.uint8, tile=(tile, tile), compression="jpeg",
                photometric="rgb", subfiletype=1 if k else 0, metadata=None,
            )  # fmt: skip
    tmp.replace(path)
    return path
