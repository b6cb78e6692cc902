"""Sub-pixel tissue coverage: how much of each scaled pixel is tissue, from its colour.

A pixel of the scaled image is the area average of the level-0 pixels under it, so at a tissue
edge it is a linear blend of tissue and glass: ``I = f * I_tissue + (1 - f) * I_glass``. With
the darkness ``D`` (the distance from the glass colour along the glass-to-tissue colour axis,
absorbed light on brightfield, emitted light on a dark slide), the tissue share of an edge pixel is ``f = (D - D_glass) / (D_tissue - D_glass)``,
where ``D_tissue`` is the mean darkness of whole tissue pixels within two pixels of it and
``D_glass`` that of the glass around it. Only pixels at a tissue/glass edge are unmixed; pixels
inside the tissue count 1 and glass 0. Coverage is uint8, 255 = the whole pixel.
"""

from __future__ import annotations

import numpy as np

from .glass import Background
from .morphology import square_max

__all__ = [
    "coverage_fraction",
    "darkness",
    "dilate_index",
    "grow_by_unmixing",
    "light_spots",
    "tissue_direction",
]


def darkness(
    rgb: np.ndarray,
    bg: Background,
    index: np.ndarray | None = None,
    direction: np.ndarray | None = None,
) -> np.ndarray:
    """float32 distance of each pixel (or of the flat ``index``) from the background colour,
    along ``direction`` (unit rgb vector; default the gray axis), signed so that tissue is
    positive: light absorbed on brightfield, emitted on a dark slide. One lookup a channel."""
    ref = np.asarray(bg.rgb, np.float32)
    u = np.full(3, 1 / np.sqrt(3), np.float32) if direction is None else direction
    sign = -1.0 if bg.dark else 1.0
    levels = np.arange(256, dtype=np.float32)
    luts = [(sign * u[c] * (ref[c] - levels)).astype(np.float32) for c in range(3)]
    flat = rgb.reshape(-1, 3)
    px = np.take(flat, index, axis=0) if index is not None else flat
    d = np.take(luts[0], px[:, 0])
    d += np.take(luts[1], px[:, 1])
    d += np.take(luts[2], px[:, 2])
    return d if index is not None else d.reshape(rgb.shape[:2])


