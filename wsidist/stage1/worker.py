"""Stage 1 for one slide, run on a worker: thumbnail → mask → tiles → scores → outputs.

The worker writes everything for its slide itself and returns one small summary dict (a
``slides.parquet`` row); :func:`wsidist.runtime.tasks.run_slide_task` supplies the rerun skip,
the failure row and the status JSON. Outputs (keys in :mod:`wsidist.layout`): the tile table,
the 1-bit mask (ceil(H/scale) × ceil(W/scale)), the tissue contours (QuPath GeoJSON, level-0
px), the thumbnail, the status JSON and, in batch mode, every filter step, the tile summary and
the score heat map (drawn from the slide at a readable size while it is open).
The mask PNG is 1 where at least half of the scaled pixel's level-0 area is tissue (the
adaptive presets estimate that share per pixel; other presets' masks are written as they
are); tile ``tissue_frac`` is the sub-pixel tissue share of the tile, not a count of mask
pixels.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa

from wsidist import layout
from wsidist.imaging import encode_image
from wsidist.io.remote import CacheSpec
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.runtime.jobconfig import SCHEMA_VERSION
from wsidist.runtime.tasks import SlideTask, run_slide_task
from wsidist.runtime.tiletable import mark_removed, tile_parquet_options
from wsidist.stage1 import render
from wsidist.stage1.analysis import SlideAnalysis, analyse_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.labels import (
    annotation_columns,
    annotation_depends,
    label_mask_png,
    label_tiles,
    load_annotation,
)
from wsidist.stage1.scoring import Scorer

__all__ = ["SlideTask", "process_slide", "remove_outputs"]


def process_slide(
    task: SlideTask,
    config: Stage1Config,
    store: Store,
    *,
    overwrite: bool = False,
    cache_dir: str | CacheSpec | None = None,
    scorer: Scorer | None = None,
    labelled: bool = False,
) -> dict[str, Any]:
    """Run stage 1 on one slide and return its summary row. Never raises for slide errors.

    A manifest ``mpp`` (``task.mpp``) is used instead of the config's and the slide's; what the
    reader noticed about the file (``Slide.warnings``) joins the row's ``warning``. In a
    ``labelled`` job (annotations given) the tiles gain label columns from
    ``task.annotation`` (:mod:`wsidist.stage1.labels`) and the label mask is written.
    """
    if task.mpp is not None:
        config = config.model_copy(update={"mpp": task.mpp})
    config_hash = config.config_hash()

    def work() -> dict[str, Any]:
        annotations = load_annotation(task.annotation) if labelled else None
        with open_slide(task.url, cache_dir=cache_dir) as slide:
            analysis = analyse_slide(slide, config, scorer or config.job_scorer())
            if labelled:
                analysis = replace(analysis, tiles=label_tiles(analysis.tiles, annotations))
            noticed = slide.warnings
            pictures = {}
            if config.batch:
                name, scorer_name = _name(task), _scorer_name(config, scorer)
                pictures = render.batch_pictures(
                    slide, analysis.tiles, name=name, scorer=scorer_name
                )
        row = _write_outputs(analysis, task, config, store, config_hash, pictures)
        if annotations is not None:
            png = label_mask_png(annotations, analysis.tissue.shape, analysis.downsample)
            store.write_bytes(layout.labels_key(task.slide_id), png)
        else:
            store.remove(layout.labels_key(task.slide_id))
        if labelled:
            row.update(annotation_columns(annotations, task.annotation))
        if task.mpp is not None:
            row["mpp_source"] = "manifest"
        row["warning"] = "; ".join(filter(None, [*noticed, row["warning"]])) or None
        return row

    return run_slide_task(
        task,
        work,
        store=store,
        config_hash=config_hash,
        status_key=layout.status_key(task.slide_id),
        columns={"scale": config.scale, **task.labels},
        overwrite=overwrite,
        depends_on=(lambda: annotation_depends(task.annotation)) if labelled else None,
        on_failure=lambda: remove_outputs(store, task.slide_id),
    )


def _name(task: SlideTask) -> str:
    return task.url.rstrip("/").rsplit("/", 1)[-1] or task.slide_id


def _scorer_name(config: Stage1Config, scorer: Scorer | None) -> str:
    if scorer is None:
        return str(config.scorer)
    return getattr(scorer, "__name__", type(scorer).__name__)


def remove_outputs(store: Store, slide_id: str) -> None:
    """Remove a slide's stage-1 outputs (a failed slide leaves none that look current)."""
    store.remove(layout.tiles_partition(slide_id), recursive=True)
    mark_removed(store, slide_id)  # its compacted rows, if any, no longer count
    store.remove(layout.mask_key(slide_id))
    store.remove(layout.thumbnail_key(slide_id))
    store.remove(layout.contours_key(slide_id))
    store.remove(layout.labels_key(slide_id))
    store.remove(layout.batch_dir(slide_id), recursive=True)


