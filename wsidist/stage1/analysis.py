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

from wsidist.filters import FilterContext, TissueDetection, detect
from wsidist.imaging.masks import mask_downsample
from wsidist.io.slide import Slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.memory import check_stage1_memory
from wsidist.stage1.qc import SlideQC, slide_qc, tile_focus, tissue_tiles
from wsidist.stage1.scoring import Scorer, resolve_scorer
from wsidist.stage1.tiles import TileGrid, tile_features


@dataclass(frozen=True)
class SlideAnalysis:
    """Everything stage 1 computes for one slide before writing anything."""

    rgb: np.ndarray  # uint8 (ceil(H/scale), ceil(W/scale), 3): the image the filters ran on
    tissue: np.ndarray  # bool, same shape: the mask (tissue covers >= 50 % of the pixel)
    pen: np.ndarray  # bool, same shape: pen ink
    steps: list[tuple[str, np.ndarray]]  # the pipeline's intermediate images (batch mode)
    tiles: pa.Table  # tile_features() + tissue_tile (+ focus, blurry with qc)
    downsample: float  # level-0 px per scaled px: config.scale (imaging.masks.mask_downsample)
    grid: TileGrid
    mpp: float | None  # the mpp used (config.mpp or the slide's)
    meta: dict[str, Any] = field(default_factory=dict)  # slides.parquet metadata columns
    detection: TissueDetection | None = None  # coverage, ink, artefacts, background
    qc: SlideQC = SlideQC((), ())

    @property
    def tissue_frac(self) -> float:
        """Share of the slide that is tissue, from the sub-pixel coverage."""
        cov = self.detection.coverage if self.detection is not None else self.tissue * 255
        return float(cov.sum()) / (255.0 * max(cov.size, 1))


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


def _focus_columns(
    slide: Slide, tiles: pa.Table, chosen: np.ndarray, mpp: float | None, threshold: float
) -> tuple[pa.Table, float | None]:
    """``focus`` and ``blurry`` for the tissue tiles (null elsewhere), and the blurry share."""
    idx = np.flatnonzero(chosen)
    boxes = np.stack([tiles.column(c).to_numpy() for c in ("x", "y", "w", "h")], axis=1)
    focus = np.full(tiles.num_rows, np.nan)
    focus[idx] = tile_focus(slide, boxes[idx], mpp)
    measured = ~np.isnan(focus)
    tiles = tiles.append_column("focus", pa.array(focus, mask=~measured, type=pa.float64()))
    blurry = pa.array(focus < threshold, mask=~measured, type=pa.bool_())
    tiles = tiles.append_column("blurry", blurry)
    share = float((focus[idx] < threshold).mean()) if idx.size else None
    return tiles, share


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
    # Pixel (i, j) is the level-0 box [j·scale, (j+1)·scale) × …, clipped to the slide.
    downsample = mask_downsample(width, height, rgb.shape, config.scale)
    det, steps = detect(rgb, pipeline, FilterContext(downsample, mpp), keep_steps=config.batch)
    tiles = tile_features(
        rgb, det.mask, det.ink, grid, width, height, downsample, score_fn, coverage=det.coverage
    )
    chosen, fell_back = tissue_tiles(
        tiles.column("tissue_frac").to_numpy(),
        tiles.column("score").to_numpy(),
        config.min_tissue_frac,
        config.best_tiles,
    )
    tiles = tiles.append_column("tissue_tile", pa.array(chosen, type=pa.bool_()))
    blurry_share = None
    if config.qc:
        tiles, blurry_share = _focus_columns(slide, tiles, chosen, mpp, config.blur_threshold)
    qc = slide_qc(
        det,
        mpp=mpp,
        fell_back=fell_back,
        n_tissue_tiles=int(chosen.sum()),
        min_tissue_frac=config.min_tissue_frac,
        tile_px=(grid.tile_px0 / downsample) ** 2,
        blurry_share=blurry_share,
    )
    return SlideAnalysis(
        rgb=rgb,
        tissue=det.mask,
        pen=det.ink,
        steps=list(steps),
        tiles=tiles,
        downsample=downsample,
        grid=grid,
        mpp=mpp,
        meta=meta,
        detection=det,
        qc=qc,
    )