def tissue_direction(rgb: np.ndarray, mask: np.ndarray, bg: Background) -> np.ndarray:
    """Unit rgb vector from the glass to the mean colour of ``mask`` (the axis along which edge
    pixels blend); the gray axis when the mask is empty."""
    ref = np.asarray(bg.rgb, np.float32)
    pick = np.flatnonzero(mask)
    px = np.take(rgb.reshape(-1, 3), pick[:: max(1, pick.size // 50_000)], axis=0)
    v = ref - px.mean(axis=0) if px.size else np.ones(3, np.float32)
    v = -v if bg.dark else v
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 1 else np.full(3, 1 / np.sqrt(3), np.float32)


def _window_offsets(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    dy, dx = np.meshgrid(r, r, indexing="ij")
    return np.stack([dy.ravel(), dx.ravel()], axis=1)


def coverage_fraction(
    rgb: np.ndarray,
    mask: np.ndarray,
    bg: Background,
    glass: np.ndarray | None = None,
    *,
    radius_px: int = 2,
    clamp: bool = True,
    dark: np.ndarray | None = None,
    material: np.ndarray | None = None,
) -> np.ndarray:
    """uint8 (h, w) tissue coverage of each pixel (255 = all tissue).

    ``mask``: the tissue decision; ``glass``: pixels known to be background (default: not
    ``mask``). Pixels that are neither (ink, artefacts) count 0 and are never unmixed. With
    ``clamp``, coverage is >= 50 % exactly on ``mask``, so the two never disagree. ``dark``:
    the :func:`darkness` image, when already at hand. ``material``: the mask pixels whose
    colour is the tissue's, the tissue end of the unmixing (default all of ``mask``; not
    filled holes, which look like glass).
    """
    mask = np.asarray(mask, bool)
    glass = ~mask if glass is None else np.asarray(glass, bool) & ~mask
    cov = np.multiply(mask, 255, dtype=np.uint8)
    if not mask.any() or not glass.any():
        return cov
    near_glass = square_max(glass)
    near_tissue = square_max(mask)
    inner, outer = mask & near_glass, glass & near_tissue
    band = np.flatnonzero(inner | outer)
    if band.size == 0:
        return cov
    h, w = mask.shape
    interior = ((mask if material is None else material) & ~near_glass).reshape(-1)
    clean_glass = (glass & ~near_tissue).reshape(-1)
    if dark is None:
        dark = darkness(rgb, bg, direction=tissue_direction(rgb, interior.reshape(h, w), bg))
    arrays = (dark.reshape(-1), mask.reshape(-1), interior, clean_glass)
    flat = cov.reshape(-1)
    for first in range(0, band.size, _CHUNK_PX):  # (chunks: the gathers stay in cache)
        part = band[first : first + _CHUNK_PX]
        flat[part] = _unmix(part, (h, w), radius_px, *arrays, clamp)
    return cov


_CHUNK_PX = 8192


def _unmix(band, shape, radius_px, d_all, flat_mask, interior, clean_glass, clamp) -> np.ndarray:
    """uint8 coverage of the ``band`` pixels (see :func:`coverage_fraction`)."""
    nidx = neighbourhoods(band, shape, radius_px)
    d_near = np.take(d_all, nidx)
    in_t, in_g = np.take(interior, nidx), np.take(clean_glass, nidx)
    n_t, n_g = in_t.sum(1), in_g.sum(1)
    d_t = np.where(n_t > 0, (d_near * in_t).sum(1) / np.maximum(n_t, 1), 0)
    alone = np.flatnonzero(n_t == 0)  # no whole tissue nearby: the darkest mask pixel
    if alone.size:
        near = nidx[alone]
        d_t[alone] = np.where(np.take(flat_mask, near), d_near[alone], -np.inf).max(1)
    d_g = np.where(n_g > 0, (d_near * in_g).sum(1) / np.maximum(n_g, 1), 0)
    span = d_t - d_g
    ok = np.isfinite(span) & (span > 1)
    safe = np.where(ok, span, 1).astype(np.float32)
    in_mask = np.take(flat_mask, band)
    f = np.clip((np.take(d_all, band) - d_g) / safe, 0, 1)
    f = np.where(ok, f, in_mask.astype(np.float32))
    if clamp:
        f = np.where(in_mask, np.maximum(f, 0.5), np.minimum(f, 127 / 255))
    return np.rint(f * 255).astype(np.uint8)


def light_spots(
    rgb: np.ndarray,
    mask: np.ndarray,
    bg: Background,
    *,
    ratio: float = 0.5,
    radius_px: int = 2,
    dark: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mask pixels mostly glass although darker than the threshold: unresolved holes and gaps.

    A pixel whose darkness is under ``ratio`` x the mean of the mask pixels around it (when
    that mean is at least ``ratio`` x the mask's median) is unmixed against the glass; returns (bool: its tissue share is under 50 %, uint8 coverage
    of those pixels).
    """
    h, w = mask.shape
    cov = np.zeros((h, w), np.uint8)
    spots = np.zeros((h, w), bool)
    if not mask.any():
        return spots, cov
    if dark is None:
        dark = darkness(rgb, bg, direction=tissue_direction(rgb, mask, bg))
    d_all = dark.reshape(-1)
    flat_mask = mask.reshape(-1)
    inside = np.flatnonzero(flat_mask)
    d_inside = np.take(d_all, inside)
    typical = float(np.median(d_inside))
    light = d_inside < ratio * typical * 1.5
    pick, d_pick = inside[light], d_inside[light]
    if pick.size == 0 or typical <= 0:
        return spots, cov
    nidx = neighbourhoods(pick, (h, w), radius_px)
    in_m = np.take(flat_mask, nidx)
    d_near = np.where(in_m, np.take(d_all, nidx), 0)
    local = d_near.sum(1) / np.maximum(in_m.sum(1), 1)
    f = np.clip(d_pick / np.maximum(local, 1), 0, 1)
    # only in dense surroundings: a light pixel among faint walls is fat, not a hole
    low = (f < 0.5) & (d_pick < ratio * local) & (local >= ratio * typical)
    spots.reshape(-1)[pick[low]] = True
    cov.reshape(-1)[pick[low]] = np.rint(f[low] * 255).astype(np.uint8)
    return spots, cov


def neighbourhoods(flat_idx: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """(n, (2r+1)^2) flat indices of the square around each flat index, clamped at the image
    edge (an outside neighbour repeats the nearest edge pixel). Pixels at least ``radius``
    from the edge take one add of the offsets; only the others are clamped."""
    h, w = shape
    offs = _window_offsets(radius)
    flat_idx = np.asarray(flat_idx, np.int64)
    out = flat_idx[:, None] + (offs[:, 0] * w + offs[:, 1])[None, :]
    y, x = np.divmod(flat_idx, w)
    edge = np.flatnonzero((y < radius) | (y >= h - radius) | (x < radius) | (x >= w - radius))
    if edge.size:
        ny = np.clip(y[edge, None] + offs[None, :, 0], 0, h - 1)
        nx = np.clip(x[edge, None] + offs[None, :, 1], 0, w - 1)
        out[edge] = ny * w + nx
    return out


def dilate_index(flat_idx: np.ndarray, shape: tuple[int, int], radius: int) -> np.ndarray:
    """bool (h, w): the (2r+1)-squares around the flat indices (:func:`square_max` of a sparse
    mask, from the pixels' own neighbourhoods)."""
    out = np.zeros(shape[0] * shape[1], bool)
    if len(flat_idx):
        out[neighbourhoods(flat_idx, shape, radius)] = True
    return out.reshape(shape)


def grow_by_unmixing(
    rgb: np.ndarray, inside: np.ndarray, outside: np.ndarray, *, steps: int, radius_px: int = 2
) -> int:
    """Move ``inside`` pixels that are mostly ``outside`` (e.g. tissue that is mostly pen ink)
    to ``outside``, in place, front by front for up to ``steps`` pixels; returns how many.

    Each front pixel's colour is projected on the line between the mean colours of the whole
    ``inside`` and whole ``outside`` pixels around it (as they were at the start); under half
    of the way to ``inside`` means mostly ``outside``; so is a pixel with no whole ``inside``
    pixel around it (a sliver between strokes). The next front is the ``inside``
    neighbours of the pixels just moved, so a stroke is followed into the tissue.
    """
    shape = inside.shape
    flat_in, flat_out = inside.reshape(-1), outside.reshape(-1)
    ink = np.flatnonzero(outside)  # (few pixels: their neighbourhoods, not image passes)
    near_out = dilate_index(ink, shape, 1)
    whole_in = (inside & ~near_out).reshape(-1)
    whole_out = np.zeros(flat_out.size, bool)
    lonely = ~np.take(flat_in, neighbourhoods(ink, shape, 1)).any(axis=1)
    whole_out[ink[lonely]] = True
    colours = rgb.reshape(-1, 3)
    front = np.flatnonzero(inside & near_out)
    moved = 0
    ring = _window_offsets(1)
    for _ in range(steps):
        if front.size == 0:
            break
        nidx = neighbourhoods(front, shape, radius_px)
        near = np.take(colours, nidx, axis=0).astype(np.float32)
        a, b = np.take(whole_in, nidx)[..., None], np.take(whole_out, nidx)[..., None]
        n_a, n_b = a.sum(1), b.sum(1)
        ca = (near * a).sum(1) / np.maximum(n_a, 1)
        cb = (near * b).sum(1) / np.maximum(n_b, 1)
        axis = ca - cb
        norm = (axis * axis).sum(1)
        here = np.take(colours, front, axis=0).astype(np.float32)
        share = ((here - cb) * axis).sum(1) / np.maximum(norm, 1)
        known = (n_a[:, 0] > 0) & (n_b[:, 0] > 0) & (norm > 100)
        # no whole ``inside`` pixel within the radius: a sliver between two strokes (the
        # blend of two crossing inks, in neither's colour), not a piece of tissue
        go = front[(known & (share < 0.5)) | ((n_a[:, 0] == 0) & (n_b[:, 0] > 0))]
        if go.size == 0:
            break
        flat_in[go] = False
        flat_out[go] = True
        moved += go.size
        nb = neighbourhoods(go, shape, 1).reshape(-1) if ring.size else go
        front = np.unique(nb[flat_in[nb]])
    return moved
