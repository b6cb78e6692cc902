"""Pen strokes among the tissue objects of ink-like colour (the pen step of :mod:`.auto`).

An object mostly of ink colour is ink when it is thin and elongated (a stroke), or wide with
a core of strict ink colour (real strokes: 0.3-0.9 of their pixels). A tissue whose stain
looks like ink (a dense blue counterstain: loose ink colour with specks of strict) is
*stained*: it is wide with little strict ink, or its strict colour is such specks (under
30 % of it, under 15 % of that solid), or, where broad strokes cross it and fuse with it
into one object, what is left of it beyond its strokes and their blended halo is still wide,
big and textured (marker ink is smooth, tissue has cells). In a stained object only strokes
of strict ink colour are ink (a solid core or a line: the stain's nuclei clump into compact
specks of strict colour), and lines thinner than 3 px leaving the tissue; in any other
tissue object such lines of ink-like colour are ink too when at least 4 px long (a thin pen
line blended with the glass keeps its hue, not its saturation).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .coverage import neighbourhoods
from .ink import ink_from_codes
from .morphology import square_max, square_min
from .runs import label_runs

__all__ = ["object_ink", "stain_codes"]

_THIN_SHARE = 0.5  # an ink-coloured object is a stroke when at most this share is interior
_STRICT_SHARE = 0.2  # a wide ink-coloured object with this share of strict ink is ink...
_HALO_PX = 2  # ... unless beyond its strokes and this halo (their blended edges) ...
_REST_SHARE = 0.03  # ... this share of it (and _REST_PX) is interior (broad pens: <= 0.07,
_REST_PX = 20  # tissue under broad pens 0.06-0.5), and its texture (ink 0.3, tissue 4+) ...
_REST_TEXTURE = 2.0  # ... at least this mean |grey - its 3x3 mean|: the object is tissue
_SOLID_SHARE = 0.15  # ... or under this share of its strict ink is solid (3x3) ...
_SPECKS_STRICT = 0.3  # ... and under this share of it is strict: specks of a stain
_MIN_STROKE_PX = 6  # strict ink colour in smaller pieces is specks of stain, not strokes,
_LINE_ELONGATION = 2.5  # ... and in compact ones with no solid core (box side / sqrt(px))
_LINE_PX = 4  # ink-coloured lines under 3 px wide leaving a tissue: at least this long


def object_ink(
    rgb: np.ndarray,
    candidates: np.ndarray,
    seeded: np.ndarray,
    index: np.ndarray,
    lab: np.ndarray,
    codes: np.ndarray,
    free: np.ndarray,
    share: Callable[[np.ndarray], np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """(ink, ink class) of the candidates: strict ink and loose ink beside it, and the whole
    of ink-coloured objects that are strokes. ``index``/``lab``/``codes``: the candidates'
    flat pixels, labels and ink-table entries; ``free``: those not yet artefacts;
    ``share(flags)``: per label, the share of its pixels flagged."""
    shape = candidates.shape
    inky_colour = (share(codes > 0) >= 0.6) & seeded
    interior = square_min(candidates, 1)
    thin = share(np.take(interior.reshape(-1), index)) <= _THIN_SHARE
    thin &= inky_colour
    if thin.any():  # and a line or a curve, not a small compact piece (a fragment of tissue)
        thin &= _elongated(index, lab, thin, shape)
    strict_px = (codes & 7) > 0
    strict_share = share(strict_px)
    inky = inky_colour & (thin | (strict_share >= _STRICT_SHARE))
    wide = inky & ~thin
    beyond = np.zeros(index.size, bool)
    if wide.any():  # broad strokes crossing a stained tissue: judged without them
        stained_wide, beyond = _stained_beyond_strokes(
            rgb, candidates, index, lab, codes, wide, share
        )
        inky &= ~stained_wide
        # small pieces of such a stain: its strict colour is specks (nuclei), a marker's is a
        # solid core (most strict pixels with all 8 neighbours strict: 0.6-0.99, specks <= 0.1)
        strict = np.zeros(shape, bool)
        strict.reshape(-1)[index] = strict_px
        solid = np.take(square_min(strict, 1).reshape(-1), index)
        specks = share(solid) < _SOLID_SHARE * np.maximum(strict_share, 1e-9)
        inky &= ~(wide & specks & (strict_share < _SPECKS_STRICT))
    grid = np.zeros(shape, np.uint8)
    grid.reshape(-1)[index[free]] = codes[free]
    stained = inky_colour & ~inky
    body = np.take(square_max(interior, 1).reshape(-1), index)
    lines = ~body & (codes > 0) & free & ~inky[lab]
    if stained.any():  # there, only strokes of strict ink colour are ink, and lines
        # thinner than 3 px leaving the tissue (a pen line blended with the glass)
        at = free & stained[lab]
        stain_codes(grid, index[at & ~lines])
    other = lines & ~stained[lab]
    if other.any():  # elsewhere, such lines of at least _LINE_PX (not an edge's speck)
        flag = np.zeros(shape, bool)
        flag.reshape(-1)[index[other]] = True
        runs = label_runs(flag, connectivity=2)
        short = runs.sizes() < _LINE_PX
        short[0] = False
        flag.reshape(-1)[runs.pixels(short)[0]] = False
        lines[other] = np.take(flag.reshape(-1), index[other])
    ink, ink_cls = ink_from_codes(grid)
    # textured pixels of no ink colour beyond the strokes of an ink object and their halo:
    # tissue under the strokes (too little or too thin to make the object stained), not ink
    whole = free & (inky[lab] | lines) & ~ink.reshape(-1)[index] & ~beyond
    ink.reshape(-1)[index[whole]] = True
    ink_cls.reshape(-1)[index[whole]] = codes[whole] & 7
    return ink, ink_cls


def _stained_beyond_strokes(
    rgb, candidates, index, lab, codes, judged, share
) -> tuple[np.ndarray, np.ndarray]:
    """(per label, per candidate pixel). Per label, among the ``judged`` ones: beyond its
    strict strokes (:func:`_strokes`) and ``_HALO_PX`` around them, at
    least ``_REST_SHARE`` of the object and ``_REST_PX`` pixels are interior (3x3), and that
    interior is textured (mean ``_REST_TEXTURE``): tissue under broad strokes, not the smooth
    body of a marker. Per pixel: of a judged object, of no ink colour, beyond its strokes and
    their halo, in an object where such pixels are textured (tissue, not a stroke's fringe)."""
    shape = candidates.shape
    at = judged[lab]
    strict = np.zeros(shape, bool)
    strict.reshape(-1)[index[at]] = (codes[at] & 7) > 0
    runs = label_runs(strict, connectivity=2)
    stroke = _strokes(runs, strict)
    halo = np.zeros(shape, bool)
    halo.reshape(-1)[runs.pixels(stroke)[0]] = True
    rest = candidates & ~square_max(halo, _HALO_PX)
    grey = rgb.reshape(-1, rgb.shape[-1])[:, :3]
    # of no ink colour beyond the strokes and their halo: tissue when textured as a whole
    # (a blurred stroke's wide fringe is smooth)
    beyond = np.take(rest.reshape(-1), index) & at & ((codes & 7) == 0)
    if beyond.any():
        sums = np.bincount(
            lab[beyond], weights=_texture(grey, index[beyond], shape), minlength=judged.size
        )
        n_beyond = np.maximum(np.bincount(lab[beyond], minlength=judged.size), 1)
        beyond &= (sums / n_beyond >= _REST_TEXTURE)[lab]
    core = np.take(square_min(rest, 1).reshape(-1), index) & at
    n_core = np.bincount(lab[core], minlength=judged.size)
    out = (share(core) >= _REST_SHARE) & (n_core >= _REST_PX)
    out &= judged
    if not out.any():
        return out, beyond
    where = core & out[lab]
    sums = np.bincount(lab[where], weights=_texture(grey, index[where], shape), minlength=out.size)
    return out & (sums / np.maximum(n_core, 1) >= _REST_TEXTURE), beyond


def _texture(grey: np.ndarray, where: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Per flat pixel ``where``: |its summed rgb - the 3x3 mean| / 3 (a marker's ink: ~0.3)."""
    lum = np.take(grey, neighbourhoods(where, shape, 1), axis=0).sum(axis=2, dtype=np.float32)
    return np.abs(lum[:, 4] - lum.mean(axis=1)) / 3.0


def stain_codes(codes: np.ndarray, where: np.ndarray) -> None:
    """At the flat pixels ``where`` (objects whose stain has an ink-like colour), keep only
    the strict ink of strokes, in place: pieces of strict colour that are no stroke
    (:func:`_strokes`; a pen leaves strokes, the stain leaves specks) and the loose ink-like colour
    (the stain's own) are cleared, so no ink grows over the tissue from them."""
    flat = codes.reshape(-1)
    strict = np.zeros(codes.shape, bool)
    strict.reshape(-1)[where] = (flat[where] & 7) > 0
    flat[where] &= 7
    runs = label_runs(strict, connectivity=2)
    small = ~_strokes(runs, strict)
    small[0] = False
    if small.any():
        flat[runs.pixels(small)[0]] = 0


def _strokes(runs, strict: np.ndarray) -> np.ndarray:
    """bool per component of ``strict`` (label 0 False): a stroke, not a speck of stain: at
    least ``_MIN_STROKE_PX`` pixels, and a solid core (a pixel whose 3x3 is all strict) or a
    line (:func:`_lines`). Nuclei of a dense stain clump into compact specks of strict colour
    with neither."""
    size = runs.sizes()
    out = size >= _MIN_STROKE_PX
    out[0] = False
    if not out.any():
        return out
    row, col = np.divmod(runs.start, runs.shape[1])
    line = _lines(runs.label, row, col, col + runs.length - 1, size)
    solid = np.zeros(runs.n + 1, bool)
    solid[runs.at(np.flatnonzero(square_min(strict, 1)))] = True
    return out & (line | solid)


def _elongated(index: np.ndarray, lab: np.ndarray, judged: np.ndarray, shape) -> np.ndarray:
    """bool per label, among the ``judged``: a line or a curve (:func:`_lines`), not a
    compact piece."""
    at = judged[lab]
    labels = lab[at]
    row, col = np.divmod(index[at], shape[1])
    return judged & _lines(labels, row, col, col, np.bincount(labels, minlength=judged.size))


def _lines(labels, row, first_col, last_col, size) -> np.ndarray:
    """bool per label (``size``: pixels per label): the longer side of its box is at least
    ``_LINE_ELONGATION`` x the square root of its pixels. Pixels or runs are given by their
    label, row and first and last column."""
    n1 = size.size
    big = np.iinfo(np.int64).max
    r0, c0 = np.full(n1, big), np.full(n1, big)
    r1, c1 = np.full(n1, -1), np.full(n1, -1)
    np.minimum.at(r0, labels, row)
    np.maximum.at(r1, labels, row)
    np.minimum.at(c0, labels, first_col)
    np.maximum.at(c1, labels, last_col)
    side = np.maximum(r1 - r0, c1 - c0) + 1
    return side >= _LINE_ELONGATION * np.sqrt(np.maximum(size, 1))
