"""DZI geometry and tiles read through Slide, against read_region and the area average."""

import io

import numpy as np
import pytest
from PIL import Image

from wsidist.demo.synth import SynthSpec, write_synthetic_slide
from wsidist.imaging import area_reduce
from wsidist.io.slide import open_slide
from wsidist.view.cache import ByteLRU
from wsidist.view.dzi import DeepZoom, read_tile


def test_geometry_of_levels_and_edge_tiles():
    dz = DeepZoom(2220, 2967)
    assert dz.max_level == 12 and dz.level_size(12) == (2220, 2967) and dz.level_size(0) == (1, 1)
    assert dz.level_size(11) == (1110, 1484)
    assert dz.tile_count(12) == (9, 12)
    assert dz.tile_box(12, 0, 0) == (0, 0, 255, 255)  # overlap on the inner sides only
    assert dz.tile_box(12, 1, 1) == (253, 253, 509, 509)
    assert dz.tile_box(12, 8, 11) == (2031, 2793, 2220, 2967)
    assert dz.tile_box(12, 9, 0) is None and dz.tile_box(13, 0, 0) is None
    assert 'Width="2220" Height="2967"' in dz.xml("jpeg")


@pytest.fixture(scope="module")
def pyramid_slide(tmp_path_factory):
    path = tmp_path_factory.mktemp("dzi") / "s.svs"
    write_synthetic_slide(path, SynthSpec(width=3000, height=2000, seed=5, n_blobs=2))
    return path


def test_tiles_at_slide_levels_equal_read_region(pyramid_slide):
    with open_slide(str(pyramid_slide)) as slide:
        dz = DeepZoom(*slide.dimensions)
        assert slide.level_downsamples[:2] == (1.0, 4.0)
        for level, slide_level in ((dz.max_level, 0), (dz.max_level - 2, 1)):
            d = dz.downsample(level)
            for col, row in (
                (0, 0),
                (1, 1),
                (dz.tile_count(level)[0] - 1, dz.tile_count(level)[1] - 1),
            ):
                x0, y0, x1, y1 = dz.tile_box(level, col, row)
                want = slide.read_region(x0 * d, y0 * d, slide_level, (x1 - x0, y1 - y0))
                assert np.array_equal(read_tile(slide, dz, level, col, row), want)


def test_tiles_between_levels_are_area_averages(pyramid_slide):
    with open_slide(str(pyramid_slide)) as slide:
        dz = DeepZoom(*slide.dimensions)
        level = dz.max_level - 1  # downsample 2: no such slide level
        x0, y0, x1, y1 = dz.tile_box(level, 1, 1)
        src = slide.read_region(x0 * 2, y0 * 2, 0, ((x1 - x0) * 2, (y1 - y0) * 2))
        got = read_tile(slide, dz, level, 1, 1).astype(int)
        assert np.abs(got - area_reduce(src, 2).astype(int)).max() <= 1
        tiny = read_tile(slide, dz, 0, 0, 0)  # 1×1 px: the whole slide averaged
        assert tiny.shape == (1, 1, 3) and 150 < tiny.mean() < 255
        with pytest.raises(KeyError):
            read_tile(slide, dz, dz.max_level, 99, 0)


def test_lru_cache_is_bounded_by_bytes():
    cache = ByteLRU(100)
    cache.put("a", b"x" * 40)
    cache.put("b", b"x" * 40)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", b"x" * 40)  # over 100 bytes: b (least recent) goes
    assert cache.get("b") is None and cache.get("a") and cache.get("c")
    assert cache.size_bytes == 80 and len(cache) == 2
    cache.put("huge", b"x" * 101)  # larger than the cache: not kept, nothing evicted
    assert cache.get("huge") is None and len(cache) == 2
    made = []
    assert cache.get_or_make("d", lambda: made.append(1) or b"yy") == b"yy"
    assert cache.get_or_make("d", lambda: made.append(1) or b"zz") == b"yy" and made == [1]


def test_png_tile_round_trip(pyramid_slide):
    from wsidist.imaging import encode_image

    with open_slide(str(pyramid_slide)) as slide:
        dz = DeepZoom(*slide.dimensions)
        tile = read_tile(slide, dz, dz.max_level, 2, 3)
    back = np.asarray(Image.open(io.BytesIO(encode_image(tile, "png"))).convert("RGB"))
    assert np.array_equal(back, tile)


def test_a_slide_and_its_rewritten_pyramid_both_get_keys():
    from wsidist.view.catalog import PYRAMID_SUFFIX, _viewer_keys

    keys = _viewer_keys(["/d/a/CMU.svs", "/d/out/pyramids/cmu.tiff", "/d/b/CMU.svs"])
    assert (
        keys["/d/a/CMU.svs"] == "CMU" and keys["/d/out/pyramids/cmu.tiff"] == f"cmu{PYRAMID_SUFFIX}"
    )
    assert keys["/d/b/CMU.svs"] == "CMU~2"
