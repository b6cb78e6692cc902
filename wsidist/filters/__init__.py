"""Pure image filters (arrays in, arrays out) and the pipeline spec language that chains them.

Images are rgb uint8 (h, w, 3) or gray uint8 (h, w); masks are bool (h, w). The default
preset, ``auto``, is the adaptive detector of :mod:`wsidist.filters.auto`; :func:`detect` gives
any preset's mask with its sub-pixel coverage, pen ink and artefacts. Sizes taken by the
functions are image pixels; pipelines convert ``*_px0`` / ``*_um`` / ``*_um2`` sizes using a
:class:`FilterContext`. See :mod:`wsidist.filters.pipeline` for the spec syntax,
:mod:`wsidist.filters.presets` for the named tissue presets and :mod:`wsidist.filters.tissue`
for the :class:`Mask` they produce.
"""

from .auto import TissueDetection, auto_tissue, detect_tissue, fluorescence_tissue
from .background import grays, green_channel
from .color import (
    complement,
    eosin,
    hematoxylin,
    hsv_hue,
    hsv_saturation,
    hsv_value,
    rgb_to_gray,
    rgb_to_hed,
    rgb_to_hsv,
)
from .context import FilterContext
from .coverage import coverage_fraction
from .enhance import (
    adaptive_equalization,
    black_to_white,
    contrast_stretch,
    histogram_equalization,
    local_equalization,
    median_blur,
)
from .glass import Background, estimate_background
from .ink import ink_mask
from .morphology import (
    apply_mask,
    closing,
    dilation,
    erosion,
    fill_holes,
    opening,
    pad,
    remove_small_holes,
    remove_small_objects,
)
from .pens import (
    blue_filter,
    blue_pen,
    green_filter,
    green_pen,
    pen_mask,
    red_filter,
    red_pen,
)
from .pipeline import Pipeline, PipelineResult, TissueSpec, parse_pipeline
from .presets import DEFAULT_PRESET, PRESETS
from .registry import FILTERS, FilterInfo
from .segmentation import kmeans_segmentation, rag_threshold
from .thresholds import canny, entropy, hysteresis, local_otsu, otsu, otsu_saturation, threshold
from .tissue import Mask, detect, tissue_mask

__all__ = [
    "DEFAULT_PRESET",
    "FILTERS",
    "PRESETS",
    "Background",
    "Mask",
    "TissueDetection",
    "auto_tissue",
    "coverage_fraction",
    "detect",
    "detect_tissue",
    "estimate_background",
    "fluorescence_tissue",
    "ink_mask",
    "TissueSpec",
    "FilterContext",
    "FilterInfo",
    "Pipeline",
    "PipelineResult",
    "adaptive_equalization",
    "apply_mask",
    "black_to_white",
    "blue_filter",
    "blue_pen",
    "canny",
    "closing",
    "complement",
    "contrast_stretch",
    "dilation",
    "entropy",
    "eosin",
    "erosion",
    "fill_holes",
    "green_channel",
    "green_filter",
    "green_pen",
    "grays",
    "hematoxylin",
    "histogram_equalization",
    "hsv_hue",
    "hsv_saturation",
    "hsv_value",
    "hysteresis",
    "kmeans_segmentation",
    "local_equalization",
    "local_otsu",
    "median_blur",
    "opening",
    "otsu",
    "otsu_saturation",
    "pad",
    "parse_pipeline",
    "pen_mask",
    "rag_threshold",
    "red_filter",
    "red_pen",
    "remove_small_holes",
    "remove_small_objects",
    "rgb_to_gray",
    "rgb_to_hed",
    "rgb_to_hsv",
    "threshold",
    "tissue_mask",
]
