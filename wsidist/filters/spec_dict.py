"""Dict / YAML form of a pipeline spec (see :mod:`wsidist.filters.pipeline` for the layout)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from wsidist.errors import PipelineError

from .registry import FILTERS
from .spec import And, Call, Node, Not, Or, Pipe, flat, make_call, parse, parse_call

__all__ = ["from_mapping", "refiners"]

_MAPPING_KEYS = ("preset", "mask", "refine")


def _step(item: object) -> Call:
    if isinstance(item, str):
        return parse_call(item)
    if isinstance(item, Mapping) and len(item) == 1:
        ((name, params),) = item.items()
        if params is not None and not isinstance(params, Mapping):
            raise PipelineError(f"parameters of step {name!r} must be a mapping, got {params!r}")
        return make_call(name, params)
    raise PipelineError(f"a step must be a name or {{name: {{param: value}}}}, got {item!r}")


def _mask_expr(item: object) -> Node:
    if isinstance(item, str):
        return parse(item)
    if isinstance(item, Sequence):  # a chain of steps
        if not item:
            raise PipelineError("empty list of steps")
        steps = [_step(s) for s in item]
        node: Node = steps[0]
        for s in steps[1:]:
            node = Pipe(node, s, "|>" if FILTERS[s.name].kind == "refine" else ">")
        return node
    if isinstance(item, Mapping) and len(item) == 1:
        ((key, value),) = item.items()
        if key in ("and", "or"):
            if isinstance(value, str) or not isinstance(value, Sequence) or len(value) < 2:
                raise PipelineError(f"{key!r} needs a list of at least two masks, got {value!r}")
            return flat(And if key == "and" else Or, [_mask_expr(v) for v in value])
        if key == "not":
            return Not(_mask_expr(value))
        return _step(item)
    raise PipelineError(f"cannot read mask expression {item!r}")


def refiners(item: object) -> tuple[Call, ...]:
    """Refine steps from a list of steps, or text like ``fill_holes |> dilation(radius_px=2)``."""
    if item is None:
        return ()
    if isinstance(item, str):
        text = item.strip()
        text = text[2:] if text.startswith("|>") else text
        items: Sequence[object] = [t for t in text.split("|>") if t.strip()]
    elif isinstance(item, Sequence):
        items = item
    else:
        raise PipelineError(f"'refine' must be a list of steps or a string, got {item!r}")
    calls = tuple(_step(s) for s in items)
    for c in calls:
        if FILTERS[c.name].kind != "refine":
            raise PipelineError(f"{c.name!r} is not a mask refiner (mask -> mask), cannot refine")
    return calls


def from_mapping(spec: Mapping, resolve_preset: Callable[[object], Node]) -> Node:
    """Build a tree from the dict form; ``resolve_preset(name) -> Node`` handles ``preset``."""
    unknown = [k for k in spec if k not in _MAPPING_KEYS]
    if unknown:
        raise PipelineError(f"unknown key {unknown[0]!r} in pipeline mapping; use {_MAPPING_KEYS}")
    if ("preset" in spec) == ("mask" in spec):
        raise PipelineError("a pipeline mapping needs exactly one of 'preset' or 'mask'")
    node = resolve_preset(spec["preset"]) if "preset" in spec else _mask_expr(spec["mask"])
    for call in refiners(spec.get("refine")):
        node = Pipe(node, call, "|>")
    return node
