"""Spec language: tokenizer, parser, dict form, type check and canonical text of a pipeline.

Grammar (loosest binding first)::

    spec  := expr ( "|>" call )*          refine the mask on the left with a mask -> mask filter
    expr  := term ( "|" term )*           union of masks
    term  := unary ( "&" unary )*         intersection of masks
    unary := "~" unary | chain            complement of a mask
    chain := atom ( ">" call )*           feed the image on the left into the next filter
    atom  := call | "(" spec ")"
    call  := NAME [ "(" [ NAME "=" literal ( "," NAME "=" literal )* ] ")" ]
    literal := int | float | true | false | 'string'

A bare call starts from the slide thumbnail (rgb). Nothing is ever evaluated as Python.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wsidist.errors import PipelineError

from .registry import FILTERS, FilterInfo

__all__ = ["And", "Call", "Not", "Or", "Pipe", "flat", "format_node", "infer", "make_call", "parse"]

Scalar = int | float | bool | str


@dataclass(frozen=True)
class Call:
    name: str
    params: tuple[tuple[str, Scalar], ...] = ()


@dataclass(frozen=True)
class Pipe:
    source: Node
    step: Call
    op: str  # ">" (image into filter) or "|>" (mask into refiner)


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Call | Pipe | Not | And | Or

# ---------------------------------------------------------------- building calls


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_value(info: FilterInfo, spec_name: str, value: object) -> None:
    resolved = info.resolve(spec_name)
    assert resolved is not None
    param, unit = resolved
    want = "number" if unit is not None else param.type.__name__
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if unit is not None or param.type is float:
        ok = is_number
    elif param.type is int:
        ok = is_number and isinstance(value, int)
    else:
        ok = isinstance(value, param.type)
    if not ok:
        raise PipelineError(
            f"parameter {spec_name!r} of filter {info.name!r} expects {want}, got {value!r}"
        )
    if unit is not None and value < 0:
        raise PipelineError(f"size {spec_name!r} of filter {info.name!r} must be >= 0, got {value}")


def _is_um(spec_name: str) -> bool:
    return spec_name.endswith(("_um", "_um2"))


def make_call(name: str, params: Mapping[str, object] | None = None) -> Call:
    """Validate a filter name and its spec parameters; return a Call in canonical order."""
    if not isinstance(name, str) or name not in FILTERS:
        raise PipelineError(f"unknown filter {name!r}{_suggest(str(name), sorted(FILTERS))}")
    info = FILTERS[name]
    params = dict(params or {})
    seen: dict[str, str] = {}
    doubled: set[str] = set()
    for spec_name, value in params.items():
        resolved = info.resolve(spec_name)
        if resolved is None:
            accepts = ", ".join(info.spec_param_names()) or "no parameters"
            raise PipelineError(
                f"unknown parameter {spec_name!r} for filter {name!r}"
                f"{_suggest(spec_name, info.spec_param_names())}; it accepts: {accepts}"
            )
        pname = resolved[0].name
        if pname in seen and (_is_um(seen[pname]) == _is_um(spec_name) or pname in doubled):
            raise PipelineError(
                f"filter {name!r} got {seen[pname]!r} and {spec_name!r}: the same size twice "
                "(give it once, or once in µm and once in px/px0 as the fallback without mpp)"
            )
        if pname in seen:
            doubled.add(pname)
        seen[pname] = spec_name
        _check_value(info, spec_name, value)
    for p in info.params.values():
        if p.required and p.name not in seen:
            raise PipelineError(f"filter {name!r} needs parameter {p.name!r}")
    order = list(info.params)
    ordered = sorted(
        params.items(),
        key=lambda kv: (order.index(info.resolve(kv[0])[0].name), not _is_um(kv[0])),
    )
    return Call(name, tuple(ordered))


# ---------------------------------------------------------------- text form

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<op>\|>|[&|~>(),=])
    | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<string>'[^']*'|"[^"]*")
    )""",
    re.VERBOSE,
)


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            break
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise PipelineError(f"unexpected character {text[pos]!r} at position {pos} in {text!r}")
        kind = m.lastgroup
        tokens.append((kind, m.group(kind), m.start(kind)))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, what: str, tok: tuple[str, str, int]) -> PipelineError:
        found = repr(tok[1]) if tok[0] != "end" else "end of spec"
        return PipelineError(
            f"expected {what}, found {found} at position {tok[2]} in {self.text!r}"
        )

    def expect_op(self, op: str) -> None:
        tok = self.take()
        if tok[:2] != ("op", op):
            raise self.fail(repr(op), tok)

    def at_op(self, op: str) -> bool:
        return self.peek()[:2] == ("op", op)

    def parse(self) -> Node:
        node = self.spec()
        if self.peek()[0] != "end":
            raise self.fail("an operator ('&', '|', '>', '|>') or end of spec", self.peek())
        return node

    def spec(self) -> Node:
        node = self.expr()
        while self.at_op("|>"):
            self.take()
            node = Pipe(node, self.call(), "|>")
        return node

    def expr(self) -> Node:
        items = [self.term()]
        while self.at_op("|"):
            self.take()
            items.append(self.term())
        return flat(Or, items)

    def term(self) -> Node:
        items = [self.unary()]
        while self.at_op("&"):
            self.take()
            items.append(self.unary())
        return flat(And, items)

    def unary(self) -> Node:
        if self.at_op("~"):
            self.take()
            return Not(self.unary())
        return self.chain()

    def chain(self) -> Node:
        node = self.atom()
        while self.at_op(">"):
            self.take()
            node = Pipe(node, self.call(), ">")
        return node

    def atom(self) -> Node:
        if self.at_op("("):
            self.take()
            node = self.spec()
            self.expect_op(")")
            return node
        return self.call()

    def call(self) -> Call:
        tok = self.take()
        if tok[0] != "name":
            raise self.fail("a filter name", tok)
        params: dict[str, Scalar] = {}
        if self.at_op("("):
            self.take()
            while not self.at_op(")"):
                key = self.take()
                if key[0] != "name":
                    raise self.fail(f"a parameter name for {tok[1]!r}", key)
                self.expect_op("=")
                if key[1] in params:
                    raise PipelineError(f"parameter {key[1]!r} given twice to {tok[1]!r}")
                params[key[1]] = self.literal(key[1])
                if not self.at_op(")"):
                    self.expect_op(",")
            self.take()
        return make_call(tok[1], params)

    def literal(self, key: str) -> Scalar:
        kind, text, _ = tok = self.take()
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "string":
            return text[1:-1]
        if kind == "name" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise self.fail(f"a number, true/false or a quoted string for {key!r}", tok)


