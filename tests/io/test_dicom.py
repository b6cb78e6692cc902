"""The DICOM reader: series grouping, colours from the JPEG stream, non-conformant files.

Ground truth: the shared series was converted from CMU-1-Small-Region.svs, so its pixels must
agree with the SVS; generated series (wsidist.demo.dicom) carry the exact pixels written, and
OpenSlide is the reference wherever a file is conformant.
"""

from __future__ import annotations

import shutil

import numpy as np
import openslide
import pytest

from tests.helpers.paths import CMU, DICOM, MISSING_SLIDES
from wsidist.demo.dicom import pyramid, write_dicom_series
from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.errors import SlideError
from wsidist.io.backends.jpeg_stream import jpeg_stream_colorspace
from wsidist.io.slide import open_slide

needs_slides = pytest.mark.skipif(not DICOM.is_dir(), reason=MISSING_SLIDES)


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def openslide_rgb(path, level=0) -> np.ndarray:
    with openslide.OpenSlide(str(path)) as o:
        size = o.level_dimensions[level]
        return np.asarray(o.read_region((0, 0), level, size))[..., :3]


@pytest.fixture(scope="module")
def tissue_rgb(tmp_path_factory) -> np.ndarray:
    """Level 0 of a generated H&E slide (tissue, pens, glass): the pixels the series carry."""
    path = tmp_path_factory.mktemp("src") / "src.svs"
    write_synthetic_slide(path, SynthSpec(width=1100, height=900, seed=11, n_blobs=2))
    with open_slide(str(path)) as s:
        return s.read_region(0, 0, 0, s.dimensions)


@needs_slides
def test_shared_series_reads_in_the_svs_colours_and_is_flagged():
    with open_slide(str(DICOM)) as d, open_slide(str(CMU)) as svs:
        assert d.backend == "dicom" and d.dimensions == svs.dimensions == (2220, 2967)
        ours = d.read_region(0, 0, 0, d.dimensions)
        truth = svs.read_region(0, 0, 0, svs.dimensions)
        assert "JFIF" in " ".join(d.warnings) and "says RGB" in " ".join(d.warnings)
        assert d.properties["dicom.decoded-as"] == "YCbCr"
        # reduced levels (resampled by the converter): the same colours as the SVS
        small = d.read_level(3, 0, 0, *d.level_dimensions[3])
        svs_small = svs.thumbnail(d.level_downsamples[3])
    level0 = sorted(DICOM.glob("level-0-*.dcm"))[0]
    follows_tag = openslide_rgb(level0)
    assert mean_abs(ours, truth) < 4.0  # JPEG re-encoding loss only (measured 3.4)
    assert mean_abs(follows_tag, truth) > 50  # the false colours of reading the tag (66)
    colour = lambda a: a.reshape(-1, 3).mean(axis=0)  # noqa: E731
    assert np.abs(colour(small) - colour(svs_small)).max() < 2
    assert np.abs(colour(openslide_rgb(level0, 3)) - colour(svs_small)).max() > 20


@pytest.mark.parametrize(
    ("jpeg", "photometric", "flagged"),
    [("jfif", "YBR_FULL_422", False), ("rgb", "RGB", False), ("jfif", "RGB", True),
     ("rgb", "YBR_FULL_422", True)],
)  # fmt: skip
def test_colours_follow_the_jpeg_stream(tmp_path, tissue_rgb, jpeg, photometric, flagged):
    paths = write_dicom_series(
        tmp_path / "s", pyramid(tissue_rgb, 3), jpeg=jpeg, photometric=photometric, quality=95
    )
    with open_slide(str(tmp_path / "s")) as d:
        assert d.backend == "dicom" and d.level_count == 3 and d.mpp_x == pytest.approx(0.5)
        ours = d.read_region(0, 0, 0, d.dimensions)
        assert bool(d.warnings) == flagged
        assert mean_abs(ours, tissue_rgb) < 1.5
        if not flagged:  # conformant: identical to OpenSlide, level by level
            for level in range(3):
                np.testing.assert_array_equal(
                    d.read_level(level, 0, 0, *d.level_dimensions[level]),
                    openslide_rgb(paths[level], level),
                )
    if flagged:
        assert mean_abs(openslide_rgb(paths[0]), tissue_rgb) > 20


