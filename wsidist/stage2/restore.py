"""Rebuild a JPEG TIFF from a transcoded pyramid, byte-identical to the source's tissue tiles.

The inverse of :func:`wsidist.stage2.transcode.transcode_pyramid`: every JPEG-XL tile is turned
back into its JPEG stream (``jpegxl_decode_jpeg``), the shared JPEGTables are split out again and
the source's tags (tiles, subsampling, resolution, descriptions) come from the JSON the
transcode stored on level 0. Glass tiles stay empty; associated images are not kept.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

from wsidist.errors import PyramidError
from wsidist.io.tiff_format import split_jpeg_tables, transcode_meta

__all__ = ["restore_jpeg_tiff"]


def restore_jpeg_tiff(pyramid_path: str | Path, out_path: str | Path) -> dict[str, int]:
    """Rebuild a JPEG TIFF from a transcoded pyramid; tiles and tables byte-identical to source.

    Glass tiles stay empty (zero bytes, white to readers). Returns counts
    ``{levels, tiles, tissue_tiles, bytes}``; raises PyramidError for other files.
    """
    pyramid_path, out_path = Path(pyramid_path), Path(out_path)
    try:
        tif = tifffile.TiffFile(pyramid_path)
    except Exception as exc:  # noqa: BLE001
        raise PyramidError(f"{pyramid_path}: not a readable TIFF: {exc}") from exc
    tmp = out_path.with_name(out_path.name + ".part")
    n_tiles = n_tissue = 0
    try:
        with tif:
            meta = transcode_meta(tif.pages.first.description)
            if meta is None:
                raise PyramidError(f"{pyramid_path}: not a wsidist transcoded pyramid")
            pages = [p for p in tif.pages if p.is_tiled]
            n_levels = len(meta["jpegtables"])
            if len(pages) != n_levels:
                raise PyramidError(
                    f"{pyramid_path}: {len(pages)} tiled pages but the description lists "
                    f"{n_levels} levels"
                )
            ycbcr = meta["source_photometric"] == "ycbcr"
            subfiletypes = meta.get("source_subfiletypes")
            fh = tif.filehandle
            with tifffile.TiffWriter(tmp, bigtiff=os.path.getsize(pyramid_path) > 2**30) as tw:
                for k, page in enumerate(pages):
                    tables = meta["jpegtables"][k]
                    tables = base64.b64decode(tables) if tables else None
                    counts = list(page.databytecounts)
                    n_tiles += len(counts)
                    n_tissue += sum(1 for c in counts if c)

                    def tiles(page=page, tables=tables) -> Iterator[bytes]:
                        for data, _ in fh.read_segments(
                            page.dataoffsets, page.databytecounts, lock=fh.lock, sort=False
                        ):
                            if not data:
                                yield b""
                            else:
                                yield split_jpeg_tables(
                                    imagecodecs.jpegxl_decode_jpeg(data), tables
                                )

                    sub = meta.get("source_subsampling", [None] * n_levels)[k]
                    th, t_w = meta["source_tiles"][k]
                    if not ycbcr and (not sub or th % (max(sub) * 8) or t_w % (max(sub) * 8)):
                        sub = [1, 1]
                    res = meta.get("source_resolution", [None] * n_levels)[k]
                    res_kw = {}
                    if res:
                        res_kw = {
                            "resolution": tuple(tuple(v) for v in res[0]),
                            "resolutionunit": res[1],
                        }
                    descs = meta.get("source_level_descriptions") or [
                        meta.get("source_description")
                    ]
                    desc = descs[k] if k < len(descs) else None
                    tw.write(
                        tiles(),
                        shape=(int(page.imagelength), int(page.imagewidth), 3),
                        dtype=np.uint8,
                        tile=(th, t_w),
                        compression="jpeg",
                        compressionargs={"outcolorspace": "YCBCR" if ycbcr else "RGB"},
                        photometric="rgb",
                        subsampling=tuple(sub) if sub else None,
                        jpegtables=tables,
                        subfiletype=subfiletypes[k] if subfiletypes else int(page.subfiletype),
                        description=desc,
                        metadata=None,
                        software=False,
                        **res_kw,
                    )
        tmp.replace(out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "levels": len(pages),
        "tiles": n_tiles,
        "tissue_tiles": n_tissue,
        "bytes": os.path.getsize(out_path),
    }
