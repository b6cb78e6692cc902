"""wsidist: distributed whole-slide-image preprocessing on Dask.

Stage 1 turns slides into tissue masks and scored tiles in hive-partitioned Parquet:

    import wsidist
    slides = wsidist.run_stage1(["slides/"], "out/")
    with wsidist.open_slide("slides/a.svs") as slide:
        region = slide.read_region(0, 0, 0, (512, 512))

Stage 2a rewrites them as glass-removed JPEG-XL pyramids, using the stage-1 masks:

    pyramids = wsidist.run_rewrite(["slides/"], "out/", wsidist.RewriteConfig(effort=3))

Inference runs a model over overlapping patches into heatmaps and region features; datasets
read patches straight from the slides for training:

    table = wsidist.run_infer(["out/"], "out/", wsidist.InferConfig(models=("m.onnx",)))
    dataset = wsidist.TileDataset("out/selection.parquet", mpp=0.5)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "open_slide": "wsidist.io.slide",
    "Slide": "wsidist.io.slide",
    "SlideError": "wsidist.errors",
    "WsidistError": "wsidist.errors",
    "Stage1Config": "wsidist.stage1.config",
    "build_job": "wsidist.stage1.config",
    "run_stage1": "wsidist.stage1.driver",
    "parse_pipeline": "wsidist.filters",
    "FilterContext": "wsidist.filters",
    "Mask": "wsidist.filters",
    "TileGrid": "wsidist.stage1.tiles",
    "TileView": "wsidist.stage1.scoring",
    "seed_score": "wsidist.stage1.scoring",
    "RewriteConfig": "wsidist.stage2.config",
    "run_rewrite": "wsidist.stage2.driver",
    "write_pyramid": "wsidist.stage2.pyramid",
    "transcode_pyramid": "wsidist.stage2.transcode",
    "restore_jpeg_tiff": "wsidist.stage2.restore",
    "PyramidOptions": "wsidist.stage2.pyramid",
    "InferConfig": "wsidist.infer.config",
    "run_infer": "wsidist.infer.driver",
    "TileDataset": "wsidist.data.datasets",
    "SlideTileDataset": "wsidist.data.datasets",
    "TarShardDataset": "wsidist.data.shards",
    "StainNormalizer": "wsidist.imaging.stain",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import public names on first use, so `import wsidist` stays light."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wsidist' has no attribute {name!r}")
