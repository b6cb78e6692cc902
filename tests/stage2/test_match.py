"""--match-source: the source codec's measured PSNR and the JPEG-XL distance that matches it."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import tifffile

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.io.storage import Store
from wsidist.runtime.tasks import SlideTask
from wsidist.stage2.config import RewriteConfig
from wsidist.stage2.match import jpeg_quality, match_distance, source_quality
from wsidist.stage2.worker import computed_mask, larger_warning, rewrite_slide


@pytest.fixture(scope="module")
def jpeg_slides(tmp_path_factory):
    """The same synthetic slide stored at JPEG quality 40 and 95."""
    folder = tmp_path_factory.mktemp("match")
    out = {}
    for q in (40, 95):
        spec = SynthSpec(width=2600, height=2000, seed=7, n_blobs=3, jpeg_quality=q)
        write_synthetic_slide(folder / f"q{q}.svs", spec)
        out[q] = folder / f"q{q}.svs"
    return out


@pytest.mark.parametrize("quality", [20, 50, 75, 90, 97])
def test_jpeg_quality_read_from_the_tables(quality):
    rng = np.random.default_rng(quality)
    px = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert jpeg_quality(imagecodecs.jpeg8_encode(px, level=quality)) == quality


def test_a_coarser_source_gets_a_coarser_distance(jpeg_slides):
    found = {}
    for q, path in jpeg_slides.items():
        with open_slide(str(path)) as slide:
            mask = computed_mask(slide, RewriteConfig())
            source = source_quality(slide, mask, RewriteConfig().scale)
            assert source is not None and source.describe == f"JPEG q{q}"
            assert len(source.boxes) >= 4
            found[q] = (source, match_distance(slide, source, finest=1.0, effort=3))
    (low, d_low), (high, d_high) = found[40], found[95]
    assert low.psnr_db < high.psnr_db - 3
    assert d_low > d_high >= 1.0  # never finer than the configured distance
    assert d_low > 1.5


def test_an_uncompressed_source_is_not_matched(tmp_path):
    rng = np.random.default_rng(0)
    px = np.clip(rng.normal(180, 30, (1024, 1024, 3)), 0, 255).astype(np.uint8)
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, px, tile=(256, 256), photometric="rgb")
    with open_slide(str(path)) as slide:
        assert source_quality(slide, np.ones((32, 32), bool), 32.0) is None


def test_the_row_reports_the_distance_and_match_saves_bytes(jpeg_slides, tmp_path):
    task = SlideTask(str(jpeg_slides[40]), "q40")
    rows = {}
    for match in (True, False):
        store = Store(str(tmp_path / str(match)))
        config = RewriteConfig(match_source=match)
        rows[match] = rewrite_slide(task, config, store, store)
        assert rows[match]["status"] == "ok", rows[match]["error"]
    on, off = rows[True], rows[False]
    assert off["distance"] == 1.0 and off.get("source_quality") is None
    assert on["distance"] > 1.5 and on["source_quality"] == "JPEG q40"
    assert on["output_bytes"] < 0.8 * off["output_bytes"]
    assert on["psnr_db"] >= on["source_psnr_db"] - 1.0  # at least the source's own quality
    assert off["psnr_db"] > on["psnr_db"]


def test_lossless_and_jpeg_codecs_have_no_match():
    assert not RewriteConfig(lossless=True).lossy_jpegxl
    assert not RewriteConfig(codec="jpeg").lossy_jpegxl
    assert RewriteConfig().lossy_jpegxl and RewriteConfig().match_source


def test_larger_output_warns():
    assert larger_warning(1000, 900) is None and larger_warning(0, 5) is None
    assert "25 % larger" in larger_warning(1000, 1250)
