"""Slide annotations read from QuPath GeoJSON or ASAP/CAMELYON XML, in level-0 px.

:func:`read_annotations` returns one (Multi)Polygon per class. Formats:

- **GeoJSON** (``.geojson``, ``.json``): a FeatureCollection, a list of Features (older QuPath
  exports), one Feature, or a bare geometry. Polygon, MultiPolygon (holes kept) and the
  polygonal parts of a GeometryCollection are read; points and lines have no area and are
  skipped. A feature's class is the first of ``properties.classification.name``,
  ``properties.classification`` (a string), ``properties.label`` (a string, or its ``name``
  or ``value``), ``properties.class``, ``properties.classname``, ``properties.group``; a
  feature with none of them is of class ``annotation``.
- **ASAP XML** (``.xml``, as CAMELYON's annotations are): every ``Annotation`` of type
  Polygon, Spline or Rectangle is one polygon (its ``Coordinate`` elements in ``Order``), of the
  class named by its ``PartOfGroup`` (``annotation`` when empty or ``None``). Dots and point
  sets are skipped. CAMELYON16's exclusion group ``_2`` is kept as a class of its own.

Invalid polygons (self-intersections, bow-ties) are repaired with shapely's ``make_valid``
(its polygonal part) and counted in ``repaired``. Anything unreadable raises
:class:`~wsidist.errors.AnnotationError` naming the file.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec
import shapely
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry

from wsidist.errors import AnnotationError

__all__ = [
    "ANNOTATION_SUFFIXES",
    "DEFAULT_CLASS",
    "SlideAnnotations",
    "class_column",
    "parse_annotations",
    "read_annotations",
]

ANNOTATION_SUFFIXES = (".geojson", ".json", ".xml")
DEFAULT_CLASS = "annotation"  # the class of a feature that names none
MAX_ANNOTATION_BYTES = 512 << 20  # a larger file is refused, not read into memory
NO_CLASS = "none"  # the ``label`` of a tile no class covers (never a class column)
_XML_AREA_TYPES = frozenset({"polygon", "spline", "rectangle", "polyline"})


@dataclass(frozen=True)
class SlideAnnotations:
    """One slide's annotation: a (Multi)Polygon per class name, in level-0 px."""

    classes: Mapping[str, BaseGeometry] = field(hash=False)
    repaired: int = 0  # invalid geometries fixed with make_valid
    source: str = ""  # the file it was read from

    @property
    def names(self) -> list[str]:
        """Class names in sorted order (label index k is ``names[k - 1]``)."""
        return sorted(self.classes)

    def columns(self) -> dict[str, str]:
        """``class name -> column suffix`` (:func:`class_column`); a clash raises."""
        out: dict[str, str] = {}
        seen: dict[str, str] = {}
        for name in self.names:
            col = class_column(name, self.source)
            if col in seen:
                raise AnnotationError(
                    f"annotation {self.source}: classes {seen[col]!r} and {name!r} both become "
                    f"column label_{col}: rename one of them"
                )
            seen[col] = name
            out[name] = col
        return out


def class_column(name: str, source: str = "") -> str:
    """The safe lowercase column suffix of a class name: ``Tumor (grade 2)`` → ``tumor_grade_2``.

    ``label_<suffix>`` is the tile table's coverage column; the suffix is also the class's
    value in the ``label`` column. A name with no letter or digit, or one that becomes
    ``none`` (the label of uncovered tiles), raises :class:`AnnotationError`.
    """
    col = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")
    if not col or col == NO_CLASS:
        raise AnnotationError(
            f"annotation {source}: class {name!r} cannot be a column name"
            + (f" (label {NO_CLASS!r} means no class)" if col == NO_CLASS else "")
        )
    return col


def read_annotations(url: str, storage_options: dict[str, Any] | None = None) -> SlideAnnotations:
    """Read an annotation file (local path or fsspec URL) into one geometry per class."""
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as fh:
            data = fh.read(MAX_ANNOTATION_BYTES + 1)
    except FileNotFoundError:
        raise AnnotationError(f"annotation {url}: no such file") from None
    except (OSError, ValueError) as exc:
        raise AnnotationError(f"annotation {url}: cannot read it: {exc}") from None
    if len(data) > MAX_ANNOTATION_BYTES:
        raise AnnotationError(f"annotation {url}: larger than {MAX_ANNOTATION_BYTES >> 20} MB")
    return parse_annotations(data, url)


def parse_annotations(data: bytes, source: str) -> SlideAnnotations:
    """Parse GeoJSON or ASAP XML bytes (the format from the content, then the name)."""
    head = data.lstrip()[:1]
    if head == b"<" or (not head and source.lower().endswith(".xml")):
        parts, repaired = _xml_polygons(data, source)
    else:
        parts, repaired = _geojson_polygons(data, source)
    by_class: dict[str, list[BaseGeometry]] = {}
    for name, geom in parts:
        by_class.setdefault(name, []).append(geom)
    classes: dict[str, BaseGeometry] = {}
    for name, geoms in by_class.items():
        merged = _polygonal(shapely.union_all(geoms))
        if not merged.is_empty:
            classes[name] = merged
    result = SlideAnnotations(classes, repaired, source)
    result.columns()  # refuse clashing class names now, naming the file
    return result


