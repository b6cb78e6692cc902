"""Masks as polygons and polygons as masks: tissue contours and tile boxes as QuPath GeoJSON.

:func:`mask_polygons` traces the exact pixel boundary of a boolean mask (one polygon per
4-connected region, holes as interior rings): the boundary's horizontal and vertical runs of
pixel edges are linked end to start into closed rings, whose orientation tells shells from
holes, and each hole goes to the smallest shell around it. Rasterising the polygons back at
the mask's scale gives the mask again, pixel for pixel. Coordinates are scaled by the mask's
downsample into level-0 pixels.

The GeoJSON documents are FeatureCollections as QuPath exports them: one Feature per object,
``properties.objectType`` (``annotation``, ``tile``) and ``properties.classification``
(``{"name": …, "color": [r, g, b]}``), optional ``properties.measurements`` (name → number).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape

from wsidist.imaging.raster import rasterise_geometry

TISSUE_CLASS = {"name": "Tissue", "color": [0, 160, 60]}
TILE_CLASS = {"name": "Tile", "color": [30, 110, 220]}
_ID_NAMESPACE = uuid.UUID("5b7d6a4e-9f0c-4c55-8f1e-7b4a0d2c9e31")


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
    rings = [ring + (cols[0], rows[0]) for ring in _boundary_rings(crop)]
    return _assemble(rings, float(downsample))


def _edge_code(p: np.ndarray) -> np.ndarray:
    """int8 per pixel edge between rows of the padded mask ``p`` (h+2, w+2): 0 none, 1 region
    above, 2 region below (rows h+1, columns w)."""
    above, below = p[:-1, 1:-1], p[1:, 1:-1]
    code = np.not_equal(above, below).view(np.int8)
    code += code & below
    return code


def _runs(code: np.ndarray) -> tuple[np.ndarray, ...]:
    """(line, start, end, value) of the maximal runs of one nonzero value along axis 1."""
    pad = np.zeros((code.shape[0], code.shape[1] + 2), np.int8)
    pad[:, 1:-1] = code
    line, k = np.nonzero(pad[:, 1:] != pad[:, :-1])  # a run starts or ends before k
    value = pad[line, k + 1]
    keep = (value != 0) & np.r_[line[1:] == line[:-1], False]
    return line[keep], k[keep], np.r_[k[1:], 0][keep], value[keep]


_STEP = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])  # east, south, west, north (y down)


def _boundary_rings(mask: np.ndarray) -> list[np.ndarray]:
    """Every closed pixel-edge ring of ``mask`` as ``(n, 2)`` corner coordinates (x, y), walked
    with the region on the right: shells have positive shoelace area (y down), holes negative.

    The boundary's horizontal and vertical runs are its edges; each run continues into the
    perpendicular run that starts where it ends (turning right where two do, at a pixel
    corner shared diagonally, so regions stay 4-connected).
    """
    h, w = mask.shape
    p = np.zeros((h + 2, w + 2), np.int8)
    p[1:-1, 1:-1] = mask
    y, a, b, v = _runs(_edge_code(p))  # 2: region below, walked east
    east = v == 2
    x, c, d, v = _runs(_edge_code(np.ascontiguousarray(p.T)))  # 2: region right, walked north
    north = v == 2
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
    cuts = np.flatnonzero(ring_of[ring_order][1:] != ring_of[ring_order][:-1]) + 1
    pinched = np.zeros(len(succ), bool)
    pinched[ring_of[shared]] = True  # rings that may pass such a corner twice
    out: list[np.ndarray] = []
    for ring, first in zip(np.split(xy, cuts), np.r_[0, cuts]):
        if pinched[ring_of[ring_order[first]]]:
            out.extend(_simple_loops(ring))
        else:
            out.append(ring)
    return out


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
    return ring, np.lexsort((-dist, ring))


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


def _assemble(rings: list[np.ndarray], downsample: float) -> list[Polygon]:
    """Polygons (largest first) from shell and hole rings, scaled by ``downsample``: each hole
    goes to the smallest shell that holds it."""
    sizes = np.array([len(r) for r in rings])
    xy = np.concatenate(rings).astype(np.float64)
    ring_of = np.repeat(np.arange(len(rings)), sizes)
    after = np.arange(len(xy)) + 1  # the next corner of the same ring
    after[np.cumsum(sizes) - 1] = np.cumsum(sizes) - sizes
    cross = xy[:, 0] * xy[after, 1] - xy[after, 0] * xy[:, 1]
    area = np.bincount(ring_of, weights=cross, minlength=len(rings)) / 2  # > 0: shell
    geoms = shapely.linearrings(xy * downsample, indices=ring_of)
    shell = np.flatnonzero(area > 0)
    hole = np.flatnonzero(area < 0)
    owner = np.zeros(len(rings), np.int64)
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


def rasterise(polygons: Iterable[Polygon], shape_hw: tuple[int, int], downsample: float = 1.0):
    """bool ``shape_hw``: pixels whose centre lies inside any polygon (level-0 coordinates
    divided by ``downsample``; ties on edges by :mod:`wsidist.imaging.raster`'s rule)."""
    return rasterise_geometry(polygons, shape_hw, downsample)


def feature(
    geometry: Polygon | MultiPolygon,
    *,
    object_type: str,
    classification: Mapping[str, Any],
    feature_id: str,
    measurements: Mapping[str, float] | None = None,
    precision: int = 2,
) -> dict[str, Any]:
    """One QuPath-style GeoJSON Feature (coordinates rounded to ``precision`` decimals)."""
    geometry = shapely.set_precision(geometry, 10.0**-precision) if precision >= 0 else geometry
    props: dict[str, Any] = {
        "objectType": object_type,
        "classification": dict(classification),
        "isLocked": False,
    }
    if measurements:
        props["measurements"] = {k: _number(v) for k, v in measurements.items()}
    return {
        "type": "Feature",
        "id": str(uuid.uuid5(_ID_NAMESPACE, feature_id)),
        "geometry": _geometry_json(geometry),
        "properties": props,
    }


def tissue_geojson(
    mask: np.ndarray,
    downsample: float,
    slide_id: str,
    bounds: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """A slide's tissue contours (with holes) in level-0 px as a FeatureCollection, clipped to
    ``bounds`` (the slide's width and height) when given."""
    polygons = mask_polygons(mask, downsample)
    if bounds is not None and polygons:  # clip only what reaches past the slide's edge
        frame = shapely.box(0, 0, *bounds)
        outside = shapely.bounds(np.asarray(polygons, dtype=object))[:, 2:] > bounds
        polygons = [
            g
            for p, out in zip(polygons, outside.any(axis=1))
            for g in (_polygons_of(shapely.intersection(p, frame)) if out else [p])
        ]
    rounded = shapely.transform(np.asarray(polygons, dtype=object), lambda xy: np.round(xy, 2))
    features = [
        feature(
            poly,
            object_type="annotation",
            classification=TISSUE_CLASS,
            feature_id=f"{slide_id}/tissue/{i}",
            measurements={"area_px0": poly.area},
            precision=-1,  # rounded above, all at once
        )
        for i, poly in enumerate(rounded)
    ]
    return {"type": "FeatureCollection", "features": features}


def tile_geojson(
    boxes: Sequence[tuple[int, int, int, int]],
    slide_id: str,
    measurements: Sequence[Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Tiles ``(x, y, w, h)`` in level-0 px as QuPath ``tile`` objects, with measurements."""
    features = []
    for i, (x, y, w, h) in enumerate(boxes):
        extra = measurements[i] if measurements is not None else None
        features.append(
            feature(
                shapely.box(x, y, x + w, y + h),
                object_type="tile",
                classification=TILE_CLASS,
                feature_id=f"{slide_id}/tile/{x}/{y}/{w}/{h}",
                measurements=extra,
                precision=0,
            )
        )
    return {"type": "FeatureCollection", "features": features}


def dumps(collection: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a FeatureCollection."""
    return json.dumps(collection, separators=(",", ":"), allow_nan=False).encode()


def geojson_polygons(collection: Mapping[str, Any]) -> list[Polygon]:
    """The (multi)polygons of a FeatureCollection as a flat list of shapely Polygons."""
    out: list[Polygon] = []
    for feat in collection.get("features", []):
        geom = shape(feat["geometry"])
        out.extend(geom.geoms if isinstance(geom, MultiPolygon) else [geom])
    return [p for p in out if isinstance(p, Polygon)]


def _geometry_json(geometry) -> dict[str, Any]:
    """GeoJSON geometry; a polygon's rings straight from its coordinate arrays (whole numbers
    as ints), faster than shapely's tuple-by-tuple mapping."""
    if not isinstance(geometry, Polygon) or geometry.is_empty:
        return mapping(geometry)
    xy = shapely.get_coordinates(geometry)  # the exterior, then every interior ring
    whole = xy.astype(np.int64)
    flat = whole.tolist() if np.array_equal(whole, xy) else xy.tolist()
    ends = np.cumsum(shapely.get_num_coordinates(shapely.get_rings(geometry))).tolist()
    rings = [flat[a:b] for a, b in zip([0, *ends[:-1]], ends)]
    return {"type": "Polygon", "coordinates": rings}


def _polygons_of(geom) -> list[Polygon]:
    if isinstance(geom, Polygon):
        return [] if geom.is_empty else [geom]
    return [g for g in getattr(geom, "geoms", []) if isinstance(g, Polygon) and not g.is_empty]


def _number(value: Any) -> float | int | None:
    if value is None:
        return None
    value = float(value)
    if not np.isfinite(value):
        return None
    return int(value) if value.is_integer() else round(value, 6)
