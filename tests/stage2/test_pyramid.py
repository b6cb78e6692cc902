"""Glass-removed pyramidal TIFF writer (stage 2a)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile

from tests.helpers.paths import MISSING_SLIDES, SLIDES  # noqa: E402
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.stage2.pyramid import PyramidError, PyramidOptions, tissue_tiles, write_pyramid

MASK_DS = 32


@pytest.fixture(scope="module")
def glassy(tmp_path_factory):
    """A 6000×4000 synthetic slide that is mostly glass, and its true tissue mask."""
    folder = tmp_path_factory.mktemp("pyramid")
    path = folder / "glassy.svs"
    truth = write_synthetic_slide(path, SynthSpec(width=6000, height=4000, n_blobs=2))
    return path, truth.tissue_mask(MASK_DS), folder


@pytest.fixture(scope="module")
def written(glassy):
    """jpegxl + empty glass, and the JPEG q90 glass-kept baseline, from the same source."""
    src, mask, folder = glassy
    with open_slide(src) as slide:
        xl = write_pyramid(slide, mask, MASK_DS, folder / "xl.tif")
        jpg = write_pyramid(
            slide, mask, MASK_DS, folder / "jpeg.tif", PyramidOptions(codec="jpeg", glass="keep")
        )
    return xl, jpg


def _stored_tiles(path) -> list[tuple[str | None, list[bytes]]]:
    """Per page: its description and every tile's stored bytes, in tile order."""
    with tifffile.TiffFile(path) as tif:
        fh, out = tif.filehandle, []
        for page in tif.pages:
            tiles = []
            for off, n in zip(page.dataoffsets, page.databytecounts, strict=True):
                fh.seek(off)
                tiles.append(fh.read(n))
            out.append((page.description, tiles))
    return out


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def test_tissue_tiles_margin():
    mask = np.zeros((8, 8), bool)  # downsample 32: 256×256 slide, tile 64 → 4×4 tiles
    mask[3, 3] = True  # level-0 px [96, 128) → tile (1, 1)
    plain = tissue_tiles(mask, 32, 256, 256, 64)
    assert plain.sum() == 1 and plain[1, 1]
    grown = tissue_tiles(mask, 32, 256, 256, 64, margin_px0=40)
    assert grown[0:3, 0:3].all() and grown.sum() == 9
    with pytest.raises(PyramidError, match="does not match"):
        tissue_tiles(np.zeros((3, 3), bool), 32, 256, 256, 64)


def test_jpegxl_empty_glass_beats_jpeg_q90(written):
    xl, jpg = written
    assert xl.glass_fraction > 0.5
    assert xl.n_tissue_tiles == jpg.n_tissue_tiles > 0
    assert xl.output_bytes < 0.5 * jpg.output_bytes  # a real reduction
    assert 0 < xl.output_bytes < xl.source_bytes and xl.reduction_pct > 0
    assert xl.psnr_db >= 35 and xl.quality_tiles > 0
    assert xl.seconds > 0


def test_read_back_levels_mpp_and_pixels(glassy, written):
    src, mask, folder = glassy
    xl, _ = written
    with open_slide(src) as source, open_slide(folder / "xl.tif") as out:
        assert out.backend == "tifffile"  # OpenSlide does not know JPEG-XL tiles
        assert out.dimensions == source.dimensions == (6000, 4000)
        assert out.level_dimensions == xl.level_dimensions
        assert out.level_count == 6 and max(out.level_dimensions[-1]) <= 256
        assert out.level_downsamples[1] == pytest.approx(2)
        assert out.mpp_x == pytest.approx(0.5) and out.mpp_y == pytest.approx(0.5)
        tiles = tissue_tiles(mask, MASK_DS, 6000, 4000, 256, margin_px0=100)
        for r, c in list(zip(*np.nonzero(tiles), strict=True))[::7]:
            a = source.read_level(0, c * 256, r * 256, 256, 256)
            b = out.read_level(0, c * 256, r * 256, 256, 256)
            assert _psnr(a, b) >= 35
        glass_r, glass_c = np.argwhere(~tiles)[0]
        blank = out.read_level(0, glass_c * 256, glass_r * 256, 256, 256)
        assert (blank == 255).all()  # zero-byte tiles read back as white
        low = out.read_level(out.level_count - 1, 0, 0, *out.level_dimensions[-1])
        assert low.mean() < 254  # reduced levels hold the tissue
    with tifffile.TiffFile(folder / "xl.tif") as tif:
        page = tif.pages[0]
        assert page.compression == 50002
        counts = np.asarray(page.databytecounts)
        assert (counts == 0).sum() == xl.n_tiles - xl.n_tissue_tiles
        meta = json.loads(page.description)
        assert meta["vendor"] == "aperio" and meta["mpp"] == pytest.approx(0.5)
        assert meta["objective_power"] == 20
        assert all(p.subfiletype == 1 for p in tif.pages[1:])


