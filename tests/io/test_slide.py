"""Slide access: metadata, regions, thumbnails, errors and pickling."""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import tifffile

from tests.helpers.paths import CMU, DICOM, KIDNEY, MISSING_SLIDES, NDPI, SLIDES, TCGA
from tests.helpers.reference import reference_area_average
from wsidist.cli.output import info_table
from wsidist.errors import SlideError, WsidistError
from wsidist.io.slide import SlideInfo, open_slide

needs_slides = pytest.mark.skipif(not SLIDES.is_dir(), reason=MISSING_SLIDES)


def openslide_rgb(path: Path, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
    import openslide

    with openslide.OpenSlide(str(path)) as osr:
        rgba = np.asarray(osr.read_region((x, y), level, size)).astype(np.int32)
    a = rgba[..., 3:]
    return ((rgba[..., :3] * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


# -- metadata of the real slides -------------------------------------------------------------

EXPECTED = {
    "CMU-1-Small-Region.svs": ("aperio", "openslide", [(2220, 2967)], 0.499, 20.0),
    "tcga-cr-7395-01a-01-ts1.svs": ("aperio", "openslide", [(4443, 3567), (2221, 1783)], None, None),
    "test3-DAPI-2-(387).ndpi": ("hamamatsu", "openslide", [(3968, 4864)] + [None] * 6, 0.22818, 40.0),
    "dicom/cmu-1-small-region": ("dicom", "dicom", [(2220, 2967), (1110, 1483)] + [None] * 9 + [(1, 1)], 0.499, None),
    "kidney-48-5.tif": ("tiff", "tifffile", [(1493, 901)], None, None),
}  # fmt: skip


@needs_slides
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_metadata_of_real_slides(name):
    vendor, backend, dims, mpp, obj = EXPECTED[name]
    with open_slide(str(SLIDES / name)) as s:
        assert (s.vendor, s.backend, s.level_count) == (vendor, backend, len(dims))
        for got, want in zip(s.level_dimensions, dims, strict=True):
            assert want is None or got == want
        assert s.dimensions == dims[0]
        assert s.level_downsamples[0] == 1.0
        assert list(s.level_downsamples) == sorted(s.level_downsamples)
        if mpp is None:
            assert s.mpp_x is None and s.mpp_y is None
        else:
            assert s.mpp_x == pytest.approx(mpp, rel=1e-3) and s.mpp_y == pytest.approx(
                mpp, rel=1e-3
            )
        assert s.objective_power == obj
        info = s.info()
        assert isinstance(info, SlideInfo)
        d = json.loads(json.dumps(info.as_dict()))
        assert (d["width"], d["height"], d["level_count"]) == (*dims[0], len(dims))
        assert d["vendor"] == vendor and d["backend"] == backend and d["mpp_x"] == s.mpp_x


@needs_slides
def test_cmu_associated_images_and_properties():
    for backend in ("openslide", "tifffile"):
        with open_slide(str(CMU), backend=backend) as s:
            assert s.associated_images == ("label", "macro", "thumbnail")
            label = s.associated_image("label")
            assert label.shape == (463, 387, 3) and label.dtype == np.uint8
            with pytest.raises(SlideError, match="no associated image 'nope'"):
                s.associated_image("nope")
            assert s.mpp_x == pytest.approx(0.499) and s.objective_power == 20.0
            assert s.info().tile_width == 240


@needs_slides
def test_dicom_opens_from_directory_or_any_file():
    files = sorted(DICOM.glob("*.dcm"))
    assert len(files) == 12
    with open_slide(str(files[5])) as s:
        assert s.vendor == "dicom" and s.level_count == 12 and s.dimensions == (2220, 2967)


# -- regions -------------------------------------------------------------------------------------


@needs_slides
@pytest.mark.parametrize(
    ("path", "x", "y", "level", "size"),
    [
        (CMU, 0, 0, 0, (300, 200)),
        (CMU, 1000, 1500, 0, (257, 129)),
        (CMU, 2100, 2900, 0, (300, 200)),  # crosses the right and bottom edges
        (TCGA, 1234, 987, 1, (200, 150)),
        (TCGA, 4300, 3400, 1, (200, 150)),  # level 1, past the edge
        (NDPI, 1800, 2200, 2, (128, 96)),
    ],
)
def test_read_region_equals_openslide(path, x, y, level, size):
    with open_slide(str(path)) as s:
        got = s.read_region(x, y, level, size)
    assert got.dtype == np.uint8 and got.shape == (size[1], size[0], 3)
    np.testing.assert_array_equal(got, openslide_rgb(path, x, y, level, size))


@needs_slides
def test_region_outside_slide_is_white():
    with open_slide(str(CMU)) as s:
        region = s.read_region(2120, 2867, 0, (200, 200))
        assert (region[:, 100:] == 255).all() and (region[100:, :] == 255).all()
        assert (region[:100, :100] != 255).any()
        assert (s.read_region(-500, -500, 0, (64, 64)) == 255).all()
        assert s.read_region(0, 0, 0, (0, 5)).shape == (5, 0, 3)


@needs_slides
def test_tifffile_backend_kidney_regions_match_page():
    full = tifffile.imread(KIDNEY)
    with open_slide(str(KIDNEY)) as s:
        assert s.backend == "tifffile"
        for x, y, w, h in [
            (0, 0, 1493, 901),
            (10, 20, 300, 200),
            (1400, 850, 93, 51),
            (777, 0, 1, 901),
        ]:
            np.testing.assert_array_equal(
                s.read_region(x, y, 0, (w, h)), full[y : y + h, x : x + w]
            )
        edge = s.read_region(1400, 800, 0, (200, 200))
        np.testing.assert_array_equal(edge[:101, :93], full[800:, 1400:])
        assert (edge[101:] == 255).all() and (edge[:, 93:] == 255).all()


@needs_slides
def test_tifffile_backend_reads_svs_like_openslide():
    with open_slide(str(TCGA), backend="tifffile") as s:
        assert s.level_dimensions == ((4443, 3567), (2221, 1783))
        region = s.read_region(1000, 800, 0, (300, 250))
    np.testing.assert_array_equal(region, openslide_rgb(TCGA, 1000, 800, 0, (300, 250)))


# -- thumbnails ----------------------------------------------------------------------------------


@needs_slides
@pytest.mark.parametrize("path", [CMU, TCGA, KIDNEY, DICOM])
@pytest.mark.parametrize("scale", [32, 7.5])
def test_thumbnail_shape(path, scale):
    with open_slide(str(path)) as s:
        w, h = s.dimensions
        thumb = s.thumbnail(scale)
    assert thumb.shape == (math.ceil(h / scale), math.ceil(w / scale), 3)
    assert thumb.dtype == np.uint8


@needs_slides
@pytest.mark.parametrize("scale", [32, 7.5])
def test_thumbnail_is_area_average_without_seams(scale):
    with open_slide(str(CMU)) as s:
        full = s.read_region(0, 0, 0, s.dimensions)
        ref = reference_area_average(full, scale)
        default = s.thumbnail(scale)
        many_blocks = s.thumbnail(scale, block_px=333)  # 7×9 blocks, not aligned to 240 px tiles
    assert np.abs(default.astype(int) - ref).max() <= 1
    assert np.abs(many_blocks.astype(int) - ref).max() <= 1
    assert np.mean(many_blocks != ref) < 0.01  # differences are only float rounding ties


@needs_slides
def test_thumbnail_comes_from_smallest_sufficient_level(monkeypatch):
    with open_slide(str(TCGA)) as s:
        assert s.best_level_for_downsample(32) == 1
        assert s.best_level_for_downsample(1.99) == 0
        assert s.best_level_for_downsample(0.5) == 0
        seen = []
        original = s.read_level

        def spy(level, x, y, w, h):
            seen.append((level, w, h))
            return original(level, x, y, w, h)

        monkeypatch.setattr(s, "read_level", spy)
        thumb = s.thumbnail(32, block_px=1024)
    assert {lv for lv, _, _ in seen} == {1}
    assert max(max(w, h) for _, w, h in seen) <= 1024
    assert thumb.shape == (112, 139, 3)


def test_thumbnail_rejects_bad_scale(tmp_path):
    path = tmp_path / "gray.tif"
    tifffile.imwrite(path, np.full((40, 30), 100, np.uint8))
    with open_slide(str(path)) as s:
        with pytest.raises(ValueError):
            s.thumbnail(0)
        assert (s.thumbnail(4) == 100).all()


# -- errors ----------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.svs"
    with pytest.raises(SlideError, match="not found.*nope.svs"):
        open_slide(str(missing))


def test_garbage_file(tmp_path):
    path = tmp_path / "notes.svs"
    path.write_text("this is not a slide\n")
    with pytest.raises(SlideError, match=r"unsupported format: .*notes\.svs.*not a TIFF"):
        open_slide(str(path))
    assert issubclass(SlideError, WsidistError)


def test_empty_file_and_empty_dir(tmp_path):
    (tmp_path / "empty.svs").write_bytes(b"")
    with pytest.raises(SlideError, match="empty file"):
        open_slide(str(tmp_path / "empty.svs"))
    (tmp_path / "d").mkdir()
    with pytest.raises(SlideError, match=r"without readable DICOM \(\.dcm\)"):
        open_slide(str(tmp_path / "d"))


def test_unsupported_tiff_pixels_and_unknown_backend(tmp_path):
    path = tmp_path / "u16.tif"
    tifffile.imwrite(path, np.zeros((20, 20), np.uint16))
    with pytest.raises(SlideError, match=r"unsupported format: .*u16\.tif.*uint16"):
        open_slide(str(path))
    with pytest.raises(SlideError, match="unknown backend"):
        open_slide(str(path), backend="magic")


@needs_slides
def test_truncated_file(tmp_path):
    path = tmp_path / "truncated.svs"
    path.write_bytes(CMU.read_bytes()[:200_000])
    with pytest.raises(SlideError, match=r"truncated\.svs.*truncated TIFF"):
        open_slide(str(path))


@needs_slides
def test_corrupt_tile_data_fails_on_read(tmp_path):
    data = bytearray(CMU.read_bytes())
    data[500_000:520_000] = b"\xff" * 20_000  # tile bytes destroyed, directories intact
    path = tmp_path / "corrupt.svs"
    path.write_bytes(bytes(data))
    for backend in ("openslide", "tifffile"):
        with (
            open_slide(str(path), backend=backend) as s,
            pytest.raises(SlideError, match=r"corrupt\.svs.*(JPEG|failed)"),
        ):
            s.thumbnail(4)


@needs_slides
def test_level_out_of_range_and_closed():
    s = open_slide(str(CMU))
    with pytest.raises(SlideError, match="level 3 out of range"):
        s.read_region(0, 0, 3, (10, 10))
    s.close()
    with pytest.raises(SlideError, match="closed"):
        s.read_region(0, 0, 0, (10, 10))


@needs_slides
def test_pickle_reopens_and_info_table():
    with open_slide(str(KIDNEY)) as s:
        clone = pickle.loads(pickle.dumps(s))
        infos = [s.info()]
    with clone:
        assert clone.dimensions == (1493, 901)
        infos.append(clone.info())
    table, names = info_table(infos, 200)
    assert table.row_count == 2 and len(table.columns) == 8 and names == []
