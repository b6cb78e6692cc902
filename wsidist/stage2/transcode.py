"""Lossless JPEG → JPEG-XL transcode of a tiled JPEG TIFF pyramid, with glass removal, and back.

:func:`transcode_pyramid` keeps every level of a tiled JPEG TIFF (Aperio SVS, generic pyramidal
TIFF) exactly as stored: each tissue tile's JPEG stream (shared JPEGTables merged in) is
recompressed with ``jpegxl_encode_jpeg``, which keeps the DCT coefficients, so the JPEG bytes can
be rebuilt bit for bit; glass tiles are stored with zero bytes (readers see them as white). No
pixel is decoded or resampled.

Colour: libjxl assumes YCbCr, so ``jpegxl_decode`` of an Aperio RGB-JPEG tile gives wrong
colours. Pixels of a transcoded pyramid are read as ``jpegxl_decode_jpeg`` → ``jpeg8_decode``
with the source's JPEG colour space (see :func:`decode_transcoded_tile`).

:func:`restore_jpeg_tiff` rebuilds a JPEG TIFF whose tiles and JPEGTables are byte-identical to
the source's (glass tiles stay empty; associated images are not kept).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import tifffile

from wsidist.errors import PyramidError, SlideError
from wsidist.io.slide import Slide, open_slide
from wsidist.io.tiff_format import (
    COMPRESSION_JPEG,
    PHOTOMETRIC_RGB,
    PHOTOMETRIC_YCBCR,
    jpeg_colorspace,
    level_pages,
    merge_jpeg_tables,
    pyramid_description,
    resolution_kw,
)
from wsidist.io.upload import HeadLastWriter, local_head_last
from wsidist.runtime.parallel import bounded_map
from wsidist.stage2.glass import level_tissue, tissue_tiles
from wsidist.stage2.report import PyramidReport
from wsidist.stage2.tiff_stream import TiffHead, TileStream

__all__ = ["encode_tile_batch", "source_levels", "transcode_pyramid"]


def encode_tile_batch(
    source_path: str,
    page_index: int,
    indices: list[int],
    offsets: list[int],
    counts: list[int],
    tables: bytes | None,
) -> list[bytes]:
    """Read tiles ``indices`` (at ``offsets``/``counts``) of page ``page_index``, return JPEG-XL.

    Top-level and picklable: runs in threads, processes or Dask workers. Empty tiles stay empty.
    """
    out: list[bytes] = []
    fd = os.open(source_path, os.O_RDONLY)
    try:
        for idx, off, n in zip(indices, offsets, counts, strict=True):
            if n == 0:
                out.append(b"")
                continue
            data = os.pread(fd, n, off)
            if len(data) != n:
                raise PyramidError(
                    f"{source_path}: page {page_index} tile {idx}: short read "
                    f"({len(data)} of {n} bytes at offset {off})"
                )
            try:
                out.append(
                    imagecodecs.jpegxl_encode_jpeg(merge_jpeg_tables(data, tables), numthreads=1)
                )
            except Exception as exc:  # noqa: BLE001 — imagecodecs raises its own error types
                raise PyramidError(
                    f"{source_path}: page {page_index} tile {idx}: libjxl cannot transcode this "
                    f"JPEG stream losslessly: {exc}"
                ) from exc
    finally:
        os.close(fd)
    return out


# ------------------------------------------------------------------------------ source levels
def _compression_name(page: tifffile.TiffPage) -> str:
    comp = page.compression
    return f"{getattr(comp, 'name', comp)} ({int(comp)})"


def source_levels(tif: tifffile.TiffFile, path: str) -> list[tifffile.TiffPage]:
    """The pyramid's level pages; PyramidError unless all are tiled 8-bit RGB JPEG."""
    if not tif.series:
        raise PyramidError(f"cannot transcode {path}: the TIFF holds no images")
    pages = level_pages(tif)
    hint = "rewrite without --transcode to re-encode it"
    for k, page in enumerate(pages):
        if int(page.compression) != COMPRESSION_JPEG:
            raise PyramidError(
                f"cannot transcode {path}: level {k} is compressed with "
                f"{_compression_name(page)}, not JPEG; {hint}"
            )
        if not page.is_tiled:
            raise PyramidError(
                f"cannot transcode {path}: level {k} is stored in strips, not tiles; {hint}"
            )
        if page.samplesperpixel != 3 or page.bitspersample != 8 or page.planarconfig != 1:
            raise PyramidError(
                f"cannot transcode {path}: level {k} has {page.samplesperpixel} samples of "
                f"{page.bitspersample} bits (need 3 × 8-bit contiguous RGB); {hint}"
            )
        if int(page.photometric) not in (PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR):
            raise PyramidError(
                f"cannot transcode {path}: level {k} JPEG has photometric "
                f"{getattr(page.photometric, 'name', page.photometric)}; {hint}"
            )
        if int(page.photometric) != int(pages[0].photometric):
            raise PyramidError(f"cannot transcode {path}: levels differ in photometric")
        if page.tilewidth != page.tilelength:
            raise PyramidError(
                f"cannot transcode {path}: level {k} has non-square "
                f"{page.tilewidth}×{page.tilelength} tiles"
            )
    return pages


