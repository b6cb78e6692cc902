"""The immutable filter registry: every filter usable in a pipeline spec, with its kind.

Each entry says what the filter takes (``rgb``, ``gray``, ``image`` = rgb or gray, ``mask``) and
what it gives (``rgb``, ``gray``, ``same`` as its input, ``mask``). Parameters, their types and
defaults come from the function signature. Parameters named ``*_px`` are sizes in image pixels;
in a spec they may also be written ``*_px0`` (level-0 px) or ``*_um`` / ``*_um2`` (microns), or
in microns *and* pixels at once (``min_um2=5000, min_px0=20000``): the µm size on slides with
mpp, the pixel size on slides without.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from . import (
    auto,
    background,
    color,
    enhance,
    ink,
    morphology,
    pens,
    segmentation,
    thresholds,
)
from .context import AREA_UNITS, LENGTH_UNITS

__all__ = ["FILTERS", "FilterInfo", "Param"]

_REQUIRED = inspect.Parameter.empty
#: size parameters (image pixels) and whether they are lengths or areas
_SIZE_DIMENSIONS: Mapping[str, str] = MappingProxyType(
    {
        "radius_px": "length",
        "size_px": "length",
        "margin_px": "length",
        "neighborhood_px": "length",
        "min_px": "area",
        "max_px": "area",
        "hole_px": "area",
    }
)


@dataclass(frozen=True)
class Param:
    """One keyword parameter of a filter."""

    name: str
    type: type
    default: object
    dimension: str | None  # None, "length" or "area"

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    def spec_names(self) -> tuple[str, ...]:
        """Names this parameter may take in a spec (unit variants for sizes)."""
        if self.dimension is None:
            return (self.name,)
        base = self.name[: -len("_px")]
        units = AREA_UNITS if self.dimension == "area" else LENGTH_UNITS
        return tuple(f"{base}_{u}" for u in units)


@dataclass(frozen=True)
class FilterInfo:
    """A registered filter: the function, what it takes and gives, its parameters."""

    name: str
    func: Callable
    takes: str  # "rgb" | "gray" | "image" | "mask"
    gives: str  # "rgb" | "gray" | "same" | "mask"
    params: Mapping[str, Param]

    @property
    def kind(self) -> str:
        """'image' (image -> image), 'mask' (image -> mask) or 'refine' (mask -> mask)."""
        if self.takes == "mask":
            return "refine"
        return "mask" if self.gives == "mask" else "image"

    @property
    def doc(self) -> str:
        return (inspect.getdoc(self.func) or "").split("\n\n")[0]

    def resolve(self, spec_name: str) -> tuple[Param, str | None] | None:
        """Map a spec parameter name to (parameter, unit or None); None if unknown."""
        for p in self.params.values():
            if p.dimension is None:
                if spec_name == p.name:
                    return p, None
            elif spec_name in p.spec_names():
                return p, spec_name.rsplit("_", 1)[1]
        return None

    def spec_param_names(self) -> tuple[str, ...]:
        return tuple(n for p in self.params.values() for n in p.spec_names())


def _info(func: Callable, takes: str, gives: str) -> FilterInfo:
    hints = typing.get_type_hints(func)
    sig = inspect.signature(func)
    params = {}
    for p in list(sig.parameters.values())[1:]:
        ptype = hints.get(p.name, float)
        if ptype not in (int, float, bool, str):
            raise TypeError(f"{func.__name__}: unsupported parameter type {ptype!r}")
        params[p.name] = Param(p.name, ptype, p.default, _SIZE_DIMENSIONS.get(p.name))
    return FilterInfo(func.__name__, func, takes, gives, MappingProxyType(params))


def _build() -> Mapping[str, FilterInfo]:
    table = [
        # image -> image
        (color.rgb_to_gray, "rgb", "gray"),
        (color.complement, "image", "same"),
        (color.hematoxylin, "rgb", "gray"),
        (color.eosin, "rgb", "gray"),
        (color.hsv_hue, "rgb", "gray"),
        (color.hsv_saturation, "rgb", "gray"),
        (color.hsv_value, "rgb", "gray"),
        (enhance.contrast_stretch, "image", "same"),
        (enhance.histogram_equalization, "image", "same"),
        (enhance.adaptive_equalization, "image", "same"),
        (enhance.local_equalization, "gray", "gray"),
        (enhance.median_blur, "image", "same"),
        (enhance.black_to_white, "rgb", "rgb"),
        (segmentation.kmeans_segmentation, "rgb", "rgb"),
        (segmentation.rag_threshold, "rgb", "rgb"),
        # image -> mask
        (thresholds.threshold, "gray", "mask"),
        (thresholds.otsu, "gray", "mask"),
        (thresholds.local_otsu, "gray", "mask"),
        (thresholds.hysteresis, "gray", "mask"),
        (thresholds.entropy, "gray", "mask"),
        (thresholds.canny, "gray", "mask"),
        (thresholds.otsu_saturation, "rgb", "mask"),
        (background.green_channel, "rgb", "mask"),
        (background.grays, "rgb", "mask"),
        (pens.red_filter, "rgb", "mask"),
        (pens.green_filter, "rgb", "mask"),
        (pens.blue_filter, "rgb", "mask"),
        (pens.red_pen, "rgb", "mask"),
        (pens.green_pen, "rgb", "mask"),
        (pens.blue_pen, "rgb", "mask"),
        (ink.ink, "rgb", "mask"),
        (auto.artefacts, "rgb", "mask"),
        (auto.auto_tissue, "rgb", "mask"),
        (auto.fluorescence_tissue, "rgb", "mask"),
        # mask -> mask
        (morphology.remove_small_objects, "mask", "mask"),
        (morphology.remove_small_holes, "mask", "mask"),
        (morphology.fill_holes, "mask", "mask"),
        (morphology.dilation, "mask", "mask"),
        (morphology.erosion, "mask", "mask"),
        (morphology.opening, "mask", "mask"),
        (morphology.closing, "mask", "mask"),
        (morphology.pad, "mask", "mask"),
    ]
    infos = {f.__name__: _info(f, takes, gives) for f, takes, gives in table}
    # `pen` (True on any pen ink) so specs can say `~pen`
    pen = _info(pens.pen_mask, "rgb", "mask")
    infos["pen"] = FilterInfo("pen", pen.func, pen.takes, pen.gives, pen.params)
    return MappingProxyType(infos)


#: name -> FilterInfo, built once, read-only
FILTERS: Mapping[str, FilterInfo] = _build()
