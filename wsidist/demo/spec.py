"""The parameters of one synthetic slide (:class:`SynthSpec`), checked when built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wsidist.demo.labels import PEN_LABELS

__all__ = ["SynthSpec"]

_EDGES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class SynthSpec:
    """Parameters of one synthetic slide (sizes in level-0 px unless named otherwise)."""

    width: int = 6000
    height: int = 4000
    tile: int = 256
    mpp: float | None = 0.5
    n_levels: int | None = None  # None: downsamples 1, 4, 16, ... until the largest side <= 1024
    seed: int = 0
    n_blobs: int = 4
    blob_size: float = 1.0  # multiplier on blob radii (about 10-20 % of the short side)
    pens: tuple[str, ...] = ("red", "green", "blue")  # of red, green, blue, black, navy
    strokes_per_pen: int = 1
    n_debris: int = 40
    glass: tuple[int, int, int] = (242, 240, 236)
    jpeg_quality: int = 85
    vendor_style: Literal["aperio", "generic"] = "aperio"
    objective_power: float | None = 20.0
    # failure classes (the defaults draw the classic slide)
    stain: Literal["he", "ihc", "fluorescence"] = "he"
    faint: float = 1.0  # stain optical density (or glow) relative to a normal slide
    fat: float = 0.0  # share of the blobs that is adipose tissue (empty cells, thin walls)
    fat_um: float = 80.0  # mean fat cell (adipocyte) diameter, µm
    n_fragments: int = 0  # small separate pieces of tissue
    fragment_um: tuple[float, float] = (150.0, 450.0)  # their long axis, µm
    pen_style: Literal["opaque", "ink"] = "opaque"  # ink: translucent, multiplied over tissue
    pen_width_um: float | None = None  # None: 0.5-1 % of the short side
    n_bubbles: int = 0  # air-bubble rims
    dark_borders: tuple[str, ...] = ()  # edges with a dark scanner border / label shadow
    n_blur: int = 0  # out-of-focus discs over the first blobs
    texture: Literal["noise", "atlas"] = "noise"  # atlas: one texture per class, fast, repeats
    # extra vendor metadata (e.g. markup a viewer must escape): aperio "|key = value" fields,
    # or the generic TIFF's ImageDescription
    properties: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64:
            raise ValueError("width and height must be >= 64")
        if self.tile % 16 or self.tile < 16:
            raise ValueError("tile must be a positive multiple of 16")
        if self.mpp is not None and not self.mpp > 0:
            raise ValueError("mpp must be > 0 or None")
        bad = [p for p in self.pens if p not in PEN_LABELS]
        if bad:
            raise ValueError(f"unknown pen colours {bad}; choose from {sorted(PEN_LABELS)}")
        if self.vendor_style not in ("aperio", "generic"):
            raise ValueError("vendor_style must be 'aperio' or 'generic'")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("jpeg_quality must be in 1..100")
        if self.stain not in ("he", "ihc", "fluorescence"):
            raise ValueError("stain must be 'he', 'ihc' or 'fluorescence'")
        if not 0 < self.faint <= 2 or not 0 <= self.fat <= 1 or not self.fat_um > 0:
            raise ValueError("faint must be in (0, 2], fat in [0, 1] and fat_um > 0")
        if self.pen_style not in ("opaque", "ink") or self.texture not in ("noise", "atlas"):
            raise ValueError("pen_style must be opaque|ink and texture noise|atlas")
        bad = [e for e in self.dark_borders if e not in _EDGES]
        if bad:
            raise ValueError(f"unknown border edges {bad}; choose from {_EDGES}")

    @property
    def level_downsamples(self) -> tuple[int, ...]:
        if self.n_levels is not None:
            return tuple(4**k for k in range(max(1, self.n_levels)))
        ds = [1]
        while max(self.width, self.height) / ds[-1] > 1024:
            ds.append(ds[-1] * 4)
        return tuple(ds)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((-(-self.width // d), -(-self.height // d)) for d in self.level_downsamples)
