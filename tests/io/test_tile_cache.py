"""The decoded-tile LRU cache: hits, byte bound, eviction order, empty tiles."""

from __future__ import annotations

import numpy as np

from wsidist.io.backends.tile_cache import TileCache


def tile(n: int) -> np.ndarray:
    return np.zeros(n, np.uint8)


def test_lookup_store_and_evict_least_recent():
    cache = TileCache(max_bytes=250)
    cache.store({"a": tile(100), "b": tile(100)})
    assert set(cache.lookup(["a", "x"])) == {"a"}  # "a" is now the most recent
    cache.store({"c": tile(100)})
    assert set(cache.lookup(["a", "b", "c"])) == {"a", "c"} and cache.nbytes == 200


def test_empty_tiles_are_cached_and_cost_nothing():
    cache = TileCache(max_bytes=10)
    cache.store({"gone": None})
    assert cache.lookup(["gone"]) == {"gone": None} and cache.nbytes == 0


def test_the_newest_entry_stays_even_when_too_big():
    cache = TileCache(max_bytes=10)
    cache.store({"small": tile(5)})
    cache.store({"big": tile(100)})
    assert list(cache.lookup(["small", "big"])) == ["big"] and len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