@pytest.mark.parametrize(
    "kw",
    [{"offsets": "none"}, {"offsets": "eot"}, {"organisation": None},
     {"drop": ["NumberOfFrames"]}, {"drop": ["SharedFunctionalGroupsSequence"]}],
)  # fmt: skip
def test_offset_tables_and_lenient_headers(tmp_path, tissue_rgb, kw):
    write_dicom_series(tmp_path / "s", pyramid(tissue_rgb, 2), frame=128, **kw)
    with open_slide(str(tmp_path / "s")) as d:
        assert d.dimensions == (1100, 900) and d.level_count == 2
        assert mean_abs(d.read_region(0, 0, 0, d.dimensions), tissue_rgb) < 1.5
        region = d.read_region(300, 200, 0, (333, 250))  # across frame borders
        assert mean_abs(region, tissue_rgb[200:450, 300:633]) < 1.5


def test_a_series_openslide_refuses_reads_here(tmp_path, tissue_rgb):
    """No ImageType: OpenSlide cannot tell a pyramid level from a label; the reader can."""
    paths = write_dicom_series(tmp_path / "s", pyramid(tissue_rgb, 2), drop=["ImageType"])
    with pytest.raises(openslide.OpenSlideError):
        openslide.OpenSlide(str(paths[0]))
    with open_slide(str(paths[0])) as d:
        assert d.backend == "dicom"
        assert mean_abs(d.read_region(0, 0, 0, d.dimensions), tissue_rgb) < 1.5


def test_secondary_capture_image_is_a_one_level_slide(tmp_path, tissue_rgb):
    paths = write_dicom_series(tmp_path / "s", [tissue_rgb], wsm=False, mpp=None)
    with open_slide(str(paths[0])) as d:
        assert d.level_count == 1 and d.dimensions == (1100, 900) and d.mpp_x is None
        assert mean_abs(d.read_region(0, 0, 0, d.dimensions), tissue_rgb) < 1.5


def test_label_is_an_associated_image(tmp_path, tissue_rgb):
    write_dicom_series(tmp_path / "s", [tissue_rgb], label=tissue_rgb[:90, :120])
    with open_slide(str(tmp_path / "s")) as d:
        assert d.associated_images == ("label",) and d.level_count == 1
        assert mean_abs(d.associated_image("label"), tissue_rgb[:90, :120]) < 2


def test_two_series_in_one_folder_open_as_themselves(tmp_path, tissue_rgb):
    other = np.ascontiguousarray(tissue_rgb[:600, :500][:, ::-1])
    a = write_dicom_series(tmp_path / "m", pyramid(tissue_rgb, 2), prefix="a")
    b = write_dicom_series(tmp_path / "m", [other], prefix="b")
    with open_slide(str(a[1])) as sa, open_slide(str(b[0])) as sb:
        assert sa.dimensions == (1100, 900) and sa.level_count == 2
        assert sb.dimensions == (500, 600) and sb.level_count == 1
        assert mean_abs(sb.read_region(0, 0, 0, sb.dimensions), other) < 1.5
    with pytest.raises(SlideError, match="holds 2 DICOM series"):
        open_slide(str(tmp_path / "m"))


def test_truncated_and_foreign_files_fail_with_a_reason(tmp_path, tissue_rgb):
    paths = write_dicom_series(tmp_path / "t", [tissue_rgb])
    data = paths[0].read_bytes()
    paths[0].write_bytes(data[: len(data) * 2 // 3])
    with open_slide(str(paths[0])) as d:  # OpenSlide opens it lazily; the reason is kept
        assert d.backend == "openslide" and "truncated" in " ".join(d.warnings)
        with pytest.raises(SlideError, match="level 0"):
            d.read_region(0, 0, 0, d.dimensions)
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "x.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00" * 20)
    with pytest.raises(SlideError):
        open_slide(str(tmp_path / "f" / "x.dcm"))


def test_jpeg_stream_colorspace_markers(tissue_rgb):
    import imagecodecs

    tile = tissue_rgb[:64, :64]
    assert jpeg_stream_colorspace(imagecodecs.jpeg8_encode(tile)).colorspace == "YCbCr"
    rgb = imagecodecs.jpeg8_encode(tile, colorspace="RGB", outcolorspace="RGB")
    assert jpeg_stream_colorspace(rgb).colorspace == "RGB"
    assert jpeg_stream_colorspace(b"not a jpeg").colorspace is None
    gray = imagecodecs.jpeg8_encode(np.ascontiguousarray(tile[..., 0]))
    assert jpeg_stream_colorspace(gray).components == 1


def test_folder_copy_reads_like_the_original(tmp_path, tissue_rgb):
    """A series copied elsewhere (as the remote cache does) keeps its files together."""
    write_dicom_series(tmp_path / "s", pyramid(tissue_rgb, 2))
    shutil.copytree(tmp_path / "s", tmp_path / "copy")
    with open_slide(str(tmp_path / "copy")) as d:
        assert d.properties["dicom.files"] == "2"
