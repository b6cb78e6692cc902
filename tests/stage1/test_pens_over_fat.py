"""Pen strokes across fatty tissue, against the generator's exact truth at 1/32.

A stroke across fat cuts its cells: each piece is still a hole in thin walls and fills, the
ink itself stays out. Tissue mostly under broad strokes, fused with them into one object of
ink colour, keeps what lies beyond the strokes instead of going to the ink as a whole.
Glass caught between a stroke and a tissue's edge stays glass. Thin pen lines leaving a
tissue are ink.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from wsidist.demo.classes import failure_specs
from wsidist.demo.synth import synth_truth, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config

ALL_PENS = ("red", "green", "blue", "black", "navy")
BASE = failure_specs(6000, 4500, seed=11)["typical"]  # 3 x 2.25 mm at 0.5 µm/px


def _measured(tmp_path, spec):
    """(dice, precision, recall, worst share of a pen colour kept) of ``auto`` on ``spec``."""
    path = tmp_path / f"s{spec.seed}.svs"
    write_synthetic_slide(path, spec)
    with open_slide(str(path)) as slide:
        mask = analyse_slide(slide, Stage1Config(tissue="auto")).tissue
    truth = synth_truth(spec)
    tissue = truth.tissue_mask(32)
    assert mask.shape == tissue.shape
    tp = float((mask & tissue).sum())
    dice = 2 * tp / max(mask.sum() + tissue.sum(), 1)
    pens = [
        (mask & truth.pen_mask(32, (c,))).sum() / max(truth.pen_mask(32, (c,)).sum(), 1)
        for c in spec.pens
    ]
    return dice, tp / max(mask.sum(), 1), tp / max(tissue.sum(), 1), max(pens)


def test_fat_crossed_by_pen_strokes_keeps_its_cells(tmp_path):
    # before: strokes joined the cells they cross into one glass component that stayed open,
    # Dice 0.877-0.924 (mean 0.906), recall down to 0.79; now 0.932-0.950, recall >= 0.90
    found = [
        _measured(tmp_path, replace(BASE, fat=0.6, pens=ALL_PENS, seed=500 + i)) for i in range(4)
    ]
    dice, precision, recall, _ = np.array(found).T
    print("dice", dice.round(3), "precision", precision.round(3), "recall", recall.round(3))
    assert dice.mean() >= 0.93 and recall.min() >= 0.88
    assert precision.min() >= 0.92  # the cut cells fill; the glass beyond the strokes does not


@pytest.mark.parametrize("seed", [301, 302])
def test_tissue_mostly_under_broad_pens_is_not_called_ink(tmp_path, seed):
    # pale fat, most of it under five broad strokes (pens 17 % of the slide, tissue 4 %)
    spec = replace(
        BASE, fat=0.6, faint=0.7, pens=ALL_PENS, pen_style="ink", pen_width_um=160.0, seed=seed
    )
    dice, precision, recall, pen_kept = _measured(tmp_path, spec)
    print(f"dice {dice:.3f} precision {precision:.3f} recall {recall:.3f} pen {pen_kept:.4f}")
    # before: the whole fused object went to the ink, an empty mask (Dice 0)
    assert recall >= 0.4 and precision >= 0.95
    assert pen_kept <= 0.01


def test_glass_between_a_stroke_and_a_tissue_edge_stays_glass(tmp_path):
    # dark H&E, a navy loop around a piece of tissue: the glass caught between the stroke and
    # the tissue's edge has faint edge pixels for walls, no walls shared with other holes;
    # filled, it cost 1.6 points of precision (0.920 against 0.935)
    spec = replace(BASE, faint=2.0, pens=ALL_PENS, seed=21)
    dice, precision, recall, _ = _measured(tmp_path, spec)
    print(f"dice {dice:.3f} precision {precision:.3f} recall {recall:.3f}")
    assert precision >= 0.93 and recall >= 0.99


def test_thin_pen_lines_leaving_a_tissue_are_ink(tmp_path):
    # five pens 0.5-1 % of the short side wide (1-2 px at 1/32), JPEG q50: a line blended with
    # the glass keeps the pen's hue but not its saturation, and it is fused with the tissue it
    # leaves; lines under 3 px wide of ink-like colour, at least 4 px long, are ink
    from scipy import ndimage

    kept = total = 0
    for seed in (800, 801, 805):
        spec = replace(BASE, pens=ALL_PENS, jpeg_quality=50, seed=seed)
        path = tmp_path / f"h{seed}.svs"
        write_synthetic_slide(path, spec)
        with open_slide(str(path)) as slide:
            mask = analyse_slide(slide, Stage1Config()).tissue
        truth = synth_truth(spec)
        tissue = truth.tissue_mask(32)
        off = truth.pen_mask(32) & ~ndimage.binary_dilation(tissue, iterations=3)
        kept, total = kept + (mask & off).sum(), total + off.sum()
        assert 2 * (mask & tissue).sum() / (mask.sum() + tissue.sum()) >= 0.935
    print(f"pen off the tissue kept: {kept} of {total} px")
    assert kept <= 0.06 * total  # before: 160 of 1,190 (13 %); now 48 (4 %)
