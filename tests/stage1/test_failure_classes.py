"""The adaptive default on every failure class, against the generator's exact truth.

Targets (issue 9): Dice >= 0.98 on every generated tissue slide, fragments without a rim; pen
ink kept as tissue <= 1 % per colour; faint tissue recall >= 0.95; on every slide with tissue
at least one 256-px tile with tissue_frac >= 0.5; and the slide flags that say why.
Slides are 8000 x 6000 level-0 px at 0.5 µm/px (4 x 3 mm), measured at 1/32 like stage 1.
"""

from __future__ import annotations

import numpy as np
import pytest

from wsidist.demo.classes import failure_specs
from wsidist.demo.layout import blur_discs
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.stage1.analysis import analyse_slide
from wsidist.stage1.config import Stage1Config

SPECS = failure_specs(width=8000, height=6000)  # as the session's failure_slides
TISSUE_CLASSES = [name for name in SPECS if name != "empty"]
CONFIG = Stage1Config(tile_size=256)
FATTY = [name for name in SPECS if name.startswith("fatty")]  # three cell sizes and pallors


def _analyse(path, config=CONFIG):
    with open_slide(str(path)) as slide:
        return analyse_slide(slide, config)


def _analyse_job(args):
    return _analyse(*args)


@pytest.fixture(scope="module")
def pool(failure_pool):
    """The session's two-process pool, for the module's analyses."""
    return failure_pool


def _analysed(pool, *jobs):
    """``analyse_slide`` of each (path, config) job, run side by side in the pool."""
    return list(pool.map(_analyse_job, jobs))


@pytest.fixture(scope="module")
def slides(failure_slides):
    return failure_slides


@pytest.fixture(scope="module")
def analyses(slides, pool):
    done = _analysed(pool, *((path, CONFIG) for path, _ in slides.values()))
    return {name: (a, truth) for (name, (_, truth)), a in zip(slides.items(), done)}


def _scores(mask, truth_mask):
    tp = float((mask & truth_mask).sum())
    dice = 2 * tp / max(mask.sum() + truth_mask.sum(), 1)
    return dice, tp / max(mask.sum(), 1), tp / max(truth_mask.sum(), 1)


@pytest.mark.parametrize("name", TISSUE_CLASSES)
def test_auto_dice_on_every_generated_tissue_slide(analyses, name):
    analysis, truth = analyses[name]
    dice, precision, recall = _scores(analysis.tissue, truth.tissue_mask(32))
    print(f"{name}: Dice {dice:.3f} precision {precision:.3f} recall {recall:.3f}")
    assert dice >= 0.98


def test_fragments_carry_no_rim(analyses):
    analysis, truth = analyses["fragments"]
    mask, true = analysis.tissue, truth.tissue_mask(32)
    dice, precision, recall = _scores(mask, true)
    assert precision >= 0.98 and recall >= 0.98
    assert abs(mask.sum() / true.sum() - 1) <= 0.02  # not inflated by a blended rim
    boundary = mask & ~np.pad(mask, 1)[2:, 1:-1] | mask & ~np.pad(mask, 1)[:-2, 1:-1]
    share = truth.fraction(32, (1,))[boundary]
    assert (share < 0.5).mean() <= 0.1  # edge pixels are mostly tissue, not glass
    # tissue_frac is the sub-pixel share, not a count of mask pixels
    assert analysis.tissue_frac == pytest.approx(truth.tissue_fraction, rel=0.03)


def test_pen_ink_kept_as_tissue_at_most_one_percent_per_colour(analyses):
    analysis, truth = analyses["pens"]
    for colour in truth.spec.pens:
        ink = truth.pen_mask(32, (colour,))
        kept = (analysis.tissue & ink).sum() / max(ink.sum(), 1)
        print(f"{colour}: {ink.sum()} ink px, {100 * kept:.2f} % kept")
        assert ink.sum() > 50 and kept <= 0.01, colour


ODD_SIZE = (8001, 6007)  # a real slide's: no multiple of the scale nor of its levels' factors
ODD_CLASSES = ("typical", "pens", "bubbles")


def _write_job(args):
    return write_synthetic_slide(*args)


