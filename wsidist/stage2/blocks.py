"""Stage-2a block work, run on workers: read a block of level-0 tiles, encode it and its levels.

A block is ``B × B`` level-0 tiles with ``B = factor ** levels``: it covers exactly one tile of
level ``levels``, so it encodes its tiles of levels 0..``levels`` on its own (reductions are
aligned, so a block's levels equal the whole slide's). It returns the encoded tiles, the block
reduced once more (a piece of the first level the writer builds itself) and quality samples.
Everything here is picklable (a plan names its slide by :class:`~wsidist.io.slide.SlideRef`;
blocks borrow the process's open slide), so it runs on a Dask worker or a thread.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from wsidist.imaging import TileCodec, any_reduce, area_reduce
from wsidist.io.accounting import metering
from wsidist.io.slide import SlideRef
from wsidist.io.slide_cache import process_slide_cache

WHITE = 255


@dataclass(frozen=True)
class BlockPlan:
    """What every block of one slide shares."""

    slide: SlideRef  # the worker borrows its process's open slide (opened once per process)
    width: int  # level-0 px
    height: int
    tile: int  # output tile side, px
    factor: int  # downsample between consecutive levels
    levels: int  # a block encodes levels 0..levels; B = factor ** levels
    reduce_once_more: bool  # also return the block at level levels + 1
    codec: TileCodec

    @property
    def block_tiles(self) -> int:
        return self.factor**self.levels

    @property
    def block_px0(self) -> int:
        return self.block_tiles * self.tile


@dataclass
class BlockResult:
    bx: int
    by: int
    tiles: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # level, row, col
    reduced: np.ndarray | None = None  # the block at level plan.levels + 1
    sq_err: list[float] = field(default_factory=list)  # per sampled level-0 tile
    ssim: list[float] = field(default_factory=list)
    seconds: float = 0.0
    bytes_read: int = 0  # what reading the block moved from the slide's source
    read_requests: int = 0


def padded_tile(img: np.ndarray, r: int, c: int, tile: int) -> np.ndarray:
    """Tile (r, c) of ``img``, padded with white to tile × tile at the right/bottom edge."""
    part = img[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
    if part.shape[:2] == (tile, tile):
        return np.ascontiguousarray(part)
    px = np.full((tile, tile, 3), WHITE, np.uint8)
    px[: part.shape[0], : part.shape[1]] = part
    return px


def tile_quality(ref: np.ndarray, data: bytes, codec: TileCodec) -> tuple[float, float]:
    """(mean squared error, SSIM) of an encoded tile against its source pixels."""
    from skimage.metrics import structural_similarity

    out = codec.decode(data)[: ref.shape[0], : ref.shape[1], :3]
    mse = float(((out.astype(np.float32) - ref) ** 2).mean())
    ssim = structural_similarity(ref, out, channel_axis=2, data_range=255)
    return mse, float(ssim)


def encode_block(
    plan: BlockPlan, bx: int, by: int, keep0: np.ndarray, sample: np.ndarray
) -> BlockResult:
    """Encode block (bx, by): its kept level-0 tiles (``keep0``, B × B bool) and their levels.

    Glass tiles are not read and count as white in the reduced levels. ``sample`` marks the
    level-0 tiles whose quality (MSE, SSIM) is measured.
    """
    t0 = time.perf_counter()
    tile, b, f = plan.tile, plan.block_tiles, plan.factor
    x0, y0 = bx * plan.block_px0, by * plan.block_px0
    w, h = min(plan.block_px0, plan.width - x0), min(plan.block_px0, plan.height - y0)
    img = np.full((h, w, 3), WHITE, np.uint8)
    result = BlockResult(bx, by)
    with metering() as meter, process_slide_cache().lease(plan.slide) as slide:
        for r, c in np.argwhere(keep0):
            tw, th = min(tile, w - c * tile), min(tile, h - r * tile)
            px = slide.read_level(0, x0 + c * tile, y0 + r * tile, tw, th)
            img[r * tile : r * tile + th, c * tile : c * tile + tw] = px
    result.bytes_read, result.read_requests = meter.bytes_read, meter.read_requests

    level_img, keep = img, keep0
    for k in range(plan.levels + 1):
        n = b // f**k  # tiles per block side at level k
        for r, c in np.argwhere(keep):
            px = padded_tile(level_img, r, c, tile)
            data = plan.codec.encode(px)
            result.tiles.append((k, by * n + int(r), bx * n + int(c), data))
            if k == 0 and sample[r, c]:
                th, tw = min(tile, h - r * tile), min(tile, w - c * tile)
                mse, ssim = tile_quality(px[:th, :tw], data, plan.codec)
                result.sq_err.append(mse)
                result.ssim.append(ssim)
        if k < plan.levels or plan.reduce_once_more:
            level_img = _reduce_kept(level_img, keep, tile, f)
            keep = any_reduce(keep, f)
    if plan.reduce_once_more:
        result.reduced = level_img
    result.seconds = time.perf_counter() - t0
    return result


def _reduce_kept(img: np.ndarray, keep: np.ndarray, tile: int, f: int) -> np.ndarray:
    """``area_reduce(img, f)`` computed only under kept tiles: the rest of ``img`` is white,
    which averages to white, and tile edges are multiples of ``f``, so the result is equal."""
    h, w = img.shape[:2]
    out = np.full((-(-h // f), -(-w // f), 3), WHITE, np.uint8)
    if keep.all():
        return area_reduce(img, f)
    t = tile // f
    for r, c in np.argwhere(keep):
        out[r * t : (r + 1) * t, c * t : (c + 1) * t] = area_reduce(
            img[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile], f
        )
    return out


def psnr(mse: float) -> float:
    return math.inf if mse <= 0 else 10.0 * math.log10(255.0**2 / mse)