def flat(cls: type, items: list[Node]) -> Node:
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.operands if isinstance(item, cls) else [item])
    return cls(tuple(flat))


def parse(text: str) -> Node:
    """Parse spec text into a syntax tree (filters and parameters checked, types not yet)."""
    if not text.strip():
        raise PipelineError("empty pipeline spec")
    return _Parser(text).parse()


def parse_call(text: str) -> Call:
    """Parse text holding exactly one filter call, e.g. ``dilation(radius_px=3)``."""
    node = parse(text)
    if not isinstance(node, Call):
        raise PipelineError(f"expected one filter step, got {text!r}")
    return node


# ---------------------------------------------------------------- types and text

_PREC = {Or: 1, And: 2, Not: 3}


def _prec(node: Node) -> int:
    if isinstance(node, Pipe):
        return 0 if node.op == "|>" else 4
    return _PREC.get(type(node), 5)


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    return repr(value)


def _call_text(call: Call) -> str:
    if not call.params:
        return call.name
    return f"{call.name}({', '.join(f'{k}={_literal(v)}' for k, v in call.params)})"


def format_node(node: Node, min_prec: int = 0) -> str:
    """Canonical spec text of a tree (minimal parentheses, single spaces)."""
    if isinstance(node, Call):
        text = _call_text(node)
    elif isinstance(node, Pipe):
        left = 0 if node.op == "|>" else 4
        text = f"{format_node(node.source, left)} {node.op} {_call_text(node.step)}"
    elif isinstance(node, Not):
        text = "~" + format_node(node.operand, 3)
    elif isinstance(node, And):
        text = " & ".join(format_node(o, 3) for o in node.operands)
    else:
        text = " | ".join(format_node(o, 2) for o in node.operands)
    return f"({text})" if _prec(node) < min_prec else text


def _apply_type(info: FilterInfo, given: str) -> str:
    if info.takes == "mask" and given != "mask":
        raise PipelineError(
            f"{info.name!r} refines a mask, but gets an image; write 'MASK |> {info.name}'"
        )
    if info.takes == "rgb" and given != "rgb":
        raise PipelineError(f"{info.name!r} needs an RGB image, but gets a {given} image")
    return given if info.gives == "same" else info.gives


def infer(node: Node) -> str:
    """Output type of a tree ('rgb', 'gray' or 'mask'); PipelineError if it is ill-typed."""
    if isinstance(node, Call):
        return _apply_type(FILTERS[node.name], "rgb")
    if isinstance(node, Pipe):
        given = infer(node.source)
        info = FILTERS[node.step.name]
        src = format_node(node.source)
        if node.op == ">" and given == "mask":
            raise PipelineError(
                f"'>' feeds an image into {info.name!r}, but {src!r} gives a mask"
                + ("; refine masks with '|>'" if info.kind == "refine" else "")
            )
        if node.op == ">" and info.kind == "refine":
            raise PipelineError(f"{info.name!r} refines a mask: write '... |> {info.name}'")
        if node.op == "|>" and given != "mask":
            raise PipelineError(
                f"'|>' refines a mask, but {src!r} gives an image; add a threshold first, "
                f"e.g. '{src} > otsu'"
            )
        if node.op == "|>" and info.kind != "refine":
            raise PipelineError(
                f"{info.name!r} is not a mask refiner (it takes an image); "
                f"apply it to an image with '>'"
            )
        return _apply_type(info, given)
    operands = (node.operand,) if isinstance(node, Not) else node.operands
    op = {Not: "~", And: "&", Or: "|"}[type(node)]
    for operand in operands:
        if infer(operand) != "mask":
            text = format_node(operand)
            raise PipelineError(
                f"{text!r} gives an image, not a mask, so {op!r} cannot combine it; "
                f"add a threshold, e.g. '{text} > otsu'"
            )
    return "mask"
