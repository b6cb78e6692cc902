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
   tissue (:mod:`.artefacts`, :mod:`.ink`). Of a neutral object, its neutral pixels and a
   halo of 2 px go: tissue fused with a border keeps its stained pixels.
5. **Coverage.** Edge pixels are unmixed into tissue and glass (:mod:`.coverage`), against the
   colour of the tissue itself (not of filled fat cells, which look like glass); a pixel is
   tissue when at least half of it is, so fragments carry no blended rim.
6. **Size.** Holes (glass enclosed by tissue; ink and artefacts count as wall, and a hole
   ringed by more than 35 % of them stays open) up to ``hole_px`` are filled (fat cells, also
   where a stroke cuts them; small tears), counted as whole tissue; the membranes of fat
   cells are thinner than a pixel and leave gaps under the threshold, so pixels above half
   of it beside the tissue close the walls when holes are looked for. Objects under
   ``min_px`` are dropped. Presets give both in µm² with a level-0 pixel fallback for
   slides without mpp.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from .artefacts import border_labels, channel_densities, neutral_pixels_at
from .coverage import (
    coverage_fraction,
    darkness,
    dilate_index,
    grow_by_unmixing,
    light_spots,
    neighbourhoods,
    tissue_direction,
)
from .glass import (
    DARK_BACKGROUND_LEVEL,
    FILL_SCORE,
    Background,
    blank_fill,
    channel_luts,
    estimate_background,
    flatten_glass,
    tissue_score,
)
from .glow import foreign_glow, glow_sums, neutral_glow
from .ink import ink_classes, ink_table
from .morphology import square_max
from .runs import label_runs
from .strokes import object_ink

__all__ = ["TissueDetection", "artefacts", "auto_tissue", "detect_tissue", "fluorescence_tissue"]

_WALL_SHARE = 0.4  # share of a hole's rim that must be thin or faint wall for it to fill
_PEN_GROW_STEPS = 12  # px a pen stroke is followed into tissue by colour unmixing
_GAP_SHARE = 0.5  # pixels above this share of the low threshold close gaps in hole walls
# channels of a lone dark pixel inside tissue must agree within this share of their mean for
# it to count as dust or a bubble rim (objects are judged by shares of pixels, at 0.2)
_RIM_NEUTRAL_TOLERANCE = 0.12
_NEUTRAL_HALO_PX = 2  # pixels of a neutral object this near its neutral ones: artefact too
# a hole stays open when more than this share of the pixels around it is ink or artefact
_BLOCKED_SHARE = 0.35
# ... and when more than this share is, only walls shared with other holes make it fat
_INKED_SHARE = 0.1
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


def _above(score: np.ndarray, level: float) -> np.ndarray:
    """``score > level`` for an integer score, compared as integers (no float copy)."""
    if np.issubdtype(score.dtype, np.integer):
        info = np.iinfo(score.dtype)
        return score > int(np.clip(math.floor(level), info.min - 1, info.max))
    return score > level


