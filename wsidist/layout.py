"""Every key wsidist writes under an output root, and the globs that read them back.

Keys are relative, ``/``-separated and built from sanitised slide ids only
(:func:`wsidist.io.storage.check_key` checks them before any write). Nothing here imports the
rest of wsidist.

Stage 1 (``wsidist score``)::

    slides.parquet                          one row per slide (the driver)
    tiles/slide_id=<id>/part-0.parquet      one row per tile (hive partition; slide_id in
                                            the path and file metadata, not a column)
    masks/<id>.png                          1-bit tissue mask at the filter scale
    thumbnails/<id>.jpg                     the scaled image the filters ran on
    status/<id>.json                        the slide's summary row (rerun skip)
    batch/<id>/…                            with --batch: step images, tile summary, heat map

Query and extraction::

    selection.parquet                       ``wsidist select`` (default destination)
    index.parquet                           ``wsidist extract``: one row per written object
    <id>/<id>_x<x>_y<y>_l<level>.<ext>      one patch
    shards/<id>-<n:06d>.tar                 WebDataset-style tar shards
    mosaics/<id>.<ext>                      N patches stitched

Stage 2a (``wsidist rewrite``)::

    pyramids.parquet                        one row per slide (the driver)
    pyramids/<id>.tiff                      the glass-removed pyramid
    pyramids/<id>.json                      the slide's row (rerun skip)
"""

from __future__ import annotations

# -- stage 1 ---------------------------------------------------------------------------------
SLIDES_TABLE = "slides.parquet"
TILES_DIR = "tiles"
TILE_FILES = "**/part-*.parquet"  # under TILES_DIR; not the _tmp-… files of a writer at work
TILE_GLOB = f"{TILES_DIR}/{TILE_FILES}"
PARTITION_COLUMN = "slide_id"  # a hive partition key: in the folder name only, never a column
PARTITIONED_DIRS = (TILES_DIR,)  # every hive-partitioned output folder


def tiles_partition(slide_id: str) -> str:
    """The hive partition folder of one slide's tile table (``slide_id`` is not a column)."""
    return f"{TILES_DIR}/{PARTITION_COLUMN}={slide_id}"


def tiles_key(slide_id: str) -> str:
    return f"{tiles_partition(slide_id)}/part-0.parquet"


def mask_key(slide_id: str) -> str:
    return f"masks/{slide_id}.png"


def thumbnail_key(slide_id: str) -> str:
    return f"thumbnails/{slide_id}.jpg"


def status_key(slide_id: str) -> str:
    return f"status/{slide_id}.json"


def batch_key(slide_id: str, name: str) -> str:
    """A batch-mode picture, e.g. ``batch_key(id, "tile_summary.png")``."""
    return f"batch/{slide_id}/{name}"


def batch_step_key(slide_id: str, step: str) -> str:
    """One filter step's picture; the step name is reduced to ``[A-Za-z0-9._-]``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in step)
    return batch_key(slide_id, f"steps/{safe}.png")


# -- query and extraction ----------------------------------------------------------------------
SELECTION_TABLE = "selection.parquet"
PATCH_INDEX = "index.parquet"


def patch_basename(slide_id: str, x: int, y: int, level: int) -> str:
    return f"{slide_id}_x{x}_y{y}_l{level}"


def patch_key(slide_id: str, x: int, y: int, level: int, ext: str) -> str:
    return f"{slide_id}/{patch_basename(slide_id, x, y, level)}.{ext}"


def shard_key(slide_id: str, index: int) -> str:
    return f"shards/{slide_id}-{index:06d}.tar"


def mosaic_key(slide_id: str, ext: str) -> str:
    return f"mosaics/{slide_id}.{ext}"


def top_tile_key(slide_id: str, rank: int, x: int, y: int, ext: str) -> str:
    """A dynamic-mode tile image: ``<id>_r<rank>_x<x>_y<y>.<ext>``."""
    return f"{slide_id}_r{rank}_x{x}_y{y}.{ext}"


# -- stage 2a ----------------------------------------------------------------------------------
PYRAMIDS_TABLE = "pyramids.parquet"


def pyramid_key(slide_id: str) -> str:
    return f"pyramids/{slide_id}.tiff"


def pyramid_status_key(slide_id: str) -> str:
    return f"pyramids/{slide_id}.json"
