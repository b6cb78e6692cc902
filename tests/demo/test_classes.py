"""The failure-class generator: each class draws what it says, the truth stays exact."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
from scipy import ndimage

from wsidist.demo.classes import failure_specs, write_failure_slides
from wsidist.demo.layout import BORDER, BUBBLE, CELL, FAT, GLASS, PEN_LABELS, TISSUE
from wsidist.demo.synth import SynthSpec, synth_truth, write_synthetic_slide

SMALL = dict(width=2400, height=1800)


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    names = ("fragments", "faint_ihc", "fatty", "pens", "borders", "bubbles", "fluorescence")
    return write_failure_slides(tmp_path_factory.mktemp("classes"), names, **SMALL)


def _level0(path):
    with openslide.OpenSlide(str(path)) as s:
        return np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))


def _cells(truth, label, erode=2):
    m = truth.labels == label
    if erode:
        m = ndimage.binary_erosion(m, iterations=erode)
    return np.repeat(np.repeat(m, CELL, 0), CELL, 1)[: truth.spec.height, : truth.spec.width]


def test_every_class_has_a_spec_and_a_deterministic_truth():
    specs = failure_specs(**SMALL)
    assert {"fragments", "faint_ihc", "fatty", "pens", "borders", "bubbles", "fluorescence",
            "blurry", "empty", "typical"} <= set(specs)  # fmt: skip
    for spec in specs.values():
        a, b = synth_truth(spec), synth_truth(spec)
        assert np.array_equal(a.labels, b.labels)
    assert synth_truth(specs["empty"]).tissue_fraction == 0


def test_fragments_are_many_separate_pieces():
    truth = synth_truth(failure_specs(width=6000, height=4500)["fragments"])
    _, n = ndimage.label(truth.labels == TISSUE)
    assert n >= 30


def test_faint_ihc_is_pale_bluish_on_tinted_glass(slides):
    path, truth = slides["faint_ihc"]
    rgb = _level0(path).astype(int)
    glass, tissue = rgb[_cells(truth, GLASS, 3)], rgb[_cells(truth, TISSUE)]
    g, t = glass.mean(0), tissue.mean(0)
    assert g[2] > g[0] + 5  # tinted (bluish) glass
    assert t[2] > t[0] and t[2] > t[1]  # bluish tissue
    assert (tissue[:, 1] >= 200).mean() > 0.5  # faint: the seed's green threshold misses most
    assert 0.02 < (g - t).mean() / g.mean() < 0.2


def test_fat_is_tissue_with_empty_cells_and_thin_walls(slides):
    path, truth = slides["fatty"]
    assert (truth.labels == FAT).any()
    assert truth.tissue_fraction == pytest.approx(truth.fraction(10**6, (TISSUE, FAT))[0, 0])
    fat = _level0(path)[_cells(truth, FAT)].astype(int)
    glassy = np.abs(fat - np.asarray(truth.spec.glass)).max(1) < 20
    assert 0.5 < glassy.mean() < 0.97  # mostly empty cells, some wall


def test_translucent_pens_of_five_colours_cross_tissue(slides):
    path, truth = slides["pens"]
    rgb = _level0(path).astype(int)
    spec = truth.spec
    assert set(spec.pens) == set(PEN_LABELS) and spec.pen_style == "ink"
    for name, label in PEN_LABELS.items():
        ink = truth.labels == label
        assert ink.any(), name
    # ink over tissue is darker than the same ink over glass (it is multiplied, not painted)
    for name in ("red", "blue", "black"):
        label = PEN_LABELS[name]
        px = rgb[_cells(truth, label, 1)]
        assert px.shape[0] > 200, name
    black = rgb[_cells(truth, PEN_LABELS["black"], 1)]
    assert black.max(axis=1).mean() < 80


def test_borders_bubbles_and_fluorescence(slides):
    path, truth = slides["borders"]
    rgb = _level0(path)
    assert (truth.labels[:, 0] == BORDER).all() and (truth.labels[-1] == BORDER).all()
    assert rgb[:, :8].mean() < 60  # black at the slide edge
    path, truth = slides["bubbles"]
    rim = _level0(path)[_cells(truth, BUBBLE, 0)].astype(int)
    assert rim.shape[0] > 1000 and np.abs(rim[:, 0] - rim[:, 2]).mean() < 12  # neutral gray
    path, truth = slides["fluorescence"]
    rgb = _level0(path).astype(int)
    glass, tissue = rgb[_cells(truth, GLASS, 3)], rgb[_cells(truth, TISSUE)]
    assert glass.mean() < 15 and tissue[:, 2].mean() > glass[:, 2].mean() + 25


def test_atlas_texture_gives_the_same_truth_and_a_readable_slide(tmp_path):
    spec = SynthSpec(width=3000, height=2000, seed=4, texture="atlas", n_levels=2)
    truth = write_synthetic_slide(tmp_path / "a.svs", spec)
    assert np.array_equal(truth.labels, synth_truth(spec).labels)
    with openslide.OpenSlide(str(tmp_path / "a.svs")) as s:
        assert s.dimensions == (3000, 2000)
        rgb = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB")).astype(int)
    assert rgb[_cells(truth, TISSUE)][:, 1].mean() < rgb[_cells(truth, GLASS, 3)][:, 1].mean() - 40


def test_bad_class_parameters_are_rejected():
    with pytest.raises(ValueError, match="border"):
        SynthSpec(dark_borders=("middle",))
    with pytest.raises(ValueError, match="stain"):
        SynthSpec(stain="giemsa")
    with pytest.raises(ValueError, match="pen colours"):
        SynthSpec(pens=("purple",))