def _hysteresis(
    score: np.ndarray, low: float, high: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(seeded per label, candidates, labels, n): 8-connected objects above ``low`` holding a
    pixel above ``high``. ``labels`` are those of ``ndimage.label``, painted on the
    candidates only (0 elsewhere: nothing downstream looks at the other objects)."""
    runs = label_runs(_above(score, low), connectivity=2)
    n = runs.n
    index, lab = runs.pixels(np.ones(n + 1, bool))
    seeded = np.zeros(n + 1, bool)
    if index.size:
        offsets = np.cumsum(runs.length) - runs.length
        peak = np.maximum.reduceat(np.take(score.reshape(-1), index), offsets)
        seeded[runs.label[_above(peak, high)]] = True
    keep = np.take(seeded, lab)
    index, lab = index[keep], lab[keep]
    labels = np.zeros(score.size, np.int32)  # (read at pixels, never used as an index)
    labels[index] = lab
    candidates = np.zeros(score.size, bool)
    candidates[index] = True
    return seeded, candidates.reshape(score.shape), labels.reshape(score.shape), n


def _fill_holes(
    mask: np.ndarray,
    blocked: np.ndarray,
    score: np.ndarray,
    max_px: int,
    wall: float,
    rim_of: np.ndarray | None = None,
    thin: str = "any",
) -> np.ndarray:
    """Holes of ``mask`` (4-connected glass not touching the border, ``blocked`` pixels count as
    wall) of at most ``max_px`` pixels, at most 35 % of whose ring (the pixels around them) is
    ``blocked`` (a pen loop or a bubble rim keeps its glass open; a stroke across fat cuts its
    cells, which still fill; stray ink or dust pixels in a lumen do not keep it open; blocked
    pixels are never filled themselves), that sit in thin or faint walls: at least 40 % of the
    rim (the ring's ``mask`` pixels) is within two pixels of other glass or scores below
    ``wall``; where over a tenth of the ring is blocked, only walls shared with other holes
    count (a cut fat cell, not glass between a stroke and a tissue's faint edge). Fat cells
    (also where they meet solid tissue) and loose stroma fill; a lumen or a tear in solid
    tissue stays open. ``rim_of``: the pixels that count as rim (default
    ``mask``); ``thin="holes"``: only a wall between two such holes counts as thin (not one
    between a hole and the open glass)."""
    out = np.zeros(mask.shape, bool)
    if max_px <= 0:
        return out
    glass = ~(mask | blocked)
    runs = label_runs(glass, connectivity=1)  # (labels only where looked at, from the runs)
    n = runs.n
    if n == 0:
        return out
    ok = runs.sizes() <= max_px
    ok[runs.border()] = False
    ok[0] = False
    if not ok.any():
        return out
    inside, inside_labels = runs.pixels(ok)
    small = np.zeros(mask.size, np.int32)  # the label of each small hole's pixels, 0 elsewhere
    small[inside] = inside_labels
    # the ring: wall pixels among the 8 neighbours of the holes (sorted, like a scan), each
    # with the small hole it belongs to (the largest label among its neighbours)
    ring = np.flatnonzero(dilate_index(inside, mask.shape, 1) & ~glass)
    ring_owner = np.take(small, neighbourhoods(ring, mask.shape, 1)).max(axis=1)
    ring_n = np.maximum(np.bincount(ring_owner, minlength=n + 1), 1)
    on_blocked = np.take(blocked.reshape(-1), ring)
    ring_blocked = np.bincount(ring_owner, weights=on_blocked, minlength=n + 1)
    ok &= ring_blocked <= _BLOCKED_SHARE * ring_n
    inked = ring_blocked > _INKED_SHARE * ring_n
    # the rim: the ring's pixels of ``rim_of``
    on_rim = np.take((mask if rim_of is None else rim_of).reshape(-1), ring)
    rim, owner = ring[on_rim], ring_owner[on_rim]
    # another background component within two pixels of a rim pixel: a thin wall (any other
    # glass, or with ``thin="holes"`` another small hole only)
    around = neighbourhoods(rim, mask.shape, 2)
    hole = np.take(small, around)
    between = ((hole > 0) & (hole != owner[:, None])).any(axis=1)  # a wall between holes
    thin_wall = between
    if thin != "holes":
        thin_wall = between | ((hole == 0) & np.take(glass.reshape(-1), around)).any(axis=1)
    wall_like = thin_wall | (np.take(score.reshape(-1), rim) < wall)
    rim_n = np.maximum(np.bincount(owner, minlength=n + 1), 1)
    walled = np.bincount(owner, weights=wall_like, minlength=n + 1) >= _WALL_SHARE * rim_n
    # a hole that ink rings in part: a fat cell cut by a stroke has walls shared with other
    # holes; glass caught between a stroke and a tissue's edge has faint edge pixels only
    shared = np.bincount(owner, weights=between, minlength=n + 1) >= _WALL_SHARE * rim_n
    ok &= np.where(inked, shared, walled)
    out.reshape(-1)[inside[np.take(ok, inside_labels)]] = True
    return out


def _objects(mask: np.ndarray, min_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop connected objects under ``min_px`` pixels; (mask, sizes of the kept objects)."""
    runs = label_runs(mask, connectivity=2)
    size = runs.sizes()
    keep = size >= max(int(min_px), 1)
    keep[0] = False
    out = mask.copy()
    out.reshape(-1)[runs.pixels(~keep)[0]] = False
    return out, size[keep]


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
    dark_level = {None: DARK_BACKGROUND_LEVEL, "fluorescence": 256, "brightfield": -1}[force]
    fill = blank_fill(rgb)  # a glass-removed pyramid's white: neither glass nor tissue
    bg = estimate_background(rgb, dark_level=dark_level, exclude=fill)
    score = tissue_score(rgb, channel_luts(bg))
    if fill is not None:
        score[fill] = FILL_SCORE  # below any glass: never tissue, not used to level the glass
    if not bg.dark:  # a dark slide's black is flat (and clipped at 0): nothing to flatten
        score, noise = flatten_glass(score, bg)
        bg = replace(bg, noise=noise)
    put("score", score)
    floor_low, floor_high = (6, 20) if bg.dark else (20, 50)
    low = max(low_sigma * bg.noise, floor_low)
    high = max(high_sigma * bg.noise, floor_high, low)
    seeded, candidates, labels, n = _hysteresis(score, low, high)
    put("candidates", candidates)
    shape = candidates.shape
    out = {
        "mask": np.zeros(shape, bool), "coverage": np.zeros(shape, np.uint8),
        "ink": np.zeros(shape, bool), "ink_class": np.zeros(shape, np.uint8),
        "artefacts": np.zeros(shape, bool),
    }  # fmt: skip
    object_px = np.zeros(0, np.int64)
    rows, cols = np.flatnonzero(candidates.any(axis=1)), np.flatnonzero(candidates.any(axis=0))
    if rows.size:  # everything else happens in the box around the candidates
        pad = 4
        box = (
            slice(max(rows[0] - pad, 0), rows[-1] + pad + 1),
            slice(max(cols[0] - pad, 0), cols[-1] + pad + 1),
        )
        sub = (rgb[box], score[box], candidates[box], labels[box])
        found, object_px = _inside(*sub, n, seeded, bg, low, min_px, hole_px, pens, clean)
        whole = found["mask"].shape == shape
        for name, array in found.items():
            if whole:  # the box is the image: its arrays are the result
                out[name] = array
            else:
                out[name][box] = array
    for name in ("ink", "artefacts", "coverage", "mask"):
        put("tissue" if name == "mask" else name, out[name])
    return TissueDetection(
        out["mask"], out["coverage"], out["ink"], out["ink_class"], out["artefacts"], bg,
        object_px,
    )  # fmt: skip


def _inside(rgb, score, candidates, labels, n, seeded, bg, low, min_px, hole_px, pens, clean):
    """The detector's work on the box around the candidates: arrays of the box, object sizes."""
    ink, ink_cls, artefact = _not_tissue(rgb, candidates, labels, n, seeded, bg, pens, clean)
    tissue0 = candidates & ~ink & ~artefact
    if ink.any():  # pen edges, and strokes that continue over tissue: mostly ink is ink
        grow_by_unmixing(rgb, tissue0, ink, steps=_PEN_GROW_STEPS)
    blocked = ink | artefact
    # darkness where the unmixing looks: within 3 px of a candidate (or of a filled hole)
    direction = tissue_direction(rgb, tissue0, bg)
    dark = np.zeros(candidates.shape, np.float32)
    near = square_max(candidates, 3)
    _darkness_at(dark, rgb, bg, direction, near)
    spots, spot_cov = light_spots(rgb, tissue0, bg, dark=dark)
    tissue0 &= ~spots
    dense = float(np.median(score[tissue0])) if tissue0.any() else 0.0
    holes = _fill_holes(tissue0, blocked, score, hole_px, 0.5 * dense)
    # membranes thinner than a pixel blend under the threshold and leave gaps in the walls of
    # fat cells: faint pixels beside the tissue close them (for finding holes only)
    walls = tissue0 | (_above(score, _GAP_SHARE * low) & square_max(tissue0, 1) & ~blocked)
    holes |= _fill_holes(walls, blocked, score, hole_px, 0.5 * dense, tissue0, thin="holes")
    if holes.any():
        _darkness_at(
            dark, rgb, bg, direction, dilate_index(np.flatnonzero(holes), holes.shape, 3) & ~near
        )
    material, tissue0 = tissue0, tissue0 | holes
    spots &= ~holes
    glass = (~candidates | spots) & ~holes
    # edges unmix against the tissue's own colour, not against filled holes (fat cells look
    # like glass); filled holes are whole tissue, whatever their colour
    cov = coverage_fraction(rgb, tissue0, bg, glass, clamp=False, dark=dark, material=material)
    cov[holes] = 255
    cov[spots] = np.minimum(cov[spots], spot_cov[spots])
    mask, object_px = _objects(cov >= 128, min_px)
    cov[~mask & (cov >= 128)] = 0  # dropped objects
    np.maximum(cov, np.multiply(mask, 128, dtype=np.uint8), out=cov)
    found = {"mask": mask, "coverage": cov, "ink": ink, "ink_class": ink_cls}
    return found | {"artefacts": artefact}, object_px


def _darkness_at(dark, rgb, bg, direction, where) -> None:
    """Fill ``dark`` (float32, flat view written in place) with :func:`darkness` on ``where``."""
    index = np.flatnonzero(where)
    if index.size:
        dark.reshape(-1)[index] = darkness(rgb, bg, index, direction)


def _not_tissue(rgb, candidates, labels, n, seeded, bg, pens, clean):
    """(ink, ink class, artefacts) among the candidates of a brightfield slide.

    Every candidate pixel's channel densities and ink class are looked up once; objects are
    judged by the shares of their pixels (bincount per label).
    """
    shape = candidates.shape
    ink, ink_cls = np.zeros(shape, bool), np.zeros(shape, np.uint8)
    artefact = np.zeros(shape, bool)
    if not candidates.any():
        return ink, ink_cls, artefact
    if bg.dark:
        if clean:  # gray glow touching the border (+ 2 px): a scanner border, not a stain
            at = border_labels(labels, n)[labels] & candidates
            gray = np.zeros(shape, bool)
            gray[at] = neutral_glow(rgb[at], bg)
            artefact = square_max(gray, _NEUTRAL_HALO_PX) & at
        if pens:  # marker ink that glows in another colour than the stain
            ink = foreign_glow(glow_sums(rgb, labels, n, seeded, bg))[labels] & ~artefact
        return ink, ink_cls, artefact
    index = np.flatnonzero(candidates)
    lab = np.take(labels.reshape(-1), index).astype(np.intp)  # (bincount needs no cast)
    px = np.take(rgb.reshape(-1, 3), index, axis=0)  # (a faster gather of rows than indexing)
    codes = ink_classes(px[None], ink_table())[0]
    od = channel_densities(px, channel_luts(bg), columns=True)
    (neutral, _), (_, dark_neutral) = neutral_pixels_at(od, (0.2, _RIM_NEUTRAL_TOLERANCE))
    counts = np.maximum(np.bincount(lab, minlength=n + 1), 1)

    def share(flags: np.ndarray) -> np.ndarray:
        return np.bincount(lab, weights=flags, minlength=n + 1) / counts

    flat_art = artefact.reshape(-1)
    if clean:  # neutral objects: at the border (scanner, label), or anywhere unless black ink
        gray = (share(neutral) >= 0.6) & seeded
        black = (share((codes & 7) == 4) >= 0.5) & pens
        gray_obj = (gray & border_labels(labels, n)) | (gray & ~black)
        at = gray_obj[lab]
        if at.any():  # their neutral pixels and a halo: tissue fused with a scanner border
            # or a label shadow (stained, away from the neutral pixels) is not an artefact
            grey_px = np.zeros(shape, bool)
            grey_px.reshape(-1)[index[at & neutral]] = True
            near = np.take(square_max(grey_px, _NEUTRAL_HALO_PX).reshape(-1), index)
            flat_art[index[at & (neutral | near)]] = True
    free = ~flat_art[index]
    if pens:
        ink, ink_cls = object_ink(rgb, candidates, seeded, index, lab, codes, free, share)
    if clean:  # dark neutral pixels left inside tissue objects (bubble rims, dust on tissue)
        # judged one pixel at a time, so with a margin: stain pixels near the neutral bound
        # (dark purple hematoxylin) cross a loose one under JPEG quantisation and chroma
        # subsampling, and would be cut out of the tissue as dust
        rest = free & ~ink.reshape(-1)[index] & dark_neutral
        flat_art[index[rest]] = True
    return ink, ink_cls, artefact


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


def artefacts(rgb: np.ndarray) -> np.ndarray:
    """True on neutral gray objects darker than the glass: scanner borders, label shadows,
    bubble rims, dust (objects that are mostly near-black are left to the ink filter)."""
    return detect_tissue(rgb, pens=False).artefacts


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
