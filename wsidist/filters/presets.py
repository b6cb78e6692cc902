"""Named tissue presets: filter-pipeline specs that :func:`parse_pipeline` accepts by name.

- ``auto`` (the default; ``default`` is the same): adapts to the slide. It measures the slide's
  own glass colour and noise, calls a pixel tissue by its optical density above that glass
  with a hysteresis threshold set from the measured noise (a low threshold grows from a
  higher one), so faint IHC, pale stroma and fat are found on white or tinted glass alike; it
  removes pen ink of every colour (red, green, blue, dark blue, black; on tissue and off it),
  scanner borders and label shadows, bubble rims and dust (neutral gray objects), fills holes
  with thin or faint walls up to 20,000 µm² (fat cells; lumens in solid tissue stay open) and
  drops objects under 1,500 µm² (80,000 and 3,000 level-0 px on slides without mpp). Edge
  pixels are unmixed into tissue and glass, and a pixel is tissue when at least half of it
  is. A dark background (fluorescence) switches it to the ``fluorescence`` detector by
  itself. See :mod:`wsidist.filters.auto`.
- ``fluorescence``: bright on dark: light emitted above the slide's black, the same
  hysteresis, holes and sizes; objects glowing in another colour than the stain (marker
  ink) are dropped, and so is gray glow touching the image border (a scanner border or a
  label: no stain glows gray), but not the tissue fused with it.
- ``seed000``: seed 000's chain: green channel and grays say tissue vs glass; objects under
  500 px at 1/32 scale (512000 level-0 px) are dropped *before* the red, green and blue pen
  keep-masks are ANDed in, so strokes across tissue do not cut it into pieces that then count
  as small; pen-edge residue under 51200 px0 goes last.
- ``otsu``: Paeng et al.: Otsu on the gray complement, dilation, closing and opening, small
  holes filled.
- ``hysteresis``: Ertosun & Rubin: hysteresis threshold on the gray complement.
- ``hsv``: CLAM style: black to white, median-blurred HSV saturation, Otsu, closing/opening.

All presets drop pen ink and work on slides without mpp. Any preset can be refined, e.g.
``tissue_mask(rgb, "otsu", ctx, refine="fill_holes |> remove_small_objects(min_um2=5000)")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["AUTO_STEPS", "DEFAULT_PRESET", "PRESETS"]

DEFAULT_PRESET = "auto"
_SIZES = "min_um2=1500, min_px0=3000, hole_um2=20000, hole_px0=80000"
_AUTO = f"auto_tissue({_SIZES}, pens=true)"

PRESETS: Mapping[str, str] = MappingProxyType(
    {
        "auto": _AUTO,
        "default": _AUTO,
        "fluorescence": f"fluorescence_tissue({_SIZES}, pens=true)",
        "seed000": (
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

#: how ``auto`` works, one step per entry (``wsidist filters`` prints them)
AUTO_STEPS: tuple[str, ...] = (
    "Background: the slide's own glass colour is the brightest near-neutral peak of its "
    "histogram; its noise is measured on the pixels brighter than the glass, which no stain "
    "can reach. A dark background (fluorescence) switches to the fluorescence detector; its "
    "noise is measured below its black where the channels leave room (else robustly, from "
    "the lowest 90 % of the deviations on both sides), so faint glow is not taken for noise.",
    "Tissue score: optical density above that glass, summed over R, G and B (light emitted "
    "above the slide's black on a dark slide), one uint8 lookup per channel.",
    "Hysteresis: pixels above 3 x noise that connect to pixels above 8 x noise are tissue "
    "candidates, so faint IHC, pale stroma and fat walls come through on white or tinted glass.",
    "Not tissue: pen ink by hue, saturation and darkness - red, green, blue, dark blue and "
    "black, on tissue and off it, pen edges unmixed, and thin ink-coloured lines leaving a "
    "tissue; a tissue stained in an ink-like colour (dense blue IHC) stays tissue: a stroke "
    "has a solid core of strict ink colour or is a line, a stain has compact specks; "
    "neutral gray objects: scanner borders and label shadows at the image border, bubble "
    "rims and dust elsewhere (their neutral pixels and 2 px around them, so tissue fused "
    "with a border keeps its stained pixels); a lone dark pixel "
    "inside tissue is dust only when its channels agree within 12 % (stain pixels near the "
    "bound cross a looser one under JPEG compression).",
    "Holes: glass enclosed by thin or faint walls (fat cells, loose stroma) up to 20,000 µm² "
    "is filled; ink and artefact pixels count as wall, so a stroke across fat cuts its cells "
    "and they still fill, while glass ringed mostly (over 35 %) by ink or a bubble rim stays "
    "open, as do lumens and tears in solid tissue. Fat cell walls thinner than a "
    "pixel leave gaps under the threshold: faint pixels beside the tissue close them for "
    "finding holes. Filled holes are whole tissue. Objects under 1,500 µm² are dropped. "
    "Without mpp the sizes are 80,000 and 3,000 level-0 pixels.",
    "Coverage: pixels at a tissue edge blend tissue and glass; each is unmixed along the "
    "glass-to-tissue colour axis (against the tissue's own colour, not that of filled holes), "
    "and a mask pixel is tissue when at least half of it is. "
    "Tile tissue_frac is the mean of that coverage.",
)
