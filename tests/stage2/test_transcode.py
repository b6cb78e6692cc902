"""Lossless JPEG → JPEG-XL transcode of tiled JPEG TIFF pyramids, and the byte-exact restore."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.io.slide import open_slide
from wsidist.stage2.pyramid import PyramidError
from wsidist.stage2.restore import restore_jpeg_tiff
from wsidist.stage2.transcode import transcode_pyramid

MASK_DS = 16


def _threshold_mask(path: Path, ds: int = MASK_DS) -> np.ndarray:
    """Tissue mask at downsample ``ds``: blocks whose mean colour is darker than glass."""
    with open_slide(path) as slide:
        w, h = slide.dimensions
        img = slide.read_level(0, 0, 0, w, h)
    rows, cols = math.ceil(h / ds), math.ceil(w / ds)
    pad = np.full((rows * ds, cols * ds, 3), 255, np.uint8)
    pad[:h, :w] = img
    return pad.reshape(rows, ds, cols, ds, 3).mean(axis=(1, 3)).min(axis=-1) < 200


def _raw_tiles(path: Path) -> list[tuple[list[bytes], bytes | None]]:
    """Per tiled top-level page: every tile's stored bytes and the page's JPEGTables."""
    out = []
    with tifffile.TiffFile(path) as tif:
        fh = tif.filehandle
        for page in tif.pages:
            if not page.is_tiled:
                continue
            tiles = []
            for off, n in zip(page.dataoffsets, page.databytecounts, strict=True):
                fh.seek(off)
                tiles.append(fh.read(n))
            out.append((tiles, page.jpegtables))
    return out


def _tile_boxes(w: int, h: int, t: int):
    cols = math.ceil(w / t)
    for i in range(cols * math.ceil(h / t)):
        r, c = divmod(i, cols)
        yield i, (slice(r * t, (r + 1) * t), slice(c * t, (c + 1) * t))


@pytest.fixture(scope="module")
def cmu(real_slides_dir, tmp_path_factory):
    src = real_slides_dir / "CMU-1-Small-Region.svs"
    if not src.is_file():
        pytest.skip(f"{src} not available")
    folder = tmp_path_factory.mktemp("transcode_cmu")
    mask = _threshold_mask(src)
    report = transcode_pyramid(str(src), mask, MASK_DS, folder / "cmu.tif", margin_px0=0)
    return src, mask, report, folder


def test_cmu_glass_tiles_empty_and_smaller(cmu):
    src, mask, report, _ = cmu
    out = Path(report.path)
    assert report.lossless and report.levels_from == "source" and report.codec == "jpegxl"
    assert report.n_tiles == 130 and 0 < report.n_tissue_tiles < report.n_tiles
    assert report.glass_fraction == pytest.approx(1 - report.n_tissue_tiles / 130)
    assert report.output_bytes == out.stat().st_size < report.source_bytes == src.stat().st_size
    assert report.reduction_pct > 30
    with tifffile.TiffFile(out) as tif:
        page = tif.pages.first
        assert page.compression == tifffile.COMPRESSION.JPEGXL
        counts = np.asarray(page.databytecounts)
        meta = json.loads(page.description)
    assert int((counts > 0).sum()) == report.n_tissue_tiles
    source_counts = np.asarray([len(t) for t in _raw_tiles(src)[0][0]])
    assert (counts[counts > 0] < source_counts[counts > 0] + 300).all()  # tables merged in
    assert meta["transcode"] is True and meta["source_photometric"] == "rgb"
    assert meta["jpeg_colorspace"] == "RGB" and meta["source_tiles"] == [[240, 240]]
    assert meta["source_description"].startswith("Aperio") and meta["jpegtables"][0]


def test_cmu_pixels_identical_and_glass_white(cmu):
    src, _, report, _ = cmu
    with open_slide(src) as a, open_slide(report.path) as b:
        assert b.backend == "tifffile"
        assert b.dimensions == a.dimensions and b.level_dimensions == a.level_dimensions
        assert b.mpp_x == pytest.approx(a.mpp_x) and b.objective_power == a.objective_power == 20
        w, h = a.dimensions
        pa, pb = a.read_region(0, 0, 0, (w, h)), b.read_region(0, 0, 0, (w, h))
    with tifffile.TiffFile(report.path) as tif:
        counts = tif.pages.first.databytecounts
    n_glass = 0
    for i, box in _tile_boxes(w, h, 240):
        if counts[i]:
            assert np.array_equal(pa[box], pb[box]), f"tile {i}"
        else:
            assert (pb[box] == 255).all()
            n_glass += 1
    assert n_glass == report.n_tiles - report.n_tissue_tiles > 0


def test_cmu_restore_byte_exact_and_openslide(cmu):
    src, _, report, folder = cmu
    restored = folder / "restored.svs"
    counts = restore_jpeg_tiff(report.path, restored)
    assert counts["levels"] == 1 and counts["tiles"] == 130
    assert counts["tissue_tiles"] == report.n_tissue_tiles
    assert counts["bytes"] == restored.stat().st_size
    [(src_tiles, src_tables)] = [_raw_tiles(src)[0]]
    [(out_tiles, out_tables)] = _raw_tiles(restored)
    assert out_tables == src_tables
    kept = [i for i, t in enumerate(out_tiles) if t]
    assert len(kept) == report.n_tissue_tiles
    assert all(out_tiles[i] == src_tiles[i] for i in kept)
    with tifffile.TiffFile(src) as s, tifffile.TiffFile(restored) as r:
        assert r.pages.first.description == s.pages.first.description
        assert r.pages.first.photometric == s.pages.first.photometric == 2
    with openslide.OpenSlide(str(src)) as a, openslide.OpenSlide(str(restored)) as b:
        assert b.properties["openslide.vendor"] == "aperio"
        assert b.properties["openslide.mpp-x"] == a.properties["openslide.mpp-x"]
        w, h = a.dimensions
        pa = np.asarray(a.read_region((0, 0), 0, (w, h)).convert("RGB"))
        pb = np.asarray(b.read_region((0, 0), 0, (w, h)).convert("RGB"))
    for i, box in _tile_boxes(w, h, 240):
        if out_tiles[i]:
            assert np.array_equal(pa[box], pb[box]), f"tile {i}"


@pytest.fixture(scope="module")
def multilevel(tmp_path_factory):
    """A 3-level generic (YCbCr, no JPEGTables) synthetic JPEG TIFF and its true tissue mask."""
    folder = tmp_path_factory.mktemp("transcode_synth")
    src = folder / "synth.tiff"
    spec = SynthSpec(width=3000, height=2000, n_levels=3, n_blobs=2, vendor_style="generic")
    truth = write_synthetic_slide(src, spec)
    mask = truth.tissue_mask(MASK_DS)
    report = transcode_pyramid(str(src), mask, MASK_DS, folder / "serial.tif", margin_px0=64)
    return src, mask, report, folder


@pytest.mark.parametrize("style", ["generic", "aperio"])
def test_multilevel_transcode_restore_byte_exact(multilevel, tmp_path, style):
    src, mask, report, _ = multilevel
    if style == "aperio":  # Aperio layout: stripped thumbnail between levels, levels unreduced
        src = tmp_path / "synth.svs"
        write_synthetic_slide(src, SynthSpec(width=3000, height=2000, n_levels=3, n_blobs=2))
        report = transcode_pyramid(str(src), mask, MASK_DS, tmp_path / "xl.tif", margin_px0=64)
    assert report.level_dimensions == ((3000, 2000), (750, 500), (188, 125))
    assert 0 < report.n_tissue_tiles < report.n_tiles == 12 * 8
    src_levels = _raw_tiles(src)
    xl_levels = _raw_tiles(Path(report.path))
    restored = tmp_path / "restored.tif"
    counts = restore_jpeg_tiff(report.path, restored)
    out_levels = _raw_tiles(restored)
    assert counts["levels"] == len(out_levels) == len(src_levels) == 3
    for k, ((s_tiles, s_tab), (x_tiles, _), (o_tiles, o_tab)) in enumerate(
        zip(src_levels, xl_levels, out_levels, strict=True)
    ):
        assert o_tab == s_tab
        assert [bool(t) for t in o_tiles] == [bool(t) for t in x_tiles], f"level {k}"
        assert any(o_tiles), f"level {k} lost all tissue"
        assert all(o == s for o, s in zip(o_tiles, s_tiles, strict=True) if o), f"level {k}"
    # pixels of every level through the tifffile backend equal the source's on tissue tiles
    with open_slide(src) as a, open_slide(report.path) as b, open_slide(restored) as c:
        for k, (w, h) in enumerate(a.level_dimensions):
            pa, pb, pc = (s.read_level(k, 0, 0, w, h) for s in (a, b, c))
            for i, box in _tile_boxes(w, h, 256):
                if xl_levels[k][0][i]:
                    assert np.array_equal(pa[box], pb[box]) and np.array_equal(pa[box], pc[box])
                else:
                    assert (pb[box] == 255).all()


def test_reduced_levels_keep_every_tissue_tile_of_level0(multilevel):
    """The mask maps to reduced levels correctly: tissue at level 0 is tissue beneath it."""
    _, _, report, _ = multilevel
    levels = _raw_tiles(Path(report.path))
    w0, t = report.level_dimensions[0][0], 256
    cols0 = math.ceil(w0 / t)
    for k in (1, 2):
        lw, _ = report.level_dimensions[k]
        d, cols = w0 / lw, math.ceil(lw / t)
        for i, data in enumerate(levels[0][0]):
            if not data:
                continue
            r, c = divmod(i, cols0)
            # the centre of a level-0 tissue tile falls in a tissue tile of level k
            y, x = (r + 0.5) * t / d, (c + 0.5) * t / d
            assert levels[k][0][int(y // t) * cols + int(x // t)], (k, r, c)


def test_parallel_thread_pool_matches_serial(multilevel):
    src, mask, serial, folder = multilevel
    with ThreadPoolExecutor(2) as pool:
        rep = transcode_pyramid(
            str(src),
            mask,
            MASK_DS,
            folder / "threads.tif",
            margin_px0=64,
            submit=pool.submit,
            batch_tiles=3,
            max_in_flight=2,
        )
    assert rep.n_tissue_tiles == serial.n_tissue_tiles
    assert Path(rep.path).read_bytes() == Path(serial.path).read_bytes()


def test_parallel_dask_processes_match_serial(multilevel, client):
    src, mask, serial, folder = multilevel
    rep = transcode_pyramid(
        str(src), mask, MASK_DS, folder / "dask.tif", margin_px0=64, submit=client.submit
    )
    assert Path(rep.path).read_bytes() == Path(serial.path).read_bytes()


def test_jpeg2000_source_refused_naming_the_compression(real_slides_dir, tmp_path):
    src = real_slides_dir / "tcga-cr-7395-01a-01-ts1.svs"
    if not src.is_file():
        pytest.skip(f"{src} not available")
    mask = np.ones((math.ceil(3567 / 64), math.ceil(4443 / 64)), bool)
    with pytest.raises(
        PyramidError, match=r"level 0 is compressed with APERIO_JP2000_RGB \(33005\)"
    ):
        transcode_pyramid(str(src), mask, 64, tmp_path / "x.tif", margin_px0=0)
    assert not list(tmp_path.iterdir())


def test_empty_mask_and_bad_inputs_refused(multilevel, tmp_path):
    src, mask, _, _ = multilevel
    with pytest.raises(PyramidError, match="no tissue.*refusing to write an empty pyramid"):
        transcode_pyramid(str(src), np.zeros_like(mask), MASK_DS, tmp_path / "x.tif", margin_px0=0)
    not_tiff = tmp_path / "notes.txt"
    not_tiff.write_text("not a slide")
    with pytest.raises(PyramidError, match="not a readable TIFF"):
        transcode_pyramid(str(not_tiff), mask, MASK_DS, tmp_path / "x.tif", margin_px0=0)
    with pytest.raises(PyramidError, match="not a wsidist transcoded pyramid"):
        restore_jpeg_tiff(src, tmp_path / "r.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
