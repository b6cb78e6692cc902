"""The decoded-tile LRU cache: hits, byte bound, eviction order, empty tiles."""

from __future__ import annotations

import numpy as np

from wsidist.io.backends.tile_cache import ENTRY_OVERHEAD_BYTES as E
from wsidist.io.backends.tile_cache import TileCache


def tile(n: int) -> np.ndarray:
    return np.zeros(n, np.uint8)


def test_lookup_store_and_evict_least_recent():
    cache = TileCache(max_bytes=2 * E + 250)
    cache.store({"a": tile(100), "b": tile(100)})
    assert set(cache.lookup(["a", "x"])) == {"a"}  # "a" is now the most recent
    cache.store({"c": tile(100)})
    assert set(cache.lookup(["a", "b", "c"])) == {"a", "c"} and cache.nbytes == 2 * E + 200


def test_empty_tiles_are_cached_and_cost_their_entry():
    cache = TileCache(max_bytes=10 * E)
    cache.store({"gone": None})
    assert cache.lookup(["gone"]) == {"gone": None} and cache.nbytes == E


def test_millions_of_empty_tiles_stay_bounded_by_bytes_and_entries():
    by_bytes = TileCache(max_bytes=100 * E, max_entries=10**6)
    by_entries = TileCache(max_bytes=2**30, max_entries=50)
    for i in range(200_000):
        by_bytes.store({("level", i): None})
        by_entries.store({("level", i): None})
    assert len(by_bytes) == 100 and by_bytes.nbytes == 100 * E
    assert len(by_entries) == 50
    assert by_entries.lookup([("level", 199_999)]) == {("level", 199_999): None}


def test_the_newest_entry_stays_even_when_too_big():
    cache = TileCache(max_bytes=E + 10)
    cache.store({"small": tile(5)})
    cache.store({"big": tile(100)})
    assert list(cache.lookup(["small", "big"])) == ["big"] and len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