# ----------------------------------------------------------------------------- GeoJSON
def _geojson_polygons(data: bytes, source: str) -> tuple[list[tuple[str, BaseGeometry]], int]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AnnotationError(f"annotation {source}: not JSON or XML: {exc}") from None
    parts: list[tuple[str, BaseGeometry]] = []
    repaired = 0
    for i, (name, geometry) in enumerate(_features(doc, source)):
        if geometry is None:
            continue
        try:
            geom = shape(geometry)
        except Exception as exc:  # noqa: BLE001 — shapely raises many kinds for bad input
            raise AnnotationError(f"annotation {source}: feature {i + 1}: {exc}") from None
        geom, fixed = _repaired(geom)
        repaired += fixed
        if not geom.is_empty:
            parts.append((name, geom))
    return parts, repaired


def _features(doc: Any, source: str) -> Iterable[tuple[str, Any]]:
    """(class, geometry dict) of every feature of a GeoJSON document."""
    if isinstance(doc, list):
        items = doc
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        items = doc.get("features")
        if not isinstance(items, list):
            raise AnnotationError(f"annotation {source}: FeatureCollection without features")
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        items = [doc]
    elif isinstance(doc, dict) and "coordinates" in doc or _is_collection(doc):
        items = [{"type": "Feature", "geometry": doc, "properties": {}}]
    else:
        raise AnnotationError(f"annotation {source}: not a GeoJSON feature or geometry")
    for item in items:
        if not isinstance(item, dict):
            raise AnnotationError(f"annotation {source}: a feature is not an object: {item!r:.60}")
        props = item.get("properties") or {}
        yield _class_name(props if isinstance(props, dict) else {}), item.get("geometry")


def _is_collection(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("type") == "GeometryCollection"


def _class_name(props: dict[str, Any]) -> str:
    """The class of a feature from its properties (see the module docstring)."""
    classification = props.get("classification")
    if isinstance(classification, dict) and _text(classification.get("name")):
        return _text(classification.get("name"))
    if _text(classification):
        return _text(classification)
    label = props.get("label")
    if isinstance(label, dict):
        label = label.get("name") or label.get("value")
    for value in (label, props.get("class"), props.get("classname"), props.get("group")):
        if _text(value):
            return _text(value)
    return DEFAULT_CLASS


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# ---------------------------------------------------------------------------- ASAP XML
def _xml_polygons(data: bytes, source: str) -> tuple[list[tuple[str, BaseGeometry]], int]:
    if b"<!ENTITY" in data[:4096].upper():
        raise AnnotationError(f"annotation {source}: XML entities are not accepted")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise AnnotationError(f"annotation {source}: not valid XML: {exc}") from None
    annotations = [el for el in root.iter() if _tag(el) == "annotation"]
    if not annotations:
        raise AnnotationError(f"annotation {source}: no ASAP Annotation elements")
    parts: list[tuple[str, BaseGeometry]] = []
    repaired = 0
    for i, el in enumerate(annotations):
        if (el.get("Type") or "polygon").lower() not in _XML_AREA_TYPES:
            continue
        group = (el.get("PartOfGroup") or "").strip()
        name = group if group and group.lower() != "none" else DEFAULT_CLASS
        points = []
        for c in (c for c in el.iter() if _tag(c) == "coordinate"):
            try:
                order = float(c.get("Order", len(points)))
                points.append((order, float(c.get("X", "")), float(c.get("Y", ""))))
            except ValueError:
                raise AnnotationError(
                    f"annotation {source}: annotation {i + 1} has a coordinate without X/Y"
                ) from None
        points.sort(key=lambda p: p[0])
        if len(points) < 3:
            continue
        geom, fixed = _repaired(Polygon([(x, y) for _, x, y in points]))
        repaired += fixed
        if not geom.is_empty:
            parts.append((name, geom))
    return parts, repaired


def _tag(el: ET.Element) -> str:
    return el.tag.rsplit("}", 1)[-1].lower()


# ---------------------------------------------------------------------------- geometry
def _repaired(geom: BaseGeometry) -> tuple[BaseGeometry, int]:
    """The polygonal part of ``geom``, made valid; 1 when it had to be repaired."""
    geom = _polygonal(geom)
    if geom.is_empty or geom.is_valid:
        return geom, 0
    return _polygonal(shapely.make_valid(geom)), 1


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Only the Polygon/MultiPolygon parts of a geometry (empty when none)."""
    if isinstance(geom, Polygon | MultiPolygon):
        return geom
    polys: list[Polygon] = []
    for part in getattr(geom, "geoms", ()):
        part = _polygonal(part)
        polys.extend(part.geoms if isinstance(part, MultiPolygon) else [part])
    polys = [p for p in polys if isinstance(p, Polygon) and not p.is_empty]
    if not polys:
        return Polygon()
    return polys[0] if len(polys) == 1 else MultiPolygon(polys)
