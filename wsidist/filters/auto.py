"""The adaptive tissue detector behind the ``auto`` and ``fluorescence`` presets.

1. **Background.** The slide's own glass colour and noise (:mod:`.glass`); a dark background
   switches to the fluorescence branch (bright on dark) by itself.
2. **Tissue score.** Optical density relative to that glass, summed over the channels (light
   emitted above the black on a dark slide), one uint8 lookup per channel.
3. **Hysteresis.** Pixels above ``low_sigma`` x noise that connect to pixels above
   ``high_sigma`` x noise are candidates: faint stain, pale stroma and fat walls come through,
   glass noise does not, whatever the slide's brightness or tint.
4. **Not tissue.** Neutral objects touching the border (scanner borders, label shadows),
   neutral objects elsewhere (bubble rims, dust) and pen ink of every colour, on and off the
   tissue (:mod:`.artefacts`, :mod:`.ink`).
5. **Coverage.** Edge pixels are unmixed into tissue and glass (:mod:`.coverage`); a pixel is
   tissue when at least half of it is, so fragments carry no blended rim.
6. **Size.** Holes (glass enclosed by tissue, no ink in them) up to ``hole_px`` are filled (fat
   cells, small tears); objects under ``min_px`` are dropped. Presets give both in µm² with a
   level-0 pixel fallback for slides without mpp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from .artefacts import dark_neutral_pixels, neutral_objects
from .coverage import coverage_fraction, light_spots, unmix_edge
from .glass import Background, channel_luts, estimate_background, flatten_glass, tissue_score
from .ink import ink_classes, ink_mask, ink_table

__all__ = ["TissueDetection", "auto_tissue", "detect_tissue", "fluorescence_tissue"]

_EIGHT = np.ones((3, 3), bool)
_WALL_SHARE = 0.4  # share of a hole's rim that must be thin or faint wall for it to fill
_PEN_GROW_STEPS = 12  # px a pen stroke is followed into tissue by colour unmixing
Record = Callable[[str, np.ndarray], object]


@dataclass(frozen=True, eq=False)
class TissueDetection:
    """Everything the detector found on one scaled image (all arrays share its shape)."""

    mask: np.ndarray  # bool: tissue (coverage >= 50 %)
    coverage: np.ndarray  # uint8: tissue share of each pixel, 255 = all
    ink: np.ndarray  # bool: pen ink
    ink_class: np.ndarray  # uint8: 0 none, 1 red, 2 green, 3 blue, 4 black
    artefacts: np.ndarray  # bool: borders, label shadows, bubble rims, dust
    background: Background
    object_px: np.ndarray  # int64: area of each tissue object, image px


def _hysteresis(score: np.ndarray, low: float, high: float) -> tuple[np.ndarray, np.ndarray, int]:
    labels, n = ndimage.label(score > low, _EIGHT)
    seeded = np.zeros(n + 1, bool)
    seeded[labels[score > high]] = True
    seeded[0] = False
    return seeded, labels, n


def _fill_holes(
    mask: np.ndarray, blocked: np.ndarray, score: np.ndarray, max_px: int, wall: float
) -> np.ndarray:
    """Holes of ``mask`` (4-connected background not touching the border) of at most ``max_px``
    pixels and free of ``blocked`` pixels, that sit in thin or faint walls: most of the rim
    (the mask pixels around the hole) is within two pixels of other glass, or the rim scores
    below ``wall`` on average. Fat cells and loose stroma fill; a lumen or a tear in solid
    tissue stays open."""
    empty = np.zeros(mask.shape, bool)
    if max_px <= 0:
        return empty
    labels, n = ndimage.label(~mask)
    if n == 0:
        return empty
    size = np.bincount(labels.reshape(-1), minlength=n + 1)
    hits = np.bincount(labels[blocked], minlength=n + 1)
    ok = (size <= max_px) & (hits == 0)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        ok[side] = False
    ok[0] = False
    if not ok.any():
        return empty
    small = np.where(ok[labels], labels, 0)
    rim_label = ndimage.grey_dilation(small, footprint=_EIGHT)
    rim = mask & (rim_label > 0)
    owner = rim_label[rim]
    # another background component within two pixels of a rim pixel: a thin wall
    big = np.where(labels > 0, labels, n + 1)
    lo = ndimage.grey_erosion(big, size=(5, 5))[rim]
    hi = ndimage.grey_dilation(labels, size=(5, 5))[rim]
    thin = (lo != owner) | (hi != owner)
    wall_like = thin | (score[rim] < wall)
    rim_n = np.maximum(np.bincount(owner, minlength=n + 1), 1)
    ok &= np.bincount(owner, weights=wall_like, minlength=n + 1) >= _WALL_SHARE * rim_n
    return ok[labels]


def _objects(mask: np.ndarray, min_px: int) -> tuple[np.ndarray, np.ndarray]:
    labels, n = ndimage.label(mask, _EIGHT)
    size = np.bincount(labels.reshape(-1), minlength=n + 1)
    size[0] = 0
    keep = size >= max(int(min_px), 1)
    return keep[labels], size[keep]


def detect_tissue(
    rgb: np.ndarray,
    *,
    low_sigma: float = 3.0,
    high_sigma: float = 8.0,
    min_px: int = 20,
    hole_px: int = 80,
    pens: bool = True,
    clean: bool = True,
    force: str | None = None,
    record: Record | None = None,
) -> TissueDetection:
    """Run the adaptive detector on an rgb uint8 image (see the module docstring).

    ``force``: ``"brightfield"`` or ``"fluorescence"`` instead of choosing by the background;
    ``record(name, array)`` sees the intermediate images (batch mode).
    """
    rgb = np.asarray(rgb)[..., :3]
    put = record or (lambda name, array: None)
    bg = estimate_background(rgb)
    if force is not None:
        bg = estimate_background(rgb, dark_level=256 if force == "fluorescence" else -1)
    luts = channel_luts(bg)
    score = tissue_score(rgb, luts)
    if not bg.dark:  # a dark slide's black is flat (and clipped at 0): nothing to flatten
        score, noise = flatten_glass(score, bg)
        bg = replace(bg, noise=noise)
    put("score", score)
    floor_low, floor_high = (6, 20) if bg.dark else (20, 50)
    low = max(low_sigma * bg.noise, floor_low)
    high = max(high_sigma * bg.noise, floor_high, low)
    seeded, labels, n = _hysteresis(score, low, high)
    candidates = seeded[labels]
    put("candidates", candidates)
    ink, ink_cls, artefact = _not_tissue(rgb, candidates, labels, n, seeded, bg, pens, clean)
    put("ink", ink)
    put("artefacts", artefact)
    tissue0 = candidates & ~ink & ~artefact
    for _ in range(_PEN_GROW_STEPS if ink.any() else 0):
        # pen edges, and strokes that continue over tissue: mostly ink is ink
        edge, share = unmix_edge(rgb, tissue0, ink)
        inked = edge[share < 0.5]
        if inked.size == 0:
            break
        ink.reshape(-1)[inked] = True
        tissue0.reshape(-1)[inked] = False
    blocked = ink | artefact
    spots, spot_cov = light_spots(rgb, tissue0, bg)
    tissue0 &= ~spots
    dense = float(np.median(score[tissue0])) if tissue0.any() else 0.0
    holes = _fill_holes(tissue0, blocked, score, hole_px, 0.5 * dense)
    tissue0 |= holes
    spots &= ~holes
    glass = (~candidates | spots) & ~holes
    cov = coverage_fraction(rgb, tissue0, bg, glass, clamp=False)
    cov[spots] = np.minimum(cov[spots], spot_cov[spots])
    mask, object_px = _objects(cov >= 128, min_px)
    cov[~mask & (cov >= 128)] = 0  # dropped objects
    np.maximum(cov, np.where(mask, 128, 0).astype(np.uint8), out=cov)
    put("coverage", cov)
    put("tissue", mask)
    return TissueDetection(mask, cov, ink, ink_cls, artefact, bg, object_px)


def _not_tissue(rgb, candidates, labels, n, seeded, bg, pens, clean):
    """(ink, ink class, artefacts) among the candidates of a brightfield slide."""
    shape = candidates.shape
    ink, ink_cls = np.zeros(shape, bool), np.zeros(shape, np.uint8)
    artefact = np.zeros(shape, bool)
    if not candidates.any():
        return ink, ink_cls, artefact
    if bg.dark:
        if pens:  # marker ink that glows in another colour than the stain
            ink = _foreign_glow(rgb, labels, n, seeded, bg)[labels]
        return ink, ink_cls, artefact
    table = ink_table()
    black, inky = _ink_shares(rgb, labels, n, seeded, table)
    if clean:  # neutral objects: at the border (scanner, label), or anywhere unless black ink
        gray, edge = neutral_objects(rgb, labels, n, bg, keep=seeded)
        gray &= seeded
        black = black & pens
        artefact = ((gray & edge) | (gray & ~black))[labels]
    if pens:
        ink, ink_cls = ink_mask(rgb, candidates & ~artefact, table)
        # objects mostly of ink colour are ink, even where none of it is clearly so (a pen
        # line thinner than a pixel, blended with the glass)
        whole = (inky & seeded)[labels] & ~artefact & ~ink
        if whole.any():
            ink |= whole
            ink_cls = np.where(whole, ink_classes(rgb, table) & 7, ink_cls).astype(np.uint8)
    if clean:  # dark neutral pixels left inside tissue objects (bubble rims, dust on tissue)
        rest = np.flatnonzero(candidates & ~artefact & ~ink)
        dark = dark_neutral_pixels(rgb, rest, channel_luts(bg))
        artefact.reshape(-1)[rest[dark]] = True
    return ink, ink_cls, artefact


def _foreign_glow(rgb, labels, n, keep, bg, max_angle_deg: float = 60.0) -> np.ndarray:
    """Per label, on a dark slide: its mean emitted colour is more than ``max_angle_deg`` away
    from the slide's overall emitted colour (e.g. red-glowing ink on a DAPI slide)."""
    flat = labels.reshape(-1)
    index = np.flatnonzero(keep[flat])
    glow = np.clip(rgb.reshape(-1, 3)[index].astype(np.float32) - np.asarray(bg.rgb), 0, None)
    lab = flat[index]
    sums = np.stack([np.bincount(lab, weights=glow[:, c], minlength=n + 1) for c in range(3)], 1)
    total = sums.sum(axis=0)
    norms = np.linalg.norm(sums, axis=1) * max(float(np.linalg.norm(total)), 1e-9)
    cosine = (sums @ total) / np.maximum(norms, 1e-9)
    foreign = cosine < np.cos(np.radians(max_angle_deg))
    foreign[0] = False
    return foreign & keep


