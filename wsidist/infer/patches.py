"""Which patches a slide is inferred on, and reading them in batches.

Patch geometry follows the config (``patch_px`` or ``patch_um`` at ``level`` or ``mpp``, with
``overlap``); patches come from a selection's boxes or from a grid over the tissue mask (seed
003: a sampling grid over the mask, no glass patches). Batches are read by one background
thread while the model runs on the previous batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from wsidist.errors import SlideError
from wsidist.imaging import box_sums, summed_area_table
from wsidist.io.patch import PatchSpec, read_patch

__all__ = ["Box", "PatchGeometry", "grid_boxes", "patch_geometry", "read_batches"]

Box = tuple[int, int, int, int]  # x, y, w, h in level-0 px


@dataclass(frozen=True)
class PatchGeometry:
    """A slide's patches: side and stride in level-0 px, model input side, how to read."""

    side_px0: int
    stride_px0: int
    input_px: int
    spec: PatchSpec
    mpp: float | None  # µm per model-input px


def patch_geometry(slide, config) -> PatchGeometry:
    """The geometry of ``config`` (an :class:`~wsidist.infer.config.InferConfig`) on ``slide``."""
    mpp0 = slide.mpp_x
    if config.mpp is not None:
        if not mpp0:
            raise SlideError(f"{slide.url}: slide has no mpp, cannot read at mpp {config.mpp}")
        read_ds, read_mpp = config.mpp / mpp0, config.mpp
    else:
        if config.level >= slide.level_count:
            raise SlideError(
                f"{slide.url}: level {config.level} out of range (0..{slide.level_count - 1})"
            )
        read_ds = slide.level_downsamples[config.level]
        read_mpp = mpp0 * read_ds if mpp0 else None
    if config.patch_um is not None:
        if not read_mpp:
            raise SlideError(f"{slide.url}: slide has no mpp, cannot size patches in µm")
        input_px = max(1, round(config.patch_um / read_mpp))
    else:
        input_px = config.patch_px or 256
    side = max(1, round(input_px * read_ds))
    stride = max(1, round(side * (1 - config.overlap)))
    level = None if config.mpp is not None else config.level
    return PatchGeometry(side, stride, input_px, PatchSpec(level, config.mpp, input_px), read_mpp)


def _origins(length: int, side: int, stride: int) -> np.ndarray:
    """Patch origins covering ``[0, length)`` with the fewest patches of the stride."""
    n = 1 if length <= side else math.ceil((length - side) / stride) + 1
    return np.arange(n, dtype=np.int64) * stride


def grid_boxes(
    width: int,
    height: int,
    side: int,
    stride: int,
    mask: np.ndarray | None = None,
    mask_downsample: float = 1.0,
    min_tissue: float = 0.0,
) -> tuple[list[Box], list[float | None]]:
    """Grid boxes over the slide and their tissue fractions; with a mask, only boxes with more
    than ``min_tissue`` tissue (any tissue at 0)."""
    xs, ys = _origins(width, side, stride), _origins(height, side, stride)
    gx, gy = np.meshgrid(xs, ys)
    gx, gy = gx.ravel(), gy.ravel()
    if mask is None:
        return [(int(x), int(y), side, side) for x, y in zip(gx, gy)], [None] * gx.size
    mh, mw = mask.shape
    sat = summed_area_table(mask.astype(np.uint8))
    x0 = np.clip(np.floor(gx / mask_downsample).astype(int), 0, mw)
    y0 = np.clip(np.floor(gy / mask_downsample).astype(int), 0, mh)
    x1 = np.clip(np.ceil((gx + side) / mask_downsample).astype(int), 0, mw)
    y1 = np.clip(np.ceil((gy + side) / mask_downsample).astype(int), 0, mh)
    area = np.maximum((x1 - x0) * (y1 - y0), 1)
    frac = box_sums(sat, y0, x0, y1, x1) / area
    keep = np.flatnonzero(frac > min_tissue)
    boxes = [(int(gx[i]), int(gy[i]), side, side) for i in keep]
    return boxes, [float(frac[i]) for i in keep]


def read_batches(
    slide, boxes: Sequence[Box], spec: PatchSpec, batch_size: int, transform=None
) -> Iterator[tuple[int, np.ndarray, float]]:
    """(index of the first box, uint8 (N, H, W, 3) batch, seconds spent reading) per batch.

    The next batch is read on a background thread while the caller works on this one.
    ``transform`` (e.g. a stain normaliser) maps each patch.
    """

    def read(start: int) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        patches = []
        for x, y, w, h in boxes[start : start + batch_size]:
            rgb = read_patch(slide, x, y, w, h, spec)[0]
            patches.append(transform(rgb) if transform is not None else rgb)
        return np.stack(patches), time.perf_counter() - t0

    starts = range(0, len(boxes), batch_size)
    with ThreadPoolExecutor(1, thread_name_prefix="wsidist-read") as pool:
        pending = pool.submit(read, starts[0]) if starts else None
        for i, start in enumerate(starts):
            batch, seconds = pending.result()
            pending = pool.submit(read, starts[i + 1]) if i + 1 < len(starts) else None
            yield start, batch, seconds
