"""Stage-1 analysis of one open slide, in memory: scaled image → masks → tile features/scores.

:func:`analyse_slide` is the pure part of stage 1 (it reads the slide and writes nothing), so
stage 1 (which then writes outputs) and dynamic mode (which reads the best tiles directly)
compute exactly the same tiles and scores for the same config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from wsidist.filters import FilterContext
from wsidist.filters.tissue import pen_mask
from wsidist.io.slide import Slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.memory import check_stage1_memory
from wsidist.stage1.scoring import Scorer, resolve_scorer
from wsidist.stage1.tiles import TileGrid, tile_features


@dataclass(frozen=True)
class SlideAnalysis:
    """Everything stage 1 computes for one slide before writing anything."""

    rgb: np.ndarray  # uint8 (ceil(H/scale), ceil(W/scale), 3): the image the filters ran on
    tissue: np.ndarray  # bool, same shape
    pen: np.ndarray  # bool, same shape
    steps: list[tuple[str, np.ndarray]]  # the pipeline's intermediate images (batch mode)
    tiles: pa.Table  # tile_features(): row, col, x, y, w, h, features, score, rank
    downsample: float  # level-0 px per scaled px (width / scaled width)
    grid: TileGrid
    mpp: float | None  # the mpp used (config.mpp or the slide's)
    meta: dict[str, Any] = field(default_factory=dict)  # slides.parquet metadata columns


def slide_meta(slide: Slide, config: Stage1Config) -> dict[str, Any]:
    """The slide's metadata columns of a ``slides.parquet`` row."""
    width, height = slide.dimensions
    return {
        "vendor": slide.vendor,
        "backend": slide.backend,
        "width": width,
        "height": height,
        "level_count": slide.level_count,
        "mpp_x": config.mpp or slide.mpp_x,
        "mpp_y": config.mpp or slide.mpp_y,
        "mpp_source": "config" if config.mpp else ("slide" if slide.mpp_x else None),
        "objective_power": slide.objective_power,
    }


def analyse_slide(
    slide: Slide, config: Stage1Config, scorer: Scorer | str | None = None
) -> SlideAnalysis:
    """Run the tissue pipeline, pen mask, tile grid and scorer of ``config`` on ``slide``.

    ``scorer`` overrides ``config.scorer`` (a callable or a scorer name).
    """
    check_stage1_memory(slide, config)  # refuse, before any read, a slide over the budget
    score_fn = resolve_scorer(scorer if scorer is not None else config.scorer)
    pipeline = config.tissue_pipeline()
    width, height = slide.dimensions
    mpp = config.mpp or slide.mpp_x
    meta = slide_meta(slide, config)
    grid = TileGrid.from_units(
        tile_px=config.tile_size_px if config.tile_um is None else None,
        tile_um=config.tile_um,
        overlap=config.overlap,
        mpp=mpp,
        edge=config.edge,
    )
    rgb = slide.thumbnail(config.scale)
    # Thumbnails cover ceil(W/scale) px; the exact downsample of this grid is W / columns.
    downsample = width / rgb.shape[1]
    result = pipeline.run(rgb, FilterContext(downsample=downsample, mpp=mpp))
    tissue = np.asarray(result.mask, dtype=bool)
    pen = pen_mask(rgb)
    tiles = tile_features(rgb, tissue, pen, grid, width, height, downsample, score_fn)
    return SlideAnalysis(
        rgb=rgb,
        tissue=tissue,
        pen=pen,
        steps=list(result.steps),
        tiles=tiles,
        downsample=downsample,
        grid=grid,
        mpp=mpp,
        meta=meta,
    )
