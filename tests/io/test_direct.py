"""The direct-decode fast path is pixel-identical to OpenSlide (composited on white)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

openslide = pytest.importorskip("openslide")

from tests.helpers.paths import MISSING_SLIDES, SLIDES  # noqa: E402
from wsidist.demo.synth import SynthSpec, write_synthetic_slide  # noqa: E402
from wsidist.io.backends.direct import (  # noqa: E402
    DirectOpenSlideBackend,
    DirectTiffReader,
    UnalignedRegion,
    supports,
)
from wsidist.io.backends.openslide_backend import rgba_to_rgb_on_white  # noqa: E402

SIZES = [(1, 1), (240, 240), (512, 512), (777, 333), (256, 1), (3, 300)]


def _real(name: str) -> Path:
    path = SLIDES / name
    if not path.exists():
        pytest.skip(f"{path.name}: {MISSING_SLIDES}")
    return path


def _reference(osr, x: int, y: int, level: int, size: tuple[int, int]) -> np.ndarray:
    return rgba_to_rgb_on_white(np.asarray(osr.read_region((x, y), level, size)))


def _positions(rng, level_w: int, level_h: int, size, n: int):
    """Level coordinates: inside, crossing tile borders, crossing or beyond the slide edges."""
    w, h = size
    yield 0, 0
    yield level_w - w // 2 - 1, level_h - h // 2 - 1  # straddles the bottom-right corner
    yield -w // 2, -h // 2  # straddles the top-left corner
    yield level_w + 5, 3  # wholly outside
    for _ in range(n):
        yield (
            int(rng.integers(-w // 3 - 1, level_w - 2 * w // 3 + 2)),
            int(rng.integers(-h // 3 - 1, level_h - 2 * h // 3 + 2)),
        )


def _check_identical(path: Path, n: int = 12) -> int:
    """Compare every aligned region; returns how many were compared."""
    rng = np.random.default_rng(1234)
    compared = 0
    with openslide.OpenSlide(str(path)) as osr, DirectTiffReader.open(str(path)) as reader:
        assert reader.level_dimensions == tuple(osr.level_dimensions)
        assert reader.level_downsamples == tuple(osr.level_downsamples)
        for level, (lw, lh) in enumerate(osr.level_dimensions):
            ds = osr.level_downsamples[level]
            step = int(ds) if float(ds).is_integer() else None
            for size in SIZES:
                for lx, ly in _positions(rng, lw, lh, size, n):
                    if step is None and (lx, ly) != (0, 0):
                        continue  # non-integer downsample: only the origin is aligned
                    x, y = (lx * step, ly * step) if step else (0, 0)
                    got = reader.read_region(x, y, level, size)
                    want = _reference(osr, x, y, level, size)
                    assert got.dtype == np.uint8 and got.shape == (size[1], size[0], 3)
                    assert np.array_equal(got, want), (path.name, level, x, y, size)
                    compared += 1
    return compared


@pytest.fixture(scope="module")
def synth_svs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("direct") / "synth.svs"
    write_synthetic_slide(path, SynthSpec(width=3000, height=2000, seed=7))
    return path


@pytest.fixture(scope="module")
def synth_generic(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("direct") / "synth.tiff"
    write_synthetic_slide(
        path, SynthSpec(width=2600, height=1900, seed=8, tile=128, vendor_style="generic")
    )
    return path


def test_cmu_jpeg_identical():
    assert _check_identical(_real("CMU-1-Small-Region.svs")) > 50


def test_tcga_jpeg2000_identical():
    assert _check_identical(_real("tcga-cr-7395-01a-01-ts1.svs")) > 50


def test_synthetic_aperio_identical(synth_svs):
    assert supports(synth_svs) is True
    assert _check_identical(synth_svs) > 100


def test_synthetic_generic_identical(synth_generic):
    assert supports(synth_generic) is True
    assert _check_identical(synth_generic) > 100


def test_whole_levels_identical(synth_svs):
    path = _real("tcga-cr-7395-01a-01-ts1.svs")
    for p in (path, synth_svs):
        with openslide.OpenSlide(str(p)) as osr, DirectTiffReader(str(p)) as reader:
            for level, (lw, lh) in enumerate(osr.level_dimensions):
                want = _reference(osr, 0, 0, level, (lw, lh))
                assert np.array_equal(reader.read_level(level, 0, 0, lw, lh), want)


def test_level_mapping_matches_openslide_truncation_rule():
    """TCGA level 1 downsample is 2.0005…: only origins with x / ds integral are exact."""
    path = _real("tcga-cr-7395-01a-01-ts1.svs")
    with DirectTiffReader(str(path)) as reader:
        assert reader.level_downsamples[1] != 2.0
        assert reader.level_origin(0, 0, 1) == (0, 0)
        assert reader.level_origin(1000, 1000, 1) is None
        assert reader.level_origin(1000, 1000, 0) == (1000, 1000)
        with pytest.raises(UnalignedRegion):
            reader.read_region(1000, 1000, 1, (10, 10))


def test_backend_falls_back_where_unaligned(synth_svs):
    path = _real("tcga-cr-7395-01a-01-ts1.svs")
    for p, level, (x, y) in [(path, 1, (1001, 1777)), (synth_svs, 1, (1001, 3)), (path, 0, (7, 9))]:
        backend = DirectOpenSlideBackend(str(p))
        try:
            assert backend.fast_path is not None, backend.fast_path_reason
            with openslide.OpenSlide(str(p)) as osr:
                want = _reference(osr, x, y, level, (300, 200))
            assert np.array_equal(backend.read_region(x, y, level, (300, 200)), want)
            assert backend.read_region(x, y, level, (0, 5)).shape == (5, 0, 3)
        finally:
            backend.close()


@pytest.mark.parametrize(
    "name, words",
    [
        ("test3-DAPI-2-(387).ndpi", "vendor 'hamamatsu'"),
        ("dicom", "directory"),
        ("kidney-48-5.tif", "not tiled (NONE strips)"),
    ],
)
def test_unsupported_have_reasons(name, words):
    result = supports(_real(name))
    assert not result
    assert words in str(result), str(result)


def test_unsupported_non_tiff(tmp_path):
    path = tmp_path / "x.svs"
    path.write_bytes(b"not a slide at all")
    result = supports(path)
    assert not result and "not a TIFF" in result


def test_backend_reports_reason_for_unsupported():
    backend = DirectOpenSlideBackend(str(_real("test3-DAPI-2-(387).ndpi")))
    try:
        assert backend.fast_path is None and "hamamatsu" in backend.fast_path_reason
    finally:
        backend.close()


def test_cache_is_bounded(synth_svs):
    with DirectTiffReader(str(synth_svs), cache_bytes=300_000) as reader:
        reader.read_level(0, 0, 0, 3000, 2000)
        assert reader._cache.nbytes <= 300_000 or len(reader._cache) == 1
        again = reader.read_level(0, 100, 100, 600, 600)
    with openslide.OpenSlide(str(synth_svs)) as osr:
        assert np.array_equal(again, _reference(osr, 100, 100, 0, (600, 600)))
