"""A slide's thumbnail from one of its levels: which box of the level each pixel averages."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from wsidist.imaging.resample import area_resample

__all__ = ["level_thumbnail"]


def level_thumbnail(
    read: Callable[[int, int, int, int], np.ndarray],
    size0: tuple[int, int],
    level_size: tuple[int, int],
    factor: int | None,
    scale: float,
    block_px: int,
    tile_px: int | None = None,
) -> np.ndarray:
    """uint8 (ceil(H/scale), ceil(W/scale), 3): pixel (i, j) averages level-0
    [j scale, (j+1) scale) x [i scale, (i+1) scale), read (``read(x, y, w, h)`` in level px)
    from a level of ``level_size``.

    ``factor``: the whole factor by which the level reduces level 0 from its top-left corner
    (its size rounded), so its boxes are ``scale / factor`` level px; None: the level spans the
    slide (``W / w`` level-0 px a level px). A level rounded down lacks level 0's last
    partial pixel: output boxes past its end copy the last one read (under one level pixel of
    level 0, at the slide's far edge). ``block_px``, ``tile_px``: see :func:`area_resample`.
    """
    (w0, h0), (lw, lh) = size0, level_size
    out_size = (math.ceil(w0 / scale), math.ceil(h0 / scale))
    if factor is None:
        ratio = (scale * lw / w0, scale * lh / h0)
        return area_resample(read, (lw, lh), ratio, out_size, block_px, tile_px)
    ratio = (scale / factor, scale / factor)
    covered = tuple(min(n, math.ceil(s / r)) for n, s, r in zip(out_size, (lw, lh), ratio))
    thumb = area_resample(read, (lw, lh), ratio, covered, block_px, tile_px)
    if covered != out_size:
        pad = ((0, out_size[1] - covered[1]), (0, out_size[0] - covered[0]), (0, 0))
        thumb = np.pad(thumb, pad, mode="edge")
    return thumb
