"""Stage 2a: rewrite a slide as a glass-removed tiled pyramidal TIFF (JPEG-XL or JPEG tiles).

:func:`write_pyramid` classifies every level-0 output tile as tissue or glass from a stage-1
tissue mask (dilated by a margin), then writes level 0 and its reduced levels (downsample 2
each) as top-level tiled pages, one IFD per level. Tiles are read from the source, encoded and
handed to tifffile as pre-encoded bytes from a generator, one band of tiles at a time; glass
tiles are stored with zero bytes (``glass="empty"``: readers see them as missing, i.e. white),
as one shared encoded white tile (``"white"``) or with their original pixels (``"keep"``).

Memory: one band of level-0 tiles plus the reduced levels, which are held in memory when small
and in a temporary memory-mapped file otherwise (level 1 is 1/4 of level 0).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import tifffile

from wsidist.errors import WsidistError
from wsidist.slide import Slide

__all__ = ["PyramidError", "PyramidReport", "tissue_tiles", "write_pyramid"]

CODECS = ("jpegxl", "jpeg")
GLASS_MODES = ("empty", "white", "keep")
_WHITE = 255
_IN_MEMORY_BYTES = 256 * 2**20  # reduced levels larger than this go to a temporary memmap
_PSNR_SAMPLES = 64


class PyramidError(WsidistError):
    """The pyramid cannot be written (bad arguments, a mask without tissue, …)."""


@dataclass(frozen=True)
class PyramidReport:
    path: str
    codec: str
    glass: str
    source_bytes: int
    output_bytes: int
    reduction_pct: float  # 100 * (1 - output / source)
    n_tiles: int  # level-0 tiles
    n_tissue_tiles: int
    glass_fraction: float  # fraction of level-0 tiles classified as glass
    level_dimensions: tuple[tuple[int, int], ...]
    psnr_db: float | None  # over sampled tissue tiles (pooled MSE); inf when lossless
    psnr_min_db: float | None  # worst sampled tile
    psnr_tiles: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["level_dimensions"] = [list(wh) for wh in self.level_dimensions]
        return d


# ------------------------------------------------------------------------------ tile classes
def tissue_tiles(
    mask: np.ndarray,
    downsample: float,
    width: int,
    height: int,
    tile: int,
    margin_px0: float = 0.0,
) -> np.ndarray:
    """bool (rows, cols): level-0 tile (r, c) is tissue if any mask pixel in its box is set.

    The tile box [c*tile, (c+1)*tile) × [r*tile, (r+1)*tile) (level-0 px) is grown by
    ``margin_px0`` on every side; mask pixel (i, j) covers [j*ds, (j+1)*ds) × [i*ds, (i+1)*ds).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise PyramidError(f"tissue mask must be 2-D, got shape {mask.shape}")
    if not downsample > 0:
        raise PyramidError(f"mask downsample must be > 0, got {downsample}")
    mh, mw = mask.shape
    exp_w, exp_h = math.ceil(width / downsample), math.ceil(height / downsample)
    if abs(mw - exp_w) > 1 or abs(mh - exp_h) > 1:
        raise PyramidError(
            f"tissue mask shape {mask.shape} does not match a {width}×{height} slide at "
            f"downsample {downsample:g} (expected about ({exp_h}, {exp_w}))"
        )
    sat = np.zeros((mh + 1, mw + 1), np.int64)
    np.cumsum(np.cumsum(mask, 0, dtype=np.int64), 1, out=sat[1:, 1:])

    def bounds(n_tiles: int, n_mask: int) -> tuple[np.ndarray, np.ndarray]:
        start = np.arange(n_tiles) * tile - margin_px0
        stop = (np.arange(n_tiles) + 1) * tile + margin_px0
        lo = np.clip(np.floor(start / downsample), 0, n_mask).astype(np.int64)
        hi = np.clip(np.ceil(stop / downsample), 0, n_mask).astype(np.int64)
        return lo, hi

    x0, x1 = bounds(math.ceil(width / tile), mw)
    y0, y1 = bounds(math.ceil(height / tile), mh)
    count = (
        sat[y1[:, None], x1[None, :]]
        - sat[y0[:, None], x1[None, :]]
        - sat[y1[:, None], x0[None, :]]
        + sat[y0[:, None], x0[None, :]]
    )
    return count > 0


