"""Every key wsidist writes under an output root, and the globs that read them back.

Keys are relative, ``/``-separated and built from sanitised slide ids only
(:func:`wsidist.io.storage.check_key` checks them before any write). Nothing here imports the
rest of wsidist.

Stage 1 (``wsidist score``)::

    slides.parquet                          one row per slide (the driver)
    tiles/slide_id=<id>/part-0.parquet      one row per tile (hive partition; slide_id in
                                            the path and file metadata, not a column)
    tiles/slide_id=<id>/_removed            a slide re-run since compaction that has no tiles
    tiles/_manifest.json                    ``wsidist compact``: the compacted files
    tiles/_compacted/<gen>/bucket-<b>.parquet  compacted tiles: slides hashed into buckets,
                                            sorted by slide_id (a column here)
    masks/<id>.png                          1-bit tissue mask at the filter scale
    contours/<id>.geojson                   tissue contours with holes, level-0 px (QuPath)
    thumbnails/<id>.jpg                     the scaled image the filters ran on
    status/<id>.json                        the slide's summary row (rerun skip)
    batch/<id>/…                            with --batch: step images, tile summary, heat map
    labels/<id>.png                         with annotations: the class-index label mask at
                                            the filter scale (palette PNG, legend in metadata)

Query and extraction::

    selection.parquet                       ``wsidist select`` (default destination)
    index.parquet                           ``wsidist extract``: one row per written object
    <id>/<id>_x<x>_y<y>_l<level>.<ext>      one patch
    shards/<id>-<n:06d>.tar                 WebDataset-style tar shards
    mosaics/<id>.<ext>                      N patches stitched
    <geojson dir>/<id>.geojson              ``select --geojson``: selected tiles as polygons

Stage 2a (``wsidist rewrite``)::

    pyramids.parquet                        one row per slide (the driver)
    pyramids/<id>.tiff                      the glass-removed pyramid
    pyramids/<id>.json                      the slide's row (rerun skip)

Inference (``wsidist infer``)::

    inference.parquet                       one row per slide (the driver)
    regions.parquet                         one row per thresholded heatmap region
    region_features.parquet                 one row per slide and class (seed 003's features)
    predictions/slide_id=<id>/part-0.parquet  one row per patch (hive partition per slide)
    heatmaps/<id>/status.json               the slide's row (rerun skip)
    heatmaps/<id>/heatmap.npz               float16 arrays: mean, tta_std, ensemble_std, weight
    heatmaps/<id>/<map>_c<k>.tiff           one map of class k, uint8 × 255 pyramidal TIFF
    heatmaps/<id>/<map>_c<k>.png            its small preview over the slide, with a legend
Report (``wsidist report``; keys under the report root, ``OUT/report`` by default)::

    index.html                              the dataset page
    data/slides.js, data/slides.json        the slide table extract (JS for file://, JSON)
    charts/<name>.png                       slide_stats charts
    thumbs/<id>.jpg                         small thumbnails of the dataset table
    slides/<id>.html                        one page per slide
    slides/<id>/<picture>                   its pictures, top tiles (top/<rank>.jpg), steps
    assets/<file>                           the page's own CSS and JS (no network)

Per-slide status files (``status/<id>.json``, ``pyramids/<id>.json``) are the source of truth:
``slides.parquet`` and ``pyramids.parquet`` are built from them. Temporary names (a write in
progress, or an orphan of a crashed one): ``.wsidist-tmp/_tmp-<hex>-<name>`` (every store write;
``<dir>/_tmp-<hex>-<name>`` in outputs of earlier versions),
``<name>.part`` (a pyramid being written), ``.pyramid-<random>/`` (a pyramid writer's spool).
"""

from __future__ import annotations

# -- temporary names -------------------------------------------------------------------------
TEMP_PREFIX = "_tmp-"  # the start of every temporary name
TEMP_DIR = ".wsidist-tmp"  # a store write goes to .wsidist-tmp/_tmp-<hex>-<name>, then is moved
PART_SUFFIX = ".part"  # a file being written in place, renamed when complete
PYRAMID_SPOOL_PREFIX = ".pyramid-"  # a pyramid writer's temporary folder, next to the pyramid
WRITE_PROBE = "_tmp-probe"  # written and removed before a job starts (is the output writable?)


