"""Mask → polygons (with holes) → mask, exactly; QuPath-style GeoJSON documents."""

import json

import numpy as np
import pytest
import shapely
from skimage.draw import disk, polygon

from wsidist.imaging.contours import (
    dumps,
    geojson_polygons,
    mask_polygons,
    rasterise,
    tile_geojson,
    tissue_geojson,
)


def ring_mask() -> np.ndarray:
    """Two regions: an annulus (one hole, with an island inside it) and a triangle."""
    m = np.zeros((120, 160), bool)
    m[disk((60, 50), 40)] = True
    m[disk((60, 50), 15)] = False
    m[disk((60, 50), 5)] = True  # island in the hole: a third polygon
    m[polygon([10, 100, 100], [110, 150, 110])] = True
    m[0, 159] = True  # one corner pixel
    return m


def test_polygons_trace_the_exact_pixel_boundary_with_holes():
    m = ring_mask()
    polys = mask_polygons(m, 1.0)
    assert len(polys) == 4
    assert sum(len(p.interiors) for p in polys) == 1
    assert sum(p.area for p in polys) == pytest.approx(m.sum())
    assert np.array_equal(rasterise(polys, m.shape), m)


def test_level0_coordinates_round_trip_at_the_mask_scale():
    m = ring_mask()
    doc = json.loads(dumps(tissue_geojson(m, 32.0, "s1", bounds=(160 * 32 - 7, 120 * 32))))
    assert doc["type"] == "FeatureCollection"
    feat = doc["features"][0]
    assert feat["properties"]["objectType"] == "annotation"
    assert feat["properties"]["classification"]["name"] == "Tissue"
    xs = [x for f in doc["features"] for ring in f["geometry"]["coordinates"] for x, _ in ring]
    assert max(xs) == 160 * 32 - 7  # clipped to the slide's width, in level-0 px
    back = rasterise(geojson_polygons(doc), m.shape, 32.0)
    iou = (back & m).sum() / (back | m).sum()
    assert iou == 1.0


def test_empty_mask_gives_an_empty_collection():
    doc = tissue_geojson(np.zeros((5, 5), bool), 8.0, "x")
    assert doc == {"type": "FeatureCollection", "features": []}


def test_tiles_become_box_polygons_with_measurements_and_stable_ids():
    doc = tile_geojson([(0, 0, 256, 256), (256, 0, 256, 128)], "s", [{"score": 0.5}, {"score": 1}])
    a, b = doc["features"]
    assert a["properties"]["objectType"] == "tile"
    assert a["properties"]["measurements"] == {"score": 0.5}
    assert shapely.geometry.shape(b["geometry"]).bounds == (256, 0, 512, 128)
    assert (
        a["id"] != b["id"] and tile_geojson([(0, 0, 256, 256)], "s")["features"][0]["id"] == a["id"]
    )


@pytest.mark.parametrize("width", [1, 7, 8, 9, 15, 16, 17, 63, 64, 65])
def test_traced_polygons_are_the_mask_at_every_byte_boundary(width):
    """The tracer works on rows packed 8 pixels a byte: regions that start, end or pinch at a
    byte's edge (noise has every corner shape, diagonal pinches included) come back exact,
    valid, and of the mask's area."""
    rng = np.random.default_rng(width)
    for density in (0.2, 0.5, 0.8):
        m = rng.random((23, width)) < density
        m[:, -1] |= density > 0.5  # runs that end on the last column
        polys = mask_polygons(m, 1.0)
        assert all(p.is_valid for p in polys)
        assert sum(p.area for p in polys) == m.sum()
        assert np.array_equal(rasterise(polys, m.shape), m)
        assert [p.area for p in polys] == sorted((p.area for p in polys), reverse=True)


def test_contour_document_is_the_standard_json_of_its_polygons():
    """tissue_geojson keeps rings as arrays; dumps writes them as the plain GeoJSON the polygons
    give (ints where corners are whole, 2 decimals otherwise), holes and all."""
    m = ring_mask()
    for downsample, bounds in ((32.0, (160 * 32 - 7, 120 * 32)), (2.5, None)):
        doc = json.loads(dumps(tissue_geojson(m, downsample, "s1", bounds)))
        polys = mask_polygons(m, downsample)
        if bounds is not None:
            polys = [shapely.clip_by_rect(p, 0, 0, *bounds) for p in polys]
        assert len(doc["features"]) == len(polys)
        for feat, poly in zip(doc["features"], polys):
            got = shapely.geometry.shape(feat["geometry"])
            assert got.normalize().equals_exact(poly.normalize(), 1e-9)
            assert feat["properties"]["measurements"]["area_px0"] == pytest.approx(poly.area)
            ring = feat["geometry"]["coordinates"][0]
            whole = all(float(v).is_integer() for v in np.ravel(ring))
            assert all(isinstance(v, int) for xy in ring for v in xy) == whole