def _resolution_from_mpp(mpp: float | None, downsample: float) -> dict[str, Any]:
    if not mpp:
        return {}
    ppcm = 1e4 / (mpp * downsample)
    return {"resolution": (ppcm, ppcm), "resolutionunit": "CENTIMETER"}


def _subsampling(page: tifffile.TiffPage) -> list[int] | None:
    tag = page.tags.get("YCbCrSubSampling")
    return [int(v) for v in tag.value] if tag is not None else None


# ------------------------------------------------------------------------------ transcode
def transcode_pyramid(
    source_path: str,
    mask: np.ndarray,
    downsample_of_mask: float,
    out_path: str | Path,
    *,
    margin_px0: float,
    submit: Callable[..., Future] | None = None,
    batch_tiles: int = 64,
    description_extra: dict | None = None,
    max_in_flight: int | None = None,
    slide: Slide | None = None,
    output: Callable[[int], contextlib.AbstractContextManager[HeadLastWriter]] | None = None,
) -> PyramidReport:
    """Transcode the JPEG tiles of ``source_path`` to lossless JPEG-XL, dropping glass tiles.

    ``mask`` (bool, level-0 extent at ``downsample_of_mask``) classifies the tiles of every
    level (box grown by ``margin_px0`` level-0 px). Tissue tiles are encoded in batches of
    ``batch_tiles`` by :func:`encode_tile_batch` via ``submit(fn, *args)`` (a Dask client's or an
    executor's; default: a local thread pool), with at most ``max_in_flight`` batches pending
    (default 2 × CPUs). Raises PyramidError when the source is not a tiled JPEG TIFF or the mask
    has no tissue. ``slide``, the source already open, supplies vendor, mpp and objective
    (otherwise the source is opened once more to read them). The file is written head last
    (:mod:`wsidist.stage2.tiff_stream`): to ``out_path`` through a temporary name, or with
    ``output`` (``output(head_bytes)``, e.g. :func:`~wsidist.io.upload.open_head_last`) to the
    writer it opens, an S3 multipart upload with no local copy (``out_path`` only names it).
    """
    t0 = time.perf_counter()
    source_path, shown = os.fspath(source_path), os.fspath(out_path)
    if batch_tiles < 1:
        raise PyramidError(f"batch_tiles must be >= 1, got {batch_tiles}")
    try:
        tif = tifffile.TiffFile(source_path)
    except Exception as exc:  # noqa: BLE001 — TiffFileError, OSError, ValueError, …
        raise PyramidError(f"cannot transcode {source_path}: not a readable TIFF: {exc}") from exc
    with tif:
        pages = source_levels(tif, source_path)
        base = pages[0]
        dims = [(int(p.imagewidth), int(p.imagelength)) for p in pages]
        tissue0 = tissue_tiles(
            mask, downsample_of_mask, dims[0][0], dims[0][1], int(base.tilewidth), margin_px0
        )
        if not tissue0.any():
            raise PyramidError(
                f"{source_path}: the tissue mask has no tissue in any level-0 tile; "
                "refusing to write an empty pyramid"
            )
        tissue = [tissue0] + [
            level_tissue(
                mask, downsample_of_mask, dims[0][0], dims[k], int(p.tilewidth), margin_px0
            )
            for k, p in enumerate(pages[1:], start=1)
        ]
        levels = []
        for k, (page, keep) in enumerate(zip(pages, tissue, strict=True)):
            offsets = np.asarray(page.dataoffsets, np.int64)
            counts = np.asarray(page.databytecounts, np.int64)
            if offsets.size != keep.size:
                raise PyramidError(
                    f"cannot transcode {source_path}: level {k} has {offsets.size} tiles, "
                    f"expected {keep.size}"
                )
            levels.append((page.index, offsets, counts, page.jpegtables, keep.ravel()))
        meta = _source_meta(source_path, pages, tif, slide)

    desc: dict[str, Any] = {
        "transcode": True,
        **meta,
        "codec": "jpegxl",
        "glass": "empty",
        "margin_px0": float(margin_px0),
        **(description_extra or {}),
    }
    own_pool = None
    if submit is None:
        own_pool = ThreadPoolExecutor(os.cpu_count() or 1)
        submit = own_pool.submit
    window = max_in_flight or 2 * (os.cpu_count() or 1)
    stream = _BatchStream(source_path, levels, submit, batch_tiles, window)
    source_bytes = os.path.getsize(source_path)

    def write_levels(tw: tifffile.TiffWriter, tiles_of: Callable[[int], Iterator[bytes]]) -> None:
        for k, page in enumerate(pages):
            lw, lh = dims[k]
            t = int(page.tilewidth)
            res = resolution_kw(page) or _resolution_from_mpp(
                meta["mpp"], meta["level_downsamples"][k]
            )
            tw.write(
                tiles_of(k), shape=(lh, lw, 3), dtype=np.uint8, tile=(t, t),
                compression="jpegxl", photometric="rgb", subfiletype=1 if k else 0,
                description=pyramid_description(desc) if k == 0 else None, metadata=None,
                software="wsidist", **res,
            )  # fmt: skip

    head = TiffHead(write_levels, [lv[4].size for lv in levels], bigtiff=source_bytes > 2**31)
    open_out = output or functools.partial(local_head_last, shown)
    try:
        with open_out(head.size) as out:
            tiles = TileStream(head, out)
            for k in range(len(pages)):
                for i, data in enumerate(stream.level_tiles(k)):
                    tiles.add(k, i, data)
            out_bytes = tiles.finish()
    finally:
        stream.cancel()
        if own_pool is not None:
            own_pool.shutdown(wait=True, cancel_futures=True)

    n = int(tissue[0].size)
    n_tissue = int(tissue[0].sum())
    return PyramidReport(
        path=shown,
        codec="jpegxl",
        glass="empty",
        source_bytes=source_bytes,
        output_bytes=out_bytes,
        reduction_pct=100.0 * (1 - out_bytes / source_bytes),
        n_tiles=n,
        n_tissue_tiles=n_tissue,
        glass_fraction=1.0 - n_tissue / n,
        level_dimensions=tuple(dims),
        psnr_db=None,
        psnr_min_db=None,
        ssim=None,
        ssim_min=None,
        quality_tiles=0,
        seconds=time.perf_counter() - t0,
        lossless=True,
        levels_from="source",
    )


