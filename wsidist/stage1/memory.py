"""What stage 1 needs in memory for one slide, from its declared size and the config.

Stage 1 holds the image at the filter scale (``ceil(W/scale) × ceil(H/scale)``) and works on it
per pixel (tissue pipeline, pen mask, tile features); reading it streams the slide in blocks
through the tile caches. The constants are measured peaks (``tests/stage1/test_memory.py``
re-measures them on generated slides and fails when they stop being an upper bound).
"""

from __future__ import annotations

import math

from wsidist.io.slide import Slide
from wsidist.runtime.budget import MB, check_memory
from wsidist.stage1.config import Stage1Config

# peak bytes per pixel at the filter scale: the image, the pipeline's arrays, the pen mask and
# the per-tile features (the adaptive detector works in the box round the tissue: measured
# 25 B/px on a glass-only giant and 60 B/px on a 2000 x 2000 px image half tissue)
BYTES_PER_FILTER_PX = 80
READ_BYTES = 128 * MB  # the tile caches (wsidist's and OpenSlide's) and block buffers


def stage1_needs(width: int, height: int, scale: float) -> dict[str, float]:
    """Named parts (bytes) of what stage 1 needs for a ``width × height`` slide."""
    w, h = math.ceil(width / scale), math.ceil(height / scale)
    return {
        f"the {w}×{h} px image at scale {scale:g} and its per-pixel work": w
        * h
        * BYTES_PER_FILTER_PX,
        "reading the slide": READ_BYTES,
    }


def check_stage1_memory(slide: Slide, config: Stage1Config) -> None:
    """:class:`~wsidist.errors.MemoryBudgetError` (before any pixel is read) when the slide's
    needs exceed ``config.memory_budget_mb``."""
    width, height = slide.dimensions
    check_memory(
        f"{slide.url} ({width}×{height} px)",
        stage1_needs(width, height, config.scale),
        config.memory_budget_mb,
        " or use a larger scale",
    )
