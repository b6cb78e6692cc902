"""Annotations of known geometry for the synthetic slides, as QuPath GeoJSON or ASAP XML.

- :func:`stained_classes`: a :class:`~wsidist.demo.stained.StainedSpec`'s ``tumour`` (the dark
  ellipse inside the tissue) and ``stroma`` (the rest of the tissue: a polygon with the tumour
  as its hole), as polygons of ``n`` vertices (area error ~ 2π²/(3n²), under 0.01 % at 512).
- :func:`mask_classes`: a synthetic slide's truth mask (any label set) as exact polygons
  (:func:`wsidist.imaging.contours.mask_polygons`: rasterising them back gives the mask).
- :func:`geojson_doc` / :func:`asap_xml`: the documents QuPath and ASAP write; an optional
  ``broken`` bow-tie (a self-intersecting ring) stands for a hand-drawn invalid polygon.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from xml.sax.saxutils import quoteattr

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping
from shapely.geometry.base import BaseGeometry

from wsidist.demo.stained import Ellipse, StainedSpec
from wsidist.imaging.contours import mask_polygons

__all__ = ["asap_xml", "ellipse_polygon", "geojson_doc", "mask_classes", "stained_classes"]


def ellipse_polygon(ellipse: Ellipse, width: int, height: int, n: int = 512) -> Polygon:
    """An ellipse given as fractions of the slide's sides, in level-0 px (``n`` vertices)."""
    cx, cy, rx, ry = ellipse
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return Polygon(
        np.c_[cx * width + rx * width * np.cos(t), cy * height + ry * height * np.sin(t)]
    )


def stained_classes(spec: StainedSpec, n: int = 512) -> dict[str, BaseGeometry]:
    """``tumour`` (dark ∩ tissue) and ``stroma`` (tissue − dark) of a stained slide."""
    tissue = ellipse_polygon(spec.tissue, spec.width, spec.height, n)
    if spec.dark is None:
        return {"stroma": tissue}
    dark = ellipse_polygon(spec.dark, spec.width, spec.height, n).intersection(tissue)
    return {"tumour": dark, "stroma": tissue.difference(dark)}


def mask_classes(masks: Mapping[str, np.ndarray], downsample: float) -> dict[str, BaseGeometry]:
    """Each boolean truth mask (pixel = ``downsample`` level-0 px) as one (Multi)Polygon."""
    out: dict[str, BaseGeometry] = {}
    for name, mask in masks.items():
        polys = mask_polygons(mask, downsample)
        if polys:
            out[name] = polys[0] if len(polys) == 1 else MultiPolygon(polys)
    return out


def _bow_tie(box: tuple[float, float, float, float]) -> Polygon:
    x0, y0, x1, y1 = box
    return Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])  # edges cross in the middle


def geojson_doc(
    classes: Mapping[str, BaseGeometry],
    *,
    broken: Mapping[str, tuple[float, float, float, float]] | None = None,
    split: bool = False,
) -> dict:
    """A QuPath FeatureCollection: one Feature per class (``split``: one per polygon), with
    ``classification.name``; ``broken`` adds a bow-tie polygon of that class over each box."""
    features = []

    def add(name: str, geom: BaseGeometry) -> None:
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(geom),
                "properties": {"objectType": "annotation", "classification": {"name": name}},
            }
        )

    for name, geom in classes.items():
        parts = list(getattr(geom, "geoms", [geom])) if split else [geom]
        for part in parts:
            add(name, part)
    for name, box in (broken or {}).items():
        add(name, _bow_tie(box))
    return {"type": "FeatureCollection", "features": json.loads(json.dumps(features))}


def asap_xml(classes: Mapping[str, BaseGeometry]) -> str:
    """An ASAP annotation file: one Polygon Annotation per polygon exterior (ASAP has no
    holes), ``PartOfGroup`` the class, and the groups listed."""
    lines = ['<?xml version="1.0"?>', "<ASAP_Annotations>", "  <Annotations>"]
    k = 0
    for name, geom in classes.items():
        for poly in shapely.get_parts(geom):
            lines.append(
                f'    <Annotation Name="Annotation {k}" Type="Polygon" '
                f'PartOfGroup={quoteattr(name)} Color="#F4FA58">'
            )
            lines.append("      <Coordinates>")
            for i, (x, y) in enumerate(list(poly.exterior.coords)[:-1]):
                lines.append(f'        <Coordinate Order="{i}" X="{x:.4f}" Y="{y:.4f}" />')
            lines += ["      </Coordinates>", "    </Annotation>"]
            k += 1
    lines += ["  </Annotations>", "  <AnnotationGroups>"]
    for name in classes:
        lines.append(f'    <Group Name={quoteattr(name)} PartOfGroup="None" Color="#64FE2E" />')
    lines += ["  </AnnotationGroups>", "</ASAP_Annotations>"]
    return "\n".join(lines) + "\n"
