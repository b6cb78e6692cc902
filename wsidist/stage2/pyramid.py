"""Stage 2a: rewrite a slide as a glass-removed tiled pyramidal TIFF (JPEG-XL or JPEG tiles).

:func:`write_pyramid` classifies every level-0 output tile as tissue or glass from a stage-1
tissue mask (dilated by a margin), then writes level 0 and its reduced levels (downsample 2
each, area averages of level 0) as top-level tiled pages, one IFD per level. Glass tiles are
stored with zero bytes (``glass="empty"``: readers see them as missing, i.e. white), as one
shared encoded white tile (``"white"``) or with their original pixels (``"keep"``).

Work is split into blocks of tiles (:mod:`wsidist.stage2.blocks`), encoded in parallel on Dask
workers or threads; this process is the one writer: it writes each block's tiles as blocks
finish (in block order, so the file is the same every run) after a head of every IFD, written
last (:mod:`wsidist.stage2.tiff_stream`), to a local file or an S3 multipart upload whose part 1
is the head (:mod:`wsidist.io.upload`): no spool, no local copy of the output.

Memory: the blocks in flight (about 12 MB of pixels each), the head and tile index, one upload
part (16 MiB) plus up to 5 MiB held for part 1, and the first level
no block encodes (1/4**(levels+1) of level 0; a temporary memory map when large).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from wsidist import layout
from wsidist.errors import PyramidError
from wsidist.imaging import TileCodec, any_reduce, area_reduce
from wsidist.io.slide import Slide
from wsidist.io.tiff_format import pyramid_description
from wsidist.io.upload import HeadLastWriter, local_head_last
from wsidist.runtime.parallel import Submit, bounded_map
from wsidist.stage2.blocks import WHITE, BlockPlan, encode_block, padded_tile, psnr
from wsidist.stage2.glass import quality_sample, tissue_tiles
from wsidist.stage2.report import PyramidReport
from wsidist.stage2.tiff_stream import TiffHead, TileStream

__all__ = ["PyramidError", "PyramidOptions", "PyramidReport", "tissue_tiles", "write_pyramid"]

CODECS = ("jpegxl", "jpeg")
GLASS_MODES = ("empty", "white", "keep")
_IN_MEMORY_BYTES = 256 * 2**20  # level images larger than this go to a temporary memmap


@dataclass(frozen=True)
class PyramidOptions:
    """How :func:`write_pyramid` encodes a slide; checked when built (PyramidError).

    A level-0 tile is tissue when the mask is set anywhere in its box grown by ``margin_px0``
    level-0 px, or when that is None by ``margin_um`` (with ``mpp`` or the slide's mpp; 64 px
    when the mpp is unknown). Reduced levels have downsample ``level_factor`` each; blocks hold
    ``level_factor ** block_levels`` tiles a side (default: about 2048 level-0 px).
    ``quality_samples`` level-0 tissue tiles are measured for PSNR and SSIM.
    """

    codec: str = "jpegxl"
    distance: float = 1.0
    effort: int = 3
    lossless: bool = False
    jpeg_quality: int = 90
    glass: str = "empty"
    margin_um: float = 50.0
    margin_px0: float | None = None
    tile: int = 256
    mpp: float | None = None
    level_factor: int = 2
    block_levels: int | None = None
    quality_samples: int = 64

    def __post_init__(self) -> None:
        if self.codec not in CODECS:
            raise PyramidError(f"codec must be one of {CODECS}, got {self.codec!r}")
        if self.glass not in GLASS_MODES:
            raise PyramidError(f"glass must be one of {GLASS_MODES}, got {self.glass!r}")
        if self.tile < 16 or self.tile % 16:
            raise PyramidError(f"tile must be a positive multiple of 16, got {self.tile}")
        if self.level_factor not in (2, 4):
            raise PyramidError(f"level_factor must be 2 or 4, got {self.level_factor}")
        if self.codec == "jpegxl" and not self.lossless and not 0.0 < self.distance <= 25.0:
            raise PyramidError(f"JPEG-XL distance must be in (0, 25], got {self.distance}")
        if self.codec == "jpeg" and not 1 <= self.jpeg_quality <= 100:
            raise PyramidError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")

    @property
    def tile_codec(self) -> TileCodec:
        return TileCodec(self.codec, self.distance, self.effort, self.lossless, self.jpeg_quality)

    @property
    def is_lossless(self) -> bool:
        return self.codec == "jpegxl" and self.lossless

    def margin_for(self, mpp: float | None) -> float:
        """The tissue margin in level-0 px for a slide of ``mpp``."""
        if self.margin_px0 is not None:
            return self.margin_px0
        return self.margin_um / mpp if mpp else 64.0


# ------------------------------------------------------------------------------ writer
def write_pyramid(
    slide: Slide,
    mask: np.ndarray,
    downsample_of_mask: float,
    path: str | os.PathLike[str],
    options: PyramidOptions | None = None,
    *,
    submit: Submit | None = None,
    workers: int | None = None,
    description_extra: dict[str, Any] | None = None,
    on_block: Callable[[int, int], None] | None = None,
    output: Callable[[int], contextlib.AbstractContextManager[HeadLastWriter]] | None = None,
) -> PyramidReport:
    """Write ``slide`` as a glass-removed tiled pyramidal TIFF at ``path``; return a report.

    ``mask`` is the stage-1 tissue mask (bool, ``ceil(H/ds)`` × ``ceil(W/ds)``) at
    ``downsample_of_mask``; ``options`` say how tiles are classified and encoded (defaults:
    JPEG-XL distance 1, glass stored empty, 50 µm margin). Reduced levels (area averages of
    level 0) follow until the level fits in one tile; a reduced tile is glass when all level-0
    tiles under it are.

    Blocks of tiles are encoded in parallel through ``submit`` (``Client.submit`` of a Dask
    client, or an executor's ``submit``; default: a thread pool of ``workers``), at most
    ``2 * workers`` at a time; this process writes their tiles as they come.
    ``on_block(done, total)`` is called as each block of tiles is written. With ``output``
    (``output(head_bytes)``, e.g. :func:`~wsidist.io.upload.open_head_last`: a multipart
    upload), the file goes to the head-last writer it opens instead (``path`` then only names
    it); otherwise to ``path`` through a temporary name.
    """
    t0 = time.perf_counter()
    opts = options or PyramidOptions()
    codec, glass, tile, level_factor = opts.codec, opts.glass, opts.tile, opts.level_factor
    shown, path = os.fspath(path), Path(path)
    width, height = slide.dimensions
    mpp = opts.mpp or slide.mpp_x
    margin_px0 = opts.margin_for(mpp)
    tissue0 = tissue_tiles(mask, downsample_of_mask, width, height, tile, margin_px0)
    if not tissue0.any():
        raise PyramidError(
            f"{slide.url}: the tissue mask has no tissue; refusing to write an empty pyramid"
        )
    keep0 = np.ones_like(tissue0) if glass == "keep" else tissue0
    tile_codec = opts.tile_codec
    glass_bytes = b"" if glass == "empty" else tile_codec.encode(_white(tile))

    dims, m = _levels_and_blocks(width, height, opts)
    keeps = [keep0]
    for _ in dims[1:]:
        keeps.append(any_reduce(keeps[-1], level_factor))
    plan = BlockPlan(slide.ref, width, height, tile, level_factor, m, len(dims) > m + 1, tile_codec)
    workers = workers or os.cpu_count() or 1
    desc = {
        "source": slide.url,
        "vendor": slide.vendor,
        "mpp": mpp,
        "objective_power": slide.objective_power,
        "codec": codec,
        "lossless": opts.is_lossless,
        "glass": glass,
        "tile_px": tile,
        "margin_px0": margin_px0,
        "level_downsamples": [width / w for w, _ in dims],
        "levels_from": "level0",
        **(description_extra or {}),
    }

    write_kw = {
        "dtype": np.uint8, "tile": (tile, tile), "metadata": None, "software": "wsidist",
        **tile_codec.write_kw,
    }  # fmt: skip

    def write_levels(tw: tifffile.TiffWriter, tiles_of: Callable[[int], Iterator[bytes]]) -> None:
        for k, (lw, lh) in enumerate(dims):
            tw.write(
                tiles_of(k), shape=(lh, lw, 3), subfiletype=1 if k else 0,
                description=pyramid_description(desc) if k == 0 else None,
                **_resolution(mpp, width, height, lw, lh), **write_kw,
            )  # fmt: skip

    bigtiff = width * height * 3 > 2**31
    head = TiffHead(write_levels, [int(k.size) for k in keeps], bigtiff=bigtiff)
    if all(k.all() for k in keeps):
        glass_bytes = b""  # no glass tile: none written
    open_out = output or functools.partial(local_head_last, os.fspath(path))
    scratch = str(path.parent) if output is None else None  # memory maps of huge top levels
    with (
        tempfile.TemporaryDirectory(dir=scratch, prefix=layout.PYRAMID_SPOOL_PREFIX) as tmpdir,
        ThreadPoolExecutor(workers) as pool,
        open_out(head.size) as out,
    ):
        stream = TileStream(head, out, glass_bytes)

        def put(level: int, r: int, c: int, data: bytes) -> None:
            stream.add(level, r * keeps[level].shape[1] + c, data)

        top = _alloc((dims[m + 1][1], dims[m + 1][0], 3), tmpdir) if plan.reduce_once_more else None
        stats = _encode_blocks(plan, keep0, quality_sample(tissue0, opts.quality_samples), submit or pool.submit,
                               2 * workers, put, top, on_block)  # fmt: skip
        level_arr = top
        for k in range(m + 1, len(dims)):  # the top levels, from the blocks' reduced pieces
            for r, c, data in _array_tiles(level_arr, keeps[k], tile, tile_codec, pool):
                put(k, r, c, data)
            if k + 1 < len(dims):
                level_arr = _reduce_array(level_arr, level_factor, tile, tmpdir)
        out_bytes = stream.finish()
        del top, level_arr  # memory maps closed before their folder goes

    source_bytes = slide.file_bytes or (
        os.path.getsize(slide.path) if os.path.exists(slide.path) else 0
    )
    n = int(tissue0.size)
    sq_err, ssim = stats["sq_err"], stats["ssim"]
    return PyramidReport(
        path=shown,
        codec=codec,
        glass=glass,
        source_bytes=source_bytes,
        output_bytes=out_bytes,
        reduction_pct=100.0 * (1 - out_bytes / source_bytes) if source_bytes else math.nan,
        n_tiles=n,
        n_tissue_tiles=int(tissue0.sum()),
        glass_fraction=1.0 - float(tissue0.sum()) / n,
        level_dimensions=tuple(dims),
        psnr_db=psnr(float(np.mean(sq_err))) if sq_err else None,
        psnr_min_db=psnr(max(sq_err)) if sq_err else None,
        ssim=float(np.mean(ssim)) if ssim else None,
        ssim_min=float(min(ssim)) if ssim else None,
        quality_tiles=len(sq_err),
        seconds=time.perf_counter() - t0,
        lossless=opts.is_lossless,
        levels_from="level0",
        worker_seconds=stats["seconds"],
        bytes_read=stats["bytes_read"],
        read_requests=stats["read_requests"],
    )


def _levels_and_blocks(
    width: int, height: int, opts: PyramidOptions
) -> tuple[list[tuple[int, int]], int]:
    """The level sizes, and the last level the blocks encode (``m``; level ``m + 1``, when
    there is one, is the first level the writer builds from the blocks' reduced pieces)."""
    dims = _level_dims(width, height, opts.tile, opts.level_factor)
    block_levels = opts.block_levels
    if block_levels is None:  # blocks of about 2048 level-0 px
        block_levels = max(1, round(math.log(2048 / opts.tile, opts.level_factor)))
    return dims, min(block_levels, len(dims) - 1)


def pyramid_memory(width: int, height: int, options: PyramidOptions) -> dict[str, float]:
    """Named parts (bytes) of what :func:`write_pyramid` holds for a ``width × height`` slide:
    the first level it builds itself and the ones above it (a memory map when large, which
    still counts: its pages are resident while written), and the per-tile index."""
    dims, m = _levels_and_blocks(width, height, options)
    needs: dict[str, float] = {}
    if len(dims) > m + 1:
        w, h = dims[m + 1]
        needs[f"the pyramid's top levels from {w}×{h} px"] = w * h * 3 * 4 / 3
    n_tiles = math.ceil(width / options.tile) * math.ceil(height / options.tile)
    needs["the tile index"] = n_tiles * 24 * 4 / 3
    return needs


def _white(tile: int) -> np.ndarray:
    return np.full((tile, tile, 3), WHITE, np.uint8)


def _level_dims(width: int, height: int, tile: int, factor: int) -> list[tuple[int, int]]:
    """Level sizes: downsample ``factor`` each until the level fits in one tile."""
    dims = [(width, height)]
    while max(dims[-1]) > tile:
        w, h = dims[-1]
        dims.append((-(-w // factor), -(-h // factor)))
    return dims


def _resolution(mpp: float | None, width: int, height: int, lw: int, lh: int) -> dict[str, Any]:
    if not mpp:
        return {}
    ppcm_x = 1e4 / (mpp * width / lw)
    ppcm_y = 1e4 / (mpp * height / lh)
    return {"resolution": (ppcm_x, ppcm_y), "resolutionunit": "CENTIMETER"}


def _alloc(shape: tuple[int, ...], tmpdir: str) -> np.ndarray:
    """A white image, in memory when small, else in a temporary memory-mapped file."""
    if math.prod(shape) <= _IN_MEMORY_BYTES:
        return np.full(shape, WHITE, np.uint8)
    fd, name = tempfile.mkstemp(suffix=".level", dir=tmpdir)
    os.close(fd)
    arr = np.memmap(name, dtype=np.uint8, mode="w+", shape=shape)
    arr[:] = WHITE
    return arr


def _reduce_array(arr: np.ndarray, factor: int, tile: int, tmpdir: str) -> np.ndarray:
    """The next level of a level image, band by band."""
    h, w = arr.shape[:2]
    nxt = _alloc((-(-h // factor), -(-w // factor), 3), tmpdir)
    band = tile * factor
    for y in range(0, h, band):
        red = area_reduce(np.asarray(arr[y : y + band]), factor)
        nxt[y // factor : y // factor + red.shape[0]] = red
    return nxt


def _array_tiles(
    arr: np.ndarray, keep: np.ndarray, tile: int, codec: TileCodec, pool: ThreadPoolExecutor
) -> Iterator[tuple[int, int, bytes]]:
    """``(row, col, encoded)`` of the kept tiles of a (small, top) level image, row-major."""

    def one(rc: tuple[int, int]) -> tuple[int, int, bytes]:
        return (*rc, codec.encode(padded_tile(arr, *rc, tile)))

    for r in range(keep.shape[0]):
        yield from pool.map(one, [(r, c) for c in range(keep.shape[1]) if keep[r, c]])


def _encode_blocks(
    plan: BlockPlan,
    keep0: np.ndarray,
    sample: np.ndarray,
    submit: Submit,
    window: int,
    put: Callable[[int, int, int, bytes], None],
    top: np.ndarray | None,
    on_block: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run :func:`encode_block` over every block with a kept tile, ``window`` at a time,
    handing tiles to ``put(level, row, col, data)`` in block order and pasting the reduced pieces into ``top`` as blocks complete."""
    b = plan.block_tiles
    rows, cols = keep0.shape
    by_n, bx_n = -(-rows // b), -(-cols // b)
    pad_keep = np.zeros((by_n * b, bx_n * b), bool)
    pad_keep[:rows, :cols] = keep0
    pad_sample = np.zeros_like(pad_keep)
    pad_sample[:rows, :cols] = sample

    def block_args() -> Iterator[tuple[Any, ...]]:
        for by in range(by_n):
            for bx in range(bx_n):
                sl = np.s_[by * b : (by + 1) * b, bx * b : (bx + 1) * b]
                if pad_keep[sl].any():
                    yield plan, bx, by, pad_keep[sl].copy(), pad_sample[sl].copy()

    stats: dict[str, Any] = {
        "sq_err": [], "ssim": [], "seconds": 0.0, "bytes_read": 0, "read_requests": 0
    }  # fmt: skip
    piece_px = plan.block_px0 // plan.factor ** (plan.levels + 1)
    total = sum(1 for _ in block_args()) if on_block else 0
    results = bounded_map(submit, encode_block, block_args(), window, ordered=True)
    for done, res in enumerate(results, 1):
        for level, r, c, data in res.tiles:
            put(level, r, c, data)
        if top is not None and res.reduced is not None:
            y, x = res.by * piece_px, res.bx * piece_px
            top[y : y + res.reduced.shape[0], x : x + res.reduced.shape[1]] = res.reduced
        stats["sq_err"] += res.sq_err
        stats["ssim"] += res.ssim
        stats["seconds"] += res.seconds
        stats["bytes_read"] += res.bytes_read
        stats["read_requests"] += res.read_requests
        if on_block:
            on_block(done, total)
    return stats
