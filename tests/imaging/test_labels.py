"""Label rasterising and per-tile coverage against geometry whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import box

from wsidist.demo.annotations import mask_classes, stained_classes
from wsidist.demo.spec import SynthSpec
from wsidist.demo.stained import StainedSpec, StainedTruth
from wsidist.demo.synth import CELL, TISSUE_LABELS, synth_truth
from wsidist.imaging.labels import (
    box_coverage,
    decode_label_png,
    encode_label_png,
    rasterise_labels,
)


def _grid(width: int, height: int, tile: int) -> np.ndarray:
    ys, xs = np.mgrid[0:height:tile, 0:width:tile]
    xs, ys = xs.ravel(), ys.ravel()
    return np.c_[xs, ys, np.minimum(tile, width - xs), np.minimum(tile, height - ys)]


def _overlap(a0, a1, b0, b1):
    return np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None)


def test_coverage_equals_the_analytic_fraction():
    """A square ring (a rectangle with a rectangular hole): per tile, outer overlap minus inner
    overlap, divided by the tile area (clipped edge tiles included)."""
    outer, inner = (130.5, 70.25, 1410.0, 990.0), (400.0, 333.0, 777.7, 701.0)
    ring = box(*outer).difference(box(*inner))
    boxes = _grid(1500, 1100, 96)
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]

    def part(b):
        return _overlap(x0, x1, b[0], b[2]) * _overlap(y0, y1, b[1], b[3])

    truth = (part(outer) - part(inner)) / (boxes[:, 2] * boxes[:, 3])
    got = box_coverage({"ring": ring}, boxes)["ring"]
    assert np.abs(got - truth).max() < 0.01
    assert 0 < (got == 1).sum() < len(got) and (got == 0).any()  # inside, edge and outside


def test_ellipse_coverage_sums_to_its_area():
    spec = StainedSpec(width=4000, height=3000)
    classes = stained_classes(spec)
    boxes = _grid(spec.width, spec.height, 128)
    cover = box_coverage(classes, boxes)
    area = boxes[:, 2] * boxes[:, 3]
    cx, cy, rx, ry = spec.dark
    dark_area = np.pi * rx * spec.width * ry * spec.height
    assert (cover["tumour"] * area).sum() == pytest.approx(dark_area, rel=0.01)
    assert np.all(cover["tumour"] + cover["stroma"] <= 1 + 1e-9)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_rasterised_labels_agree_with_the_stained_truth():
    spec = StainedSpec(width=4096, height=3072)
    truth, scale = StainedTruth(spec), 16
    labels = rasterise_labels(stained_classes(spec), truth.tissue_mask(scale).shape, scale)
    names = sorted(stained_classes(spec))  # stroma = 1, tumour = 2
    dark = truth.dark_mask(scale)
    assert _iou(labels == names.index("tumour") + 1, dark) >= 0.99
    assert _iou(labels == names.index("stroma") + 1, truth.tissue_mask(scale) & ~dark) >= 0.99


def test_rasterised_labels_agree_with_the_synthetic_label_map():
    """The generator's exact tissue map (many regions, holes) as polygons, drawn at scales
    whose pixel centres fall inside a map cell, matches the generator's majority mask."""
    truth = synth_truth(SynthSpec(width=2000, height=1500, seed=3))
    classes = mask_classes({"tissue": np.isin(truth.labels, TISSUE_LABELS)}, float(CELL))
    assert classes["tissue"].geom_type == "MultiPolygon"
    for scale in (6, 12, 20):
        mask = truth.tissue_mask(scale)
        labels = rasterise_labels(classes, mask.shape, float(scale))
        assert _iou(labels == 1, mask) >= 0.99, scale


def test_overlapping_classes_and_the_legend_png():
    classes = {"b": box(0, 0, 64, 64), "a": box(32, 32, 96, 96)}
    labels = rasterise_labels(classes, (12, 12), 8.0)
    assert labels[0, 0] == 2 and labels[11, 11] == 1 and labels[5, 5] == 2  # later name wins
    data = encode_label_png(labels, ["a", "b"])
    back, legend = decode_label_png(data)
    assert np.array_equal(back, labels)
    assert legend == {0: "none", 1: "a", 2: "b"}