def _source_meta(
    path: str, pages: list[tifffile.TiffPage], tif: tifffile.TiffFile, slide: Slide | None
) -> dict:
    """Everything :func:`restore_jpeg_tiff` and readers need about the source, JSON-ready."""
    vendor = mpp = objective = None
    try:
        with contextlib.nullcontext(slide) if slide else open_slide(path) as opened:
            vendor, mpp, objective = opened.vendor, opened.mpp_x, opened.objective_power
    except SlideError:
        pass
    base = pages[0]
    w0 = int(base.imagewidth)
    return {
        "source": path,
        "vendor": vendor,
        "mpp": mpp,
        "objective_power": objective,
        "source_photometric": "rgb" if int(base.photometric) == PHOTOMETRIC_RGB else "ycbcr",
        "jpeg_colorspace": jpeg_colorspace(base),
        "source_description": base.description or None,
        "source_level_descriptions": [p.description or None for p in pages],
        "source_subsampling": [_subsampling(p) for p in pages],
        "source_resolution": [
            [list(v) if isinstance(v, tuple) else v for v in resolution_kw(p).values()] or None
            for p in pages
        ],
        "source_subfiletypes": [int(p.subfiletype) for p in pages],
        "source_tiles": [[int(p.tilelength), int(p.tilewidth)] for p in pages],
        "jpegtables": [
            base64.b64encode(p.jpegtables).decode("ascii") if p.jpegtables else None for p in pages
        ],
        "level_downsamples": [w0 / int(p.imagewidth) for p in pages],
    }


class _BatchStream:
    """Tissue tiles of all levels, encoded in batches with a bounded window of pending work."""

    def __init__(
        self,
        path: str,
        levels: list[tuple[int, np.ndarray, np.ndarray, bytes | None, np.ndarray]],
        submit: Callable[..., Future],
        batch_tiles: int,
        window: int,
    ) -> None:
        self._levels = levels
        self._results = bounded_map(
            submit, encode_tile_batch, self._batches(path, batch_tiles), window, ordered=True
        )

    def _batches(self, path: str, batch: int) -> Iterator[tuple]:
        for page_index, offsets, counts, tables, keep in self._levels:
            idx = np.flatnonzero(keep & (counts > 0))
            for i in range(0, idx.size, batch):
                part = idx[i : i + batch]
                yield (
                    path,
                    int(page_index),
                    part.tolist(),
                    offsets[part].tolist(),
                    counts[part].tolist(),
                    tables,
                )

    def level_tiles(self, k: int) -> Iterator[bytes]:
        """Encoded tiles of level ``k`` in row-major order (glass and empty tiles: b"")."""
        _, _, counts, _, keep = self._levels[k]
        batch: list[bytes] = []
        pos = 0
        for i in range(keep.size):
            if not keep[i] or counts[i] == 0:
                yield b""
                continue
            if pos == len(batch):
                batch, pos = next(self._results), 0
            yield batch[pos]
            pos += 1

    def cancel(self) -> None:
        self._results.close()
