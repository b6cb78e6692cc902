"""Masks as polygons: the exact pixel boundary of a boolean mask, traced on packed bits.

:func:`mask_polygons` gives one polygon per 4-connected region, holes as interior rings: the
boundary's horizontal and vertical runs of pixel edges (found with bit arithmetic on the mask's
rows packed 8 pixels a byte) are linked end to start into closed rings, whose orientation tells
shells from holes, and each hole goes to the smallest shell around it. Rasterising the polygons
back at the mask's scale gives the mask again, pixel for pixel. Coordinates are scaled by the
mask's downsample (into level-0 pixels).
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import Polygon

__all__ = ["mask_polygons"]


def mask_polygons(mask: np.ndarray, downsample: float = 1.0) -> list[Polygon]:
    """The regions of a bool ``(h, w)`` mask as polygons with holes, in ``downsample`` × mask px.

    Mask pixel (i, j) covers ``[j, j+1) × [i, i+1)`` before scaling. Regions are 4-connected
    (pixels that touch only at a corner are two polygons meeting at a point). Largest first.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not rows.size:
        return []
    crop = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    xy, sizes = _boundary_rings(crop)
    return _assemble(xy + (cols[0], rows[0]), sizes, float(downsample))


def _edge_runs(mask: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """The maximal runs of boundary edges of a bool ``(h, w)`` mask along the horizontal grid
    lines, and along the vertical ones: each ``(line, start, end, value)``, in line-then-start
    order.

    Horizontal line y lies between rows y-1 and y (0..h); its edge ``[x, x+1)`` has value 1
    when the region is above it, 2 when below. Vertical line x lies between columns x-1 and x
    (0..w); its edge ``[y, y+1)`` has value 1 when the region is left of it, 2 when right.
    It is all bit arithmetic on the mask's rows packed 8 pixels a byte (a run starts at an edge
    whose predecessor on its line is missing and ends at one whose successor is), so the mask
    is never transposed and only the bytes that hold a run's end are unpacked.
    """
    h, w = mask.shape
    p = np.zeros((h + 2, w // 8 + 1), np.uint8)  # a zero row each side, room for bit w
    p[1:-1, : (w + 7) // 8] = np.packbits(mask, axis=1)
    above, below, west = p[:-1], p[1:], _shift_east(p)  # west: pixel x-1 at bit x
    planes = []
    for bits in (above & ~below, below & ~above):  # horizontal edges on line y: values 1, 2
        planes += [bits & ~_shift_east(bits), bits & ~_shift_west(bits)]  # a run's first, last
    for bits in (west & ~p, p & ~west):  # vertical edges, per padded row: values 1, 2
        planes += [bits[1:-1] & ~bits[:-2], bits[1:-1] & ~bits[2:]]
    row, x = _set_bits(planes, h + 1)
    cut = np.searchsorted(row, np.arange(1, len(planes)) * (h + 1))
    found = [
        (r - k * (h + 1), c) for k, (r, c) in enumerate(zip(np.split(row, cut), np.split(x, cut)))
    ]
    return _runs(found[:4], w, along_rows=True), _runs(found[4:], h, along_rows=False)


def _runs(found: list[tuple[np.ndarray, np.ndarray]], length: int, along_rows: bool):
    """(line, start, end, value) from the (row, x) of each value's first and last edges."""
    parts = []
    for value, ((ra, xa), (rb, xb)) in ((1, found[0:2]), (2, found[2:4])):
        if along_rows:  # row-major order pairs each run's first edge with its last
            line, start, last = ra, xa, xb
        else:  # runs along columns: by x, then y
            oa, ob = np.argsort(xa * (length + 1) + ra), np.argsort(xb * (length + 1) + rb)
            line, start, last = xa[oa], ra[oa], rb[ob]
        parts.append((line, start, last + 1, np.full(line.size, value, np.int8)))
    line, start, end, value = (np.concatenate(cols) for cols in zip(*parts))
    order = np.argsort(line * (length + 1) + start, kind="stable")
    return line[order], start[order], end[order], value[order]


def _shift_east(bits: np.ndarray) -> np.ndarray:
    """Packed rows with every pixel moved one to the right (big-endian bits: bit x-1 to x)."""
    out = bits >> 1
    out[:, 1:] |= bits[:, :-1] << 7
    return out


def _shift_west(bits: np.ndarray) -> np.ndarray:
    """Packed rows with every pixel moved one to the left (bit x+1 to x)."""
    out = bits << 1
    out[:, :-1] |= bits[:, 1:] >> 7
    return out


def _set_bits(planes: list[np.ndarray], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(plane × ``rows`` + row, bit index) of the set bits of packed planes of at most ``rows``
    rows, plane by plane in row-major order, in one scan over all of them."""
    nb = planes[0].shape[1]
    stack = np.zeros((len(planes), rows, nb), np.uint8)
    for k, plane in enumerate(planes):
        stack[k, : plane.shape[0]] = plane
    flat = stack.ravel()
    at = np.flatnonzero(flat != 0)  # (flat indices are much faster than 2-D ones)
    k = np.flatnonzero(np.unpackbits(flat[at]).view(bool))
    row, byte = np.divmod(at[k >> 3], nb)
    return row, byte * 8 + (k & 7)


def _boundary_rings(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every closed pixel-edge ring of ``mask``, as ``(n, 2)`` corner coordinates (x, y) ring
    after ring and each ring's number of corners; walked with the region on the right: shells
    have positive shoelace area (y down), holes negative.

    The boundary's horizontal and vertical runs are its edges; each run continues into the
    perpendicular run that starts where it ends (turning right where two do, at a pixel
    corner shared diagonally, so regions stay 4-connected).
    """
    h, w = mask.shape
    (y, a, b, v), (x, c, d, u) = _edge_runs(mask)
    east = v == 2  # region below: walked east
    north = u == 2  # region right: walked north
    sx = np.r_[np.where(east, a, b), x]
    sy = np.r_[y, np.where(north, d, c)]
    ex = np.r_[np.where(east, b, a), x]
    ey = np.r_[y, np.where(north, c, d)]
    direction = np.r_[np.where(east, 0, 2), np.where(north, 3, 1)]
    stride = np.int64(w + 1)
    key = (sy.astype(np.int64) * stride + sx) * 4 + direction
    order = np.argsort(key)
    sorted_key = key[order]
    end = (ey.astype(np.int64) * stride + ex) * 4

    def starting(turn: int) -> np.ndarray:
        wanted = end + (direction + turn) % 4
        i = np.minimum(np.searchsorted(sorted_key, wanted), len(sorted_key) - 1)
        return np.where(sorted_key[i] == wanted, order[i], -1)

    right_turn = starting(1)
    succ = np.where(right_turn >= 0, right_turn, starting(3))
    ring_of, ring_order = _cycles(succ)
    vertex = sorted_key // 4
    shared = np.zeros(len(succ), bool)  # starts at a corner two runs start from
    twice = np.flatnonzero(vertex[1:] == vertex[:-1])
    shared[order[twice]] = shared[order[twice + 1]] = True
    xy = np.stack([sx, sy], axis=1)[ring_order]
    walked = ring_of[ring_order]
    first = np.r_[0, np.flatnonzero(walked[1:] != walked[:-1]) + 1]
    sizes = np.diff(np.r_[first, len(xy)])
    pinched = np.zeros(len(succ), bool)
    pinched[ring_of[shared]] = True  # rings that may pass such a corner twice
    redo = np.flatnonzero(pinched[walked[first]])
    if not redo.size:
        return xy, sizes
    pieces, piece_sizes, done = [], [], 0  # the rings in order, each pinched one as its loops
    for r in redo.tolist():
        start, stop = first[r], first[r] + sizes[r]
        loops = _simple_loops(xy[start:stop])
        pieces += [xy[first[done] if done < r else start : start], *loops]
        piece_sizes += [sizes[done:r], [len(loop) for loop in loops]]
        done = r + 1
    pieces.append(xy[first[done] :] if done < len(first) else xy[:0])
    piece_sizes.append(sizes[done:])
    return np.concatenate(pieces), np.concatenate(piece_sizes).astype(np.int64)


def _cycles(succ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a permutation ``succ``: each element's cycle (its smallest member), and the elements
    ordered cycle by cycle, each from its smallest member along ``succ`` (pointer jumping, no
    loop over elements)."""
    n = len(succ)
    ring = np.arange(n)
    jump = succ.copy()
    steps = max(1, int(np.ceil(np.log2(max(n, 2)))) + 1)
    for _ in range(steps):
        np.minimum(ring, ring[jump], out=ring)
        jump = jump[jump]
    # steps to the member before the smallest one: list ranking on the cycle cut open there
    nxt = np.where(succ == ring, np.arange(n), succ)
    dist = (nxt != np.arange(n)).astype(np.int64)
    for _ in range(steps):
        dist = dist + dist[nxt]
        nxt = nxt[nxt]
    return ring, np.argsort(ring * np.int64(n) + (n - 1 - dist))  # by ring, then along it


def _simple_loops(ring: np.ndarray) -> list[np.ndarray]:
    """A closed ring that passes some corners twice, as loops that pass each once (the loops
    of a traced outline nest like brackets)."""
    key = ring[:, 0].astype(np.int64) * (int(ring[:, 1].max()) + 1) + ring[:, 1]
    by_key = np.argsort(key, kind="stable")
    twice = np.flatnonzero(key[by_key][1:] == key[by_key][:-1])
    if not twice.size:
        return [ring]
    closes = dict(zip(by_key[twice + 1].tolist(), by_key[twice].tolist()))  # 2nd -> 1st
    taken = np.zeros(len(ring), bool)
    loops = []
    for j in sorted(closes):
        i = closes[j]
        inner = np.arange(i, j)[~taken[i:j]]
        loops.append(ring[inner])
        taken[i + 1 : j + 1] = True
    loops.append(ring[~taken])
    return [loop for loop in loops if len(loop) >= 4]


def _assemble(corners: np.ndarray, sizes: np.ndarray, downsample: float) -> list[Polygon]:
    """Polygons (largest first) from shell and hole rings (their ``corners`` ring after ring,
    ``sizes`` corners each), scaled by ``downsample``: each hole goes to the smallest shell
    that holds it."""
    xy = corners.astype(np.float64)
    n_rings = len(sizes)
    ring_of = np.repeat(np.arange(n_rings), sizes)
    after = np.arange(len(xy)) + 1  # the next corner of the same ring
    after[np.cumsum(sizes) - 1] = np.cumsum(sizes) - sizes
    cross = xy[:, 0] * xy[after, 1] - xy[after, 0] * xy[:, 1]
    area = np.bincount(ring_of, weights=cross, minlength=n_rings) / 2  # > 0: shell
    geoms = shapely.linearrings(xy * downsample, indices=ring_of)
    shell = np.flatnonzero(area > 0)
    hole = np.flatnonzero(area < 0)
    owner = np.zeros(n_rings, np.int64)
    owner[shell] = np.arange(len(shell))
    if hole.size:
        shell_geoms = shapely.polygons(geoms[shell])
        # a point inside each hole: the centre of the pixel left of its first edge
        first = xy[np.cumsum(sizes)[hole] - sizes[hole]]
        step = np.sign(xy[np.cumsum(sizes)[hole] - sizes[hole] + 1] - first)
        inside = (first + 0.5 * step + 0.5 * step[:, ::-1] * (1, -1)) * downsample
        # the shells as the query side, so GEOS prepares them (a point-in-polygon test is then
        # cheap however many corners the shell has): pairs are (shell, hole)
        pairs = shapely.STRtree(shapely.points(inside)).query(shell_geoms, predicate="contains")
        pairs = pairs[::-1]
        by_size = np.lexsort((area[shell][pairs[1]], pairs[0]))  # per hole, smallest first
        h_i, s_i = pairs[0][by_size], pairs[1][by_size]
        first_of_hole = np.r_[True, h_i[1:] != h_i[:-1]]
        owner[hole[h_i[first_of_hole]]] = s_i[first_of_hole]
        hole = hole[h_i[first_of_hole]]
    members = np.r_[shell, hole]
    index = owner[members]
    order = np.lexsort((area[members] < 0, index))  # each shell, then its holes
    polygons = shapely.polygons(geoms[members[order]], indices=index[order])
    return list(polygons[np.argsort(-shapely.area(polygons), kind="stable")])
