"""Masks as polygons and polygons as masks: tissue contours and tile boxes as QuPath GeoJSON.

:func:`mask_polygons` traces the exact pixel boundary of a boolean mask (one polygon per
connected region, holes as interior rings) with shapely: each row's runs of set pixels are
boxes, and the union of the boxes is the mask's outline, so rasterising the polygons
back at the mask's scale gives the mask again, pixel for pixel. Coordinates are scaled by the
mask's downsample into level-0 pixels.

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

TISSUE_CLASS = {"name": "Tissue", "color": [0, 160, 60]}
TILE_CLASS = {"name": "Tile", "color": [30, 110, 220]}
_ID_NAMESPACE = uuid.UUID("5b7d6a4e-9f0c-4c55-8f1e-7b4a0d2c9e31")


def mask_polygons(mask: np.ndarray, downsample: float = 1.0) -> list[Polygon]:
    """The regions of a bool ``(h, w)`` mask as polygons with holes, in ``downsample`` × mask px.

    Mask pixel (i, j) covers ``[j, j+1) × [i, i+1)`` before scaling. Largest region first.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows_s, x_s = np.nonzero(edges == 1)
    _, x_e = np.nonzero(edges == -1)  # same row-major order: one end per start
    if not len(x_s):
        return []
    boxes = shapely.box(x_s, rows_s, x_e, rows_s + 1)
    union = shapely.simplify(shapely.union_all(boxes), 0)
    parts = list(union.geoms) if isinstance(union, MultiPolygon) else [union]
    if downsample != 1.0:
        parts = [shapely.transform(p, lambda xy: xy * float(downsample)) for p in parts]
    return sorted((p for p in parts if not p.is_empty), key=lambda p: -p.area)


def rasterise(polygons: Iterable[Polygon], shape_hw: tuple[int, int], downsample: float = 1.0):
    """bool ``shape_hw``: pixels whose centre lies inside any polygon (level-0 coordinates
    divided by ``downsample``)."""
    h, w = shape_hw
    out = np.zeros((h, w), bool)
    geoms = [g for g in polygons if not g.is_empty]
    if not geoms:
        return out
    union = shapely.union_all(geoms)
    ys, xs = np.mgrid[0:h, 0:w]
    return shapely.contains_xy(union, (xs + 0.5) * downsample, (ys + 0.5) * downsample)


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
        "geometry": mapping(geometry),
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
    if bounds is not None:
        frame = shapely.box(0, 0, *bounds)
        clipped = [shapely.intersection(p, frame) for p in polygons]
        polygons = [g for c in clipped for g in _polygons_of(c)]
    features = [
        feature(
            poly,
            object_type="annotation",
            classification=TISSUE_CLASS,
            feature_id=f"{slide_id}/tissue/{i}",
            measurements={"area_px0": poly.area},
        )
        for i, poly in enumerate(polygons)
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