def _own_specs() -> dict[str, SynthSpec]:
    """The slides the module's other tests generate for themselves, by name."""
    from dataclasses import replace

    odd = failure_specs(*ODD_SIZE)
    return {
        **{f"odd-{name}": odd[name] for name in ODD_CLASSES},
        "nompp": SynthSpec(width=3000, height=2000, mpp=None, objective_power=None),
        "dense-ihc": replace(
            failure_specs(6000, 4500, seed=11)["typical"],
            stain="ihc", faint=1.8, pens=("navy", "black"), seed=27,
        ),
        "dense-ihc-broad-pens": replace(
            failure_specs(4000, 3000, seed=0)["typical"],
            stain="ihc", faint=1.8, n_blobs=3, pens=("navy", "blue"), pen_style="ink",
            pen_width_um=160.0, seed=50,
        ),
        "pens-seed2-small": failure_specs(4000, 3000, seed=2)["pens"],
        "pens-seed2": failure_specs(8000, 6000, seed=2)["pens"],
    }  # fmt: skip


@pytest.fixture(scope="module")
def own_analyses(tmp_path_factory, pool):
    """``{name: (analysis, truth)}`` of `_own_specs`, written and analysed (CONFIG) side by side
    in the pool rather than one after another in the tests."""
    specs = _own_specs()
    folder = tmp_path_factory.mktemp("own-slides")
    jobs = [(folder / f"{name}.svs", spec) for name, spec in specs.items()]
    truths = list(pool.map(_write_job, jobs))
    done = _analysed(pool, *((path, CONFIG) for path, _ in jobs))
    return dict(zip(specs, zip(done, truths)))


@pytest.fixture(scope="module")
def odd_analyses(own_analyses):
    """Three classes at a real-world size: levels are rounded (1/16 is 501 x 376 px, W / w =
    15.97), so a reader that stretched them drifted by up to a pixel (Dice 0.969-0.973)."""
    return {name: own_analyses[f"odd-{name}"] for name in ODD_CLASSES}