@pytest.mark.parametrize("glass", ["white", "keep"])
def test_glass_white_and_keep(glassy, written, glass):
    src, mask, folder = glassy
    xl, _ = written
    path = folder / f"{glass}.tif"
    with open_slide(src) as source:
        report = write_pyramid(source, mask, MASK_DS, path, PyramidOptions(glass=glass))
        with open_slide(path) as out:
            corner = out.read_level(0, 0, 0, 64, 64)
            if glass == "white":
                assert (corner == 255).all()
            else:
                assert _psnr(corner, source.read_level(0, 0, 0, 64, 64)) >= 35
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        counts = np.asarray(page.databytecounts)
        offsets = np.asarray(page.dataoffsets)
        assert (counts > 0).all()
        if glass == "white":  # one encoded white tile, written once, shared by every glass tile
            is_glass = ~tissue_tiles(mask, MASK_DS, 6000, 4000, 256, 100).ravel()
            assert len(set(counts[is_glass].tolist())) == 1
            assert len(set(offsets[is_glass].tolist())) == 1
            assert len(set(offsets[~is_glass].tolist())) == int((~is_glass).sum())
    assert xl.output_bytes < report.output_bytes


def test_jpeg_codec_with_empty_glass_reads_in_both_backends(glassy):
    src, mask, folder = glassy
    path = folder / "jpeg-empty.tif"
    with open_slide(src) as source:
        report = write_pyramid(
            source, mask, MASK_DS, path, PyramidOptions(codec="jpeg", jpeg_quality=90)
        )
    assert report.psnr_db >= 35
    for backend in ("openslide", "tifffile"):
        with open_slide(path, backend=backend) as out:
            assert out.mpp_x == pytest.approx(0.5)
            assert (out.read_level(0, 0, 0, 32, 32) == 255).all()


def test_no_tissue_raises(glassy):
    src, mask, folder = glassy
    with open_slide(src) as slide, pytest.raises(PyramidError, match="no tissue"):
        write_pyramid(slide, np.zeros_like(mask), MASK_DS, folder / "none.tif")
    assert not (folder / "none.tif").exists()


def test_bad_arguments(glassy):
    src, mask, folder = glassy
    with open_slide(src) as slide:
        for kw in ({"codec": "webp"}, {"glass": "grey"}, {"tile": 100}, {"distance": 0}):
            with pytest.raises(PyramidError):
                write_pyramid(slide, mask, MASK_DS, folder / "bad.tif", PyramidOptions(**kw))


