"""A slide that claims far more than it holds: the direct reader's tile cache stays bounded by
entries and bytes, empty tiles included (a crafted 400000² px JPEG TIFF of a few MB)."""

from __future__ import annotations

import psutil

from wsidist.demo.crafted import write_sparse_giant
from wsidist.io.backends.direct import DirectTiffReader
from wsidist.io.backends.tile_cache import DEFAULT_CACHE_BYTES, DEFAULT_CACHE_ENTRIES
from wsidist.io.slide import open_slide


def test_reading_many_empty_tiles_keeps_the_cache_bounded(tmp_path):
    path = write_sparse_giant(tmp_path / "giant.tiff", 400_000, 400_000)
    with open_slide(str(path)) as slide:
        assert slide.dimensions == (400_000, 400_000)
        reader = slide._impl.fast_path
        assert isinstance(reader, DirectTiffReader)
        rss0 = psutil.Process().memory_info().rss
        for i in range(3 * DEFAULT_CACHE_ENTRIES):  # one stored tile each, nearly all empty
            x, y = (i % 1500) * 256, (i // 1500) * 256
            slide.read_level(0, x, y, 256, 256)
        cache = reader._cache
        assert len(cache) <= DEFAULT_CACHE_ENTRIES
        assert cache.nbytes <= DEFAULT_CACHE_BYTES
        grown_mb = (psutil.Process().memory_info().rss - rss0) / 2**20
    print(
        f"{3 * DEFAULT_CACHE_ENTRIES} tile reads: cache {len(cache)} entries, RSS +{grown_mb:.0f} MB"
    )
    assert grown_mb < 100