@pytest.mark.parametrize("name", ODD_CLASSES)
def test_targets_hold_at_a_real_world_slide_size(odd_analyses, name):
    analysis, truth = odd_analyses[name]
    assert analysis.tissue.shape == (-(-ODD_SIZE[1] // 32), -(-ODD_SIZE[0] // 32))
    dice, _, _ = _scores(analysis.tissue, truth.tissue_mask(32))
    assert dice >= 0.98, dice
    for colour in truth.spec.pens if name == "pens" else ():
        ink = truth.pen_mask(32, (colour,))
        assert (analysis.tissue & ink).sum() <= 0.01 * ink.sum(), colour


@pytest.mark.parametrize("name", ["faint_ihc", *FATTY])
def test_faint_tissue_is_found(analyses, name):
    analysis, truth = analyses[name]
    _, _, recall = _scores(analysis.tissue, truth.tissue_mask(32))
    assert recall >= 0.95


@pytest.mark.parametrize("name", TISSUE_CLASSES)
def test_a_whole_tissue_tile_at_256_px(analyses, name):
    analysis, _ = analyses[name]
    assert max(analysis.tiles.column("tissue_frac").to_pylist()) >= 0.5
    assert analysis.tiles.column("tissue_tile").to_numpy().sum() > 0


@pytest.mark.parametrize(
    ("name", "flag"),
    [("empty", "no_tissue"), ("fluorescence", "dark_background"), ("pens", "pen_heavy"),
     ("bubbles", "bubble/debris")],
)  # fmt: skip
def test_slide_flags_say_why(analyses, name, flag):
    analysis, _ = analyses[name]
    assert flag in analysis.qc.flags
    assert len(analysis.qc.notes) == len(analysis.qc.flags)
    clean = analyses["typical"][0].qc.flags
    assert flag not in clean


def test_tiny_fragments_and_low_tissue_fallback(slides, pool):
    fragments, analysis = _analysed(
        pool,
        (slides["fragments"][0], Stage1Config(tile_size=1024)),
        (slides["faint_ihc"][0], Stage1Config(tile_size=4000, best_tiles=2)),
    )
    assert "tiny_fragments" in fragments.qc.flags
    # tiles of 2 mm: none is half tissue, so the best ones are returned and the slide flagged
    tiles = analysis.tiles.to_pylist()
    assert max(t["tissue_frac"] for t in tiles) < 0.5
    chosen = [t for t in tiles if t["tissue_tile"]]
    assert len(chosen) == 2 and "low_tissue" in analysis.qc.flags
    best = sorted(tiles, key=lambda t: -t["tissue_frac"])[:2]
    assert {(t["row"], t["col"]) for t in chosen} == {(t["row"], t["col"]) for t in best}
    assert analysis.tissue.any()


def test_missing_mpp_is_flagged(own_analyses):
    analysis, _ = own_analyses["nompp"]  # 3000 x 2000 px, no mpp nor objective power
    assert "missing_mpp" in analysis.qc.flags and analysis.tissue.any()


def test_qc_focus_flags_blurry_tiles(slides, pool):
    config = Stage1Config(tile_size=256, qc=True)
    path, truth = slides["blurry"]
    analysis, sharp = _analysed(pool, (path, config), (slides["typical"][0], config))
    discs = blur_discs(truth.spec)
    inside = []
    for t in analysis.tiles.to_pylist():
        if not t["tissue_tile"]:
            assert t["focus"] is None and t["blurry"] is None
            continue
        cx, cy = t["x"] + t["w"] / 2, t["y"] + t["h"] / 2
        if min(np.hypot(cx - x, cy - y) - r for x, y, r in discs) < -200:
            inside.append(t["blurry"])
    assert len(inside) >= 10 and np.mean(inside) >= 0.9
    assert "out_of_focus" in analysis.qc.flags
    measured = [t["blurry"] for t in sharp.tiles.to_pylist() if t["tissue_tile"]]
    assert len(measured) >= 10 and np.mean(measured) <= 0.05
    assert "out_of_focus" not in sharp.qc.flags


def test_tissue_stained_in_an_ink_like_blue_is_kept(own_analyses):
    """A dense blue counterstain (IHC) has the colour of blue pen ink: most of its pixels are
    loose ink colour, with specks of strict ink. It is wide, so it is tissue; a thin navy pen
    line over it is still taken out. (Before, the whole tissue went as ink: Dice 0.)"""
    analysis, truth = own_analyses["dense-ihc"]
    true = truth.tissue_mask(32) & ~truth.pen_mask(32)
    dice, _, recall = _scores(analysis.tissue, true)
    assert dice >= 0.95 and recall >= 0.95, (dice, recall)
    navy = truth.pen_mask(32, ("navy",)) & ~truth.tissue_mask(32)  # the line on the glass
    assert (analysis.tissue & navy).sum() <= 0.1 * navy.sum()


def _pen_shares(mask, truth):
    """Share of each pen colour's pixels kept as tissue."""
    return {
        c: float((mask & truth.pen_mask(32, (c,))).sum() / max(truth.pen_mask(32, (c,)).sum(), 1))
        for c in truth.spec.pens
    }


def test_broad_strokes_crossing_a_blue_stained_tissue_leave_it_tissue(own_analyses):
    """Broad strokes (160 µm) of navy and blue ink crossing a dense blue IHC counterstain fuse
    with it into one object mostly of ink colour, with more than a fifth of strict ink. Beyond
    the strokes and their blended halo the object is still wide and textured: tissue, and the
    strokes alone are ink. (Before, the whole object went as ink: Dice 0.)"""
    analysis, truth = own_analyses["dense-ihc-broad-pens"]
    dice, _, recall = _scores(analysis.tissue, truth.tissue_mask(32) & ~truth.pen_mask(32))
    assert dice >= 0.93 and recall >= 0.93, (dice, recall)
    assert max(_pen_shares(analysis.tissue, truth).values()) <= 0.01


def test_tissue_under_broad_pens_is_kept_on_another_seed(own_analyses):
    """The pens class drawn at another seed on a smaller slide (4000 x 3000): its five pens are
    broad beside the tissue and cover most of one object with it; the smooth strokes go and the
    textured tissue beyond them stays. (Before, the whole tissue went as ink: Dice 0.)"""
    analysis, truth = own_analyses["pens-seed2-small"]
    dice, _, recall = _scores(analysis.tissue, truth.tissue_mask(32))
    assert dice >= 0.94 and recall >= 0.94, (dice, recall)
    pen = truth.pen_mask(32)
    assert (analysis.tissue & pen).sum() <= 0.02 * pen.sum()


def test_crossing_pens_at_another_seed_are_taken_out(own_analyses):
    """The pens class at seed 2 (8000 x 6000): where two pens cross over the tissue their blend
    (in neither ink's colour) lies between the strokes and goes with them; every colour <= 1 %
    kept. (Before: red 1.96 %, blue 1.79 %, navy 1.76 %.)"""
    analysis, truth = own_analyses["pens-seed2"]
    shares = _pen_shares(analysis.tissue, truth)
    assert max(shares.values()) <= 0.01, shares
    assert _scores(analysis.tissue, truth.tissue_mask(32))[0] >= 0.98
