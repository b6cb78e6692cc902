"""Export a wsidist pyramid for other readers: an OpenSlide-readable generic tiled JPEG TIFF.

JPEG-XL tiles (TIFF compression 50002) open only in wsidist. :func:`export_pyramid` rewrites a
pyramid with JPEG tiles through the one pyramid writer (:func:`write_pyramid`, blocks streamed,
memory bounded): level 0 decoded from the pyramid, reduced levels by 2× area averaging, glass
tiles (the pyramid's empty tiles) stored as one shared white JPEG tile so every reader sees
them. A pyramid written by ``rewrite --transcode`` is restored instead: its JPEG tiles come
back bit for bit (:func:`~wsidist.stage2.restore.restore_jpeg_tiff`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from wsidist.errors import PyramidError
from wsidist.io.slide import open_slide
from wsidist.io.tiff_format import level_pages, transcode_meta, wsidist_meta
from wsidist.stage2.pyramid import PyramidOptions, write_pyramid
from wsidist.stage2.restore import restore_jpeg_tiff

__all__ = ["export_pyramid"]

EXPORT_CODECS = ("jpeg",)


def export_pyramid(
    pyramid: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    codec: str = "jpeg",
    jpeg_quality: int = 90,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write ``pyramid`` (a ``wsidist rewrite`` output) as a generic tiled TIFF at ``out``.

    Returns ``{"mode": "reencoded" | "restored", "path", "output_bytes", "levels", "psnr_db",
    "psnr_min_db"}`` (PSNR of the JPEG tiles against the pyramid's pixels on 64 tissue tiles;
    None when restored bit for bit). Raises :class:`PyramidError` for other files.
    """
    if codec not in EXPORT_CODECS:
        raise PyramidError(f"export codec must be one of {EXPORT_CODECS}, got {codec!r}")
    pyramid, out = Path(pyramid), Path(out)
    if out.resolve() == pyramid.resolve():
        raise PyramidError(f"{out}: the export would overwrite its own pyramid")
    meta, tissue, tile = _pyramid_tiles(pyramid)
    out.parent.mkdir(parents=True, exist_ok=True)
    if transcode_meta(meta["description"]) is not None:
        counts = restore_jpeg_tiff(pyramid, out)
        return {
            "mode": "restored", "path": str(out), "output_bytes": counts["bytes"],
            "levels": counts["levels"], "psnr_db": None, "psnr_min_db": None,
        }  # fmt: skip
    options = PyramidOptions(
        codec=codec, jpeg_quality=jpeg_quality, glass="white", margin_px0=0, tile=tile
    )
    with open_slide(str(pyramid)) as slide:
        report = write_pyramid(
            slide, tissue, float(tile), out, options, workers=workers,
            description_extra={"exported_from": str(pyramid), **meta["fields"]},
        )  # fmt: skip
    return {
        "mode": "reencoded", "path": str(out), "output_bytes": report.output_bytes,
        "levels": len(report.level_dimensions), "psnr_db": report.psnr_db,
        "psnr_min_db": report.psnr_min_db,
    }  # fmt: skip


def _pyramid_tiles(path: Path) -> tuple[dict[str, Any], np.ndarray, int]:
    """The pyramid's level-0 description, which level-0 tiles hold data (bool rows × cols,
    as a mask at downsample ``tile``), and its tile side."""
    try:
        with tifffile.TiffFile(path) as tif:
            page = level_pages(tif)[0]
            description = page.description
            fields = wsidist_meta(description)
            if fields is None:
                raise PyramidError(f"{path}: not a wsidist pyramid (no wsidist description)")
            if not page.is_tiled or page.tilewidth != page.tilelength:
                raise PyramidError(f"{path}: level 0 is not tiled in square tiles")
            tile = int(page.tilewidth)
            rows, cols = -(-page.imagelength // tile), -(-page.imagewidth // tile)
            counts = np.asarray(page.databytecounts, np.int64)
    except (OSError, tifffile.TiffFileError) as exc:
        raise PyramidError(f"{path}: not a readable TIFF: {exc}") from None
    if counts.size != rows * cols:
        raise PyramidError(f"{path}: {counts.size} level-0 tiles, expected {rows}×{cols}")
    keep = {k: fields[k] for k in ("source", "vendor", "slide_id") if k in fields}
    return {"description": description, "fields": keep}, counts.reshape(rows, cols) > 0, tile
