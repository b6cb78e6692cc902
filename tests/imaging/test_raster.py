"""The one rasteriser: pixel centre inside, and centres on an edge go to the shape right of
(or, on a horizontal edge, below) them. Boxes, polygons, contours and label masks agree."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from shapely.geometry import GeometryCollection, LineString, Point, Polygon, box

from wsidist.imaging import raster
from wsidist.imaging.contours import mask_polygons, rasterise
from wsidist.imaging.labels import rasterise_labels
from wsidist.imaging.masks import box_union_mask, grid_shape
from wsidist.imaging.raster import rasterise_boxes, rasterise_geometry


def _centres(shape, d):
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (xs + 0.5) * d, (ys + 0.5) * d


def _half_open(shape, d, x, y, w, h):
    """The rule written out for one box: x <= centre < x + w, y <= centre < y + h."""
    cx, cy = _centres(shape, d)
    return (cx >= x) & (cx < x + w) & (cy >= y) & (cy < y + h)


@pytest.mark.parametrize("d", [1.0, 2.0, 8.0, 2.5])
def test_box_edges_on_pixel_centres_are_half_open_for_every_entry_point(d):
    rng = np.random.default_rng(7)
    shape = (30, 40)
    # corners on pixel centres: every edge is a tie
    x = (rng.integers(-3, 40, 25) + 0.5) * d
    y = (rng.integers(-3, 30, 25) + 0.5) * d
    w, h = rng.integers(1, 12, 25) * d, rng.integers(1, 12, 25) * d
    expected = np.zeros(shape, bool)
    for bx, by, bw, bh in zip(x, y, w, h):
        expected |= _half_open(shape, d, bx, by, bw, bh)
    boxes = list(shapely.box(x, y, x + w, y + h))
    assert np.array_equal(rasterise_boxes(x, y, w, h, shape, d), expected)
    assert np.array_equal(box_union_mask(x, y, w, h, shape, d), expected)
    assert np.array_equal(rasterise(boxes, shape, d), expected)
    assert np.array_equal(rasterise(shapely.reverse(boxes), shape, d), expected)  # either winding
    assert np.array_equal(rasterise([shapely.union_all(boxes)], shape, d), expected)
    assert np.array_equal(rasterise_labels({"a": shapely.union_all(boxes)}, shape, d) > 0, expected)


def test_shapes_that_share_an_edge_claim_each_centre_once():
    d, n = 2.0, 24
    s = (2 * n + 1) * 1.0  # the square's corners at pixel centres (1, 1) and (n+0.5, n+0.5)
    square = box(1, 1, s, s)
    whole = rasterise([square], (n + 2, n + 2), d)
    # a diagonal through pixel centres, and an axis-parallel cut through them
    a, b = Polygon([(1, 1), (s, 1), (s, s)]), Polygon([(1, 1), (s, s), (1, s)])
    left, right = box(1, 1, 11, s), box(11, 1, s, s)
    for parts in ((a, b), (left, right)):
        masks = [rasterise([p], whole.shape, d).astype(int) for p in parts]
        assert (sum(masks) <= 1).all() and np.array_equal(sum(masks) == 1, whole)
    # on the diagonal (centre x == y): the triangle to the right of the centre takes it
    on = [(i, i) for i in range(whole.shape[0]) if whole[i, i]]
    assert on and all(rasterise([a], whole.shape, d)[i, j] for i, j in on)


def test_holes_keep_their_own_edges_and_islands_inside_them_count():
    d, shape = 1.0, (20, 20)
    shell, hole, island = (2.5, 2.5, 15, 15), (6.5, 6.5, 7, 7), (8.5, 8.5, 3, 3)
    poly = Polygon(box(*shell[:2], shell[0] + shell[2], shell[1] + shell[3]).exterior.coords,
                   [box(*hole[:2], hole[0] + hole[2], hole[1] + hole[3]).exterior.coords])  # fmt: skip
    isl = box(*island[:2], island[0] + island[2], island[1] + island[3])
    expected = (_half_open(shape, d, *shell) & ~_half_open(shape, d, *hole)) | _half_open(
        shape, d, *island
    )
    got = rasterise([poly, isl], shape, d)
    assert np.array_equal(got, expected)
    assert not got[6, 6] and got[13, 13] and got[8, 8]  # hole's top-left in, bottom-right out
    reversed_rings = Polygon(poly.exterior.coords[::-1], [poly.interiors[0].coords[::-1]])
    assert np.array_equal(rasterise([reversed_rings, isl], shape, d), expected)
    # overlapping polygons are united, not cancelled
    two = [box(0, 0, 10, 10), box(5, 5, 15, 15)]
    assert np.array_equal(rasterise(two, shape, d), rasterise([shapely.union_all(two)], shape, d))


def test_class_priority_is_the_later_name_also_on_shared_edges():
    d, shape = 4.0, (10, 16)
    # "a" on the right of "b", sharing the edge x = 30 (the centres of column 7)
    classes = {"b": box(2, 2, 30, 38), "a": box(30, 2, 62, 38), "c": box(22, 18, 42, 26)}
    labels = rasterise_labels(classes, shape, d)  # a = 1, b = 2, c = 3
    assert labels[1, 7] == 1 and labels[1, 6] == 2  # the shared column is a's
    assert labels[4, 5] == 3 and labels[4, 9] == 3  # c drawn last, over both
    for k, name in enumerate(sorted(classes), start=1):
        alone = rasterise([classes[name]], shape, d)
        assert ((labels == k) <= alone).all()


def test_random_polygons_match_the_centre_test_away_from_ties():
    rng = np.random.default_rng(11)
    blobs = [Point(rng.uniform(0, 300, 2)).buffer(rng.uniform(5, 60), 7) for _ in range(12)]
    holes = [Point(rng.uniform(0, 300, 2)).buffer(rng.uniform(3, 20), 5) for _ in range(6)]
    geom = shapely.difference(shapely.union_all(blobs), shapely.union_all(holes))
    for d in (1.0, 3.7, 16.0):
        shape = grid_shape(330, 310, d)
        cx, cy = _centres(shape, d)
        assert np.array_equal(rasterise([geom], shape, d), shapely.contains_xy(geom, cx, cy))


def test_clipping_other_geometry_and_bands(monkeypatch):
    shape = (12, 9)
    assert not rasterise_geometry([], shape, 1.0).any()
    assert not rasterise_geometry(Polygon(), shape, 1.0).any()
    assert not rasterise_geometry([LineString([(0, 0), (9, 9)]), Point(3, 3)], shape, 1.0).any()
    inside = GeometryCollection([Point(1, 1), box(-5, -5, 4.5, 100)])
    got = rasterise_geometry(inside, shape, 1.0)
    assert got[:, :4].all() and not got[:, 4:].any()
    assert not rasterise_boxes([20.0], [20.0], [5.0], [5.0], shape, 1.0).any()
    m = np.random.default_rng(2).random((50, 70)) < 0.5
    polys = mask_polygons(m, 3.0)
    monkeypatch.setattr(raster, "BAND_PX", 100)  # 1 row per band
    assert np.array_equal(rasterise(polys, m.shape, 3.0), m)