def is_temporary(name: str) -> bool:
    """Whether a file or folder name (not a path) is one of the temporary names above."""
    return name.startswith((TEMP_PREFIX, PYRAMID_SPOOL_PREFIX, WRITE_PROBE)) or name.endswith(
        PART_SUFFIX
    )


# -- stage 1 ---------------------------------------------------------------------------------
SLIDES_TABLE = "slides.parquet"
TILES_DIR = "tiles"
TILE_FILES = "**/part-*.parquet"  # under TILES_DIR; not the _tmp-… files of a writer at work
TILE_GLOB = f"{TILES_DIR}/{TILE_FILES}"
PARTITION_COLUMN = "slide_id"  # a hive partition key: in the folder name only, never a column


def tiles_partition(slide_id: str) -> str:
    """The hive partition folder of one slide's tile table (``slide_id`` is not a column)."""
    return f"{TILES_DIR}/{PARTITION_COLUMN}={slide_id}"


def tiles_key(slide_id: str) -> str:
    return f"{tiles_partition(slide_id)}/part-0.parquet"


TILES_REMOVED = "_removed"  # in a partition folder: the slide has no tiles (not compacted ones)
TILES_MANIFEST = f"{TILES_DIR}/_manifest.json"  # the compacted layout's files and buckets
COMPACTED_DIR = f"{TILES_DIR}/_compacted"


def tiles_removed_key(slide_id: str) -> str:
    """A marker: the slide was re-run after compaction and has no tiles now."""
    return f"{tiles_partition(slide_id)}/{TILES_REMOVED}"


def compacted_key(generation: str, bucket: int) -> str:
    """One compacted tile file: the slides whose id hashes to ``bucket``."""
    return f"{COMPACTED_DIR}/{generation}/bucket-{bucket:05d}.parquet"


def mask_key(slide_id: str) -> str:
    return f"masks/{slide_id}.png"


def contours_key(slide_id: str) -> str:
    """Tissue contours (with holes) in level-0 px, as a QuPath GeoJSON FeatureCollection."""
    return f"contours/{slide_id}.geojson"


def thumbnail_key(slide_id: str) -> str:
    return f"thumbnails/{slide_id}.jpg"


LABELS_DIR = "labels"  # labels/<id>.png: rasterised annotation classes (stage 1)


def labels_key(slide_id: str) -> str:
    """The slide's label mask: palette PNG, 0 = no class, k = the k-th class in sorted order."""
    return f"{LABELS_DIR}/{slide_id}.png"


STATUS_DIR = "status"  # status/<id>.json: the slides.parquet rows
STATUS_SUFFIX = ".json"


def status_key(slide_id: str) -> str:
    return f"{STATUS_DIR}/{slide_id}{STATUS_SUFFIX}"


def batch_dir(slide_id: str) -> str:
    return f"batch/{slide_id}"


def batch_key(slide_id: str, name: str) -> str:
    """A batch-mode picture, e.g. ``batch_key(id, "tile_summary.png")``."""
    return f"{batch_dir(slide_id)}/{name}"


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


def selection_geojson_key(slide_id: str) -> str:
    """One slide's selected tiles as GeoJSON, under the folder given to ``select --geojson``."""
    return f"{slide_id}.geojson"


def top_tile_key(slide_id: str, rank: int, x: int, y: int, ext: str) -> str:
    """A dynamic-mode tile image: ``<id>_r<rank>_x<x>_y<y>.<ext>``."""
    return f"{slide_id}_r{rank}_x{x}_y{y}.{ext}"


# -- stage 2a ----------------------------------------------------------------------------------
PYRAMIDS_TABLE = "pyramids.parquet"
PYRAMIDS_DIR = "pyramids"  # pyramids/<id>.tiff and pyramids/<id>.json (the pyramids.parquet rows)


def pyramid_key(slide_id: str) -> str:
    return f"{PYRAMIDS_DIR}/{slide_id}.tiff"


