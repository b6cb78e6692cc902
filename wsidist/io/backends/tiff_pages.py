"""The tiled pages of a TIFF slide: which the direct decoder takes, and their geometry."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tifffile

from wsidist.io.tiff_format import (
    APERIO_J2K_RGB,
    APERIO_J2K_YCBCR,
    COMPRESSION_JPEG,
    PHOTOMETRIC_RGB,
    PHOTOMETRIC_YCBCR,
    jpeg_colorspace,
)

__all__ = ["Level", "make_level", "page_problem", "whole_factor"]


@dataclass(frozen=True)
class Level:
    """One tiled page: its size, tile grid, tile offsets and codec."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    across: int
    down: int
    offsets: np.ndarray
    counts: np.ndarray
    codec: str  # "jpeg" | "j2k"
    tables: bytes | None
    colorspace: str | None  # JPEG colour space of the data, None: let libjpeg guess
    downsample: float


def page_problem(page: tifffile.TiffPage) -> str | None:
    if not page.is_tiled:
        name = getattr(page.compression, "name", page.compression)
        return f"not tiled ({name} strips)"
    if page.bitspersample != 8 or page.samplesperpixel != 3 or page.planarconfig != 1:
        return (
            f"{page.samplesperpixel} samples of {page.bitspersample} bits, planar "
            f"{int(page.planarconfig)} (need 3 × 8-bit contiguous)"
        )
    if page.extrasamples:
        return "extra samples"
    comp = int(page.compression)
    if comp == COMPRESSION_JPEG:
        if int(page.photometric) not in (PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR):
            return f"JPEG with photometric {int(page.photometric)}"
        return None
    if comp == APERIO_J2K_RGB:
        return None
    if comp == APERIO_J2K_YCBCR:
        return (
            "Aperio JPEG 2000 YCbCr (33003): OpenSlide converts to RGB with its own "
            "arithmetic, not verified identical"
        )
    name = getattr(page.compression, "name", comp)
    return f"compression {name} ({comp}) is not JPEG / Aperio JPEG 2000 RGB"


def make_level(page: tifffile.TiffPage, downsample: float) -> Level:
    w, h = int(page.imagewidth), int(page.imagelength)
    tw, th = int(page.tilewidth), int(page.tilelength)
    comp = int(page.compression)
    colorspace = jpeg_colorspace(page) if comp == COMPRESSION_JPEG else None
    offsets, counts = (np.asarray(v, np.int64) for v in (page.dataoffsets, page.databytecounts))
    jpeg = comp == COMPRESSION_JPEG
    return Level(w, h, tw, th, math.ceil(w / tw), math.ceil(h / th), offsets, counts,
                  "jpeg" if jpeg else "j2k", page.jpegtables if jpeg else None, colorspace,
                  downsample)  # fmt: skip


def whole_factor(size0: tuple[int, int], size: tuple[int, int], downsample: float) -> int | None:
    """The whole factor ``k`` by which a level of ``size`` reduces level 0 (``size0``) from its
    top-left corner (its pixel (i, j) covers level-0 [k j, k (j+1)) x [k i, k (i+1))), or None.

    A scanner's level is such a reduction with its size rounded (floor or ceil of ``W / k``),
    so its reported ``downsample`` (``W / w``) is off by up to one pixel over the level; taken
    when both sides are ``W / k`` rounded."""
    (w0, h0), (w, h) = size0, size
    k = round(downsample)
    if k < 1 or abs(downsample - k) > 0.01 * k:
        return None
    return k if w in (w0 // k, -(-w0 // k)) and h in (h0 // k, -(-h0 // k)) else None
