"""A small thread-safe LRU cache of decoded tiles, bounded in bytes and in entries (one per open
slide). Empty tiles (None) count too: every entry is charged a fixed overhead, so a level of
millions of empty tiles cannot grow the cache without bound."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterable

import numpy as np

DEFAULT_CACHE_BYTES = 64 * 2**20
DEFAULT_CACHE_ENTRIES = 4096
ENTRY_OVERHEAD_BYTES = 256  # key tuple, dict slot and array header of one entry


class TileCache:
    """Decoded tiles (or None for an empty tile) by key, least recently used evicted first.

    At most ``max_entries`` entries and ``max_bytes`` (pixels plus
    :data:`ENTRY_OVERHEAD_BYTES` per entry); the newest entry is always kept, even when it
    alone exceeds ``max_bytes``.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_CACHE_BYTES, max_entries: int = DEFAULT_CACHE_ENTRIES
    ) -> None:
        if max_bytes < 0 or max_entries < 1:
            raise ValueError(
                f"need max_bytes ≥ 0 and max_entries ≥ 1, got {max_bytes}, {max_entries}"
            )
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, np.ndarray | None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def _cost(arr: np.ndarray | None) -> int:
        return ENTRY_OVERHEAD_BYTES + (0 if arr is None else arr.nbytes)

    def lookup(self, keys: Iterable[Hashable]) -> dict[Hashable, np.ndarray | None]:
        """The cached entries among ``keys`` (each marked as just used)."""
        found = {}
        with self._lock:
            for key in keys:
                if key in self._entries:
                    self._entries.move_to_end(key)
                    found[key] = self._entries[key]
        return found

    def store(self, items: dict[Hashable, np.ndarray | None]) -> None:
        """Add decoded tiles, then evict the least recently used beyond the bounds."""
        with self._lock:
            for key, arr in items.items():
                if key in self._entries:
                    continue
                self._entries[key] = arr
                self._bytes += self._cost(arr)
            while len(self._entries) > 1 and (
                self._bytes > self.max_bytes or len(self._entries) > self.max_entries
            ):
                _, old = self._entries.popitem(last=False)
                self._bytes -= self._cost(old)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