def pyramid_status_key(slide_id: str) -> str:
    return f"{PYRAMIDS_DIR}/{slide_id}{STATUS_SUFFIX}"


# -- every job table of slide ids under a root, and the folder of its per-slide status JSONs ---
ID_TABLES = ((SLIDES_TABLE, STATUS_DIR), (PYRAMIDS_TABLE, PYRAMIDS_DIR))
# a column of those tables (as written, not as returned): the version of the status file its
# row came from, so a rebuild or a rerun's skip decision reads only changed status files
STATUS_VERSION_COLUMN = "status_version"
# -- inference ---------------------------------------------------------------------------------
INFERENCE_TABLE = "inference.parquet"
REGIONS_TABLE = "regions.parquet"
REGION_FEATURES_TABLE = "region_features.parquet"
PREDICTIONS_DIR = "predictions"
PREDICTION_FILES = "**/part-*.parquet"  # under PREDICTIONS_DIR
PREDICTION_GLOB = f"{PREDICTIONS_DIR}/{PREDICTION_FILES}"


PARTITIONED_DIRS = (TILES_DIR, PREDICTIONS_DIR)  # every hive-partitioned output folder


def predictions_partition(slide_id: str) -> str:
    """The hive partition folder of one slide's per-patch predictions."""
    return f"{PREDICTIONS_DIR}/{PARTITION_COLUMN}={slide_id}"


def predictions_key(slide_id: str) -> str:
    return f"{predictions_partition(slide_id)}/part-0.parquet"


def heatmap_dir(slide_id: str) -> str:
    return f"heatmaps/{slide_id}"


def inference_status_key(slide_id: str) -> str:
    return f"{heatmap_dir(slide_id)}/status.json"


def heatmap_arrays_key(slide_id: str) -> str:
    return f"{heatmap_dir(slide_id)}/heatmap.npz"


def heatmap_image_key(slide_id: str, name: str, class_index: int, ext: str) -> str:
    """One map image: ``name`` is ``mean``, ``tta_std`` or ``ensemble_std``; ext tiff or png."""
    return f"{heatmap_dir(slide_id)}/{name}_c{class_index}.{ext}"


# -- report (keys under the report root) --------------------------------------------------------
REPORT_DIR = "report"  # default report root under OUT
REPORT_INDEX = "index.html"
REPORT_DATA_JS = "data/slides.js"
REPORT_DATA_JSON = "data/slides.json"


def report_chart_key(name: str) -> str:
    return f"charts/{name}.png"


def report_thumb_key(slide_id: str) -> str:
    return f"thumbs/{slide_id}.jpg"


def report_page_key(slide_id: str) -> str:
    return f"slides/{slide_id}.html"


def report_picture_key(slide_id: str, name: str) -> str:
    """A picture of a slide page, e.g. ``report_picture_key(id, "classes.png")``."""
    return f"slides/{slide_id}/{name}"


def report_top_tile_key(slide_id: str, rank: int) -> str:
    return f"slides/{slide_id}/top/{rank:04d}.jpg"


def report_asset_key(name: str) -> str:
    return f"assets/{name}"


# -- masks from tiles, and metrics --------------------------------------------------------------
# ``wsidist mask-from-tiles`` writes under its folder (default: TILE_MASKS_DIR next to the
# selection): <id>.png (1-bit, the grid in its "wsidist" text chunk) and TILE_MASKS_TABLE.
TILE_MASKS_DIR = "tile-masks"
TILE_MASKS_TABLE = "tile-masks.parquet"
METRICS_TABLE = "metrics.parquet"  # ``wsidist metrics``: per slide, pooled and mean of slides
DEMO_TRUTH_DIR = "truth"  # ``wsidist demo``: OUT/truth/<id>.png, the slides' true tissue masks
DEMO_ANNOTATIONS_DIR = "annotations"  # ``wsidist demo``: OUT/annotations/<id>.geojson, the truth


def tile_mask_key(slide_id: str) -> str:
    """One slide's mask from tiles, under the folder given to ``mask-from-tiles --out``."""
    return f"{slide_id}.png"
