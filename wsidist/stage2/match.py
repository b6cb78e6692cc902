"""Match the source's quality: the JPEG-XL distance a lossy source's own fidelity calls for.

A JPEG or JPEG 2000 slide already carries its codec's error. Rewriting it at JPEG-XL distance 1
spends bytes on reproducing those artefacts faithfully, so a JPEG 2000 slide can grow. With
``match_source`` the rewrite measures, on a sample of tissue tiles:

1. the source's own PSNR: the source pixels are re-encoded with the source's codec at its own
   setting (JPEG: the quality of its quantisation tables, its colour space and subsampling;
   JPEG 2000: each tile's stored byte count) and compared with what they encoded. The sample
   is read 5 px off the source's block grid, so the re-encode meets the pixels as it met the
   original scan (on the grid a re-encode would repeat the source's rounding and show almost
   no error);
2. the JPEG-XL PSNR against the source pixels at candidate distances,

and picks the coarsest distance whose PSNR is still at least the source's, never finer than
the configured distance. Other sources (uncompressed, lossless, DICOM) keep the configured
distance. Everything here runs inside the slide's task and reads a few dozen tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import imagecodecs
import numpy as np
import tifffile

from wsidist.io.slide import Slide
from wsidist.io.tiff_format import (
    APERIO_J2K_RGB,
    APERIO_J2K_YCBCR,
    COMPRESSION_JPEG,
    PHOTOMETRIC_RGB,
    level_pages,
)
from wsidist.stage2.glass import quality_sample, tissue_tiles

__all__ = ["SourceQuality", "match_distance", "source_quality"]

JPEG2000_CODES = (APERIO_J2K_YCBCR, APERIO_J2K_RGB, 34712)
GRID_SHIFT = 5  # px: off every 8-px JPEG block and every wavelet decimation grid
MAX_DISTANCE = 25.0
SAMPLE_TILES = 8
# the IJG standard luminance table (natural order): JPEG quality q scales it
_IJG_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
     56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
     104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
)  # fmt: skip
_ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27,
     20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58,
     59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
)  # fmt: skip

Box = tuple[int, int, int, int]  # x, y, w, h in level-0 px


@dataclass(frozen=True)
class SourceQuality:
    """The source codec's measured PSNR on a sample of tissue tiles, and what was measured."""

    psnr_db: float
    describe: str  # e.g. "JPEG q30" or "JPEG 2000 1.71 bpp"
    boxes: tuple[Box, ...]  # the sampled boxes (on the source grid), for the distance search


def psnr_of(sq_err: list[float]) -> float:
    mse = float(np.mean(sq_err)) if sq_err else 0.0
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0**2 / mse)


def source_quality(
    slide: Slide, mask: np.ndarray, downsample: float, *, tile: int = 256, n: int = SAMPLE_TILES
) -> SourceQuality | None:
    """The PSNR of the slide's own codec on ``n`` tissue tiles, or None when the source is not
    a JPEG or JPEG 2000 TIFF (nothing to match)."""
    try:
        with slide.source_file() as fh, tifffile.TiffFile(fh) as tif:
            page = level_pages(tif)[0]
            code = int(page.compression)
            if code == COMPRESSION_JPEG:
                tables = page.jpegtables or getattr(page, "jpegheader", None) or _first(tif, page)
                quality = jpeg_quality(tables)
                rgb = int(page.photometric) == PHOTOMETRIC_RGB
                sub = tuple(getattr(page, "subsampling", None) or (2, 2))
                boxes = _boxes(slide, mask, downsample, tile, n)
                kind = ("JPEG", quality, "RGB" if rgb else "YCBCR", (1, 1) if rgb else sub)
                targets = [0] * len(boxes)
            elif code in JPEG2000_CODES and page.is_tiled:
                boxes, targets = _j2k_boxes(slide, page, mask, downsample, n)
                kind = ("JPEG 2000", None, None, None)
            else:
                return None
    except (OSError, ValueError, IndexError, tifffile.TiffFileError):
        return None
    if not boxes:
        return None
    sq_err = []
    for (x, y, w, h), target in zip(boxes, targets):
        px = slide.read_level(0, x + GRID_SHIFT, y + GRID_SHIFT, w, h)
        decoded = _jpeg_again(px, *kind[1:]) if kind[0] == "JPEG" else _j2k_again(px, target)
        sq_err.append(float(((decoded.astype(np.float32) - px) ** 2).mean()))
    if kind[0] == "JPEG":
        describe = f"JPEG q{kind[1]}"
    else:
        bpp = 8.0 * sum(targets) / sum(w * h for _, _, w, h in boxes)
        describe = f"JPEG 2000 {bpp:.2f} bpp"
    return SourceQuality(psnr_of(sq_err), describe, tuple(boxes))


