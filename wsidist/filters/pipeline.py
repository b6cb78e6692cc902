"""Filter pipelines: parse a spec (text, dict/YAML form or preset name), check it, run it.

Text form (see :mod:`wsidist.filters.spec` for the grammar), loosest binding first:

- ``A |> r``   refine mask A with the mask -> mask filter r (``remove_small_objects``, ``dilation``…)
- ``A | B``    union of masks;  ``A & B`` intersection;  ``~A`` complement
- ``f > g``    feed the image produced by f into g (image -> image, or image -> mask)
- ``( … )``    grouping;  ``name(key=value, …)`` keyword literals: int, float, true/false, 'str'

A bare filter name starts from the slide thumbnail (rgb). Filters that need gray get the rgb
converted to luminance automatically. Examples::

    green_channel & grays & red_pen & green_pen & blue_pen |> remove_small_objects(min_px0=512000)
    rgb_to_gray > complement > hysteresis(low=50, high=100) & ~pen |> fill_holes
    (otsu_saturation | green_channel) & ~pen |> dilation(radius_um=50)

Sizes: parameters named ``*_px`` (image pixels) may be written ``*_px0`` (level-0 pixels) or
``*_um`` / ``*_um2`` (microns, needs the slide's mpp); e.g. ``remove_small_objects(min_um2=5000)``.
Given in µm *and* px/px0 (``min_um2=5000, min_px0=20000``), the µm size applies when the slide
has mpp and the pixel size when it does not.

Dict / YAML form::

    mask: green_channel & grays          # text, or a list of steps (a chain), or
                                         # {and: [...]}, {or: [...]}, {not: ...}
    refine:                              # optional list of mask -> mask steps
      - remove_small_objects: {min_px0: 512000}
      - fill_holes

or ``{preset: default, refine: [...]}`` to refine a preset. A step is ``name``,
``"name(k=v)"`` or ``{name: {k: v}}``. A chain list such as
``[rgb_to_gray, complement, {hysteresis: {low: 50}}, fill_holes]`` joins image steps with ``>``
and refiners with ``|>``.

Errors (unknown filter or parameter, wrong type, mask/image mix-ups) raise ``PipelineError`` at
parse time; µm sizes on a slide without mpp raise it when the pipeline is checked against a
:class:`FilterContext` (``Pipeline.check``, also done first thing by ``run``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator

from wsidist.errors import PipelineError

from .color import rgb_to_gray
from .context import FilterContext
from .presets import PRESETS
from .registry import FILTERS
from .spec import And, Call, Node, Not, Or, Pipe, format_node, infer, parse
from .spec_dict import from_mapping, refiners

__all__ = ["Pipeline", "PipelineResult", "TissueSpec", "call_kwargs", "parse_pipeline"]


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """The final bool mask and every intermediate output as (``NN-name``, array), in order."""

    mask: np.ndarray
    steps: list[tuple[str, np.ndarray]] = field(default_factory=list)


def _calls(node: Node):
    if isinstance(node, Call):
        yield node
    elif isinstance(node, Pipe):
        yield from _calls(node.source)
        yield node.step
    elif isinstance(node, Not):
        yield from _calls(node.operand)
    else:
        for o in node.operands:
            yield from _calls(o)


@dataclass(frozen=True)
class Pipeline:
    """A checked, immutable, picklable filter pipeline. Build it with :func:`parse_pipeline`."""

    root: Node

    def __post_init__(self) -> None:
        if infer(self.root) != "mask":
            raise PipelineError(
                f"{self.spec!r} gives an image, not a mask; end it with a threshold, "
                f"e.g. '{self.spec} > otsu'"
            )

    @property
    def spec(self) -> str:
        """Canonical spec text; parsing it gives an equal pipeline."""
        return format_node(self.root)

    def __str__(self) -> str:
        return self.spec

    @property
    def requires_mpp(self) -> bool:
        """True if any size is given in µm only (no px/px0 fallback for slides without mpp)."""
        return any(_um_only(c) for c in _calls(self.root))

    def refine(self, steps: str | Sequence | None) -> Pipeline:
        """A new pipeline with mask -> mask steps appended (text ``"a |> b"`` or a step list)."""
        node = self.root
        for call in refiners(steps):
            node = Pipe(node, call, "|>")
        return Pipeline(node)

    def check(self, ctx: FilterContext) -> None:
        """Raise PipelineError if a size cannot be converted in this context (µm without mpp)."""
        for call in _calls(self.root):
            call_kwargs(call, ctx)

    def run(
        self, rgb: np.ndarray, ctx: FilterContext | None = None, *, keep_steps: bool = True
    ) -> PipelineResult:
        """Run on an rgb uint8 (h, w, 3) image; ctx gives its downsample and the slide mpp."""
        ctx = ctx or FilterContext()
        self.check(ctx)
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] < 3 or rgb.dtype != np.uint8:
            raise PipelineError(
                f"expected an rgb uint8 (h, w, 3) image, got {rgb.dtype} {rgb.shape}"
            )
        rgb = rgb[..., :3]
        steps: list[tuple[str, np.ndarray]] = []

        def record(name: str, out: np.ndarray) -> np.ndarray:
            if keep_steps:
                steps.append((f"{len(steps) + 1:02d}-{name}", out))
            return out

        mask = _evaluate(self.root, rgb, ctx, record)
        return PipelineResult(np.asarray(mask, dtype=bool), steps)


def _um_only(call: Call) -> bool:
    info = FILTERS[call.name]
    units: dict[str, list[str]] = {}
    for spec_name, _ in call.params:
        param, unit = info.resolve(spec_name)
        units.setdefault(param.name, []).append(unit or "")
    return any(all(u in ("um", "um2") for u in us) and us != [""] for us in units.values())


def call_kwargs(call: Call, ctx: FilterContext) -> dict[str, object]:
    """Keyword arguments of a filter call in this context: sizes converted to image px (a size
    given in µm and in px uses the µm value when the slide has mpp, the px value otherwise)."""
    info = FILTERS[call.name]
    kwargs: dict[str, object] = {}
    given = [info.resolve(name)[0].name for name, _ in call.params]
    for spec_name, value in call.params:
        param, unit = info.resolve(spec_name)
        if given.count(param.name) > 1 and (unit in ("um", "um2")) == (ctx.mpp is None):
            continue  # the other unit of a µm/px pair applies here
        if unit is None:
            kwargs[param.name] = value
        else:
            try:
                px = ctx.to_image_px(value, unit, area=param.dimension == "area", label=spec_name)
            except PipelineError as exc:
                raise PipelineError(f"filter {call.name!r}: {exc}") from None
            kwargs[param.name] = int(round(px))
    return kwargs


def _apply(call: Call, image: np.ndarray, ctx: FilterContext, record: Callable) -> np.ndarray:
    info = FILTERS[call.name]
    if info.takes == "gray" and image.ndim == 3:
        image = rgb_to_gray(image)
    return record(call.name, info.func(image, **call_kwargs(call, ctx)))


def _evaluate(node: Node, rgb: np.ndarray, ctx: FilterContext, record: Callable) -> np.ndarray:
    if isinstance(node, Call):
        return _apply(node, rgb, ctx, record)
    if isinstance(node, Pipe):
        return _apply(node.step, _evaluate(node.source, rgb, ctx, record), ctx, record)
    if isinstance(node, Not):
        return record("not", ~_evaluate(node.operand, rgb, ctx, record))
    masks = [_evaluate(o, rgb, ctx, record) for o in node.operands]
    if isinstance(node, And):
        return record("and", np.logical_and.reduce(masks))
    assert isinstance(node, Or)
    return record("or", np.logical_or.reduce(masks))


def _preset_node(name: object) -> Node:
    if not isinstance(name, str) or name not in PRESETS:
        raise PipelineError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    return parse(PRESETS[name])


def parse_pipeline(spec_or_preset: str | Mapping | Pipeline) -> Pipeline:
    """Pipeline from a preset name, spec text, or the dict/YAML form (see module docstring)."""
    if isinstance(spec_or_preset, Pipeline):
        return spec_or_preset
    if isinstance(spec_or_preset, str):
        name = spec_or_preset.strip()
        return Pipeline(_preset_node(name) if name in PRESETS else parse(name))
    if isinstance(spec_or_preset, Mapping):
        return Pipeline(from_mapping(spec_or_preset, _preset_node))
    raise PipelineError(
        f"a pipeline spec must be a string or a mapping, got {type(spec_or_preset).__name__}"
    )


def _check_spec(value: str | dict[str, Any]) -> str | dict[str, Any]:
    parse_pipeline(value)
    return value


TissueSpec = Annotated[str | dict[str, Any], AfterValidator(_check_spec)]
"""A config field holding a tissue preset name, filter spec string or its YAML/dict form,
checked when the config is built."""
