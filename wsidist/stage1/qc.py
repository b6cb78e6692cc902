"""Per-slide quality flags, the tissue tiles of a slide, and the optional per-tile focus measure.

Flags (``qc_flags`` in ``slides.parquet``; each comes with a readable line in ``warning``):

- ``no_tissue``: the mask is empty.
- ``low_tissue``: there is tissue, but no tile reaches ``min_tissue_frac``; the slide's best
  tiles (by tissue fraction, then score) are marked ``tissue_tile`` instead, but only those
  holding at least :data:`FALLBACK_REL_FLOOR` of the best tile's tissue fraction and at least
  :data:`FALLBACK_ABS_FLOOR` (so glass with a pen stroke or a speck of debris is not a tile).
- ``pen_heavy``: pen ink covers at least 5 % of the slide or 20 % as much as the tissue.
- ``dark_background``: the background is dark (fluorescence); the ``fluorescence`` detector
  was used (by ``auto``), brightfield presets may not apply.
- ``missing_mpp``: neither the slide nor the config gives µm per pixel.
- ``tiny_fragments``: ten or more pieces of tissue, and pieces smaller than one tile hold at
  least half of it.
- ``out_of_focus``: with ``qc``, a quarter or more of the measured tissue tiles are blurry.
- ``bubble/debris``: neutral gray objects away from the slide border (bubble rims, dust,
  debris) cover 0.2 % of the slide or 2 % as much as the tissue.

Focus (``qc``): each tissue tile is read at about 1 µm per pixel (assuming 0.5 µm/px when the
slide has no mpp) and its focus is the variance of the Laplacian of its gray image; a tile is
``blurry`` below ``blur_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from wsidist.filters import TissueDetection
from wsidist.filters.runs import label_runs
from wsidist.imaging import area_reduce, rgb_to_gray
from wsidist.io.slide import Slide

__all__ = ["QC_FLAGS", "SlideQC", "focus_measure", "slide_qc", "tile_focus", "tissue_tiles"]

QC_FLAGS = (
    "no_tissue",
    "low_tissue",
    "pen_heavy",
    "dark_background",
    "missing_mpp",
    "tiny_fragments",
    "out_of_focus",
    "bubble/debris",
)
FALLBACK_REL_FLOOR = 0.1  # a fallback tile holds >= this share of the best tile's tissue_frac
FALLBACK_ABS_FLOOR = 0.01  # ... and >= this tissue_frac
FOCUS_UM_PER_PX = 1.0
DEFAULT_MPP = 0.5


@dataclass(frozen=True)
class SlideQC:
    """Flags (in :data:`QC_FLAGS` order) and one readable line per flag."""

    flags: tuple[str, ...]
    notes: tuple[str, ...]


def tissue_tiles(
    tissue_frac: np.ndarray, score: np.ndarray, min_frac: float, best: int
) -> tuple[np.ndarray, bool]:
    """Which tiles are tissue tiles: ``tissue_frac >= min_frac``; when none is but some tile
    holds tissue, the ``best`` tiles by tissue fraction (then score) among those at or above
    the fallback floor (:data:`FALLBACK_REL_FLOOR` of the best fraction, and
    :data:`FALLBACK_ABS_FLOOR`). (mask, fell back)."""
    chosen = tissue_frac >= min_frac
    if chosen.any() or not (tissue_frac > 0).any() or best <= 0:
        return chosen, False
    floor = max(FALLBACK_REL_FLOOR * float(tissue_frac.max()), FALLBACK_ABS_FLOOR)
    order = np.lexsort((-score, -tissue_frac))
    top = order[: min(best, int((tissue_frac >= floor).sum()))]
    chosen[top] = True
    return chosen, True


def _debris_share(det: TissueDetection) -> float:
    """Pixels of artefact objects (8-connected) that do not touch the image border."""
    if not det.artefacts.any():
        return 0.0
    runs = label_runs(det.artefacts, connectivity=2)
    inner = ~runs.border()
    inner[0] = False
    return float(runs.sizes()[inner].sum())


def slide_qc(
    det: TissueDetection,
    *,
    mpp: float | None,
    fell_back: bool,
    n_tissue_tiles: int,
    min_tissue_frac: float,
    tile_px: float,
    blurry_share: float | None = None,
) -> SlideQC:
    """The slide's flags from its detection, its tiles and (with ``qc``) its focus.

    ``tile_px``: the area of one tile in scaled pixels.
    """
    area = max(det.mask.size, 1)
    tissue = float(det.coverage.sum()) / 255.0
    found: list[tuple[str, str]] = []
    if not det.mask.any():
        found.append(("no_tissue", "no tissue detected"))
    elif fell_back and n_tissue_tiles == 0:
        found.append((
            "low_tissue",
            f"no tile reaches min_tissue_frac {min_tissue_frac:g} nor holds "
            f"{FALLBACK_ABS_FLOOR:g} tissue; no tile is marked tissue_tile",
        ))  # fmt: skip
    elif fell_back:
        found.append((
            "low_tissue",
            f"no tile reaches min_tissue_frac {min_tissue_frac:g}; the {n_tissue_tiles} best "
            f"tiles (tissue_frac >= {FALLBACK_REL_FLOOR:g} x the best and >= "
            f"{FALLBACK_ABS_FLOOR:g}) are marked tissue_tile",
        ))  # fmt: skip
    ink = float((det.ink & ~det.mask).sum())
    if ink >= 0.05 * area or (tissue > 0 and ink >= 0.2 * tissue):
        found.append(("pen_heavy", f"pen ink covers {100 * ink / area:.1f} % of the slide"))
    if det.background.dark:
        found.append((
            "dark_background",
            "dark background (fluorescence): measured as bright on dark",
        ))  # fmt: skip
    if mpp is None:
        found.append(("missing_mpp", "no µm per pixel: sizes fell back to level-0 pixels"))
    pieces = det.object_px
    if len(pieces) >= 10 and pieces[pieces < tile_px].sum() >= 0.5 * max(pieces.sum(), 1):
        found.append(
            ("tiny_fragments", f"tissue in {len(pieces)} pieces, most smaller than a tile")
        )
    if blurry_share is not None and blurry_share >= 0.25:
        found.append(("out_of_focus", f"{100 * blurry_share:.0f} % of tissue tiles are blurry"))
    debris = _debris_share(det)
    if debris >= 0.002 * area or (tissue > 0 and debris >= 0.02 * tissue):
        found.append(("bubble/debris", f"bubble rims or debris cover {100 * debris / area:.2f} %"))
    rank = {name: i for i, name in enumerate(QC_FLAGS)}
    found.sort(key=lambda item: rank[item[0]])
    return SlideQC(tuple(f for f, _ in found), tuple(n for _, n in found))


def focus_measure(gray: np.ndarray) -> float:
    """Variance of the Laplacian of a gray image (sharper = larger)."""
    lap = ndimage.laplace(gray.astype(np.float32))
    return float(lap[1:-1, 1:-1].var()) if min(lap.shape) > 2 else 0.0


def tile_focus(
    slide: Slide, boxes: np.ndarray, mpp: float | None, um_per_px: float = FOCUS_UM_PER_PX
) -> np.ndarray:
    """Focus of each level-0 box ``(x, y, w, h)`` (rows of ``boxes``), read at about
    ``um_per_px`` (the nearest level at or below it, then reduced by an integer factor)."""
    target = um_per_px / (mpp or DEFAULT_MPP)
    level = slide.best_level_for_downsample(max(target, 1.0))
    ds = float(slide.level_downsamples[level])
    factor = max(1, int(round(target / ds)))
    out = np.empty(len(boxes), np.float64)
    for i, (x, y, w, h) in enumerate(np.asarray(boxes, np.int64)):
        size = (max(1, int(w // ds)), max(1, int(h // ds)))
        rgb = slide.read_region(int(x), int(y), level, size)
        if factor > 1:
            rgb = area_reduce(rgb, factor)
        out[i] = focus_measure(rgb_to_gray(rgb))
    return out