def test_real_slide_cmu(tmp_path):
    path = SLIDES / "CMU-1-Small-Region.svs"
    if not path.exists():
        pytest.skip(f"{path.name}: {MISSING_SLIDES}")
    from wsidist.stage1.analysis import analyse_slide
    from wsidist.stage1.config import Stage1Config

    out_path = tmp_path / "cmu.tif"
    with open_slide(path) as slide:
        analysis = analyse_slide(slide, Stage1Config(scale=16))
        report = write_pyramid(slide, analysis.tissue, analysis.downsample, out_path)
        with open_slide(out_path) as out:
            assert out.dimensions == slide.dimensions
            assert out.level_dimensions == report.level_dimensions
            assert out.mpp_x == pytest.approx(slide.mpp_x)
            tiles = tissue_tiles(
                analysis.tissue, analysis.downsample, *slide.dimensions, 256, margin_px0=0
            )
            r, c = np.argwhere(tiles)[len(np.argwhere(tiles)) // 2]
            a = slide.read_level(0, c * 256, r * 256, 256, 256)
            b = out.read_level(0, c * 256, r * 256, 256, 256)
            assert _psnr(a, b) >= 30  # one real tile; the pooled sample is checked below
    assert report.psnr_db >= 35 and report.n_tissue_tiles > 0


@pytest.mark.parametrize("glass", ["keep", "empty"])
def test_levels_are_area_averages_whatever_the_block_size(tmp_path, glass):
    """Lossless: every level equals the area-average chain of the whole level 0 (glass tiles
    white), and no stored tile depends on how the work was cut into blocks (their order in the
    file does: tiles follow the head in block order), nor does a rerun's file."""
    from wsidist.imaging import area_reduce

    src = tmp_path / "small.svs"
    truth = write_synthetic_slide(src, SynthSpec(width=2900, height=1700, seed=7, n_blobs=2))
    mask = truth.tissue_mask(MASK_DS)
    kw = {"lossless": True, "glass": glass, "effort": 1, "tile": 128, "margin_px0": 0}
    with open_slide(src) as slide:
        level0 = slide.read_level(0, 0, 0, 2900, 1700)
        b1, b3 = PyramidOptions(block_levels=1, **kw), PyramidOptions(block_levels=3, **kw)
        a = write_pyramid(slide, mask, MASK_DS, tmp_path / "b1.tif", b1)
        write_pyramid(slide, mask, MASK_DS, tmp_path / "b3.tif", b3, workers=1)
        write_pyramid(slide, mask, MASK_DS, tmp_path / "again.tif", b3, workers=3)
    assert _stored_tiles(tmp_path / "b1.tif") == _stored_tiles(tmp_path / "b3.tif")
    assert (tmp_path / "b3.tif").read_bytes() == (tmp_path / "again.tif").read_bytes()
    assert a.lossless and a.psnr_db == math.inf and a.ssim == pytest.approx(1.0)
    if glass == "empty":
        tissue = tissue_tiles(mask, MASK_DS, 2900, 1700, 128)
        assert 0 < tissue.sum() < tissue.size
        for r, c in np.argwhere(~tissue):
            level0[r * 128 : (r + 1) * 128, c * 128 : (c + 1) * 128] = 255
    with open_slide(tmp_path / "b1.tif") as out:  # zero-byte tiles read as white
        expected = level0
        for k, (w, h) in enumerate(out.level_dimensions):
            if k:
                expected = area_reduce(expected, 2)
            assert np.array_equal(out.read_level(k, 0, 0, w, h), expected), f"level {k}"


def test_blocks_in_flight_are_bounded(glassy, tmp_path):
    """The writer never has more than 2 × workers blocks submitted and unfinished."""
    from concurrent.futures import ThreadPoolExecutor

    src, mask, _ = glassy
    state = {"pending": 0, "peak": 0, "submitted": 0}
    with ThreadPoolExecutor(4) as pool, open_slide(src) as slide:

        def submit(fn, *args):
            state["pending"] += 1
            state["submitted"] += 1
            state["peak"] = max(state["peak"], state["pending"])
            fut = pool.submit(fn, *args)
            fut.add_done_callback(lambda _: state.update(pending=state["pending"] - 1))
            return fut

        kw = {"glass": "keep", "quality_samples": 0, "block_levels": 1}  # 2×2-tile blocks
        opts = PyramidOptions(**kw)
        write_pyramid(slide, mask, MASK_DS, tmp_path / "p.tif", opts, submit=submit, workers=1)
    assert state["submitted"] == math.ceil(16 / 2) * math.ceil(24 / 2)  # every block once
    assert state["peak"] <= 2
