"""Seed 004's rails: [low, high] bounds of tile features learned from annotated tiles.

A :class:`Rails` holds, per feature column (``entropy`` by default; any numeric tile column,
e.g. ``peak_frac`` or ``tissue_frac``), the bounds a diagnostic class's tiles span — the seed's
minimum and maximum, or robust quantiles — and the tile size they were learned at (the seed
learns rails per tile size). A tile is inside when every feature lies on or within its bounds
(a missing value is outside). Rails are written as a small JSON document::

    {"kind": "wsidist.rails", "version": 1, "label": "tumour", "quantiles": [0.0, 1.0],
     "tile_px0": 256, "n_tiles": 412, "features": {"entropy": [6.42, 7.46]}, "source": "…"}

Stage 1 applies them as a scorer (``--scorer rails:FILE``), ``wsidist select --rails FILE`` as
a filter; ``wsidist rails fit`` learns them (:mod:`wsidist.query.rails`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import numpy as np

from wsidist.errors import ConfigError

__all__ = ["RAILS_KIND", "Rails", "load_rails", "save_rails"]

RAILS_KIND = "wsidist.rails"
RAILS_VERSION = 1
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Rails:
    """Per-feature ``(low, high)`` bounds; tiles inside all of them pass."""

    features: Mapping[str, tuple[float, float]] = field(hash=False)
    label: str = ""
    quantiles: tuple[float, float] = (0.0, 1.0)
    tile_px0: int | None = None
    n_tiles: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if not self.features:
            raise ConfigError("rails need at least one feature")
        for name, (lo, hi) in self.features.items():
            if not _COLUMN.match(name):
                raise ConfigError(f"rails feature {name!r} is not a tile column name")
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise ConfigError(f"rails feature {name}: bounds [{lo}, {hi}] are not an interval")

    def inside(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """bool per tile: every feature on or within its rails (NaN or missing: outside)."""
        missing = [n for n in self.features if n not in columns]
        if missing:
            raise ConfigError(f"rails need tile column(s) {', '.join(missing)}")
        keep = None
        for name, (lo, hi) in self.features.items():
            v = np.asarray(columns[name], np.float64)
            ok = (v >= lo) & (v <= hi)
            keep = ok if keep is None else keep & ok
        return np.asarray(keep, bool)

    def where_sql(self) -> str:
        """The same test as a SQL expression over the tile columns."""
        return " AND ".join(
            f"({name} BETWEEN {lo!r} AND {hi!r})" for name, (lo, hi) in self.features.items()
        )

    def to_json(self) -> str:
        doc = {
            "kind": RAILS_KIND,
            "version": RAILS_VERSION,
            "label": self.label,
            "quantiles": list(self.quantiles),
            "tile_px0": self.tile_px0,
            "n_tiles": self.n_tiles,
            "features": {k: [lo, hi] for k, (lo, hi) in self.features.items()},
            "source": self.source,
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str = "rails") -> Rails:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != RAILS_KIND:
            raise ConfigError(f"{where}: not a rails file (kind {RAILS_KIND!r})")
        try:
            features = {str(k): (float(v[0]), float(v[1])) for k, v in doc["features"].items()}
            q = doc.get("quantiles", [0.0, 1.0])
            return cls(
                features,
                label=str(doc.get("label", "")),
                quantiles=(float(q[0]), float(q[1])),
                tile_px0=int(doc["tile_px0"]) if doc.get("tile_px0") is not None else None,
                n_tiles=int(doc.get("n_tiles", 0)),
                source=str(doc.get("source", "")),
            )
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ConfigError(f"{where}: bad rails document: {exc!r}") from None


def load_rails(url: str, storage_options: dict[str, Any] | None = None) -> Rails:
    """Rails from a JSON file (local path or fsspec URL); ConfigError names a bad file."""
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as fh:
            text = fh.read(1 << 20)
    except FileNotFoundError:
        raise ConfigError(f"rails {url}: no such file") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"rails {url}: cannot read it: {exc}") from None
    return Rails.from_json(text, f"rails {url}")


def save_rails(rails: Rails, url: str, storage_options: dict[str, Any] | None = None) -> None:
    """Write rails as JSON to a local path or fsspec URL."""
    with fsspec.open(url, "w", **(storage_options or {})) as fh:
        fh.write(rails.to_json())
