"""Dynamic mode (seed 000): the best tiles of one slide, computed in memory, nothing written.

:func:`top_tiles` runs the same analysis as stage 1 (:func:`wsidist.stage1.analysis.analyse_slide`)
on one slide and yields its ``n`` best tiles with their pixels, best first: only tiles with at
least ``min_tissue_frac`` tissue (fewer than ``n`` when the slide has fewer, never glass). It lives with
stage 1 because it *is* stage 1's analysis without the writes: the same mask, features and
scores for the same config. :func:`write_top_tiles` saves them as images named
``<slide_id>_r<rank>_x<x>_y<y>.<ext>`` (for ``wsidist top-tiles``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow.compute as pc

from wsidist import layout
from wsidist.errors import WsidistError
from wsidist.imaging import encode_image
from wsidist.io.inputs import expand_inputs, slide_id_for
from wsidist.io.patch import PatchSpec, read_patch
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.scoring import Scorer

FORMATS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg"}


def top_tiles(
    url: str,
    n: int = 20,
    *,
    scorer: Scorer | str | None = None,
    size: int | None = None,
    config: Stage1Config | None = None,
    level: int = 0,
    cache_dir: str | CacheSpec | None = None,
) -> Iterator[tuple[dict[str, Any], np.ndarray]]:
    """Yield ``(record, rgb)`` for the ``n`` best-scoring tiles of a slide, best first.

    The record holds ``url, slide_id, row, col, x, y, w, h`` (level-0 px), ``level``, every
    tile feature, ``tissue_class, score, rank`` — the same values stage 1 writes for the same
    config; tiles below ``config.min_tissue_frac`` are never yielded. ``rgb`` is ``uint8 (h', w',
    3)`` read at ``level`` (``w / downsample`` level px a side) through the one box reader
    (:func:`wsidist.io.patch.read_patch`), resampled to ``size`` × ``size`` when ``size`` is
    given (a clipped edge tile padded with white, not stretched). Writes no file.
    """
    if n < 0:
        raise WsidistError(f"n must be ≥ 0, got {n}")
    if size is not None and size < 1:
        raise WsidistError(f"size must be ≥ 1 px, got {size}")
    config = config or Stage1Config()
    with open_slide(url, cache_dir=cache_dir) as slide:
        if not 0 <= level < slide.level_count:
            raise WsidistError(f"{url}: level {level} out of range (0..{slide.level_count - 1})")
        analysis = analyse_slide(slide, config, scorer)
        tiles = analysis.tiles
        tiles = tiles.filter(pc.greater_equal(tiles["tissue_frac"], config.min_tissue_frac))
        tiles = tiles.sort_by([("rank", "ascending")]).slice(0, n)
        spec = PatchSpec(level=level, size=size)
        # a .dcm file is known by its series' URL (its folder when alone there), as in a job
        slide_id = slide_id_for(expand_inputs([url])[0] if url.lower().endswith(".dcm") else url)
        for row in tiles.to_pylist():
            record = {"url": url, "slide_id": slide_id, "level": level, "mpp": analysis.mpp}
            record.update(row)
            yield record, read_patch(slide, row["x"], row["y"], row["w"], row["h"], spec)[0]


def tile_filename(record: dict[str, Any], ext: str = "png") -> str:
    """``<slide_id>_r<rank>_x<x>_y<y>.<ext>``."""
    return layout.top_tile_key(record["slide_id"], record["rank"], record["x"], record["y"], ext)


def write_top_tiles(
    url: str,
    out_dir: str,
    n: int = 20,
    size: int | None = None,
    fmt: str = "png",
    *,
    config: Stage1Config | None = None,
    scorer: Scorer | str | None = None,
    level: int = 0,
    storage_options: dict[str, Any] | None = None,
    cache_dir: str | CacheSpec | None = None,
) -> list[str]:
    """Write the ``n`` best tiles of ``url`` into ``out_dir`` (a folder or fsspec URL).

    Only the tile images are written (each atomically), named by :func:`tile_filename`.
    Returns their paths, best first.
    """
    ext = fmt.lower()
    if ext not in FORMATS:
        raise WsidistError(f"unknown image format {fmt!r}: use one of {sorted(FORMATS)}")
    root = out_dir if "://" in out_dir else os.path.abspath(out_dir)
    store = Store(root, storage_options or {})
    written = []
    for record, rgb in top_tiles(
        url, n, scorer=scorer, size=size, config=config, level=level, cache_dir=cache_dir
    ):
        key = tile_filename(record, ext)
        store.write_bytes(key, encode_image(rgb, FORMATS[ext]))
        written.append(store.full_url(key))
    return written