def match_distance(
    slide: Slide, source: SourceQuality, *, finest: float, effort: int, steps: int = 6
) -> float:
    """The coarsest JPEG-XL distance in [``finest``, 25] whose PSNR against the sampled source
    pixels is at least ``source.psnr_db``; ``finest`` when even that one is below it."""
    tiles = [slide.read_level(0, x, y, w, h) for x, y, w, h in source.boxes]

    def psnr_at(distance: float) -> float:
        errs = []
        for px in tiles:
            data = imagecodecs.jpegxl_encode(px, distance=distance, effort=effort, numthreads=1)
            out = imagecodecs.jpegxl_decode(data)[..., :3]
            errs.append(float(((out.astype(np.float32) - px) ** 2).mean()))
        return psnr_of(errs)

    if psnr_at(finest) <= source.psnr_db:
        return finest
    lo, hi = math.log(finest), math.log(MAX_DISTANCE)
    if psnr_at(MAX_DISTANCE) >= source.psnr_db:
        return MAX_DISTANCE
    for _ in range(steps):  # psnr_at(exp(lo)) >= target > psnr_at(exp(hi))
        mid = (lo + hi) / 2
        if psnr_at(math.exp(mid)) >= source.psnr_db:
            lo = mid
        else:
            hi = mid
    return round(math.exp(lo), 3)


def jpeg_quality(stream: bytes | None) -> int:
    """The IJG quality (1..100) whose luminance table is closest to the stream's first
    quantisation table (90 when the stream holds none)."""
    table = _first_dqt(stream or b"")
    if table is None:
        return 90
    base = _IJG_LUMA[_ZIGZAG]
    best = (math.inf, 90)
    for q in range(1, 101):
        scale = 5000 / q if q < 50 else 200 - 2 * q
        ijg = np.clip((base * scale + 50) // 100, 1, 255)
        best = min(best, (float(np.abs(ijg - table).sum()), q))
    return best[1]


# -- internals ---------------------------------------------------------------------------------
def _first(tif: tifffile.TiffFile, page: tifffile.TiffPage) -> bytes:
    index = next(i for i, n in enumerate(page.databytecounts) if n)
    tif.filehandle.seek(page.dataoffsets[index])
    return tif.filehandle.read(page.databytecounts[index])


def _first_dqt(data: bytes) -> np.ndarray | None:
    """The first quantisation table (zigzag order) in a JPEG stream or tables segment."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker == 0xDB:
            precision = data[i + 4] >> 4
            n = 128 if precision else 64
            raw = data[i + 5 : i + 5 + n]
            return np.frombuffer(raw, ">u2" if precision else "u1").astype(np.int64)
        if marker == 0xDA:
            return None
        i += 2 + length
    return None


def _fits(slide: Slide, x: int, y: int, w: int, h: int) -> bool:
    width, height = slide.dimensions
    return x + w + GRID_SHIFT <= width and y + h + GRID_SHIFT <= height


def _boxes(slide: Slide, mask: np.ndarray, ds: float, tile: int, n: int) -> list[Box]:
    width, height = slide.dimensions
    tissue = tissue_tiles(mask, ds, width, height, tile)
    boxes = []
    for r, c in np.argwhere(quality_sample(tissue, n)):
        x, y = int(c) * tile, int(r) * tile
        w, h = min(tile, width - x), min(tile, height - y)
        if _fits(slide, x, y, w, h):
            boxes.append((x, y, w, h))
    return boxes


def _j2k_boxes(
    slide: Slide, page: tifffile.TiffPage, mask: np.ndarray, ds: float, n: int
) -> tuple[list[Box], list[int]]:
    """Whole source tiles on tissue and their stored byte counts."""
    tw, th = page.tilewidth, page.tilelength
    width, height = slide.dimensions
    tissue = tissue_tiles(mask, ds, width, height, tw) if tw == th else None
    if tissue is None:
        return [], []
    cols = -(-width // tw)
    boxes, targets = [], []
    for r, c in np.argwhere(quality_sample(tissue, n)):
        x, y = int(c) * tw, int(r) * th
        count = int(page.databytecounts[int(r) * cols + int(c)])
        if count and _fits(slide, x, y, tw, th):
            boxes.append((x, y, tw, th))
            targets.append(count)
    return boxes, targets


def _jpeg_again(px: np.ndarray, quality: int, space: str, sub: tuple[int, int]) -> np.ndarray:
    data = imagecodecs.jpeg8_encode(
        px, level=quality, colorspace="RGB", outcolorspace=space, subsampling=sub
    )
    return imagecodecs.jpeg8_decode(data, colorspace=space, outcolorspace="RGB")


def _j2k_again(px: np.ndarray, target_bytes: int, steps: int = 7) -> np.ndarray:
    """``px`` through JPEG 2000 at the largest size not above ``target_bytes`` (OpenJPEG's
    ``level`` is a PSNR target; searched by bisection)."""
    lo, hi = 15.0, 60.0
    best = imagecodecs.jpeg2k_encode(px, level=lo)
    for _ in range(steps):
        mid = (lo + hi) / 2
        data = imagecodecs.jpeg2k_encode(px, level=mid)
        if len(data) <= target_bytes:
            lo, best = mid, data
        else:
            hi = mid
    return imagecodecs.jpeg2k_decode(best)[..., :3]
