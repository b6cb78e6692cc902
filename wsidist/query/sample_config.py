"""The settings of ``wsidist select --sample``: lengths in level-0 px or µm, checked when built."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from wsidist.errors import ConfigError

__all__ = ["Length", "SampleConfig", "parse_length"]

_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(px|um|µm)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Length:
    """A length in level-0 px (``unit="px"``) or µm (needs the slide's mpp)."""

    value: float
    unit: str = "px"

    def px0(self, mpp: float | None) -> int:
        if self.unit == "px":
            return int(round(self.value))
        if not mpp:
            raise ConfigError(f"{self} needs the slide's mpp, which it does not record")
        return int(round(self.value / mpp))

    def __str__(self) -> str:
        return f"{self.value:g} {'µm' if self.unit == 'um' else 'px'}"


def parse_length(text: str | float | int | Length, what: str = "length") -> Length:
    """``256``, ``256px`` (level-0 px) or ``128um`` / ``128µm``; a bad value is a ConfigError."""
    if isinstance(text, Length):
        return text
    if isinstance(text, (int, float)):
        return Length(float(text), "px")
    found = _LENGTH.match(str(text))
    if not found:
        raise ConfigError(f"bad {what} {text!r}: give px (e.g. 256 or 256px) or µm (e.g. 128um)")
    unit = (found.group(2) or "px").lower().replace("µm", "um")
    return Length(float(found.group(1)), unit)


@dataclass(frozen=True)
class SampleConfig:
    """How boxes are sampled (checked when built; see the module doc)."""

    size: Length
    stride: Length | None = None  # None: the size (no overlap)
    jitter: Length = Length(0.0)
    seed: int = 0
    per_class: int | None = None
    class_by: str | None = None  # None: ``label`` when the tiles have it
    classes: tuple[str, ...] | None = None  # balance these (default: the classes found)
    min_tissue: float = 0.0
    where: str | None = None
    within_contours: bool = False
    pad: Length = Length(0.0)
    allow_straddle: bool = False
    labels: bool = False  # sample over the label mask; the class is the label (see class_at)
    class_at: str = "centre"  # labels: the label under the centre, or "any" pixel of a class

    def __post_init__(self) -> None:
        for name in ("size", "stride", "jitter", "pad"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, parse_length(value, name))
        if self.size.value <= 0 or (self.stride is not None and self.stride.value <= 0):
            raise ConfigError(f"size and stride must be > 0, got {self.size} / {self.stride}")
        if self.jitter.value < 0 or self.pad.value < 0:
            raise ConfigError(f"jitter and pad must be ≥ 0, got {self.jitter} / {self.pad}")
        if self.per_class is not None and self.per_class < 1:
            raise ConfigError(f"per_class must be ≥ 1, got {self.per_class}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ConfigError(f"min_tissue must be in [0, 1], got {self.min_tissue}")
        if self.within_contours and (self.jitter.value or self.per_class):
            raise ConfigError(
                "within_contours places boxes to cover each region exactly: it takes no "
                "jitter or per_class (sample those from the grid instead)"
            )
        if self.labels and self.class_by:
            raise ConfigError("labels gives each box the label mask's class: not with class_by")
        if self.class_at not in ("centre", "any"):
            raise ConfigError(f"class_at must be centre or any, got {self.class_at!r}")
        if self.classes is not None and not self.classes:
            raise ConfigError("classes is empty: give at least one class name")

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        for name in ("size", "stride", "jitter", "pad"):
            value = getattr(self, name)
            doc[name] = str(value) if value is not None else None
        return doc
