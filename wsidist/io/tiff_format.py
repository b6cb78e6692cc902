"""What wsidist knows of TIFF: tag constants, pyramid level pages, and its own pyramid format.

Readers (:mod:`wsidist.io.backends`) and the stage-2 writers share this module, so the format
of a wsidist pyramid is defined once: level 0 carries a JSON description
(``{"wsidist": "pyramid", …}``, see :func:`pyramid_description`); a JPEG → JPEG-XL transcode
adds ``"transcode": true`` and the source's JPEG colour space, and its tiles decode with
:func:`decode_transcoded_tile`.
"""

from __future__ import annotations

import json
from typing import Any

import imagecodecs
import numpy as np
import tifffile

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
COMPRESSION_JPEG = 7
APERIO_J2K_YCBCR = 33003
APERIO_J2K_RGB = 33005
PHOTOMETRIC_RGB = 2
PHOTOMETRIC_YCBCR = 6
PHOTOMETRIC = tifffile.PHOTOMETRIC
JPEG_SOI = b"\xff\xd8"
PYRAMID_MARK = "pyramid"  # value of the "wsidist" key of a pyramid's level-0 description


def is_tiff_header(head: bytes) -> bool:
    """True when ``head`` (the first 4 bytes of a file) is a TIFF or BigTIFF header."""
    return head[:4] in TIFF_MAGIC


def as_page(page) -> tifffile.TiffPage:
    return page if isinstance(page, tifffile.TiffPage) else page.aspage()


def pixel_problem(page: tifffile.TiffPage) -> str | None:
    """Why this page cannot be read as 8-bit gray/RGB(A), or None when it can."""
    if page.dtype != np.uint8 or page.bitspersample != 8:
        return f"{page.dtype} samples ({page.bitspersample}-bit), need uint8"
    if page.imagedepth != 1:
        return "volumetric (ImageDepth > 1) page"
    if page.samplesperpixel not in (1, 3, 4):
        return f"{page.samplesperpixel} samples per pixel, need 1, 3 or 4"
    photo = page.photometric
    if photo == PHOTOMETRIC.YCBCR and page.compression in (6, 7):
        return None  # JPEG: decoded to RGB
    if photo not in (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.MINISWHITE, PHOTOMETRIC.RGB):
        return f"photometric {getattr(photo, 'name', photo)} not supported"
    return None


def level_pages(tif: tifffile.TiffFile) -> list[tifffile.TiffPage]:
    """The pages of a TIFF's pyramid levels, largest first.

    From the first series' pyramid (SubIFDs, SVS, OME, …) or, when that has one tiled level,
    the following top-level tiled pages of decreasing size with the same aspect (within a
    pixel of rounding), the same sample layout and readable pixels.
    """
    series = tif.series[0]
    pages = [as_page(level.pages[0]) for level in series.levels]
    base = pages[0]
    if len(pages) > 1 or not base.is_tiled:
        return pages
    for page in tif.pages[1:]:
        page = as_page(page)
        prev = pages[-1]
        if not page.is_tiled or page.imagewidth >= prev.imagewidth:
            continue
        if page.imagelength >= prev.imagelength or page.samplesperpixel != base.samplesperpixel:
            continue
        fy = base.imagelength / page.imagelength
        if abs(page.imagewidth - base.imagewidth / fy) > 1 + 1 / fy or pixel_problem(page):
            continue
        pages.append(page)
    return pages


def jpeg_colorspace(page: tifffile.TiffPage) -> str | None:
    """libjpeg colour space of a JPEG page's data, as OpenSlide (libtiff) decodes it.

    ``"RGB"`` for RGB components without a JFIF/Adobe marker (Aperio); None: libjpeg's guess.
    """
    rgb = int(page.photometric) == PHOTOMETRIC_RGB
    return "RGB" if rgb and not page.is_jfif else None


def merge_jpeg_tables(tile: bytes, tables: bytes | None) -> bytes:
    """One self-contained JPEG stream: the TIFF's JPEGTables spliced in after the tile's SOI."""
    if tables and len(tables) > 4 and tile.startswith(JPEG_SOI):
        return tables[:-2] + tile[2:]
    return tile


def split_jpeg_tables(stream: bytes, tables: bytes | None) -> bytes:
    """Inverse of :func:`merge_jpeg_tables`: the tile bytes as the source TIFF stored them."""
    if tables and len(tables) > 4 and stream.startswith(tables[:-2]):
        return JPEG_SOI + stream[len(tables) - 2 :]
    return stream


def resolution_kw(page: tifffile.TiffPage) -> dict[str, Any]:
    """The resolution tags of ``page`` as tifffile writer arguments ({} when absent)."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return {}
    kw: dict[str, Any] = {"resolution": (tags["XResolution"].value, tags["YResolution"].value)}
    kw["resolutionunit"] = int(tags["ResolutionUnit"].value) if "ResolutionUnit" in tags else 2
    return kw


def pyramid_description(fields: dict[str, Any]) -> str:
    """The level-0 ImageDescription of a wsidist pyramid holding ``fields``."""
    return json.dumps({"wsidist": PYRAMID_MARK, **fields})


def wsidist_meta(description: str | None) -> dict | None:
    """The parsed JSON description wsidist writes on level 0 of its pyramids, else None."""
    if not description or not description.lstrip().startswith("{"):
        return None
    try:
        meta = json.loads(description)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) and meta.get("wsidist") == PYRAMID_MARK else None


def transcode_meta(description: str | None) -> dict | None:
    """The wsidist JSON description when it marks a JPEG → JPEG-XL transcode, else None."""
    meta = wsidist_meta(description)
    return meta if meta is not None and meta.get("transcode") is True else None


def decode_transcoded_tile(data: bytes | None, colorspace: str | None) -> np.ndarray | None:
    """RGB pixels of a transcoded tile, as libjpeg decodes the source JPEG (None when empty).

    ``jpegxl_decode`` would assume YCbCr and miscolour RGB-JPEG (Aperio) tiles, so the JPEG
    stream is rebuilt and decoded with the source's colour space ("RGB" or None: libjpeg's guess).
    """
    if not data:
        return None
    jpeg = imagecodecs.jpegxl_decode_jpeg(data)
    return imagecodecs.jpeg8_decode(jpeg, colorspace=colorspace, outcolorspace="RGB")
