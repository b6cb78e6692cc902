"""Synthetic slides: OpenSlide reads them, pixels match the truth, the truth is exact."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np
import openslide
import pytest
import tifffile
from scipy import ndimage

from tests.helpers.paths import REPO
from wsidist.demo import synth
from wsidist.demo.synth import (
    CELL,
    DEBRIS,
    GLASS,
    PEN_BLUE,
    PEN_GREEN,
    PEN_RED,
    TISSUE,
    SynthSpec,
    demo_specs,
    generate_demo_slides,
    synth_truth,
    write_synthetic_slide,
)

SMALL = SynthSpec(width=2000, height=1500, seed=5, n_blobs=3, n_debris=60)


# The classic python-wsi-preprocessing thresholds, restated for checking colours.
def _red_pen(rgb):
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 80) & (b < 90)


def _green_pen(rgb):
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return ((r < 45) & (g > 115) & (b > 100)) | ((r < 70) & (g > 110) & (b > 110))


def _blue_pen(rgb):
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return ((r < 60) & (g < 120) & (b > 190)) | ((r < 37) & (g < 95) & (b > 160))


def _any_classic_pen(rgb):
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    red = [(150, 80, 90), (110, 20, 30), (185, 65, 105), (195, 85, 125), (220, 115, 145),
           (125, 40, 70), (200, 120, 150), (100, 50, 65), (85, 25, 45)]  # fmt: skip
    green = [(150, 160, 140), (70, 110, 110), (45, 115, 100), (30, 75, 60), (195, 220, 210),
             (225, 230, 225), (170, 210, 200), (20, 30, 20), (50, 60, 40), (30, 50, 35),
             (65, 70, 60), (100, 110, 105), (165, 180, 180), (140, 140, 150), (185, 195, 195)]  # fmt: skip
    blue = [(60, 120, 190), (120, 170, 200), (175, 210, 230), (145, 180, 210), (37, 95, 160),
            (30, 65, 130), (130, 155, 180), (40, 35, 85), (30, 20, 65), (90, 90, 140),
            (60, 60, 120), (110, 110, 175)]  # fmt: skip
    out = np.zeros(rgb.shape[:-1], bool)
    for rr, gg, bb in red:
        out |= (r > rr) & (g < gg) & (b < bb)
    for rr, gg, bb in green:
        out |= (r < rr) & (g > gg) & (b > bb)
    for rr, gg, bb in blue:
        out |= (r < rr) & (g < gg) & (b > bb)
    return out


def _gray(rgb, tol=15):
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return (abs(r - g) <= tol) & (abs(r - b) <= tol) & (abs(g - b) <= tol)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "small.svs"
    truth = write_synthetic_slide(path, SMALL)
    with openslide.OpenSlide(str(path)) as s:
        rgb = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))
        lvl1 = np.asarray(s.read_region((0, 0), 1, s.level_dimensions[1]).convert("RGB"))
    return path, truth, rgb, lvl1


def _interior(truth, label, erode_cells=2):
    m = truth.labels == label
    if erode_cells:
        m = ndimage.binary_erosion(m, iterations=erode_cells)
    m = np.repeat(np.repeat(m, CELL, 0), CELL, 1)
    return m[: truth.spec.height, : truth.spec.width]


def test_openslide_reads_aperio(small):
    path, *_ = small
    assert openslide.OpenSlide.detect_format(str(path)) == "aperio"
    with openslide.OpenSlide(str(path)) as s:
        assert s.level_dimensions == SMALL.level_dimensions
        assert s.level_dimensions == ((2000, 1500), (500, 375))
        assert s.properties["openslide.mpp-x"] == "0.5"
        assert s.properties["openslide.mpp-y"] == "0.5"
        assert s.properties["openslide.objective-power"] == "20"
        assert "thumbnail" in s.associated_images
    with tifffile.TiffFile(path) as t:  # tifffile's own SVS reading agrees
        assert t.is_svs
        assert [s.name for s in t.series] == ["Baseline", "Thumbnail"]
        assert [lvl.shape for lvl in t.series[0].levels] == [(1500, 2000, 3), (375, 500, 3)]


@pytest.mark.parametrize("mpp", [0.25, None])
def test_openslide_reads_generic(tmp_path, mpp):
    spec = SynthSpec(width=1100, height=900, mpp=mpp, vendor_style="generic", n_levels=2)
    write_synthetic_slide(tmp_path / "g.tiff", spec)
    assert openslide.OpenSlide.detect_format(str(tmp_path / "g.tiff")) == "generic-tiff"
    with openslide.OpenSlide(str(tmp_path / "g.tiff")) as s:
        assert s.level_dimensions == ((1100, 900), (275, 225))
        if mpp is None:
            assert "openslide.mpp-x" not in s.properties
        else:
            assert float(s.properties["openslide.mpp-x"]) == pytest.approx(mpp)
            assert float(s.properties["openslide.mpp-y"]) == pytest.approx(mpp)


def test_aperio_without_mpp(tmp_path):
    spec = SynthSpec(width=800, height=600, mpp=None, objective_power=None)
    write_synthetic_slide(tmp_path / "n.svs", spec)
    with openslide.OpenSlide(str(tmp_path / "n.svs")) as s:
        assert s.properties["openslide.vendor"] == "aperio"
        assert "openslide.mpp-x" not in s.properties
        assert "openslide.objective-power" not in s.properties


def test_level_count_rule():
    assert SynthSpec().level_downsamples == (1, 4, 16)
    assert SynthSpec(width=20000, height=15000).level_downsamples == (1, 4, 16, 64)
    assert SynthSpec(width=20000, height=15000).level_dimensions[-1] == (313, 235)
    assert SynthSpec(n_levels=1).level_downsamples == (1,)
    with pytest.raises(ValueError):
        SynthSpec(pens=("purple",))


def test_pixels_are_what_was_intended(small):
    _, truth, rgb, _ = small
    lab = np.zeros((-(-SMALL.height // 256) * 64, -(-SMALL.width // 256) * 64), np.uint8)
    lab[: truth.labels.shape[0], : truth.labels.shape[1]] = truth.labels
    for x0, y0 in [(0, 0), (768, 512), (1792, 1280)]:
        tile = synth._render_tile(SMALL, lab, x0, y0).astype(int)
        got = rgb[y0 : y0 + 256, x0 : x0 + 256].astype(int)
        tile = tile[: got.shape[0], : got.shape[1]]
        assert np.abs(got - tile).mean() < 4.0  # JPEG Q85 error


def test_colours_match_truth(small):
    _, truth, rgb, _ = small
    glass = rgb[_interior(truth, GLASS, 3)]
    assert np.abs(glass.mean(0) - SMALL.glass).max() < 6
    assert (glass[:, 1] >= 200).mean() > 0.999  # classic green-channel test: not tissue
    assert _gray(glass).mean() > 0.999  # and the grays filter drops glass

    tissue = rgb[_interior(truth, TISSUE)]
    assert tissue.shape[0] > 10_000
    assert (tissue[:, 1] < 200).mean() > 0.995
    assert (~_gray(tissue)).mean() > 0.995
    assert _any_classic_pen(tissue).mean() < 0.005
    r, g, b = tissue.mean(0)
    assert r > g and b > g  # pink/purple: eosin + hematoxylin

    # hematoxylin-like (purple) and eosin-like (pink) pixels both present
    purple = (tissue[:, 0] < 170) & (tissue[:, 2] > tissue[:, 0])
    assert 0.03 < purple.mean() < 0.6

    for label, caught in [(PEN_RED, _red_pen), (PEN_GREEN, _green_pen), (PEN_BLUE, _blue_pen)]:
        ink = rgb[_interior(truth, label, 1)]
        assert ink.shape[0] > 500, label
        assert caught(ink).mean() > 0.98, label

    core = rgb[_interior(truth, DEBRIS, 1)]
    assert core.shape[0] > 20
    assert _gray(core).mean() > 0.95  # dust is gray: the grays filter removes it
    assert (core[:, 1] < 200).mean() > 0.9  # ...although it is dark enough to fool green_channel


def test_pen_crosses_tissue_and_glass():
    truth = synth_truth(SMALL)
    pen = np.isin(truth.labels, [PEN_RED, PEN_GREEN, PEN_BLUE])
    near = ndimage.binary_dilation(truth.labels == TISSUE, iterations=2)
    assert (pen & near).any() and (pen & ~near).any()


def test_lower_level_is_area_average(small):
    _, _, rgb, lvl1 = small
    h, w = lvl1.shape[:2]
    ref = rgb[: h * 4, : w * 4].reshape(h, 4, w, 4, 3).mean((1, 3))
    assert np.abs(lvl1.astype(float) - ref).mean() < 3.0


def test_truth_masks_exact():
    truth = synth_truth(SMALL)
    tis = truth.labels == TISSUE
    assert truth.tissue_mask(CELL).shape == tis.shape
    assert np.array_equal(truth.tissue_mask(CELL), tis)
    full = truth.tissue_mask(1)
    assert full.shape == (1500, 2000)
    assert np.array_equal(full, np.repeat(np.repeat(tis, CELL, 0), CELL, 1))
    assert truth.tissue_fraction == pytest.approx(full.mean(), abs=1e-6)
    # scale 8 = 2x2 cells: tissue only with more than half, i.e. >= 3 of 4
    counts = tis[:374].reshape(187, 2, 250, 2).sum((1, 3))
    assert np.array_equal(truth.tissue_mask(8)[:187], counts >= 3)
    for scale in (3, 16, 32.5, 100):
        m = truth.tissue_mask(scale)
        assert m.shape == (int(np.ceil(1500 / scale)), int(np.ceil(2000 / scale)))
        assert abs(m.mean() - truth.tissue_fraction) < 0.05
    assert not (truth.tissue_mask(16) & truth.pen_mask(16)).any()
    assert 0.05 < truth.tissue_fraction < 0.6
    assert 0.005 < truth.pen_fraction < 0.15


def test_truth_ragged_edges():
    spec = SynthSpec(width=1001, height=777, seed=2, tile=256)
    truth = synth_truth(spec)
    full = truth.tissue_mask(1)
    assert full.shape == (777, 1001)
    m = truth.tissue_mask(10)
    assert m.shape == (78, 101)
    # a partial edge box compares against its own (clipped) area
    frac = truth.fraction(10, (TISSUE,))
    edge = full[770:777, 1000:1001].mean()
    assert frac[77, 100] == pytest.approx(edge, abs=1e-5)


def test_deterministic(tmp_path):
    spec = SynthSpec(width=900, height=700, seed=11)
    t1 = write_synthetic_slide(tmp_path / "a.svs", spec)
    t2 = write_synthetic_slide(tmp_path / "b.svs", spec)
    h = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.svs", "b.svs")]
    assert h[0] == h[1]
    assert np.array_equal(t1.labels, t2.labels)
    assert np.array_equal(t1.labels, synth_truth(spec).labels)
    other = synth_truth(SynthSpec(width=900, height=700, seed=12))
    assert not np.array_equal(t1.labels, other.labels)


def test_demo_slides(tmp_path):
    specs = demo_specs(3, seed=0)
    truths = [synth_truth(s) for s in specs]
    assert truths[1].pen_fraction > 1.5 * max(truths[0].pen_fraction, truths[2].pen_fraction)
    assert truths[2].tissue_fraction < 0.5 * truths[0].tissue_fraction
    paths = generate_demo_slides(tmp_path, n=3)
    assert [p.suffix for p in paths] == [".svs", ".tiff", ".svs"]
    vendors = []
    for p, spec in zip(paths, specs, strict=True):
        with openslide.OpenSlide(str(p)) as s:
            vendors.append(s.properties["openslide.vendor"])
            assert s.dimensions == (spec.width, spec.height)
            assert float(s.properties["openslide.mpp-x"]) == pytest.approx(spec.mpp)
    assert vendors == ["aperio", "generic-tiff", "aperio"]


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("WSIDIST_SLOW"), reason="set WSIDIST_SLOW=1 (20-30 s)")
def test_big_slide_bounded_memory(tmp_path):
    code = textwrap.dedent(
        f"""
        import resource, sys
        from wsidist.demo.synth import SynthSpec, write_synthetic_slide
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        spec = SynthSpec(width=20000, height=15000, vendor_style="generic", seed=3)
        write_synthetic_slide({str(tmp_path / "big.tiff")!r}, spec)
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
        """
    )
    root = REPO
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    growth_mb = int(out.stdout.split()[-1])
    assert growth_mb < 600  # level 0 alone would be 900 MB
    with openslide.OpenSlide(str(tmp_path / "big.tiff")) as s:
        assert s.level_dimensions[0] == (20000, 15000)
        assert len(s.level_dimensions) == 4


def test_synthetic_slides_fixture(synthetic_slides):
    assert [s.path.name for s in synthetic_slides] == ["typical.svs", "pens.tiff", "sparse.svs"]
    for slide in synthetic_slides:
        assert slide.path.is_file()
        with openslide.OpenSlide(str(slide.path)) as s:
            assert s.dimensions == (slide.spec.width, slide.spec.height)
        assert slide.truth.tissue_mask(32).shape == (
            -(-slide.spec.height // 32),
            -(-slide.spec.width // 32),
        )
