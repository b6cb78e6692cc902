"""Tile scores: the seed-000 score, its components, and user scorers.

A scorer is any callable ``(TileView) -> float``. The default, :func:`seed_score`, combines
the tile's tissue percentage with three factors computed on the tissue pixels of the scaled
tile (non-tissue pixels black, as in the seed):

- colour factor: favours hematoxylin purple (hue 270°) over eosin pink (330°) among the
  hues in [260°, 340°];
- saturation/value factor: penalises tiles whose HSV saturation or value barely vary;
- quantity factor: 1.0 for ≥80 % tissue, 0.2 for ≥10 %, 0.1 for >0, else 0.

``score = 1 - 10 / (10 + tissue_pct² · ln(1 + colour · sv · quantity) / 1000)``, in [0, 1).

``rails:FILE`` (:class:`RailsScorer`) is the seed score inside seed 004's rails
(:mod:`wsidist.filters.rails`) and 0 outside them, so ``select --where 'score > 0'`` (or
``--top``) keeps the sifted tiles.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from wsidist.errors import ScorerError
from wsidist.filters.rails import Rails, load_rails

HUE_PURPLE_DEG = 270.0
HUE_PINK_DEG = 330.0
HUE_MIN_DEG = 260
HUE_MAX_DEG = 340
TISSUE_HIGH_FRAC = 0.8
TISSUE_LOW_FRAC = 0.1


@dataclass(frozen=True)
class TileView:
    """What a scorer sees of one tile: its box, scaled pixels and features."""

    row: int
    col: int
    x: int
    y: int
    w: int
    h: int
    rgb: np.ndarray  # scaled tile, uint8 (h, w, 3), non-tissue pixels black
    tissue: np.ndarray  # bool (h, w) tissue mask of the scaled tile
    features: Mapping[str, float] = field(default_factory=dict)


Scorer = Callable[[TileView], float]


def quantity_factor(tissue_frac: float) -> float:
    """Seed-000 tissue quantity factor from the tissue fraction in [0, 1]."""
    if tissue_frac >= TISSUE_HIGH_FRAC:
        return 1.0
    if tissue_frac >= TISSUE_LOW_FRAC:
        return 0.2
    if tissue_frac > 0:
        return 0.1
    return 0.0


def color_factor(hue_deg: np.ndarray) -> float:
    """Purple-over-pink factor from integer hue degrees of a tile (any shape)."""
    hues = hue_deg[(hue_deg >= HUE_MIN_DEG) & (hue_deg <= HUE_MAX_DEG)].astype(np.float64)
    if hues.size == 0:
        return 0.0
    purple_dev = np.sqrt(np.mean((hues - HUE_PURPLE_DEG) ** 2))
    if purple_dev == 0:
        return 0.0
    pink_dev = np.sqrt(np.mean((hues - HUE_PINK_DEG) ** 2))
    return float(pink_dev / purple_dev * (HUE_MAX_DEG - hues.mean()) ** 2)


def saturation_value_factor(saturation: np.ndarray, value: np.ndarray) -> float:
    """Penalty for narrow saturation or value spread (std < 0.05 on a 0–1 scale), squared."""
    narrow_s = float(np.std(saturation)) < 0.05
    narrow_v = float(np.std(value)) < 0.05
    factor = 0.4 if narrow_s and narrow_v else 0.7 if narrow_s or narrow_v else 1.0
    return factor * factor


def combine_seed_score(tissue_frac: float, color: float, sv: float, quantity: float) -> float:
    """The seed-000 score from a tissue fraction and its three factors."""
    tissue_pct = 100.0 * tissue_frac
    raw = tissue_pct**2 * np.log1p(color * sv * quantity) / 1000.0
    return float(1.0 - 10.0 / (10.0 + raw))


def seed_score(tile: TileView) -> float:
    """Default scorer: the seed-000 score from the tile's precomputed features."""
    f = tile.features
    return combine_seed_score(
        f["tissue_frac"], f["color_factor"], f["sv_factor"], f["quantity_factor"]
    )


def tissue_fraction_score(tile: TileView) -> float:
    """A plain alternative: the tile's tissue fraction."""
    return float(tile.features["tissue_frac"])


# ---------------------------------------------------------------- the same, for a whole grid
def quantity_factors(tissue_frac: np.ndarray) -> np.ndarray:
    """:func:`quantity_factor` of every tile."""
    t = np.asarray(tissue_frac, np.float64)
    return np.select(
        [t >= TISSUE_HIGH_FRAC, t >= TISSUE_LOW_FRAC, t > 0], [1.0, 0.2, 0.1], 0.0
    ).astype(np.float64)


