"""The low_tissue fallback keeps real tissue only: not glass with a pen stroke or a speck."""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.demo.labels import PEN_LABELS, TISSUE_LABELS
from wsidist.demo.synth import demo_specs, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config
from wsidist.stage1.qc import FALLBACK_ABS_FLOOR, FALLBACK_REL_FLOOR, tissue_tiles


@pytest.fixture(scope="module")
def sparse(tmp_path_factory):
    """The demo's sparse slide: one piece of tissue, blue pen strokes on the glass."""
    path = tmp_path_factory.mktemp("low-tissue") / "sparse.svs"
    truth = write_synthetic_slide(path, demo_specs(3)[2])
    with open_slide(str(path)) as slide:
        analysis = analyse_slide(slide, Stage1Config(tile_size=1024))
    return analysis, truth


def test_fallback_marks_no_glass_tile(sparse):
    analysis, truth = sparse
    tiles = analysis.tiles.to_pylist()
    assert "low_tissue" in analysis.qc.flags
    # the truth share of every 1024-px tile (the grid starts at 0, no overlap)
    tissue = truth.fraction(1024, TISSUE_LABELS)
    pen = truth.fraction(1024, tuple(PEN_LABELS.values()))
    chosen = [t for t in tiles if t["tissue_tile"]]
    best = max(t["tissue_frac"] for t in tiles)
    assert chosen and max(t["tissue_frac"] for t in chosen) == best
    floor = max(FALLBACK_REL_FLOOR * best, FALLBACK_ABS_FLOOR)
    assert all(t["tissue_frac"] >= floor for t in chosen)
    assert all(tissue[t["row"], t["col"]] >= 0.01 for t in chosen)
    # the slide does have tiles the old fallback took: pen on glass, a trace of "tissue"
    glass = [t for t in tiles if 0 < t["tissue_frac"] < floor and not t["tissue_tile"]]
    assert any(pen[t["row"], t["col"]] > 0 and tissue[t["row"], t["col"]] < 0.01 for t in glass)
    assert f"the {len(chosen)} best tiles" in analysis.qc.notes[0]


def test_fallback_floor_rule():
    frac = np.array([0.4, 0.05, 0.039, 0.0, 0.3])
    score = np.array([0.1, 0.9, 0.9, 0.9, 0.2])
    chosen, fell_back = tissue_tiles(frac, score, 0.5, 16)
    assert fell_back and chosen.tolist() == [True, True, False, False, True]
    chosen, _ = tissue_tiles(frac, score, 0.5, 2)
    assert chosen.tolist() == [True, False, False, False, True]
    # traces only: below the absolute floor nothing is marked, and the flag says so
    chosen, fell_back = tissue_tiles(np.array([0.009, 0.002]), np.zeros(2), 0.5, 16)
    assert fell_back and not chosen.any()
    # a tile that reaches min_tissue_frac: no fallback
    chosen, fell_back = tissue_tiles(np.array([0.6, 0.01]), np.zeros(2), 0.5, 16)
    assert not fell_back and chosen.tolist() == [True, False]