def _ink_shares(rgb, labels, n, keep, table) -> tuple[np.ndarray, np.ndarray]:
    """Per label: half or more of its pixels are strictly black ink; 60 % or more are ink-like
    (strict or loose, any colour)."""
    flat = labels.reshape(-1)
    index = np.flatnonzero(keep[flat])
    codes = ink_classes(rgb, table, index)
    lab = flat[index]
    counts = np.maximum(np.bincount(lab, minlength=n + 1), 1)
    black = np.bincount(lab, weights=(codes & 7) == 4, minlength=n + 1) >= 0.5 * counts
    inky = np.bincount(lab, weights=codes > 0, minlength=n + 1) >= 0.6 * counts
    return black, inky


def auto_tissue(
    rgb: np.ndarray,
    low_sigma: float = 3.0,
    high_sigma: float = 8.0,
    min_px: int = 20,
    hole_px: int = 80,
    pens: bool = True,
    clean: bool = True,
) -> np.ndarray:
    """Adaptive tissue mask: glass colour and noise measured on the slide, density hysteresis,
    pens/borders/bubbles/dust removed, sub-pixel edges, holes up to hole_px filled."""
    return detect_tissue(
        rgb, low_sigma=low_sigma, high_sigma=high_sigma, min_px=min_px, hole_px=hole_px,
        pens=pens, clean=clean,
    ).mask  # fmt: skip


def fluorescence_tissue(
    rgb: np.ndarray,
    low_sigma: float = 3.0,
    high_sigma: float = 8.0,
    min_px: int = 20,
    hole_px: int = 80,
    pens: bool = True,
) -> np.ndarray:
    """Bright-on-dark tissue mask (fluorescence): light above the slide's black, hysteresis,
    objects glowing in a foreign colour (pen ink) dropped, sub-pixel edges, holes filled."""
    return detect_tissue(
        rgb, low_sigma=low_sigma, high_sigma=high_sigma, min_px=min_px, hole_px=hole_px,
        pens=pens, force="fluorescence",
    ).mask  # fmt: skip