def color_factors(n: np.ndarray, total: np.ndarray, total_sq: np.ndarray) -> np.ndarray:
    """:func:`color_factor` of every tile from the count, sum and sum of squares of its
    integer hue degrees in [HUE_MIN_DEG, HUE_MAX_DEG]."""
    safe = np.maximum(n, 1)
    mean = total / safe
    second = total_sq / safe

    def rms(centre: float) -> np.ndarray:
        return np.sqrt(np.maximum(second - 2 * centre * mean + centre * centre, 0.0))

    purple, pink = rms(HUE_PURPLE_DEG), rms(HUE_PINK_DEG)
    ok = (n > 0) & (purple > 0)
    factor = pink / np.where(ok, purple, 1.0) * (HUE_MAX_DEG - mean) ** 2
    return np.where(ok, factor, 0.0)


def sv_factors(moments: Mapping[str, np.ndarray], area: np.ndarray) -> np.ndarray:
    """:func:`saturation_value_factor` of every tile from the sums of s, s², v, v² over its
    window (``area`` pixels, non-tissue ones zero)."""
    a = np.maximum(area, 1)

    def std(total: np.ndarray, total_sq: np.ndarray) -> np.ndarray:
        mean = total / a
        return np.sqrt(np.maximum(total_sq / a - mean * mean, 0.0))

    narrow_s = std(moments["sum_s"], moments["sum_s2"]) < 0.05
    narrow_v = std(moments["sum_v"], moments["sum_v2"]) < 0.05
    factor = np.where(narrow_s & narrow_v, 0.4, np.where(narrow_s | narrow_v, 0.7, 1.0))
    return factor * factor


def seed_scores(features: Mapping[str, np.ndarray]) -> np.ndarray:
    """:func:`seed_score` of every tile."""
    tissue_pct = 100.0 * features["tissue_frac"]
    product = features["color_factor"] * features["sv_factor"] * features["quantity_factor"]
    raw = tissue_pct**2 * np.log1p(product) / 1000.0
    return 1.0 - 10.0 / (10.0 + raw)


@dataclass(frozen=True)
class RailsScorer:
    """The seed score of tiles inside ``rails``, 0 outside (pickles with its rails)."""

    rails: Rails
    __name__ = "rails"

    def __call__(self, tile: TileView) -> float:
        inside = self.rails.inside({k: np.asarray([v]) for k, v in tile.features.items()})
        return seed_score(tile) if bool(inside[0]) else 0.0

    def vectorised(self, features: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.where(self.rails.inside(features), seed_scores(features), 0.0)


def vectorised_scorer(scorer: Scorer) -> Callable[[Mapping[str, np.ndarray]], np.ndarray] | None:
    """The whole-grid form of a built-in scorer, or None for a custom one."""
    if isinstance(scorer, RailsScorer):
        return scorer.vectorised
    if scorer is seed_score:
        return seed_scores
    if scorer is tissue_fraction_score:
        return lambda features: np.asarray(features["tissue_frac"], np.float64)
    return None


def _builtin_scorers() -> Mapping[str, Scorer]:
    return {"seed": seed_score, "tissue": tissue_fraction_score}


def scorer_digest(spec: str) -> str | None:
    """What of a scorer's files changes its scores, as a short hash (None: no file).

    ``rails:FILE``: the rails' bounds (not their label, source or tile count), so editing the
    bounds reruns the slides; an unreadable file gives ``"unreadable"`` (the slide then fails
    with the reason when its scorer loads)."""
    return pin_scorer_spec(spec).digest


@dataclass(frozen=True)
class PinnedScorer:
    """A scorer spec as read once for a job: the digest of its file (:func:`scorer_digest`)
    and, for ``rails:FILE``, the scorer built from the rails read then (None: resolved where it
    runs, which reads no file, or fails with the reason when the file was unreadable)."""

    spec: str
    digest: str | None
    scorer: Scorer | None = None


def pin_scorer_spec(spec: str) -> PinnedScorer:
    """``spec``'s file read once (none for other scorers): its digest and its scorer."""
    if not spec.startswith("rails:"):
        return PinnedScorer(spec, None)
    try:
        rails = load_rails(spec[len("rails:") :])
    except ValueError:
        return PinnedScorer(spec, "unreadable")
    bounds = json.dumps(sorted((k, list(v)) for k, v in rails.features.items()))
    return PinnedScorer(spec, hashlib.sha256(bounds.encode()).hexdigest()[:16], RailsScorer(rails))


def resolve_scorer(spec: str | Scorer) -> Scorer:
    """A scorer from a callable, a built-in name ('seed', 'tissue'), 'rails:FILE' or
    'module:function'."""
    if callable(spec):
        return spec
    if spec.startswith("rails:"):
        try:
            return RailsScorer(load_rails(spec[len("rails:") :]))
        except ValueError as exc:
            raise ScorerError(f"scorer {spec!r}: {exc}") from None
    builtins = _builtin_scorers()
    if spec in builtins:
        return builtins[spec]
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise ScorerError(
            f"unknown scorer {spec!r}: use one of {sorted(builtins)} or 'module:function'"
        )
    try:
        scorer = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ScorerError(f"scorer {spec!r} does not resolve: {exc}") from None
    if not callable(scorer):
        raise ScorerError(f"scorer {spec!r} is not callable")
    return scorer