def _any_reduce(a: np.ndarray, f: int) -> np.ndarray:
    h, w = a.shape
    oh, ow = -(-h // f), -(-w // f)
    p = np.zeros((oh * f, ow * f), bool)
    p[:h, :w] = a
    return p.reshape(oh, f, ow, f).any(axis=(1, 3))


def _reduce(a: np.ndarray, f: int) -> np.ndarray:
    """Area average by f×f blocks; partial edge blocks average their valid pixels."""
    h, w = a.shape[:2]
    oh, ow = -(-h // f), -(-w // f)
    if (h, w) != (oh * f, ow * f):
        a = np.pad(a, ((0, oh * f - h), (0, ow * f - w), (0, 0)))
    s = a.reshape(oh, f, ow, f, 3).sum(axis=(1, 3), dtype=np.uint32)
    cy = np.minimum(f, h - np.arange(oh) * f)
    cx = np.minimum(f, w - np.arange(ow) * f)
    n = (cy[:, None] * cx[None, :])[..., None].astype(np.uint32)
    return ((s + n // 2) // n).astype(np.uint8)


# ------------------------------------------------------------------------------ codecs
def _encoder(codec: str, distance: float, effort: int, lossless: bool, jpeg_quality: int):
    if codec == "jpegxl":
        if lossless:
            kw: dict[str, Any] = {"lossless": True, "effort": effort}
        else:
            kw = {"distance": float(distance), "effort": effort}

        def encode(tile: np.ndarray) -> bytes:
            return imagecodecs.jpegxl_encode(tile, numthreads=1, **kw)

        def decode(data: bytes) -> np.ndarray:
            return imagecodecs.jpegxl_decode(data)

        write_kw = {"compression": "jpegxl", "compressionargs": kw, "photometric": "rgb"}
        return encode, decode, write_kw
    # Same stream tifffile writes for compression="jpeg" on RGB: YCbCr, 2×2 subsampling.
    jkw = {
        "level": int(jpeg_quality),
        "colorspace": "RGB",
        "outcolorspace": "YCBCR",
        "subsampling": (2, 2),
    }

    def encode(tile: np.ndarray) -> bytes:
        return imagecodecs.jpeg8_encode(tile, **jkw)

    def decode(data: bytes) -> np.ndarray:
        return imagecodecs.jpeg8_decode(data, colorspace="YCBCR", outcolorspace="RGB")

    write_kw = {
        "compression": "jpeg",
        "compressionargs": {"level": int(jpeg_quality)},
        "photometric": "rgb",
        "subsampling": (2, 2),
    }
    return encode, decode, write_kw


def _psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0**2 / mse)


# ------------------------------------------------------------------------------ writer
def _alloc(shape: tuple[int, ...], tmpdir: str) -> np.ndarray:
    nbytes = math.prod(shape)
    if nbytes <= _IN_MEMORY_BYTES:
        return np.full(shape, _WHITE, np.uint8)
    fd, name = tempfile.mkstemp(suffix=".level", dir=tmpdir)
    os.close(fd)
    arr = np.memmap(name, dtype=np.uint8, mode="w+", shape=shape)
    arr[:] = _WHITE
    return arr


def write_pyramid(
    slide: Slide,
    mask: np.ndarray,
    downsample_of_mask: float,
    path: str | os.PathLike[str],
    *,
    codec: str = "jpegxl",
    distance: float = 1.0,
    effort: int = 3,
    lossless: bool = False,
    jpeg_quality: int = 90,
    glass: str = "empty",
    margin_um: float = 50.0,
    margin_px0: float | None = None,
    tile: int = 256,
    mpp: float | None = None,
    level_factor: int = 2,
    workers: int | None = None,
) -> PyramidReport:
    """Write ``slide`` as a glass-removed tiled pyramidal TIFF at ``path``; return a report.

    ``mask`` is the stage-1 tissue mask (bool, ``ceil(H/ds)`` × ``ceil(W/ds)``) at
    ``downsample_of_mask``. A level-0 tile is tissue when the mask is set anywhere in its box
    grown by ``margin_um`` (with ``mpp`` or the slide's mpp) or by ``margin_px0`` level-0 px
    (default when the mpp is unknown: 64 px; when given it wins over ``margin_um``).
    Reduced levels (downsample ``level_factor`` each, area average) follow until the level
    fits in one tile; a reduced tile is glass when all level-0 tiles under it are.
    """
    t0 = time.perf_counter()
    if codec not in CODECS:
        raise PyramidError(f"codec must be one of {CODECS}, got {codec!r}")
    if glass not in GLASS_MODES:
        raise PyramidError(f"glass must be one of {GLASS_MODES}, got {glass!r}")
    if tile < 16 or tile % 16:
        raise PyramidError(f"tile must be a positive multiple of 16, got {tile}")
    if level_factor not in (2, 4):
        raise PyramidError(f"level_factor must be 2 or 4, got {level_factor}")
    if codec == "jpegxl" and not lossless and not 0.0 < distance <= 25.0:
        raise PyramidError(f"JPEG-XL distance must be in (0, 25], got {distance}")
    if codec == "jpeg" and not 1 <= jpeg_quality <= 100:
        raise PyramidError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    path = Path(path)
    width, height = slide.dimensions
    mpp = mpp or slide.mpp_x
    if margin_px0 is None:
        margin_px0 = margin_um / mpp if mpp else 64.0
    tissue0 = tissue_tiles(mask, downsample_of_mask, width, height, tile, margin_px0)
    if not tissue0.any():
        raise PyramidError(
            f"{slide.url}: the tissue mask has no tissue; refusing to write an empty pyramid"
        )
    keep0 = np.ones_like(tissue0) if glass == "keep" else tissue0

    encode, decode, write_kw = _encoder(codec, distance, effort, lossless, jpeg_quality)
    white_tile = np.full((tile, tile, 3), _WHITE, np.uint8)
    glass_bytes = b"" if glass == "empty" else encode(white_tile)

    # level geometry: downsample level_factor each until the level fits in one tile
    dims = [(width, height)]
    while max(dims[-1]) > tile:
        w, h = dims[-1]
        dims.append((-(-w // level_factor), -(-h // level_factor)))
    keeps = [keep0]
    for _ in dims[1:]:
        keeps.append(_any_reduce(keeps[-1], level_factor))

    rows, cols = tissue0.shape
    tissue_idx = np.flatnonzero(tissue0)
    step = max(1, len(tissue_idx) // _PSNR_SAMPLES)
    sample = set(tissue_idx[::step][:_PSNR_SAMPLES].tolist())
    sq_err: list[float] = []
    workers = workers or min(8, os.cpu_count() or 1)

    desc = {
        "wsidist": "pyramid",
        "source": slide.url,
        "vendor": slide.vendor,
        "mpp": mpp,
        "objective_power": slide.objective_power,
        "codec": codec,
        "glass": glass,
        "tile_px": tile,
        "margin_px0": margin_px0,
        "level_downsamples": [width / w for w, _ in dims],
    }

    def res_kw(k: int) -> dict[str, Any]:
        if not mpp:
            return {}
        ppcm = 1e4 / (mpp * width / dims[k][0])
        ppcm_y = 1e4 / (mpp * height / dims[k][1])
        return {"resolution": (ppcm, ppcm_y), "resolutionunit": "CENTIMETER"}

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".pyramid-") as tmpdir:
        below: list[np.ndarray] = []  # level 1 (filled during the level-0 pass)
        if len(dims) > 1:
            below.append(_alloc((dims[1][1], dims[1][0], 3), tmpdir))
        f = level_factor

        def level0_tile(idx: int) -> tuple[np.ndarray, bytes]:
            r, c = divmod(idx, cols)
            if not keep0[r, c]:
                return white_tile, glass_bytes
            px = slide.read_level(0, c * tile, r * tile, tile, tile)
            if c * tile + tile > width or r * tile + tile > height:  # pad edges with white
                px = px.copy()
                px[max(0, height - r * tile) :] = _WHITE
                px[:, max(0, width - c * tile) :] = _WHITE
            data = encode(px)
            if idx in sample:
                err = (decode(data)[:tile, :tile, :3].astype(np.float32) - px) ** 2
                sq_err.append(float(err.mean()))
            return px, data

        def level0_tiles(pool: ThreadPoolExecutor) -> Iterator[bytes]:
            for r in range(rows):
                band = list(pool.map(level0_tile, range(r * cols, (r + 1) * cols)))
                if below:
                    y_end = min(height, (r + 1) * tile)
                    strip = np.concatenate([px for px, _ in band], axis=1)
                    strip = strip[: y_end - r * tile, :width]
                    y1 = r * tile // f
                    red = _reduce(strip, f)
                    below[0][y1 : y1 + red.shape[0]] = red
                for _, data in band:
                    yield data

        def level_tiles(k: int, pool: ThreadPoolExecutor) -> Iterator[bytes]:
            arr = below[k - 1]
            keep = keeps[k]

            def one(idx: int) -> bytes:
                r, c = divmod(idx, keep.shape[1])
                if not keep[r, c]:
                    return glass_bytes
                px = np.full((tile, tile, 3), _WHITE, np.uint8)
                part = arr[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
                px[: part.shape[0], : part.shape[1]] = part
                return encode(px)

            for r in range(keep.shape[0]):
                yield from pool.map(one, range(r * keep.shape[1], (r + 1) * keep.shape[1]))

        def build_next(k: int) -> None:
            """Level k + 1 from level k (k ≥ 1), band by band."""
            arr, (lw, lh) = below[k - 1], dims[k]
            nxt = _alloc((dims[k + 1][1], dims[k + 1][0], 3), tmpdir)
            band = tile * f
            for y in range(0, lh, band):
                red = _reduce(np.asarray(arr[y : y + band, :lw]), f)
                nxt[y // f : y // f + red.shape[0]] = red
            below.append(nxt)

        tmp_path = path.with_name(path.name + ".part")
        bigtiff = width * height * 3 > 2**31
        try:
            with (
                ThreadPoolExecutor(workers) as pool,
                tifffile.TiffWriter(tmp_path, bigtiff=bigtiff) as tw,
            ):
                for k, (lw, lh) in enumerate(dims):
                    tiles = level0_tiles(pool) if k == 0 else level_tiles(k, pool)
                    tw.write(
                        tiles,
                        shape=(lh, lw, 3),
                        dtype=np.uint8,
                        tile=(tile, tile),
                        subfiletype=1 if k else 0,
                        description=json.dumps(desc) if k == 0 else None,
                        metadata=None,
                        software="wsidist",
                        **res_kw(k),
                        **write_kw,
                    )
                    # (tifffile closes the generator after the last tile: no work after it)
                    if 1 <= k < len(dims) - 1:
                        build_next(k)
            tmp_path.replace(path)
        finally:
            below.clear()
            if tmp_path.exists():
                tmp_path.unlink()

    source_bytes = os.path.getsize(slide.path) if os.path.exists(slide.path) else 0
    out_bytes = os.path.getsize(path)
    n = int(tissue0.size)
    psnr = psnr_min = None
    if sq_err:
        psnr = _psnr(float(np.mean(sq_err)))
        psnr_min = _psnr(max(sq_err))
    return PyramidReport(
        path=str(path),
        codec=codec,
        glass=glass,
        source_bytes=source_bytes,
        output_bytes=out_bytes,
        reduction_pct=100.0 * (1 - out_bytes / source_bytes) if source_bytes else math.nan,
        n_tiles=n,
        n_tissue_tiles=int(tissue0.sum()),
        glass_fraction=1.0 - float(tissue0.sum()) / n,
        level_dimensions=tuple(dims),
        psnr_db=psnr,
        psnr_min_db=psnr_min,
        psnr_tiles=len(sq_err),
        seconds=time.perf_counter() - t0,
    )
