"""Named tissue presets: filter-pipeline specs that :func:`parse_pipeline` accepts by name.

Presets (sizes in level-0 pixels, so they work on slides without mpp):

- ``default``    seed tutorial chain: green channel and grays say tissue vs glass; objects under
                 500 px at 1/32 scale (512000 level-0 px) are dropped *before* the red, green and
                 blue pen keep-masks are ANDed in, so strokes across tissue do not cut it into
                 pieces that then count as small; pen-edge residue under 51200 px0 goes last.
- ``otsu``       Paeng et al.: Otsu on the gray complement, dilation, closing and opening,
                 small holes filled.
- ``hysteresis`` Ertosun & Rubin: hysteresis threshold on the gray complement.
- ``hsv``        CLAM style: black to white, median-blurred HSV saturation, Otsu, closing/opening.

All presets drop pen ink. Any preset can be refined, e.g.
``tissue_mask(rgb, "otsu", ctx, refine="fill_holes |> remove_small_objects(min_um2=5000)")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["PRESETS"]

PRESETS: Mapping[str, str] = MappingProxyType(
    {
        "default": (
            "(green_channel & grays |> remove_small_objects(min_px0=512000))"
            " & red_pen & green_pen & blue_pen |> remove_small_objects(min_px0=51200)"
        ),
        "otsu": (
            "rgb_to_gray > complement > otsu & ~pen"
            " |> dilation(radius_px0=64) |> closing(radius_px0=64) |> opening(radius_px0=32)"
            " |> remove_small_holes(max_px0=512000)"
        ),
        "hysteresis": (
            "rgb_to_gray > complement > hysteresis(low=50, high=100) & ~pen"
            " |> remove_small_objects(min_px0=51200)"
        ),
        "hsv": (
            "black_to_white > hsv_saturation > median_blur(size_px0=224) > otsu & ~pen"
            " |> closing(radius_px0=128) |> opening(radius_px0=64)"
        ),
    }
)