def _write_outputs(
    analysis: SlideAnalysis,
    task: SlideTask,
    config: Stage1Config,
    store: Store,
    config_hash: str,
    pictures: dict[str, np.ndarray],
) -> dict[str, Any]:
    rgb, tissue, pen, tiles = analysis.rgb, analysis.tissue, analysis.pen, analysis.tiles
    sid = task.slide_id
    store.write_bytes(layout.mask_key(sid), encode_image(tissue, "png"))
    bounds = (analysis.meta["width"], analysis.meta["height"])
    contours = render.contours_json(tissue, config.scale, sid, bounds)
    store.write_bytes(layout.contours_key(sid), contours)
    store.write_bytes(layout.thumbnail_key(sid), encode_image(rgb, "jpeg"))
    if config.batch:
        _write_batch(store, sid, analysis, pictures)
    table = _tile_table(tiles, task, config, config_hash)
    store.write_parquet(layout.tiles_key(sid), table, **tile_parquet_options(table.schema))

    return {
        **analysis.meta,
        "error": None,
        "warning": "; ".join(analysis.qc.notes) or None,
        "qc_flags": list(analysis.qc.flags),
        "tile_px0": analysis.grid.tile_px0,
        "stride_px0": analysis.grid.stride_px0,
        "n_tiles": tiles.num_rows,
        "n_tissue_tiles": int(np.count_nonzero(tiles.column("tissue_tile").to_numpy())),
        "tissue_frac": analysis.tissue_frac,
        "pen_frac": np.count_nonzero(pen & ~tissue) / max(pen.size, 1),  # a count: 5× a bool mean
    }


def _write_batch(
    store: Store, sid: str, analysis: SlideAnalysis, pictures: dict[str, np.ndarray]
) -> None:
    rgb, tissue = analysis.rgb, analysis.tissue

    def put(name: str, image: np.ndarray) -> None:
        store.write_bytes(layout.batch_key(sid, name), encode_image(image, "png"))

    put("00-rgb.png", rgb)
    for name, array in analysis.steps:
        store.write_bytes(layout.batch_step_key(sid, name), encode_image(array, "png"))
    put("tissue.png", np.where(tissue[..., None], rgb, 0).astype(np.uint8))
    for name, picture in pictures.items():
        put(name, picture)


def _tile_table(
    tiles: pa.Table, task: SlideTask, config: Stage1Config, config_hash: str
) -> pa.Table:
    """The slide's tile table as written: no ``slide_id`` column (the hive partition folder
    ``slide_id=<id>`` carries it, so every Parquet reader sees one string column), with the id,
    URL, schema version and config in the file's metadata (a single file stays self-describing).
    """
    meta = {
        "wsidist.schema_version": SCHEMA_VERSION,
        "wsidist.config_hash": config_hash,
        "wsidist.config": config.model_dump_json(),
        "wsidist.slide_id": task.slide_id,
        "wsidist.url": task.url,
    }
    if "slide_id" in tiles.column_names:
        tiles = tiles.drop_columns(["slide_id"])
    return tiles.replace_schema_metadata({**(tiles.schema.metadata or {}), **meta})
