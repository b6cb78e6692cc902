"""Annotation files: QuPath GeoJSON (holes, MultiPolygon, repairs) and ASAP XML."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import MultiPolygon, Polygon, box

from wsidist.demo.annotations import asap_xml, geojson_doc
from wsidist.errors import AnnotationError, ConfigError
from wsidist.io.annotation_match import annotation_index, match_annotation
from wsidist.io.annotations import class_column, parse_annotations, read_annotations

RING = box(100, 100, 900, 900).difference(box(300, 300, 700, 700))  # 640,000 − 160,000
ISLANDS = MultiPolygon([box(1000, 0, 1100, 100), box(1200, 0, 1400, 200)])


def _write(tmp_path, name: str, doc) -> str:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(path)


def test_qupath_geojson_with_holes_and_multipolygon(tmp_path):
    doc = geojson_doc({"Tumor": RING, "Stroma": ISLANDS})
    ann = read_annotations(_write(tmp_path, "a.geojson", doc))
    assert ann.names == ["Stroma", "Tumor"] and ann.repaired == 0
    assert ann.classes["Tumor"].area == pytest.approx(480_000)
    assert len(ann.classes["Tumor"].interiors) == 1  # the hole is kept
    assert isinstance(ann.classes["Stroma"], MultiPolygon)
    assert ann.classes["Stroma"].area == pytest.approx(10_000 + 40_000)
    assert ann.columns() == {"Stroma": "stroma", "Tumor": "tumor"}


def test_geojson_variants_parse_alike(tmp_path):
    """A list of features (old QuPath), one Feature, a bare geometry; class fallbacks."""
    features = geojson_doc({"Tumor": RING}, split=True)["features"]
    as_list = parse_annotations(json.dumps(features).encode(), "list.json")
    assert as_list.classes["Tumor"].area == pytest.approx(480_000)
    one = parse_annotations(json.dumps(features[0]).encode(), "one.json")
    assert one.names == ["Tumor"]
    bare = parse_annotations(json.dumps(features[0]["geometry"]).encode(), "bare.json")
    assert bare.names == ["annotation"]
    labelled = {
        "type": "Feature",
        "geometry": features[0]["geometry"],
        "properties": {"label": "x"},
    }
    assert parse_annotations(json.dumps(labelled).encode(), "l.json").names == ["x"]


def test_several_features_of_a_class_are_united(tmp_path):
    doc = geojson_doc({"Tumor": ISLANDS}, split=True)
    assert len(doc["features"]) == 2
    ann = parse_annotations(json.dumps(doc).encode(), "s.geojson")
    assert ann.classes["Tumor"].area == pytest.approx(50_000)


def test_broken_polygon_is_repaired_and_counted(tmp_path):
    doc = geojson_doc(
        {"Tumor": RING}, broken={"Tumor": (2000, 0, 2400, 400), "Other": (0, 0, 10, 10)}
    )
    ann = read_annotations(_write(tmp_path, "broken.geojson", doc))
    assert ann.repaired == 2
    assert all(g.is_valid for g in ann.classes.values())
    # A bow-tie over a 400 px box is two triangles of a quarter of the box each.
    assert ann.classes["Tumor"].area == pytest.approx(480_000 + 2 * 40_000)
    assert ann.classes["Other"].area == pytest.approx(50)


def test_asap_xml_with_two_classes(tmp_path):
    xml = asap_xml(
        {"_0": box(0, 0, 100, 200), "Exclusion": Polygon([(500, 500), (600, 500), (550, 600)])}
    )
    ann = read_annotations(_write(tmp_path, "camelyon.xml", xml))
    assert ann.names == ["Exclusion", "_0"]
    assert ann.classes["_0"].area == pytest.approx(20_000)
    assert ann.classes["Exclusion"].area == pytest.approx(5_000)
    assert ann.columns()["_0"] == "0"


@pytest.mark.parametrize(
    "content, reason",
    [("{not json", "not JSON"), ("<ASAP_Annotations><Annotations>", "not valid XML"),
     ('{"type": "Topology"}', "not a GeoJSON"),
     ('{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": "x"}}', "feature 1")],
)  # fmt: skip
def test_unreadable_file_names_itself(tmp_path, content, reason):
    path = _write(tmp_path, "bad.geojson", content)
    with pytest.raises(AnnotationError, match=reason) as info:
        read_annotations(path)
    assert path in str(info.value)
    with pytest.raises(AnnotationError, match="no such file"):
        read_annotations(str(tmp_path / "missing.geojson"))


def test_class_names_become_safe_columns_and_clashes_are_refused():
    assert class_column("Tumor (grade 2)") == "tumor_grade_2"
    with pytest.raises(AnnotationError, match="means no class"):
        class_column("None")
    doc = geojson_doc({"Tumor": RING, "tumor": ISLANDS})
    with pytest.raises(AnnotationError, match="label_tumor"):
        parse_annotations(json.dumps(doc).encode(), "clash.geojson")


def test_real_sample_annotation(real_slides_dir):
    ann = read_annotations(str(real_slides_dir / "annotations" / "123.annotation.geojson"))
    assert ann.names == ["Other", "Tumor"]  # from properties.label
    assert ann.classes["Tumor"].bounds == (1512, 1512, 2333, 2333)


def test_files_match_slides_by_id_or_stem(tmp_path):
    for name in ("s1.geojson", "S2.annotation.json", "other.xml", "readme.txt"):
        (tmp_path / name).write_text("{}")
    index = annotation_index(str(tmp_path))
    assert match_annotation(index, "s1", "/x/whatever.svs").endswith("s1.geojson")
    assert match_annotation(index, "id9", "/x/s2.ome.tiff").endswith("S2.annotation.json")
    assert match_annotation(index, "id9", "/x/nothing.svs") is None
    (tmp_path / "s1.xml").write_text("<a/>")
    with pytest.raises(ConfigError, match="both match"):
        annotation_index(str(tmp_path))
    with pytest.raises(ConfigError, match="no such"):
        annotation_index(str(tmp_path / "nope"))
